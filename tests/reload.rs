//! A player keeps typing while the core is replaced (planned reload) or killed (kill -9): the
//! connection never closes, every line is answered exactly once and in order, and the
//! character's title and room survive.

use tether_tests::typing::{assert_exactly_once_in_order, type_through};
use tether_tests::{Client, Tether};

/// Logs in, sets a title, walks away from the start room; returns the room's name line.
fn settle(player: &mut Client) -> String {
    player.create("Wanderer", "hunter22");
    player.send("title the Unbroken");
    player.expect("You are now known as");
    player.send("north");
    player.expect("Exits");
    player.send("look");
    player.expect_line("the room name", |line| !line.trim().is_empty())
}

fn assert_survived(player: &mut Client, room: &str) {
    player.send("look");
    player.expect(room);
    player.send("who");
    player.expect("Wanderer the Unbroken");
    assert!(!player.is_closed());
}

#[test]
fn planned_reloads_while_typing_lose_nothing() {
    let tether = Tether::start();
    let mut player = tether.connect();
    let room = settle(&mut player);
    let first_core = tether.core_pid();

    let typed = type_through(&mut player, || {
        for _ in 0..2 {
            tether.reload();
        }
    });
    assert_exactly_once_in_order(&typed);
    assert_ne!(tether.core_pid(), first_core, "the core was replaced");
    assert_survived(&mut player, &room);
    eprintln!(
        "planned reload x2: {} lines, longest wait {:?}",
        typed.sent, typed.longest_wait
    );
}

#[test]
fn kill_9_of_the_core_while_typing_loses_nothing() {
    let tether = Tether::start();
    let mut player = tether.connect();
    let room = settle(&mut player);
    let doomed = tether.core_pid();

    let typed = type_through(&mut player, || {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(doomed),
            nix::sys::signal::Signal::SIGKILL,
        )
        .expect("kill -9 the core");
        tether.wait_for_new_core(doomed);
    });
    assert_exactly_once_in_order(&typed);
    assert_survived(&mut player, &room);
    eprintln!(
        "kill -9: {} lines, longest wait {:?}",
        typed.sent, typed.longest_wait
    );
}
