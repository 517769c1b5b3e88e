//! What the end-to-end tests share: starting the real binaries in a temporary data directory
//! on free ports, and a small blocking telnet client that waits for conditions (never for a
//! fixed time).
//!
//! The binaries are the ones cargo built next to the test executable (`target/<profile>/`).
//! `cargo test --workspace` builds them, because the proxy, core and supervisor packages each
//! have integration tests of their own.

pub mod typing;

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The generous deadline every wait in the suite uses: the machines are shared and slow.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Path of one of the workspace's binaries, built by `cargo test --workspace`.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable lives in target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run the suite with `cargo test --workspace` so cargo builds it",
        path.display()
    );
    path
}

/// Whether a third-party client a test drives is there. Without it the test is skipped
/// (printed, so it is visible), unless TETHER_REQUIRE_REAL_CLIENTS is set (`.ci/run` sets it
/// after installing them), in which case a missing client fails the test.
pub fn real_client(tool: &str, found: bool) -> bool {
    if found {
        return true;
    }
    let required = std::env::var_os("TETHER_REQUIRE_REAL_CLIENTS")
        .is_some_and(|value| !value.is_empty() && value != "0");
    assert!(
        !required,
        "{tool} not installed, and TETHER_REQUIRE_REAL_CLIENTS is set: install it (.ci/run does)"
    );
    println!("skipped: {tool} not installed");
    false
}

/// A port nobody listens on right now, and never handed out before in this test binary:
/// tests run in parallel, and the kernel may offer a port that was just freed again, so two
/// tethers could be given the same port (one's web port the other's telnet port) and the
/// second one's probe would talk to the first.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|addr| addr.port())
            .expect("a free port");
        let mut given = GIVEN
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// Polls `check` until it returns `Some`, or panics with `what` after `DEADLINE`.
pub fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// A whole tether (supervisor, proxy, core) in a temporary directory.
pub struct Tether {
    root: PathBuf,
    _owned_root: Option<tempfile::TempDir>,
    pub telnet: SocketAddr,
    /// The web client and WebSocket endpoint.
    pub http: SocketAddr,
    supervisor: Child,
    /// How the supervisor was started, to start another on the same directory and ports.
    up: Vec<std::ffi::OsString>,
    env: Vec<(String, String)>,
    capture_log: bool,
    /// The telnet listener wants a PROXY protocol header first; [`Tether::connect`] sends
    /// one naming [`BALANCED_PLAYER`].
    proxy_protocol: bool,
}

/// The address [`Tether::connect`] claims for its clients when the telnet listener takes
/// the PROXY protocol (a documentation address, never a real one).
pub const BALANCED_PLAYER: &str = "192.0.2.200";

#[derive(Default)]
pub struct Options {
    /// Replaces the core binary (e.g. a wrapper script).
    pub core_bin: Option<PathBuf>,
    /// Replaces the proxy binary.
    pub proxy_bin: Option<PathBuf>,
    pub watch: bool,
    pub world: Option<PathBuf>,
    /// Run in this directory (kept afterwards) instead of a fresh temporary one.
    pub root: Option<PathBuf>,
    /// More arguments for `tether up`.
    pub args: Vec<String>,
    /// More environment for tether (and so for the proxy and the core).
    pub env: Vec<(String, String)>,
    /// Write tether's log (all three processes) to `tether.log` in the root, for
    /// [`Tether::log`], instead of the test's stderr.
    pub capture_log: bool,
    /// Where tether's stderr goes instead: a path such as `/dev/full`, or `None` for the
    /// default. Ignored with `capture_log`.
    pub stderr_to: Option<PathBuf>,
    /// Give tether a pipe for stderr that nobody reads (until [`Tether::take_stderr`]).
    pub stderr_unread: bool,
    /// A config file for tether (`--config`), written into the root.
    pub config: Option<String>,
    /// The config's telnet listener takes the PROXY protocol (see [`Tether::connect`]).
    pub proxy_protocol: bool,
    /// The open-file limit (soft and hard) tether and so its children run with.
    pub open_files: Option<u64>,
}

impl Tether {
    pub fn start() -> Tether {
        Tether::start_with(Options::default())
    }

    pub fn start_with(options: Options) -> Tether {
        let (root, owned_root) = match options.root {
            Some(root) => (root, None),
            None => {
                let dir = tempfile::tempdir().expect("temp dir");
                (dir.path().to_path_buf(), Some(dir))
            }
        };
        let telnet: SocketAddr = format!("127.0.0.1:{}", free_port())
            .parse()
            .expect("address");
        let http: SocketAddr = format!("127.0.0.1:{}", free_port())
            .parse()
            .expect("address");
        let mut up: Vec<std::ffi::OsString> = vec![
            "up".into(),
            "--telnet".into(),
            telnet.to_string().into(),
            "--http".into(),
            http.to_string().into(),
            "--data".into(),
            root.join("data").into(),
            "--proxy-bin".into(),
            options
                .proxy_bin
                .unwrap_or_else(|| binary("tether-proxy"))
                .into(),
            "--core-bin".into(),
            options
                .core_bin
                .unwrap_or_else(|| binary("tether-core"))
                .into(),
            if options.watch {
                "--watch"
            } else {
                "--no-watch"
            }
            .into(),
        ];
        if let Some(world) = options.world {
            up.push("--world".into());
            up.push(world.into());
        }
        if let Some(config) = &options.config {
            std::fs::create_dir_all(&root).expect("root dir");
            let path = root.join("tether.toml");
            std::fs::write(&path, config).expect("writing the config");
            up.push("--config".into());
            up.push(path.into());
        }
        up.extend(options.args.iter().map(Into::into));
        let mut command = supervisor_command(&up, &options.env);
        if let Some(files) = options.open_files {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit is async-signal-safe, and the closure allocates nothing.
            unsafe {
                command.pre_exec(move || {
                    nix::sys::resource::setrlimit(
                        nix::sys::resource::Resource::RLIMIT_NOFILE,
                        files,
                        files,
                    )
                    .map_err(std::io::Error::from)
                });
            }
        }
        let log = root.join("tether.log");
        if options.capture_log {
            std::fs::create_dir_all(&root).expect("root dir");
            std::fs::File::create(&log).expect("log file");
            // Appending: each process that inherits it (a supervisor started again, the
            // children of the one before) writes at the end rather than over the others.
            let log = std::fs::OpenOptions::new()
                .append(true)
                .open(&log)
                .expect("log file");
            command.stderr(log);
        } else if let Some(path) = &options.stderr_to {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .expect("stderr destination");
            command.stderr(file);
        } else if options.stderr_unread {
            command.stderr(Stdio::piped());
        }
        let supervisor = command.spawn().expect("starting tether");
        let tether = Tether {
            root,
            _owned_root: owned_root,
            telnet,
            http,
            supervisor,
            up,
            env: options.env,
            capture_log: options.capture_log,
            proxy_protocol: options.proxy_protocol,
        };
        // Ready when a player gets the login banner.
        let mut probe = tether.connect();
        probe.expect("connect <name>");
        tether
    }

    pub fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    /// What tether has logged so far (with `capture_log`), colours removed.
    pub fn log(&self) -> String {
        let text = std::fs::read_to_string(self.root.join("tether.log")).unwrap_or_default();
        strip_ansi(&text)
    }

    /// What tether has logged so far (with `capture_log`), byte for byte.
    pub fn raw_log(&self) -> String {
        std::fs::read_to_string(self.root.join("tether.log")).unwrap_or_default()
    }

    /// Waits until the log has a line containing every one of `needles`; returns it.
    pub fn expect_log(&self, needles: &[&str]) -> String {
        wait_for(&format!("a log line with {needles:?}"), || {
            self.log()
                .lines()
                .find(|line| needles.iter().all(|needle| line.contains(needle)))
                .map(str::to_string)
        })
    }

    pub fn connect(&self) -> Client {
        if self.proxy_protocol {
            return self.connect_as(format!(
                "PROXY TCP4 {BALANCED_PLAYER} 127.0.0.1 40000 4000\r\n"
            ));
        }
        let addr = self.telnet;
        wait_for("the telnet port to accept", || {
            TcpStream::connect(addr).ok().map(Client::new)
        })
    }

    /// Connects as a load balancer would, sending `header` (a PROXY protocol header, or
    /// any bytes) first.
    pub fn connect_as(&self, header: impl AsRef<[u8]>) -> Client {
        let addr = self.telnet;
        let mut stream = wait_for("the telnet port to accept", || {
            TcpStream::connect(addr).ok()
        });
        stream
            .write_all(header.as_ref())
            .expect("sending the header");
        Client::new(stream)
    }

    /// The supervisor is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.supervisor.try_wait(), Ok(None))
    }

    /// The read end of tether's stderr, with `stderr_unread`.
    pub fn take_stderr(&mut self) -> Option<std::process::ChildStderr> {
        self.supervisor.stderr.take()
    }

    /// Runs `tether admin --data <dir> <args>` with `input` as its standard input (a
    /// password), and returns (success, output).
    pub fn admin(&self, args: &[&str], input: &str) -> (bool, String) {
        // `--data` first: an action such as `wall` takes the rest of the line as its text.
        let mut child = Command::new(binary("tether"))
            .arg("admin")
            .arg("--data")
            .arg(self.data_dir())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running tether admin");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("writing to tether admin");
        let output = child.wait_with_output().expect("waiting for tether admin");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.success(), text)
    }

    /// The admin token `tether admin token` prints (making it the first time).
    pub fn admin_token(&self) -> String {
        let (ok, text) = self.admin(&["token"], "");
        assert!(ok, "tether admin token: {text}");
        text.lines()
            .find(|line| line.len() == 64 && line.bytes().all(|b| b.is_ascii_hexdigit()))
            .unwrap_or_else(|| panic!("no token in {text:?}"))
            .to_owned()
    }

    /// Makes an existing character an administrator, as an operator does on the host.
    pub fn promote(&self, name: &str) {
        let (ok, text) = self.admin(&["promote", name], "");
        assert!(ok, "tether admin promote {name}: {text}");
    }

    /// Runs `tether <args> --data <dir>` and returns (success, output).
    pub fn ctl(&self, args: &[&str]) -> (bool, String) {
        let output = Command::new(binary("tether"))
            .args(args)
            .arg("--data")
            .arg(self.data_dir())
            .output()
            .expect("running tether");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.success(), text)
    }

    /// `tether status`, which must succeed.
    pub fn status(&self) -> String {
        let (ok, text) = self.ctl(&["status"]);
        assert!(ok, "tether status failed: {text}");
        text
    }

    /// `tether upgrade-proxy`, which must succeed.
    pub fn upgrade_proxy(&self) -> String {
        let (ok, text) = self.ctl(&["upgrade-proxy"]);
        assert!(ok, "tether upgrade-proxy failed: {text}");
        text
    }

    pub fn reload(&self) -> String {
        let (ok, text) = self.ctl(&["reload"]);
        assert!(ok, "tether reload failed: {text}");
        text
    }

    /// The running core's pid, from `tether status`.
    pub fn core_pid(&self) -> i32 {
        self.child_pid("core")
    }

    /// The running proxy's pid, from `tether status`.
    pub fn proxy_pid(&self) -> i32 {
        self.child_pid("proxy")
    }

    fn child_pid(&self, role: &str) -> i32 {
        let (ok, text) = self.ctl(&["status"]);
        assert!(ok, "tether status failed: {text}");
        pid_after(&text, role).unwrap_or_else(|| panic!("no {role} pid in status:\n{text}"))
    }

    /// Waits until a core other than `old` is running and answering status.
    pub fn wait_for_new_core(&self, old: i32) -> i32 {
        self.wait_for_new_child("core", old)
    }

    /// Waits until a proxy other than `old` is running.
    pub fn wait_for_new_proxy(&self, old: i32) -> i32 {
        self.wait_for_new_child("proxy", old)
    }

    fn wait_for_new_child(&self, role: &str, old: i32) -> i32 {
        wait_for(&format!("a new {role}"), || {
            let (ok, text) = self.ctl(&["status"]);
            if !ok {
                return None;
            }
            pid_after(&text, role).filter(|&pid| pid != old && pid > 0)
        })
    }

    /// Sends `signal` to the supervisor.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.supervisor.id() as i32);
        nix::sys::signal::kill(pid, signal).expect("signalling the supervisor");
    }

    /// The supervisor's pid.
    pub fn supervisor_pid(&self) -> u32 {
        self.supervisor.id()
    }

    /// `kill -9` of the supervisor, waiting until it is gone (the proxy and the core run on).
    pub fn kill_supervisor(&mut self) {
        self.supervisor.kill().expect("killing the supervisor");
        self.supervisor.wait().expect("reaping the supervisor");
    }

    /// Starts a supervisor again on the same directory, ports and options, as an operator
    /// (or systemd, or runit) would after one died.
    pub fn restart_supervisor(&mut self) {
        assert!(!self.is_running(), "the supervisor is still running");
        let mut command = supervisor_command(&self.up, &self.env);
        if self.capture_log {
            let log = std::fs::OpenOptions::new()
                .append(true)
                .open(self.root.join("tether.log"))
                .expect("log file");
            command.stderr(log);
        }
        self.supervisor = command.spawn().expect("starting tether again");
    }

    /// Stops tether with SIGTERM and waits for it to exit, keeping its directory (and log).
    pub fn stop_in_place(&mut self) -> std::process::ExitStatus {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        wait_for("the supervisor to exit", || {
            self.supervisor.try_wait().expect("waiting for tether")
        })
    }

    /// Sends `signal` to the supervisor and waits for it to exit.
    pub fn stop_with(mut self, signal: nix::sys::signal::Signal) -> std::process::ExitStatus {
        self.signal(signal);
        wait_for("the supervisor to exit", || {
            self.supervisor.try_wait().expect("waiting for tether")
        })
    }
}

impl Drop for Tether {
    fn drop(&mut self) {
        if let Ok(None) = self.supervisor.try_wait() {
            let pid = nix::unistd::Pid::from_raw(self.supervisor.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(15) {
                if let Ok(Some(_)) = self.supervisor.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.supervisor.kill();
            let _ = self.supervisor.wait();
        }
        // A supervisor that was killed leaves its children running on purpose; the suite
        // must not.
        kill_recorded_children(&self.data_dir());
        kill_leftovers(&self.data_dir());
    }
}

/// Kills any tether process still running for `data` (its command line names the data
/// directory), saying so: after the supervisor and its recorded children are gone there
/// should be none, and one left running would hold the test's output pipes open.
fn kill_leftovers(data: &Path) {
    for pid in processes_naming(data, "tether") {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let shown = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        eprintln!("harness: killing a tether process left running: pid {pid}: {shown}");
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// The processes running a program whose name starts with `program` with the data directory
/// `data` on their command line, by pid.
pub fn processes_naming(data: &Path, program: &str) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let needle = data.as_os_str().as_encoded_bytes();
    let mut found: Vec<i32> = entries
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse::<i32>().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let argv0 = cmdline.split(|&b| b == 0).next()?;
            let name = argv0.rsplit(|&b| b == b'/').next()?;
            (name.starts_with(program.as_bytes()) && find(&cmdline, needle).is_some())
                .then_some(pid)
        })
        .collect();
    found.sort_unstable();
    found
}

/// `tether up` with `up` as its arguments, without the test's cargo variables.
fn supervisor_command(up: &[std::ffi::OsString], env: &[(String, String)]) -> Command {
    let mut command = Command::new(binary("tether"));
    command
        .args(up)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .envs(env.iter().map(|(k, v)| (k, v)));
    // Under `cargo test` these point at the test package; the supervisor must not think it
    // was started by `cargo run` and try to build anything.
    for (key, _) in std::env::vars() {
        if key.starts_with("CARGO") {
            command.env_remove(key);
        }
    }
    command
}

/// Kills what the supervisor's record of children (`<data>/children`) still names, if it is
/// still one of ours (its command line names a tether binary).
fn kill_recorded_children(data: &Path) {
    let Ok(record) = std::fs::read_to_string(data.join("children")) else {
        return;
    };
    for line in record.lines() {
        let Some(pid) = line
            .split_whitespace()
            .nth(1)
            .and_then(|pid| pid.parse::<i32>().ok())
        else {
            continue;
        };
        let ours = std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|cmdline| find(&cmdline, b"tether-").is_some());
        if ours {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// A plain HTTP/1.1 GET; the whole answer, status line first.
pub fn http_get(addr: SocketAddr, path: &str) -> String {
    http_get_with(addr, path, &[])
}

/// [`http_get`] with extra request headers (`("Authorization", "Bearer ...")`).
pub fn http_get_with(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    let extra: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n"
    )
    .expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    response
}

/// A plain HTTP/1.1 POST of a JSON `body`, with extra request headers; the whole answer,
/// status line first.
pub fn http_post_json(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    let extra: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Content-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    response
}

/// Finds a line like `core: pid 1234 ...` (the first number after `<role>` and `pid`).
fn pid_after(status: &str, role: &str) -> Option<i32> {
    status.lines().find_map(|line| {
        let line = line.trim();
        let rest = line.strip_prefix(role)?;
        let after = &rest[rest.find("pid")? + 3..];
        let digits: String = after
            .trim_start_matches([' ', ':', '='])
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    })
}

/// A blocking telnet client that keeps every line it received.
pub struct Client {
    stream: TcpStream,
    /// Raw bytes that may end in an incomplete telnet command.
    pending: Vec<u8>,
    /// Data bytes not yet ended by a newline.
    text: Vec<u8>,
    lines: VecDeque<String>,
    closed: bool,
    /// How the connection ended (end of stream, or the read error), and how many bytes had
    /// come before, for failure messages.
    ended: Option<(String, usize)>,
    received: usize,
    /// Everything received, colours removed, for failure messages.
    pub transcript: Vec<String>,
    /// Everything received, with the colour escapes as sent.
    pub raw_transcript: Vec<String>,
    /// Set by [`Client::with_mccp2`]: the client asked for compression and inflates it.
    pub mccp2: Option<Mccp2>,
}

/// MCCP2 as a client sees it: plain telnet until `IAC SB MCCP2 IAC SE`, then one zlib stream
/// until it ends, then plain again (perhaps another stream later). A zlib stream that breaks
/// fails the test at once: that is what a real client's decompressor would choke on.
#[derive(Default)]
pub struct Mccp2 {
    inflater: Option<flate2::Decompress>,
    /// Plain bytes kept back because they may be the start of a start sequence.
    held: Vec<u8>,
    /// Compressed streams begun, and ended cleanly (Z_STREAM_END).
    pub started: u32,
    pub ended: u32,
}

const MCCP2_START: [u8; 5] = [255, 250, 86, 255, 240];

impl Mccp2 {
    /// Turns wire bytes into the telnet stream the server meant.
    pub fn inflate(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut input = std::mem::take(&mut self.held);
        input.extend_from_slice(bytes);
        let mut rest = &input[..];
        let mut out = Vec::new();
        while !rest.is_empty() {
            match &mut self.inflater {
                None => match find(rest, &MCCP2_START) {
                    Some(at) => {
                        out.extend_from_slice(&rest[..at]);
                        rest = &rest[at + MCCP2_START.len()..];
                        self.inflater = Some(flate2::Decompress::new(true));
                        self.started += 1;
                    }
                    None => {
                        // Keep a tail that could be the start of a start sequence.
                        let keep = (1..MCCP2_START.len())
                            .rev()
                            .find(|&n| rest.len() >= n && rest.ends_with(&MCCP2_START[..n]))
                            .unwrap_or(0);
                        out.extend_from_slice(&rest[..rest.len() - keep]);
                        self.held = rest[rest.len() - keep..].to_vec();
                        rest = &[];
                    }
                },
                Some(inflater) => {
                    let before_in = inflater.total_in();
                    let mut chunk = Vec::with_capacity(rest.len() * 8 + 4096);
                    let status = inflater
                        .decompress_vec(rest, &mut chunk, flate2::FlushDecompress::Sync)
                        .unwrap_or_else(|error| panic!("the MCCP2 stream broke: {error}"));
                    let used = (inflater.total_in() - before_in) as usize;
                    out.extend_from_slice(&chunk);
                    rest = &rest[used..];
                    if status == flate2::Status::StreamEnd {
                        self.inflater = None;
                        self.ended += 1;
                    } else if used == 0 && chunk.is_empty() {
                        // It wants more input than there is: wait for the next read.
                        self.held = rest.to_vec();
                        break;
                    }
                }
            }
        }
        out
    }
}

impl Client {
    pub fn new(stream: TcpStream) -> Client {
        stream
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("read timeout");
        Client {
            stream,
            pending: Vec::new(),
            text: Vec::new(),
            lines: VecDeque::new(),
            closed: false,
            ended: None,
            received: 0,
            transcript: Vec::new(),
            raw_transcript: Vec::new(),
            mccp2: None,
        }
    }

    /// Asks for MCCP2 (the proxy offers it first) and inflates everything from here on.
    pub fn with_mccp2(mut self) -> Client {
        self.mccp2 = Some(Mccp2::default());
        self.send_raw(&[255, 253, 86]);
        self
    }

    pub fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\r\n").as_bytes());
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("sending to the proxy");
    }

    /// A second handle that only sends, for a thread that types while this one reads.
    pub fn writer(&self) -> Writer {
        Writer {
            stream: self.stream.try_clone().expect("cloning the connection"),
        }
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Reads what is available (up to one read timeout); returns false once the peer closed.
    pub fn poll(&mut self) -> bool {
        let mut buffer = [0u8; 8192];
        match self.stream.read(&mut buffer) {
            Ok(0) => self.end("end of stream".into()),
            Ok(n) => {
                self.received += n;
                self.absorb(&buffer[..n]);
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => self.end(e.to_string()),
        }
        !self.closed
    }

    fn end(&mut self, how: String) {
        if !self.closed {
            self.closed = true;
            self.ended = Some((how, self.received));
        }
    }

    fn absorb(&mut self, bytes: &[u8]) {
        match &mut self.mccp2 {
            Some(mccp2) => {
                let plain = mccp2.inflate(bytes);
                self.pending.extend_from_slice(&plain);
            }
            None => self.pending.extend_from_slice(bytes),
        }
        let data = strip_telnet(&mut self.pending);
        self.text.extend_from_slice(&data);
        while let Some(end) = self.text.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.text.drain(..=end).collect();
            let raw = String::from_utf8_lossy(&line)
                .trim_end_matches(['\r', '\n'])
                .to_string();
            // Tests read what a player reads; colours are checked on `raw_transcript`.
            let line = strip_ansi(&raw);
            self.raw_transcript.push(raw);
            self.transcript.push(line.clone());
            self.lines.push_back(line);
        }
    }

    /// Waits for a line containing `needle`; returns it. Earlier lines are consumed.
    pub fn expect(&mut self, needle: &str) -> String {
        self.expect_line(needle, |line| line.contains(needle))
    }

    pub fn expect_line(&mut self, what: &str, mut matches: impl FnMut(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            while let Some(line) = self.lines.pop_front() {
                if matches(&line) {
                    return line;
                }
            }
            assert!(
                !self.closed,
                "connection closed ({:?} bytes received, local {:?}, peer {:?}) while waiting \
                 for {what:?}; transcript:\n{}",
                self.ended,
                self.stream.local_addr(),
                self.stream.peer_addr(),
                self.transcript.join("\n")
            );
            assert!(
                start.elapsed() < DEADLINE,
                "timed out waiting for {what:?}; transcript:\n{}",
                self.transcript.join("\n")
            );
            self.poll();
        }
    }

    /// Lines received so far and not yet consumed.
    pub fn take_lines(&mut self) -> Vec<String> {
        self.poll();
        self.lines.drain(..).collect()
    }

    /// Waits until the proxy closes the connection; returns the lines seen before.
    pub fn expect_closed(&mut self) -> Vec<String> {
        wait_for("the connection to close", || {
            self.poll();
            self.closed.then_some(())
        });
        self.lines.drain(..).collect()
    }

    /// Creates an account and waits until it is in the game.
    pub fn create(&mut self, name: &str, password: &str) {
        self.send(&format!("create {name} {password}"));
        self.expect("Your character has been created.");
        // Entering shows the room; only the next "Exits" line answers the `look`. That round
        // trip leaves no line of ours unacknowledged: a test that kills the core next must
        // not find the `look` still waiting.
        self.expect("Exits");
        self.send("look");
        self.expect("Exits");
    }

    pub fn login(&mut self, name: &str, password: &str) {
        self.send(&format!("connect {name} {password}"));
        self.expect("Welcome back");
    }
}

/// A client that sees the raw bytes, telnet commands and all, for byte-level checks.
pub struct RawClient {
    stream: TcpStream,
    /// Everything received so far.
    pub received: Vec<u8>,
    /// How much of `received` earlier `expect` calls consumed.
    seen: usize,
}

impl RawClient {
    pub fn connect(addr: SocketAddr) -> RawClient {
        let stream = wait_for("the telnet port to accept", || {
            TcpStream::connect(addr).ok()
        });
        stream
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("read timeout");
        RawClient {
            stream,
            received: Vec::new(),
            seen: 0,
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("sending to the proxy");
    }

    pub fn send_line(&mut self, line: &str) {
        self.send(format!("{line}\r\n").as_bytes());
    }

    /// Waits until `needle` arrives after what earlier calls consumed; returns the bytes
    /// from there up to and including it.
    pub fn expect(&mut self, needle: &[u8]) -> Vec<u8> {
        let start = Instant::now();
        loop {
            if let Some(at) = find(&self.received[self.seen..], needle) {
                let end = self.seen + at + needle.len();
                let chunk = self.received[self.seen..end].to_vec();
                self.seen = end;
                return chunk;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "timed out waiting for {:?}; received {:?}",
                String::from_utf8_lossy(needle),
                String::from_utf8_lossy(&self.received[self.seen..])
            );
            let mut buffer = [0u8; 8192];
            match self.stream.read(&mut buffer) {
                Ok(0) => panic!(
                    "connection closed while waiting for {:?}",
                    String::from_utf8_lossy(needle)
                ),
                Ok(n) => self.received.extend_from_slice(&buffer[..n]),
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(e) => panic!("read failed: {e}"),
            }
        }
    }
}

/// Where `needle` first occurs in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len().max(1))
        .position(|window| window == needle)
}

pub struct Writer {
    stream: TcpStream,
}

impl Writer {
    pub fn send(&mut self, line: &str) {
        self.stream
            .write_all(format!("{line}\r\n").as_bytes())
            .expect("sending to the proxy");
    }
}

/// Removes ANSI escape sequences (`ESC [ ... final byte`).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// Removes telnet commands from the front of `raw` as far as they are complete; returns the
/// data bytes. An incomplete command stays in `raw`.
fn strip_telnet(raw: &mut Vec<u8>) -> Vec<u8> {
    const IAC: u8 = 255;
    let mut data = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] != IAC {
            data.push(raw[i]);
            i += 1;
            continue;
        }
        let Some(&command) = raw.get(i + 1) else {
            break;
        };
        match command {
            IAC => {
                data.push(IAC);
                i += 2;
            }
            251..=254 => {
                if i + 2 >= raw.len() {
                    break;
                }
                i += 3;
            }
            250 => {
                // Subnegotiation: skip to IAC SE.
                let Some(end) = raw[i + 2..].windows(2).position(|pair| pair == [IAC, 240]) else {
                    break;
                };
                i += 2 + end + 2;
            }
            // A prompt ends with GA or EOR instead of a line end: treat it as one, so a
            // prompt is a line of its own rather than glued to the next output.
            249 | 239 => {
                data.push(b'\n');
                i += 2;
            }
            _ => i += 2,
        }
    }
    raw.drain(..i);
    data
}
