//! The `tether` binary's command line, without a proxy or a core.

use std::process::{Command, Output};

fn tether(args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tether"));
    command.args(args);
    // Under `cargo test` these describe this package; `tether` must not take them for
    // `cargo run` and start building things.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("CARGO") {
            command.env_remove(key);
        }
    }
    command.output().expect("running tether")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn status_without_a_supervisor_says_so_and_fails() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let output = tether(&["status", "--data", data.to_str().expect("utf-8 temp path")]);
    let said = text(&output);
    assert_eq!(output.status.code(), Some(1), "{said}");
    let expected = format!(
        "no tether supervisor is running at {}",
        data.join("control.sock").display()
    );
    assert!(said.contains(&expected), "{said}");
    assert!(!data.exists(), "asking must not create the data directory");
}

#[test]
fn reload_and_stop_without_a_supervisor_fail_the_same_way() {
    let dir = tempfile::tempdir().expect("temp dir");
    for command in ["reload", "stop"] {
        let output = tether(&["--data", dir.path().to_str().expect("utf-8"), command]);
        assert_eq!(output.status.code(), Some(1));
        assert!(
            text(&output).contains("no tether supervisor is running at"),
            "{}",
            text(&output)
        );
    }
}

#[test]
fn help_lists_the_subcommands() {
    let output = tether(&["--help"]);
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for command in ["up", "reload", "status", "stop"] {
        assert!(
            help.lines()
                .any(|line| line.trim_start().starts_with(&format!("{command} "))),
            "{command} missing from:\n{help}"
        );
    }
    for option in [
        "--config",
        "--telnet",
        "--data",
        "--world",
        "--watch",
        "--no-watch",
        "--proxy-bin",
        "--core-bin",
    ] {
        assert!(help.contains(option), "{option} missing from:\n{help}");
    }
}

#[test]
fn up_refuses_a_missing_core_binary_clearly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("no-such-core");
    let output = tether(&[
        "up",
        "--data",
        dir.path().join("data").to_str().expect("utf-8"),
        "--proxy-bin",
        "/bin/true",
        "--core-bin",
        missing.to_str().expect("utf-8"),
    ]);
    assert_eq!(output.status.code(), Some(1));
    let said = text(&output);
    assert!(
        said.contains("core executable") && said.contains("does not exist"),
        "{said}"
    );
}

#[test]
fn a_busy_telnet_port_is_one_clear_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = busy.local_addr().expect("addr").to_string();
    let exe = env!("CARGO_BIN_EXE_tether");
    let output = tether(&[
        "up",
        "--telnet",
        &addr,
        "--data",
        dir.path().join("data").to_str().expect("utf-8 temp path"),
        "--proxy-bin",
        exe,
        "--core-bin",
        exe,
        "--no-watch",
    ]);
    let said = text(&output);
    assert_eq!(output.status.code(), Some(1), "{said}");
    assert!(
        said.contains(&format!("cannot listen for telnet on {addr}")),
        "{said}"
    );
}
