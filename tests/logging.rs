//! A log destination that fails or stops reading costs log lines, never a player's line, a
//! process or the game's time: tether with stderr on `/dev/full`, and on a pipe nobody reads.

use std::io::Read;

use tether_tests::{Options, Tether, wait_for};

#[test]
fn stderr_on_dev_full_costs_nothing_but_the_log() {
    let mut tether = Tether::start_with(Options {
        stderr_to: Some("/dev/full".into()),
        ..Options::default()
    });
    let mut player = tether.connect();
    player.create("Diskfull", "nospace1");
    player.send("say the disk is full");
    player.expect("You say, \"the disk is full\"");

    let core = tether.core_pid();
    tether.reload();
    assert_ne!(tether.wait_for_new_core(core), core);
    player.send("say still playing");
    player.expect("You say, \"still playing\"");
    assert!(
        tether.is_running(),
        "the supervisor survived its own log lines"
    );
    assert!(!player.is_closed());
}

#[test]
fn a_log_nobody_reads_costs_lines_that_are_counted_once_it_reads_again() {
    let mut tether = Tether::start_with(Options {
        stderr_unread: true,
        env: vec![("RUST_LOG".into(), "trace".into())],
        ..Options::default()
    });
    let mut player = tether.connect();
    player.create("Unread", "nobody12");
    // Each visit logs about 750 bytes across the proxy and the core: together several times
    // the pipe (64 KiB) and each process's queue (1 MiB).
    for _ in 0..6000 {
        let mut visitor = tether.connect();
        visitor.expect("login>");
    }
    player.send("say after the visitors");
    player.expect("You say, \"after the visitors\"");
    let core = tether.core_pid();
    tether.reload();
    tether.wait_for_new_core(core);
    player.send("say the log is stuck");
    player.expect("You say, \"the log is stuck\"");
    assert!(tether.is_running());

    // Someone reads again: the loss is reported.
    let mut stderr = tether.take_stderr().expect("tether's stderr");
    let (found_tx, found_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut chunk = [0u8; 65536];
        while let Ok(n) = stderr.read(&mut chunk) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&chunk[..n]);
            if String::from_utf8_lossy(&seen).contains("log lines were lost") {
                let _ = found_tx.send(());
                // Keep reading so that nothing blocks on the pipe while the test ends.
                seen.clear();
            }
        }
    });
    let mut n = 0;
    wait_for("a report of the lost log lines", || {
        // Log lines written after the reader is back trigger the report.
        n += 1;
        player.send(&format!("say reading again {n}"));
        player.expect(&format!("You say, \"reading again {n}\""));
        found_rx.try_recv().ok()
    });
}

/// A journal, svlogd or a file gets plain text: no colour codes from any of the three
/// processes (they colour only a terminal).
#[test]
fn logs_that_are_not_a_terminal_have_no_colour_codes() {
    let mut tether = Tether::start_with(Options {
        capture_log: true,
        ..Options::default()
    });
    let mut player = tether.connect();
    player.create("Plainlog", "plaintext1");
    let core = tether.core_pid();
    tether.reload();
    tether.wait_for_new_core(core);
    player.send("say after the reload");
    player.expect("You say, \"after the reload\"");
    // Lines from the supervisor, the proxy and the core (whose targets name their crates).
    let log = tether.expect_log(&["tether_engine", "character created"]);
    assert!(log.contains("Plainlog"));
    let raw = tether.raw_log();
    for process in ["tether_supervisor", "tether_proxy", "tether_engine"] {
        assert!(raw.contains(process), "no line from {process} in:\n{raw}");
    }
    assert!(
        !raw.contains('\u{1b}'),
        "colour codes in a log file:\n{raw}"
    );
    assert!(tether.is_running());
}

/// `--log-format json`: every line of every process is one JSON object, with the fields an
/// operator searches by (session, character, address) at the top level.
#[test]
fn json_logs_are_one_object_per_line_with_the_session_fields() {
    let mut tether = Tether::start_with(Options {
        capture_log: true,
        args: vec!["--log-format".into(), "json".into()],
        ..Options::default()
    });
    let mut player = tether.connect();
    player.create("Jsonlog", "jsonlines1");
    let mut guesser = tether.connect();
    guesser.expect("login>");
    guesser.send("connect Jsonlog wrongpass1");
    guesser.expect("Wrong name or password");
    let core = tether.core_pid();
    tether.reload();
    tether.wait_for_new_core(core);
    player.send("say in json");
    player.expect("You say, \"in json\"");

    let lines = wait_for("the login failure in the log", || {
        let raw = tether.raw_log();
        let lines: Vec<serde_json::Value> = raw
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|error| panic!("not one JSON object ({error}): {line}"))
            })
            .collect();
        let failed = lines.iter().any(|l| l["message"] == "login failed");
        failed.then_some(lines)
    });
    for line in &lines {
        for field in ["timestamp", "level", "target", "message"] {
            assert!(line.get(field).is_some(), "no {field} in {line}");
        }
    }
    let with = |message: &str| {
        lines
            .iter()
            .find(|l| l["message"] == message)
            .unwrap_or_else(|| panic!("no {message:?} line"))
            .clone()
    };
    let failed = with("login failed");
    assert_eq!(failed["target"], "tether::login");
    assert_eq!(failed["account"], "Jsonlog");
    assert_eq!(failed["address"], "127.0.0.1");
    let created = with("character created");
    assert_eq!(created["character"], "Jsonlog");
    assert_eq!(created["address"], "127.0.0.1");
    let session = created["session"].as_str().expect("a session field");
    assert!(session.contains(':'), "proxy:session, not {session}");
    let connected = with("connected");
    assert!(
        connected["target"]
            .as_str()
            .is_some_and(|t| t.starts_with("tether_proxy"))
    );
    assert!(
        connected["address"]
            .as_str()
            .is_some_and(|a| a.starts_with("127.0.0.1:"))
    );
    for process in ["tether_supervisor", "tether_proxy", "tether_engine"] {
        assert!(
            lines
                .iter()
                .any(|l| l["target"].as_str().is_some_and(|t| t.starts_with(process))),
            "no line from {process}"
        );
    }
    assert!(tether.is_running());
}
