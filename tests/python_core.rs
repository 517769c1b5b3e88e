//! The link protocol is the contract: a core written in Python (`cores/python/core.py`, with
//! pycapnp from the package registry) behind the real supervisor and proxy. Players log in,
//! talk and look, and keep typing while that core is reloaded: every line is answered exactly
//! once and in order, and nobody is disconnected or logged out.

use std::path::Path;

use tether_tests::typing::{assert_exactly_once_in_order, type_through};
use tether_tests::{Client, Options, Tether};

/// The Python core, if this machine can run it (pycapnp and argon2-cffi installed).
fn python_core() -> Option<std::path::PathBuf> {
    let found = std::process::Command::new("python3")
        .args(["-c", "import capnp, argon2"])
        .output()
        .is_ok_and(|out| out.status.success());
    if !tether_tests::real_client("python3 with pycapnp and argon2-cffi", found) {
        return None;
    }
    Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("cores/python/core.py"))
}

fn enter(player: &mut Client, command: &str, name: &str) {
    player.send(&format!("{command} {name} sesame-seed"));
    player.expect(&format!("Welcome, {name}."));
    player.expect("Exits: north.");
}

#[test]
fn players_play_on_a_python_core_through_reloads() {
    let Some(core) = python_core() else {
        return;
    };
    let tether = Tether::start_with(Options {
        core_bin: Some(core),
        ..Options::default()
    });
    let mut alice = tether.connect();
    alice.expect("Python Garden");
    enter(&mut alice, "create", "Alice");
    let mut bob = tether.connect();
    enter(&mut bob, "create", "Bob");
    alice.expect("Bob has entered the game.");

    bob.send("say hello from the garden");
    alice.expect("Bob says, \"hello from the garden\"");
    alice.send("look");
    alice.expect("Bob is here.");

    let first_core = tether.core_pid();
    let typed = type_through(&mut alice, || {
        for _ in 0..3 {
            tether.reload();
        }
    });
    assert_exactly_once_in_order(&typed);
    assert_ne!(tether.core_pid(), first_core, "the core was replaced");
    eprintln!(
        "python core, 3 reloads: {} lines, longest wait {:?}",
        typed.sent, typed.longest_wait
    );

    // Both are still logged in, in the same room, on the newest core: no re-login, no notice.
    bob.send("who");
    bob.expect("Players online: Alice, Bob");
    alice.send("north");
    bob.expect("Alice leaves north.");
    bob.send("say still here");
    bob.expect("You say, \"still here\"");
    assert!(!alice.is_closed() && !bob.is_closed());
    let lines = bob.take_lines();
    assert!(
        !lines.iter().any(|line| line.contains("[tether]")),
        "a reload is invisible: {lines:?}"
    );

    // A character survives logging out, with its password checked by the new core.
    bob.send("quit");
    bob.expect_closed();
    let mut again = tether.connect();
    again.send("connect Bob wrong-password");
    again.expect("Wrong name or password.");
    enter(&mut again, "connect", "Bob");
}
