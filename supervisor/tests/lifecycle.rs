//! The supervisor's decisions, with stand-in children: tiny shell scripts written into a
//! temporary directory that keep the child contracts (fd 3, READY, exit on SIGTERM) and
//! record when they are stopped. The real proxy and core are exercised by the workspace's
//! end-to-end tests.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const DEADLINE: Duration = Duration::from_secs(30);

fn write_script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}")).expect("write script");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

struct Fixture {
    dir: tempfile::TempDir,
    supervisor: Child,
}

impl Fixture {
    fn start() -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        let order = root.join("order");
        write_script(
            &root.join("core"),
            &format!(
                "[ \"$TETHER_LINK_FD\" = 3 ] && [ -S /proc/$$/fd/3 ] || exit 2\n\
                 [ -n \"$TETHER_CONTROL\" ] || exit 2\n\
                 [ -e '{broken}' ] && exit 1\n\
                 trap 'echo core $$ >> {order}; exit 0' TERM\n\
                 echo READY\n\
                 while :; do sleep 0.05; done\n",
                broken = root.join("broken").display(),
                order = order.display(),
            ),
        );
        write_script(
            &root.join("proxy"),
            &format!(
                "trap 'echo proxy $$ >> {order}; exit 0' TERM\nwhile :; do sleep 0.05; done\n",
                order = order.display(),
            ),
        );
        let mut command = Command::new(env!("CARGO_BIN_EXE_tether"));
        command
            .arg("up")
            .arg("--data")
            .arg(root.join("data"))
            .arg("--core-bin")
            .arg(root.join("core"))
            .arg("--proxy-bin")
            .arg(root.join("proxy"))
            .arg("--no-watch")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("CARGO") {
                command.env_remove(key);
            }
        }
        let supervisor = command.spawn().expect("starting tether");
        let fixture = Fixture { dir, supervisor };
        fixture.core_pid();
        fixture
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn ctl(&self, command: &str) -> Output {
        Command::new(env!("CARGO_BIN_EXE_tether"))
            .arg(command)
            .arg("--data")
            .arg(self.data())
            .output()
            .expect("running tether")
    }

    /// Waits for a serving core and returns its pid.
    fn core_pid(&self) -> i32 {
        wait_for("a serving core", || {
            let output = self.ctl("status");
            let text = String::from_utf8_lossy(&output.stdout);
            text.lines().find_map(|line| {
                line.strip_prefix("core: pid ")?
                    .split(',')
                    .next()?
                    .parse()
                    .ok()
            })
        })
    }

    fn order(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("order"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.supervisor.kill();
        let _ = self.supervisor.wait();
    }
}

fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn reload_restart_and_stop() {
    let mut fixture = Fixture::start();
    let first = fixture.core_pid();

    // A planned reload replaces the core and reports how long it took.
    let output = fixture.ctl("reload");
    assert!(output.status.success(), "{}", stdout(&output));
    assert!(stdout(&output).starts_with("ok: reloaded in "));
    let second = fixture.core_pid();
    assert_ne!(first, second);
    assert_eq!(fixture.order(), [format!("core {first}")]);

    // A broken new core is refused and the running one is kept.
    std::fs::write(fixture.dir.path().join("broken"), "").expect("break the core");
    let output = fixture.ctl("reload");
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stdout(&output).starts_with("error: reload failed: "),
        "{}",
        stdout(&output)
    );
    assert_eq!(fixture.core_pid(), second);
    std::fs::remove_file(fixture.dir.path().join("broken")).expect("fix the core");

    // A core that dies is replaced without being asked.
    kill(Pid::from_raw(second), Signal::SIGKILL).expect("kill -9 the core");
    let third = wait_for("a restarted core", || {
        Some(fixture.core_pid()).filter(|&pid| pid != second)
    });
    let status = stdout(&fixture.ctl("status"));
    assert!(status.contains("restarts 1"), "{status}");

    // A second supervisor for the same data directory is refused.
    let output = Command::new(env!("CARGO_BIN_EXE_tether"))
        .arg("up")
        .arg("--data")
        .arg(fixture.data())
        .arg("--core-bin")
        .arg("/bin/false")
        .arg("--proxy-bin")
        .arg("/bin/false")
        .env_remove("CARGO")
        .output()
        .expect("running tether");
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("already running"));

    // Stop: the proxy first, then the core; the client returns once all is down.
    let output = fixture.ctl("stop");
    assert!(output.status.success());
    let said = stdout(&output);
    assert!(
        said.starts_with("ok: shutting down\nok: stopped in "),
        "{said}"
    );
    let exit = fixture.supervisor.wait().expect("supervisor exit");
    assert!(exit.success(), "{exit:?}");
    let order = fixture.order();
    assert!(order[order.len() - 2].starts_with("proxy "), "{order:?}");
    assert_eq!(order[order.len() - 1], format!("core {third}"));
    assert!(!fixture.data().join("control.sock").exists());
    assert!(!fixture.data().join("link.sock").exists());
}
