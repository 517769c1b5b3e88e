//! The benchmark floors, run as the benchmark runs them: bytes sent to each come back.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A `tether-echo` process, killed when the test ends however it ends.
struct Echo(Child);

impl Drop for Echo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `tether-echo` with `args` and returns it with what it listens on.
fn start(args: &[&str]) -> (Echo, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tether-echo"))
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start tether-echo");
    let stdout = child.stdout.take().expect("stdout");
    let echo = Echo(child);
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read the ready line");
    let place = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (echo, place)
}

fn assert_echoes(addr: &str) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let message = b"say tok123\r\n";
    for _ in 0..3 {
        stream.write_all(message).expect("write");
        let mut back = [0u8; 12];
        stream.read_exact(&mut back).expect("the bytes come back");
        assert_eq!(&back, message);
    }
}

#[test]
fn the_floor_echoes() {
    let (_echo, addr) = start(&["127.0.0.1:0"]);
    assert_echoes(&addr);
}

#[test]
fn the_two_process_floor_echoes_through_the_relay() {
    let dir = tempfile::tempdir().expect("temp dir");
    let socket = dir.path().join("echo.sock");
    let socket = socket.to_str().expect("utf-8 path");
    let (_far, _) = start(&["--unix", socket]);
    let (_relay, addr) = start(&["127.0.0.1:0", "--relay", socket]);
    assert_echoes(&addr);
}

#[test]
fn a_wrong_command_line_is_refused_with_the_usage() {
    let output = Command::new(env!("CARGO_BIN_EXE_tether-echo"))
        .args(["127.0.0.1:0", "--sideways"])
        .output()
        .expect("run tether-echo");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("usage: tether-echo"), "{stderr}");
}
