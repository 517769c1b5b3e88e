//! Telnet over TLS, driven by a real TLS client (`openssl s_client`) with a certificate made
//! by `openssl req`: playing, MSSP's TLS port, core reloads and crashes with nothing lost, a
//! certificate renewed on disk, a proxy upgrade and a proxy crash (which a TLS session cannot
//! survive, while the TLS listener does), and a key other users could read.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tether_tests::{DEADLINE, Mccp2, Options, RawClient, Tether, binary, free_port, wait_for};

/// Whether `openssl` runs here (skipped, or failed under TETHER_REQUIRE_REAL_CLIENTS).
fn openssl() -> bool {
    let found = Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|out| out.status.success());
    tether_tests::real_client("openssl", found)
}

/// A self-signed certificate for `name` (and 127.0.0.1), its key private.
fn certificate(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let chain = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", &format!("/CN={name}")])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&chain)
        .output()
        .expect("running openssl req");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    (chain, key)
}

/// A player on `openssl s_client`: what it prints is gathered by a thread.
struct TlsPlayer {
    child: Child,
    stdin: ChildStdin,
    seen: Arc<Mutex<Vec<u8>>>,
    /// How much of `seen` has been taken into `stream`.
    fed: usize,
    /// The telnet stream the server meant (inflated, once MCCP2 is on).
    stream: Vec<u8>,
    /// How much of `stream` earlier expectations consumed.
    at: usize,
    mccp2: Option<Mccp2>,
}

impl TlsPlayer {
    fn connect(port: u16) -> TlsPlayer {
        let mut child = Command::new("openssl")
            .args(["s_client", "-quiet", "-servername", "localhost", "-connect"])
            .arg(format!("127.0.0.1:{port}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("running openssl s_client");
        let stdin = child.stdin.take().expect("stdin");
        let mut stdout = child.stdout.take().expect("stdout");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let gathered = seen.clone();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                gathered
                    .lock()
                    .expect("lock")
                    .extend_from_slice(&buffer[..n]);
            }
        });
        TlsPlayer {
            child,
            stdin,
            seen,
            fed: 0,
            stream: Vec::new(),
            at: 0,
            mccp2: None,
        }
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        self.stdin
            .write_all(bytes)
            .and_then(|()| self.stdin.flush())
            .expect("writing to s_client");
    }

    /// Asks for MCCP2 (offered by the proxy) and inflates everything from here on.
    fn start_mccp2(&mut self) {
        self.take_new();
        self.mccp2 = Some(Mccp2::default());
        self.send_raw(&[255, 253, 86]);
    }

    fn take_new(&mut self) {
        let seen = self.seen.lock().expect("lock");
        let new = &seen[self.fed..];
        self.fed = seen.len();
        match &mut self.mccp2 {
            Some(mccp2) => {
                let plain = mccp2.inflate(new);
                self.stream.extend_from_slice(&plain);
            }
            None => self.stream.extend_from_slice(new),
        }
    }

    /// Waits for these bytes (a telnet command) after what earlier calls consumed.
    fn expect_bytes(&mut self, needle: &[u8]) {
        let start = Instant::now();
        loop {
            self.take_new();
            if let Some(found) = self.stream[self.at..]
                .windows(needle.len())
                .position(|window| window == needle)
            {
                self.at += found + needle.len();
                return;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "timed out waiting for {needle:?} over TLS"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn send(&mut self, line: &str) {
        self.stdin
            .write_all(format!("{line}\r\n").as_bytes())
            .and_then(|()| self.stdin.flush())
            .expect("writing to s_client");
    }

    /// Waits for `needle` after what earlier calls consumed; returns the text up to it.
    fn expect(&mut self, needle: &str) -> String {
        let start = Instant::now();
        loop {
            self.take_new();
            let rest = &self.stream[self.at..];
            if let Some(found) = rest
                .windows(needle.len())
                .position(|window| window == needle.as_bytes())
            {
                let upto = found + needle.len();
                let text = String::from_utf8_lossy(&rest[..upto]).into_owned();
                self.at += upto;
                return text;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "timed out waiting for {needle:?} over TLS; got:\n{}",
                String::from_utf8_lossy(rest)
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until s_client exits (the server closed the connection).
    fn expect_closed(&mut self) {
        wait_for("the TLS connection to close", || {
            self.child.try_wait().expect("waiting for s_client")
        });
    }
}

impl Drop for TlsPlayer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The subject of the certificate a new connection is served.
fn served_subject(port: u16) -> String {
    let out = Command::new("openssl")
        .args(["s_client", "-servername", "localhost", "-connect"])
        .arg(format!("127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .output()
        .expect("running openssl s_client");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find(|line| line.starts_with("subject="))
        .unwrap_or_default()
        .to_string()
}

fn start(dir: &Path, chain: &Path, key: &Path) -> (Tether, u16) {
    let port = free_port();
    let tether = Tether::start_with(Options {
        capture_log: true,
        args: vec![
            "--telnets".into(),
            format!("127.0.0.1:{port}"),
            "--tls-cert".into(),
            chain.display().to_string(),
            "--tls-key".into(),
            key.display().to_string(),
        ],
        root: Some(dir.join("game")),
        ..Options::default()
    });
    (tether, port)
}

#[test]
fn telnet_over_tls_plays_and_survives_core_restarts_and_certificate_renewal() {
    if !openssl() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let (chain, key) = certificate(dir.path(), "first");
    let (tether, port) = start(dir.path(), &chain, &key);

    let mut player = TlsPlayer::connect(port);
    // Negotiation inside TLS as on plain telnet: MCCP2 and GMCP are offered (in either order).
    let mark = player.at;
    player.expect_bytes(&[255, 251, 86]);
    let after = player.at;
    player.at = mark;
    player.expect_bytes(&[255, 251, 201]);
    player.at = player.at.max(after);
    player.expect("connect <name>");
    player.send_raw(&[255, 253, 201]);
    player.send_raw(b"\xff\xfa\xc9Core.Supports.Set [\"Comm 1\"]\xff\xf0");
    player.send("create Secure secret-tls");
    player.expect("Welcome to");
    // Compressed inside encrypted: the stream inflates whole.
    player.start_mccp2();
    player.send("say over tls");
    player.expect("You say, \"over tls\"");
    player.expect("Comm.Channel.Text");
    assert_eq!(player.mccp2.as_ref().map(|m| m.started), Some(1));
    // Someone on plain telnet in the same room hears it.
    let mut plain = tether.connect();
    plain.create("Plain", "plain-pass");
    player.send("say hello plain");
    plain.expect("Secure says, \"hello plain\"");

    // MSSP names the TLS port, as Mudlet reads it.
    let mut asker = RawClient::connect(tether.telnet);
    asker.expect(b"login>");
    asker.send_line("MSSP-REQUEST");
    let reply = String::from_utf8_lossy(&asker.expect(b"MSSP-REPLY-END")).into_owned();
    assert!(reply.contains(&format!("TLS\t{port}")), "{reply}");
    assert!(reply.contains(&format!("SSL\t{port}")), "{reply}");

    // A core reload and a core crash: the TLS session goes on, nothing typed is lost.
    tether.reload();
    player.send("say after the reload");
    player.expect("You say, \"after the reload\"");
    let core = tether.core_pid();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(core),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill -9 the core");
    player.send("say typed while the core was down");
    player.expect("You say, \"typed while the core was down\"");

    // A renewed certificate (written aside and renamed, as certbot does) is served to new
    // connections; the session already open carries on.
    assert!(served_subject(port).contains("CN = first"));
    let (new_chain, new_key) = certificate(dir.path(), "renewed");
    std::fs::rename(&new_key, &key).expect("installing the key");
    std::fs::rename(&new_chain, &chain).expect("installing the chain");
    wait_for("the renewed certificate to be served", || {
        served_subject(port).contains("CN = renewed").then_some(())
    });
    tether.expect_log(&["TLS certificate reloaded"]);
    player.send("say still here");
    player.expect("You say, \"still here\"");
}

#[test]
fn a_tls_session_cannot_follow_a_proxy_upgrade_and_is_told_so() {
    if !openssl() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let (chain, key) = certificate(dir.path(), "upgrade");
    let (tether, port) = start(dir.path(), &chain, &key);
    let mut player = TlsPlayer::connect(port);
    player.expect("connect <name>");
    player.send("create Moving secret-tls");
    player.expect("Welcome to");
    let mut plain = tether.connect();
    plain.create("Staying", "plain-pass");

    let started = Instant::now();
    tether.upgrade_proxy();
    player.expect("cannot follow; please reconnect");
    player.expect_closed();
    eprintln!(
        "a TLS session was told and closed {:?} after the upgrade was asked for",
        started.elapsed()
    );
    // The plain player stayed; the TLS listener went to the new proxy.
    plain.send("say still connected");
    plain.expect("You say, \"still connected\"");
    let mut again = TlsPlayer::connect(port);
    again.expect("connect <name>");
    again.send("connect Moving secret-tls");
    again.expect("Welcome back");

    // A proxy crash: the keeper cannot hold a TLS session (its keys die with the proxy), so
    // that one closes; the plain player stays, and the TLS listener is carried on.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(tether.proxy_pid()),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill -9 the proxy");
    again.expect_closed();
    plain.send("say after the crash");
    plain.expect("You say, \"after the crash\"");
    let mut back = TlsPlayer::connect(port);
    back.expect("connect <name>");
    back.send("connect Moving secret-tls");
    back.expect("Welcome back");
}

#[test]
fn a_key_other_users_can_read_is_refused_before_anything_starts() {
    if !openssl() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let (chain, key) = certificate(dir.path(), "shared");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = Command::new(binary("tether"))
        .args(["up", "--no-watch", "--telnet"])
        .arg(format!("127.0.0.1:{}", free_port()))
        .arg("--http")
        .arg(format!("127.0.0.1:{}", free_port()))
        .arg("--telnets")
        .arg(format!("127.0.0.1:{}", free_port()))
        .arg("--tls-cert")
        .arg(&chain)
        .arg("--tls-key")
        .arg(&key)
        .arg("--data")
        .arg(dir.path().join("data"))
        .stdin(Stdio::null())
        .output()
        .expect("running tether");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("can be read by other users") && said.contains("chmod 600"),
        "{said}"
    );
}

/// The web client over HTTPS, its WebSocket over `wss://`, in Chromium, through a core
/// reload (the secure WebSocket stays up).
#[test]
fn the_web_client_plays_over_https_and_wss_in_a_browser() {
    if !openssl() {
        return;
    }
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/web");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !tether_tests::real_client("node", node)
        || !tether_tests::real_client("chromium", Path::new(&chromium).exists())
        || !tether_tests::real_client(
            "playwright-core (npm ci in tests/web)",
            web.join("node_modules/playwright-core").exists(),
        )
    {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let (chain, key) = certificate(dir.path(), "web");
    let https = free_port();
    let tether = Tether::start_with(Options {
        capture_log: true,
        args: vec![
            "--https".into(),
            format!("127.0.0.1:{https}"),
            "--tls-cert".into(),
            chain.display().to_string(),
            "--tls-key".into(),
            key.display().to_string(),
        ],
        ..Options::default()
    });
    tether.expect_log(&["listening for HTTPS and secure WebSocket"]);
    let reload = format!(
        "'{}' reload --data '{}'",
        binary("tether").display(),
        tether.data_dir().display()
    );
    let output = Command::new("node")
        .current_dir(&web)
        .arg("secure.mjs")
        .arg("--web")
        .arg(format!("https://127.0.0.1:{https}/"))
        .arg("--reload-cmd")
        .arg(&reload)
        .env("CHROMIUM", &chromium)
        .output()
        .expect("running node");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && said.contains("[secure web test] passed"),
        "secure browser test failed:\n{said}"
    );
    // The plain HTTP listener is still there, beside it.
    let health = tether_tests::http_get(tether.http, "/health");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
}
