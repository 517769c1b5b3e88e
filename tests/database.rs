//! The database is watched: a file deleted under a running game is noticed before the next
//! change is confirmed, no empty world is made in its place, and a core that cannot open its
//! database says why once and waits for the operator instead of retrying forever.

use nix::sys::signal::Signal;
use tether_tests::{Options, Tether, http_get, wait_for};

#[test]
fn a_deleted_database_refuses_changes_and_is_not_replaced_by_an_empty_one() {
    let tether = Tether::start_with(Options {
        capture_log: true,
        ..Options::default()
    });
    let mut player = tether.connect();
    player.create("Keeper", "records1");
    player.send("title the Careful");
    player.expect("Keeper the Careful");

    std::fs::remove_file(tether.data_dir().join("tether.db")).expect("deleting the database");
    player.send("title the Forgotten");
    player.expect("[tether] The game cannot save anything right now (its database is missing)");
    player.send("look me");
    player.send("who");
    let who = player.expect("Keeper");
    assert!(
        who.contains("the Careful"),
        "the change was not made: {who}"
    );

    let text = tether.status();
    assert!(text.contains("DATABASE LOST"), "{text}");
    tether.expect_log(&["the database file was deleted while the game ran"]);

    // A new core would find no database: it refuses to make an empty one, and the old core
    // keeps the game going.
    let serving = tether.core_pid();
    let (ok, text) = tether.ctl(&["reload"]);
    assert!(!ok && text.contains("restore it from a backup"), "{text}");
    assert!(!tether.data_dir().join("tether.db").exists());
    assert_eq!(tether.core_pid(), serving);
    player.send("say still talking");
    player.expect("You say, \"still talking\"");

    // Stopping is clean: every child exits on its own, none has to be killed.
    let mut tether = tether;
    assert!(tether.stop_in_place().success());
    let log = tether.log();
    assert!(log.contains("stopped in"), "{log}");
    assert!(!log.contains("did not exit within"), "{log}");
}

#[test]
fn a_core_that_cannot_open_its_database_waits_for_the_operator() {
    let tether = Tether::start_with(Options {
        capture_log: true,
        ..Options::default()
    });
    let mut player = tether.connect();
    player.create("Patient", "restore1");
    let data = tether.data_dir();
    let core = tether.core_pid();

    // Freeze the core, keep a copy of its files, ruin them, then kill it.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(core), Signal::SIGSTOP).expect("stop");
    let backup = tempfile::tempdir().expect("temp dir");
    for name in ["tether.db", "tether.db-wal", "tether.db-shm"] {
        if data.join(name).exists() {
            std::fs::copy(data.join(name), backup.path().join(name)).expect("backup");
        }
    }
    std::fs::write(data.join("tether.db"), vec![0x5a; 8192]).expect("corrupt");
    let _ = std::fs::remove_file(data.join("tether.db-wal"));
    let _ = std::fs::remove_file(data.join("tether.db-shm"));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(core), Signal::SIGKILL).expect("kill");

    player.send("say waiting for the operator");
    let blocked = wait_for("status to say the core cannot start", || {
        let text = tether.status();
        text.contains("CANNOT START").then_some(text)
    });
    assert!(blocked.contains("not a database"), "{blocked}");
    assert!(
        !blocked.contains("restarting in"),
        "no blind restarts: {blocked}"
    );
    tether.expect_log(&["the core cannot start", "not a database", "tether reload"]);
    assert!(!player.is_closed());
    wait_for("/health to say why the core cannot start", || {
        let health = http_get(tether.http, "/health");
        (health.starts_with("HTTP/1.1 503")
            && health.contains("cannot start")
            && health.contains("not a database"))
        .then_some(())
    });
    // Asking again before anything is fixed fails with the same reason (and returns).
    let (ok, text) = tether.ctl(&["reload"]);
    assert!(!ok && text.contains("not a database"), "{text}");

    // The operator restores the backup and asks for a core.
    for name in ["tether.db", "tether.db-wal", "tether.db-shm"] {
        let _ = std::fs::remove_file(data.join(name));
        if backup.path().join(name).exists() {
            std::fs::copy(backup.path().join(name), data.join(name)).expect("restore");
        }
    }
    let (ok, text) = tether.ctl(&["reload"]);
    assert!(ok, "{text}");
    player.expect("You say, \"waiting for the operator\"");
    player.send("who");
    player.expect("Patient");
    wait_for("/health to say the core is back", || {
        http_get(tether.http, "/health")
            .starts_with("HTTP/1.1 200")
            .then_some(())
    });
    assert_eq!(
        tether
            .log()
            .matches("the core cannot start: the new core")
            .count(),
        2,
        "said once per attempt: the restart after the kill, and the reload asked for too soon"
    );
}
