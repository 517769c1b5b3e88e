//! tether under systemd's notify protocol, with a fake `NOTIFY_SOCKET`: READY once the game is
//! open, RELOADING/READY around a reload, STATUS with players and the core's state, WATCHDOG
//! only while the core is live, STOPPING at the end.

use std::os::unix::net::UnixDatagram;
use std::sync::{Arc, Mutex};

use nix::sys::signal::Signal;
use tether_tests::{Options, Tether, wait_for};

/// Everything tether sent to the fake systemd, in order.
#[derive(Clone, Default)]
struct Heard(Arc<Mutex<Vec<String>>>);

impl Heard {
    fn listen(socket: UnixDatagram) -> Heard {
        let heard = Heard::default();
        let sink = heard.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = socket.recv(&mut buf) {
                let message = String::from_utf8_lossy(&buf[..n]).into_owned();
                sink.0.lock().expect("lock").push(message);
            }
        });
        heard
    }

    fn all(&self) -> Vec<String> {
        self.0.lock().expect("lock").clone()
    }

    /// Waits for a message matching `wanted` after the first `from`; returns its index.
    fn expect_after(&self, from: usize, what: &str, wanted: impl Fn(&str) -> bool) -> usize {
        wait_for(what, || {
            self.all()
                .iter()
                .enumerate()
                .skip(from)
                .find(|(_, m)| wanted(m))
                .map(|(i, _)| i)
        })
    }
}

fn monotonic_usec() -> u64 {
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).expect("clock");
    now.tv_sec() as u64 * 1_000_000 + now.tv_nsec() as u64 / 1000
}

#[test]
fn systemd_hears_ready_reloading_status_watchdog_and_stopping() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("notify.sock");
    let heard = Heard::listen(UnixDatagram::bind(&path).expect("bind the notify socket"));
    let tether = Tether::start_with(Options {
        args: vec!["--hang-timeout".into(), "3".into()],
        env: vec![
            ("NOTIFY_SOCKET".into(), path.display().to_string()),
            // A pet every 200 ms.
            ("WATCHDOG_USEC".into(), "400000".into()),
        ],
        ..Options::default()
    });

    let ready = heard.expect_after(0, "READY=1", |m| m == "READY=1");
    heard.expect_after(ready, "WATCHDOG=1", |m| m == "WATCHDOG=1");
    let mut player = tether.connect();
    player.create("Sysd", "unitfile1");
    heard.expect_after(0, "a status with the player", |m| {
        m.starts_with("STATUS=1 player online; core pid ") && m.ends_with(" live")
    });

    // A reload: RELOADING=1 with the monotonic time, then READY=1.
    let before = monotonic_usec();
    let mark = heard.all().len();
    tether.reload();
    let reloading = heard.expect_after(mark, "RELOADING=1", |m| m.starts_with("RELOADING=1"));
    let message = &heard.all()[reloading];
    let usec: u64 = message
        .strip_prefix("RELOADING=1\nMONOTONIC_USEC=")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("MONOTONIC_USEC in {message:?}"));
    assert!(before <= usec && usec <= monotonic_usec(), "{usec} is now");
    heard.expect_after(reloading, "READY=1 after the reload", |m| m == "READY=1");

    // A stopped core: the status says so, the watchdog is not fed until it is replaced.
    let core = tether.core_pid();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(core), Signal::SIGSTOP)
        .expect("kill -STOP the core");
    let not_live = heard.expect_after(mark, "a status saying the core is not live", |m| {
        m.starts_with("STATUS=") && m.contains(&format!("core pid {core} not live"))
    });
    let replaced = tether.wait_for_new_core(core);
    let live_again = heard.expect_after(not_live, "a live status again", |m| {
        m.starts_with("STATUS=") && m.contains(&format!("core pid {replaced} live"))
    });
    heard.expect_after(live_again, "the watchdog fed again", |m| m == "WATCHDOG=1");
    // Not fed from the first "not live" until the stopped core is out of the way (while a
    // new one starts the supervisor's own loop is what counts).
    let all = heard.all();
    let gone = all[not_live..]
        .iter()
        .position(|m| m.starts_with("STATUS=") && !m.contains(&format!("core pid {core} ")))
        .map_or(all.len(), |i| not_live + i);
    assert!(
        !all[not_live..gone].iter().any(|m| m == "WATCHDOG=1"),
        "no WATCHDOG=1 while the core was not live: {:?}",
        &all[not_live..]
    );

    player.send("say still here");
    player.expect("You say, \"still here\"");
    let mark = heard.all().len();
    tether.stop_with(Signal::SIGTERM);
    heard.expect_after(mark, "STOPPING=1", |m| m == "STOPPING=1");
}
