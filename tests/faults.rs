//! A game developer's commonest bugs, injected into a real core while other players type: a
//! command that panics, aborts, overflows its stack or never returns, a core stopped with
//! `kill -STOP`, and a core that is merely slow. Each time the other players lose nothing, the
//! faulty player is told, and the game is back within the limits the supervisor promises.
//!
//! The faults come from the core's test-only fault injection (`engine/src/fault.rs`): a debug
//! build with `TETHER_FAULTS=1`.

use std::collections::HashMap;

use nix::sys::signal::Signal;
use tether_tests::{Client, Options, Tether, http_get, wait_for};

const BYSTANDERS: usize = 20;

fn faulty_tether(hang_timeout: &str) -> Tether {
    Tether::start_with(Options {
        args: vec!["--hang-timeout".into(), hang_timeout.into()],
        env: vec![("TETHER_FAULTS".into(), "1".into())],
        capture_log: true,
        ..Options::default()
    })
}

/// Players who keep typing around the fault, what each has said, and how much of it has
/// been seen answered.
struct Crowd {
    players: Vec<(String, Client)>,
    said: HashMap<String, Vec<String>>,
    answered: HashMap<String, usize>,
}

impl Crowd {
    fn log_in(tether: &Tether, prefix: &str) -> Crowd {
        let mut players = Vec::new();
        for i in 0..BYSTANDERS {
            let name = format!("{prefix}{}", char::from(b'a' + i as u8));
            let mut player = tether.connect();
            player.send(&format!("create {name} password1"));
            players.push((name, player));
        }
        for (_, player) in &mut players {
            player.expect("Town Square");
        }
        Crowd {
            players,
            said: HashMap::new(),
            answered: HashMap::new(),
        }
    }

    /// Every player says one more line.
    fn chatter(&mut self, round: &str) {
        for (name, player) in &mut self.players {
            let line = format!("{name} {round}");
            player.send(&format!("say {line}"));
            self.said.entry(name.clone()).or_default().push(line);
        }
    }

    /// Every line said so far was answered exactly once, in order, and nobody was dropped.
    fn check_nothing_lost(&mut self) {
        for (name, player) in &mut self.players {
            let said = &self.said[name.as_str()];
            let answered = self.answered.entry(name.clone()).or_default();
            for line in &said[*answered..] {
                player.expect(&format!("You say, \"{line}\""));
            }
            *answered = said.len();
            let transcript = player.transcript.join("\n");
            for line in &self.said[name.as_str()] {
                assert_eq!(
                    transcript.matches(&format!("You say, \"{line}\"")).count(),
                    1,
                    "{name} saw {line:?} answered once; transcript:\n{transcript}"
                );
            }
            assert!(!player.is_closed(), "{name} was disconnected");
        }
    }
}

fn logged_in(tether: &Tether, name: &str) -> Client {
    let mut player = tether.connect();
    player.create(name, "password1");
    player
}

#[test]
fn a_panicking_command_is_caught_and_the_game_carries_on() {
    let tether = faulty_tether("5");
    let core = tether.core_pid();
    let mut crowd = Crowd::log_in(&tether, "Pan");
    let mut faulty = logged_in(&tether, "Faulty");

    crowd.chatter("before");
    faulty.send("fault panic");
    crowd.chatter("during");
    faulty.expect("[tether] That command failed because of an error in the game");
    faulty.send("say still here");
    faulty.expect("You say, \"still here\"");
    crowd.chatter("after");
    crowd.check_nothing_lost();

    assert_eq!(tether.core_pid(), core, "the core kept running");
    let logged = tether.expect_log(&["a command panicked", "Faulty", "fault panic"]);
    assert!(
        logged.contains("injected fault"),
        "the panic message: {logged}"
    );
}

#[test]
fn a_panic_outside_any_command_is_a_crash_and_the_game_goes_on() {
    let tether = faulty_tether("5");
    let core = tether.core_pid();
    let mut crowd = Crowd::log_in(&tether, "Eng");
    let mut faulty = logged_in(&tether, "Engineer");

    crowd.chatter("before");
    faulty.send("fault engine-panic");
    crowd.chatter("during");
    let replacement = tether.wait_for_new_core(core);
    assert_ne!(replacement, core);
    crowd.chatter("after");
    crowd.check_nothing_lost();
    faulty.send("say carrying on");
    faulty.expect("You say, \"carrying on\"");

    // Not a task quietly gone (a link that reads nothing more), not a hang: a crash.
    tether.expect_log(&["injected fault: the engine panicked outside any command"]);
    tether.expect_log(&["core exited (signal 6)"]);
}

/// A fault the core cannot catch: the first death runs the line again, the second
/// quarantines it, and everyone else's lines (and the faulty player's later ones) go on.
fn poison_is_quarantined(fault: &str, hang_timeout: &str) -> Tether {
    let tether = faulty_tether(hang_timeout);
    let first_core = tether.core_pid();
    let mut crowd = Crowd::log_in(&tether, "By");
    let mut faulty = logged_in(&tether, "Poisoner");

    crowd.chatter("before");
    faulty.send(&format!("fault {fault}"));
    faulty.send("say after the poison");
    crowd.chatter("during");

    faulty.expect(&format!(
        "[tether] Your command \"fault {fault}\" stopped the game twice, so it was not run again."
    ));
    faulty.expect("You say, \"after the poison\"");
    crowd.chatter("after");
    crowd.check_nothing_lost();

    tether.expect_log(&[
        "twice in a row",
        "quarantined",
        "Poisoner",
        &format!("fault {fault}"),
    ]);
    tether.expect_log(&["not run again", "Poisoner", &format!("fault {fault}")]);
    let status = tether.status();
    assert!(
        status.contains("restarts 2"),
        "two deaths, two restarts:\n{status}"
    );
    assert_ne!(tether.core_pid(), first_core);

    // The game is healthy again: no third death.
    faulty.send("say all good");
    faulty.expect("You say, \"all good\"");
    let status = tether.status();
    assert!(status.contains("restarts 2"), "no third death:\n{status}");
    tether
}

#[test]
fn an_aborting_command_is_quarantined_after_two_deaths() {
    poison_is_quarantined("abort", "5");
}

#[test]
fn a_stack_overflow_is_quarantined_after_two_deaths() {
    poison_is_quarantined("overflow", "5");
}

#[test]
fn a_command_that_never_returns_is_killed_then_quarantined() {
    let tether = poison_is_quarantined("hang", "2");
    // The second core, stuck in the very line the first one died in, is not given the whole
    // hang timeout again.
    tether.expect_log(&["has made no progress", "the line the last core died in"]);
}

#[test]
fn a_stopped_core_is_reported_then_replaced_with_nothing_lost() {
    let tether = faulty_tether("4");
    let mut crowd = Crowd::log_in(&tether, "Stop");
    let core = tether.core_pid();
    crowd.chatter("before");
    crowd.check_nothing_lost();

    nix::sys::signal::kill(nix::unistd::Pid::from_raw(core), Signal::SIGSTOP)
        .expect("kill -STOP the core");
    crowd.chatter("while stopped");
    let reported = wait_for("status to say the core is not live", || {
        let text = tether.status();
        text.contains("NOT LIVE").then_some(text)
    });
    assert!(
        reported.contains(&format!("core: pid {core}")),
        "{reported}"
    );
    // The batch in flight has waited 2 s (the notice threshold) before the 4 s hang timeout.
    wait_for("/health to say the core is not answering", || {
        let health = http_get(tether.http, "/health");
        (health.starts_with("HTTP/1.1 503") && health.contains("not answering")).then_some(())
    });

    let replacement = tether.wait_for_new_core(core);
    assert_ne!(replacement, core);
    crowd.chatter("after");
    crowd.check_nothing_lost();
    tether.expect_log(&["has made no progress", "killing it"]);
    let (_, crowd_transcript) = &crowd.players[0];
    let told = crowd_transcript.transcript.join("\n");
    assert_eq!(
        told.matches("The game is not answering").count(),
        1,
        "told once:\n{told}"
    );
    assert!(told.contains("The game is back."), "{told}");
}

#[test]
fn a_busy_core_is_not_killed() {
    // A world that takes longer to load than the hang timeout, then commands that each take
    // a third of it, typed by everyone at once: slow, but never stuck.
    let tether = Tether::start_with(Options {
        args: vec!["--hang-timeout".into(), "1".into()],
        env: vec![
            ("TETHER_FAULTS".into(), "1".into()),
            ("TETHER_FAULT_START_MS".into(), "2500".into()),
        ],
        capture_log: true,
        ..Options::default()
    });
    let core = tether.core_pid();
    let mut crowd = Crowd::log_in(&tether, "Busy");
    for (_, player) in &mut crowd.players {
        player.send("fault sleep 300");
    }
    crowd.chatter("after the slow ones");
    crowd.check_nothing_lost();

    let status = tether.status();
    assert!(
        status.contains(&format!("core: pid {core}")) && status.contains("restarts 0"),
        "the busy core was kept:\n{status}"
    );
    assert!(
        status.contains(&format!("players online {BYSTANDERS}")),
        "{status}"
    );
    assert!(!tether.log().contains("has made no progress"));
}

#[test]
fn a_slow_answer_tells_players_once_and_then_that_the_game_is_back() {
    let tether = faulty_tether("10");
    let mut player = logged_in(&tether, "Patient");
    let mut other = logged_in(&tether, "Waiter");
    player.send("fault sleep 3000");
    other.expect("[tether] The game is not answering");
    other.send("say meanwhile");
    other.expect("The game is back.");
    other.expect("You say, \"meanwhile\"");
    let transcript = other.transcript.join("\n");
    assert_eq!(
        transcript.matches("not answering").count(),
        1,
        "{transcript}"
    );
}
