//! Processes other than the core die or are replaced while players type: the supervisor is
//! killed (and started again, as systemd or runit would), or upgraded in place. Nobody is
//! disconnected, nothing typed is lost, and the new supervisor runs the same game instead of
//! starting a second one.

use nix::sys::signal::kill;
use nix::unistd::Pid;
use tether_tests::typing::{
    assert_at_most_once_in_order, assert_exactly_once_in_order, type_through, type_through_a_crash,
};
use tether_tests::{Options, Tether, wait_for};

fn with_log() -> Tether {
    Tether::start_with(Options {
        capture_log: true,
        ..Options::default()
    })
}

fn alive(pid: i32) -> bool {
    kill(Pid::from_raw(pid), None).is_ok()
}

fn closed_sessions(tether: &Tether) -> usize {
    tether.log().matches("session closed").count()
}

/// Waits until `tether status` shows a proxy and a core other than `proxy` and `core`, and
/// no adopted process any more.
fn wait_for_own_children(tether: &Tether, proxy: i32, core: i32) -> String {
    wait_for("the new supervisor's own proxy and core", || {
        let (ok, status) = tether.ctl(&["status"]);
        let settled = ok
            && !status.contains("adopted")
            && !status.contains(&format!("proxy: pid {proxy},"))
            && !status.contains(&format!("core: pid {core},"))
            && status.contains("proxy: pid")
            && status.contains("core: pid");
        settled.then_some(status)
    })
}

#[test]
fn a_killed_supervisor_keeps_every_player_and_the_next_one_adopts_the_game() {
    let mut tether = with_log();
    let mut player = tether.connect();
    player.create("Wanderer", "hunter22");
    let mut bystander = tether.connect();
    bystander.create("Watcher", "hunter22");
    let (proxy, core) = (tether.proxy_pid(), tether.core_pid());
    let closed_before = closed_sessions(&tether);

    let mut during = String::new();
    let mut newcomer = None;
    let typed = type_through(&mut player, || {
        tether.kill_supervisor();
        assert!(alive(proxy) && alive(core), "the proxy and the core run on");
        // The game goes on without any supervisor: a newcomer still gets in.
        let mut arriving = tether.connect();
        arriving.expect("connect <name>");
        // Kept open to the end: its leaving would count as a session the core saw end.
        newcomer = Some(arriving);
        tether.restart_supervisor();
        during = wait_for_own_children(&tether, proxy, core);
    });
    assert_exactly_once_in_order(&typed);
    eprintln!(
        "supervisor kill -9 and restart: {} lines, longest wait {:?}",
        typed.sent, typed.longest_wait
    );
    assert!(during.contains("upgrades 1"), "{during}");
    assert!(during.contains("reloads 1"), "{during}");
    tether.expect_log(&["adopted the running proxy", &format!("pid {proxy}")]);
    tether.expect_log(&["adopted the running core", &format!("pid {core}")]);
    wait_for("the adopted processes to exit", || {
        (!alive(proxy) && !alive(core)).then_some(())
    });

    // The new supervisor runs the game as the first did: a reload works, players play on.
    tether.reload();
    bystander.send("say still here");
    bystander.expect("You say, \"still here\"");
    player.expect("Watcher says, \"still here\"");
    let seen = bystander.transcript.join("\n");
    assert!(
        !seen.contains("has left the game") && !seen.contains("arrives"),
        "the bystander saw a session end or begin:\n{seen}"
    );
    assert_eq!(
        closed_sessions(&tether),
        closed_before,
        "the core saw a session end"
    );
}

#[test]
fn tether_upgrade_supervisor_re_executes_in_place_and_keeps_every_player() {
    let tether = with_log();
    let mut player = tether.connect();
    player.create("Wanderer", "hunter22");
    let supervisor = tether.supervisor_pid();
    let closed_before = closed_sessions(&tether);

    let typed = type_through(&mut player, || {
        for generation in [2, 3] {
            let (proxy, core) = (tether.proxy_pid(), tether.core_pid());
            let (ok, said) = tether.ctl(&["upgrade-supervisor"]);
            assert!(ok, "tether upgrade-supervisor failed: {said}");
            assert!(said.contains("the new supervisor answers"), "{said}");
            let status = wait_for_own_children(&tether, proxy, core);
            assert!(
                status.contains(&format!("pid {supervisor}, "))
                    && status.contains(&format!("generation {generation}")),
                "{status}"
            );
        }
    });
    assert_exactly_once_in_order(&typed);
    eprintln!(
        "two supervisor upgrades: {} lines, longest wait {:?}",
        typed.sent, typed.longest_wait
    );
    assert_eq!(
        closed_sessions(&tether),
        closed_before,
        "the core saw a session end"
    );
}

#[test]
fn a_stopped_game_leaves_nothing_to_adopt() {
    let mut tether = with_log();
    let (proxy, core) = (tether.proxy_pid(), tether.core_pid());
    assert!(tether.stop_in_place().success());
    assert!(!alive(proxy) && !alive(core));
    assert!(!tether.data_dir().join("children").exists());
    tether.restart_supervisor();
    let mut player = tether.connect();
    player.create("Wanderer", "hunter22");
    assert!(!tether.log().contains("adopted"));
}

/// `kill -9` of the proxy while players type, one of them with MCCP2 on and one half way
/// through choosing a password: the supervisor holds a copy of every connection, and the
/// next proxy carries each on from its checkpoint. Nobody is disconnected or logged out, the
/// compressed stream stays valid, the bystander sees nobody leave or arrive, and the one
/// cost is what was in flight at the instant of the crash.
#[test]
fn a_killed_proxy_keeps_every_player_connected() {
    const IAC: u8 = 255;
    const WILL: u8 = 251;
    const WONT: u8 = 252;
    const DO: u8 = 253;
    const ECHO: u8 = 1;

    let tether = with_log();
    let mut player = tether.connect().with_mccp2();
    player.create("Wanderer", "hunter22");
    let mut bystander = tether.connect();
    bystander.create("Watcher", "hunter22");
    // Half way through choosing a password: the client is not echoing.
    let mut creating = tether_tests::RawClient::connect(tether.telnet);
    creating.expect(b"login>");
    creating.send_line("create Bob");
    creating.expect(b"Choose a password");
    creating.send(&[IAC, DO, ECHO]);
    let proxy = tether.proxy_pid();
    let closed_before = closed_sessions(&tether);

    let typed = type_through_a_crash(&mut player, || {
        nix::sys::signal::kill(Pid::from_raw(proxy), nix::sys::signal::Signal::SIGKILL)
            .expect("kill the proxy");
        tether.wait_for_new_proxy(proxy);
    });
    let lost = assert_at_most_once_in_order(&typed);
    eprintln!(
        "proxy kill -9: {} lines, {lost} lost, longest wait {:?}",
        typed.sent, typed.longest_wait
    );
    assert!(
        lost <= 3,
        "only lines in flight at the crash may be lost: {lost}"
    );
    let heard = player.transcript.join("\n");
    assert_eq!(
        heard
            .matches("[tether] The server recovered from a fault")
            .count(),
        1,
        "one short notice:\n{heard}"
    );
    tether.expect_log(&["players stay connected", "keeper"]);
    assert!(
        tether.status().contains("recoveries 1"),
        "{}",
        tether.status()
    );

    // Still compressed, still the same stream, never broken (the harness inflates it).
    let mccp2 = player.mccp2.as_ref().expect("compressing");
    assert_eq!((mccp2.started, mccp2.ended), (1, 0));
    player.send("who");
    player.expect("Wanderer");

    // The password half chosen is still hidden, and the creation goes on.
    creating.send(b"secret99\r\n");
    creating.expect(b"Your character has been created.");
    let after = creating.received.clone();
    assert!(after.windows(3).any(|w| w == [IAC, WILL, ECHO]));
    assert!(after.windows(3).any(|w| w == [IAC, WONT, ECHO]));

    bystander.send("say still here");
    bystander.expect("You say, \"still here\"");
    player.expect("Watcher says, \"still here\"");
    let seen = bystander.transcript.join("\n");
    assert!(
        !seen.contains("has left the game") && !seen.contains("arrives"),
        "the bystander saw a session end or begin:\n{seen}"
    );
    assert_eq!(
        closed_sessions(&tether),
        closed_before,
        "the core saw a session end"
    );
    // A newcomer gets in through the kept listener, and an upgrade after a recovery works.
    let mut newcomer = tether.connect();
    newcomer.expect("connect <name>");
    tether.upgrade_proxy();
    player.send("say after the upgrade");
    player.expect("You say, \"after the upgrade\"");
}
