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
