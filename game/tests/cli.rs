//! The core binary on its own: it refuses a broken world clearly, and binds a private socket.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

mod common;

#[test]
fn a_broken_world_file_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().expect("temp dir");
    let world = dir.path().join("world.toml");
    std::fs::write(
        &world,
        "start = \"square\"\n\n[rooms.square]\nname = \"Square\"\ndescription = \"x\"\n\
         exits = { north = \"nowhere\" }\n",
    )
    .expect("write world");
    let output = Command::new(env!("CARGO_BIN_EXE_tether-core"))
        .arg("--data")
        .arg(dir.path().join("data"))
        .arg("--link")
        .arg(dir.path().join("link.sock"))
        .arg("--world")
        .arg(&world)
        .output()
        .expect("run the core");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("nowhere"), "names the bad exit: {stderr}");
    assert!(!String::from_utf8_lossy(&output.stdout).contains("READY"));
}

#[test]
fn alone_it_binds_a_private_link_socket_and_says_ready() {
    let dir = tempfile::tempdir().expect("temp dir");
    let socket = dir.path().join("link.sock");
    let mut core = common::start_core(dir.path());
    let mode = std::fs::metadata(&socket)
        .expect("socket exists")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "only the owner may connect");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(core.pid() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM");
    assert!(core.wait().success());
}
