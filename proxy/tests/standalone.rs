//! The proxy binary on its own, with no core yet: it still owns its players.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Reads until `needle` shows up in what was received (or the deadline passes).
fn read_until(stream: &mut TcpStream, needle: &[u8]) -> Vec<u8> {
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let start = Instant::now();
    let mut seen = Vec::new();
    let mut buffer = [0u8; 1024];
    while start.elapsed() < Duration::from_secs(60) {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => seen.extend_from_slice(&buffer[..n]),
            Err(_) => {}
        }
        if seen.windows(needle.len()).any(|w| w == needle) {
            return seen;
        }
    }
    panic!("never saw {needle:?}; got {seen:?}");
}

/// A failing test must not leave a proxy running.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn without_a_core_the_proxy_negotiates_and_says_goodbye_on_sigterm() {
    let dir = tempfile::tempdir().expect("temp dir");
    let addr = format!("127.0.0.1:{}", free_port());
    let proxy = Command::new(env!("CARGO_BIN_EXE_tether-proxy"))
        .arg("--telnet")
        .arg(&addr)
        // Not the default HTTP port: a game or another test run may hold it.
        .arg("--http")
        .arg("off")
        .arg("--link")
        .arg(dir.path().join("nobody-here.sock"))
        .stdin(Stdio::null())
        .spawn()
        .expect("starting the proxy");
    let mut proxy = KillOnDrop(proxy);

    let start = Instant::now();
    let mut player = loop {
        if let Ok(stream) = TcpStream::connect(&addr) {
            break stream;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "proxy never listened"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    // Negotiation is the proxy's own business: it happens with no core at all.
    read_until(&mut player, &[255, 251, 25]); // WILL EOR among the opening offers
    player.write_all(&[255, 251, 24]).expect("send WILL TTYPE");
    read_until(&mut player, &[255, 250, 24, 1, 255, 240]); // SB TTYPE SEND
    // A line typed with no core is kept, not refused.
    player.write_all(b"look\r\n").expect("send a line");

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(proxy.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM");
    let farewell = read_until(&mut player, b"shutting down");
    assert!(!farewell.windows(12).any(|w| w == b"not accepted"));
    let status = proxy.0.wait().expect("proxy exit");
    assert!(status.success(), "{status:?}");
}
