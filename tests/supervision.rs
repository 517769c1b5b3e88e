//! The supervisor's other duties, seen from a player's side: SIGHUP reloads the core, and a
//! proxy that dies is replaced by one that carries its players on.

use nix::sys::signal::Signal;
use tether_tests::Tether;

#[test]
fn sighup_reloads_the_core_and_nobody_notices() {
    let tether = Tether::start();
    let mut player = tether.connect();
    player.create("Hupper", "hangup12");
    let before = tether.core_pid();

    tether.signal(Signal::SIGHUP);
    let after = tether.wait_for_new_core(before);
    assert_ne!(before, after);
    player.send("say after the hangup");
    player.expect("You say, \"after the hangup\"");
    assert!(
        player
            .take_lines()
            .iter()
            .all(|line| !line.contains("[tether]"))
    );
}

#[test]
fn a_proxy_that_dies_is_replaced_and_its_players_stay() {
    let tether = Tether::start();
    let mut player = tether.connect();
    player.create("Phoenix", "ashes123");
    let proxy = tether.proxy_pid();

    nix::sys::signal::kill(nix::unistd::Pid::from_raw(proxy), Signal::SIGKILL)
        .expect("kill -9 the proxy");
    tether.wait_for_new_proxy(proxy);
    player.expect("[tether] The server recovered from a fault");
    player.send("who");
    player.expect("1 player online.");
    assert!(!player.is_closed(), "the player was disconnected");

    // Newcomers get in as before.
    let mut again = tether.connect();
    again.expect("connect <name>");
    again.create("Ember", "ashes123");
    again.send("who");
    again.expect("2 players online.");
}
