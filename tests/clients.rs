//! Real MUD clients against the real binaries: TinTin++ driven headless under tmux, and
//! telnetlib3 (its fingerprinting tool and its client API, through `tests/clients/*.py`).
//!
//! The harness's own client only proves the protocol as we understand it; these prove it
//! against code we did not write. Each test reads the client's own account of the session
//! (TinTin++'s telnet debug log, telnetlib3's facts and debug log), so a failure shows what
//! the client saw. Run with `--nocapture` to see the negotiation evidence they print.
//!
//! A missing client skips its test with "skipped: <tool> not installed", except when
//! TETHER_REQUIRE_REAL_CLIENTS is set (`.ci/run` sets it after installing them): then it
//! fails, so CI can never go green by silently skipping.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use tether_tests::{Tether, strip_ansi, wait_for};

/// Debian installs TinTin++ as /usr/games/tt++, and /usr/games is not on every PATH (CI
/// shells, cargo's environment), so it is searched as well.
const EXTRA_PROGRAM_DIRS: &[&str] = &["/usr/games"];

/// The GMCP packages the game sends, as the GMCP spec and Mudlet spell them.
const SUPPORTS: &str = r#"["Char 1","Room 1","Comm 1"]"#;

// ---------------------------------------------------------------------------------------
// Finding the clients
// ---------------------------------------------------------------------------------------

/// Whether `tool` can be run. If not, says so and returns false (the test then returns),
/// or panics when TETHER_REQUIRE_REAL_CLIENTS is set. `telnetlib3` means the Python module.
fn available(tool: &str) -> bool {
    let found = match tool {
        "telnetlib3" => {
            find_program("python3").is_some()
                && Command::new("python3")
                    .args(["-c", "import telnetlib3"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|status| status.success())
        }
        _ => find_program(tool).is_some(),
    };
    tether_tests::real_client(tool, found)
}

/// The executable `name` on PATH or in [`EXTRA_PROGRAM_DIRS`].
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(EXTRA_PROGRAM_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// A script of ours in tests/clients/.
fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients")
        .join(name)
}

// ---------------------------------------------------------------------------------------
// Running a program with a deadline
// ---------------------------------------------------------------------------------------

/// A child that is killed if the test gives up on it (timeout or failed assertion).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

struct Finished {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs `command` to completion, within the harness deadline. Output goes to files in `dir`
/// rather than pipes, so a chatty child can never block on a full pipe while we poll.
fn run(label: &str, mut command: Command, dir: &Path) -> Finished {
    let stdout_path = dir.join(format!("{label}.stdout"));
    let stderr_path = dir.join(format!("{label}.stderr"));
    command
        .stdin(Stdio::null())
        .stdout(File::create(&stdout_path).expect("stdout file"))
        .stderr(File::create(&stderr_path).expect("stderr file"));
    let mut running = Running(
        command
            .spawn()
            .unwrap_or_else(|e| panic!("starting {label}: {e}")),
    );
    let status = wait_for(&format!("{label} to finish"), || {
        running.0.try_wait().expect("waiting for a child")
    });
    Finished {
        status,
        stdout: read_lossy(&stdout_path),
        stderr: read_lossy(&stderr_path),
    }
}

fn read_lossy(path: &Path) -> String {
    std::fs::read(path)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default()
}

/// Our Python scripts print one fact per line: `<kind>\t<field>\t<field>...`.
struct Facts(Vec<Vec<String>>);

impl Facts {
    fn parse(text: &str) -> Facts {
        Facts(
            text.lines()
                .filter(|line| !line.is_empty())
                .map(|line| line.split('\t').map(str::to_string).collect())
                .collect(),
        )
    }

    /// The fields after `kind` of every fact of that kind.
    fn all(&self, kind: &str) -> Vec<&[String]> {
        self.0
            .iter()
            .filter(|fact| fact[0] == kind)
            .map(|fact| &fact[1..])
            .collect()
    }

    /// The first field of the first fact of `kind`.
    fn one(&self, kind: &str) -> Option<&str> {
        self.all(kind)
            .first()
            .and_then(|fields| fields.first())
            .map(String::as_str)
    }

    /// The first fields of every fact of `kind`.
    fn names(&self, kind: &str) -> Vec<&str> {
        self.all(kind)
            .iter()
            .filter_map(|fields| fields.first())
            .map(String::as_str)
            .collect()
    }

    /// `kind name value` facts as (name, value).
    fn pairs(&self, kind: &str) -> Vec<(&str, &str)> {
        self.all(kind)
            .iter()
            .filter(|fields| fields.len() >= 2)
            .map(|fields| (fields[0].as_str(), fields[1].as_str()))
            .collect()
    }
}

// ---------------------------------------------------------------------------------------
// TinTin++ under tmux
// ---------------------------------------------------------------------------------------

/// A tmux server of our own (`tmux -L <socket>`), killed when dropped, even after a failed
/// assertion: a test must not leave a client connected or a server behind.
struct Tmux {
    socket: String,
    /// The socket file, removed with the server (kill-server leaves it behind).
    socket_path: Option<PathBuf>,
}

impl Tmux {
    /// Starts `command` in a detached 200x50 window. Wide, so TinTin++ never wraps the debug
    /// lines we read; remain-on-exit, so a client that dies still leaves its screen to read.
    fn start(socket: String, command: &str) -> Tmux {
        let mut tmux = Tmux {
            socket,
            socket_path: None,
        };
        let status = tmux
            .command()
            // No user or system config: the test must not depend on the machine's.
            .args(["-f", "/dev/null", "start-server", ";"])
            .args(["set-option", "-g", "history-limit", "100000", ";"])
            .args(["set-option", "-g", "remain-on-exit", "on", ";"])
            .args(["new-session", "-d", "-s", "main", "-x", "200", "-y", "50"])
            .arg(command)
            .status()
            .expect("running tmux");
        assert!(status.success(), "tmux new-session failed: {status}");
        tmux.socket_path = tmux
            .command()
            .args(["display-message", "-p", "#{socket_path}"])
            .output()
            .ok()
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
            .filter(|path| !path.is_empty())
            .map(PathBuf::from);
        tmux
    }

    fn command(&self) -> Command {
        let mut command = Command::new("tmux");
        command.arg("-L").arg(&self.socket);
        command.stdin(Stdio::null());
        command
    }

    /// Types `line` and Enter, as a player would.
    fn type_line(&self, line: &str) {
        // -l: the text is typed literally, not read as key names ("Enter", "C-c").
        for keys in [&["-l", line][..], &["Enter"][..]] {
            let status = self
                .command()
                .args(["send-keys", "-t", "main"])
                .args(keys)
                .status()
                .expect("running tmux send-keys");
            assert!(status.success(), "tmux send-keys failed: {status}");
        }
    }

    /// The whole window history, escapes kept (-e), wrapped lines joined (-J).
    fn capture(&self) -> String {
        self.command()
            .args(["capture-pane", "-p", "-e", "-J", "-S", "-", "-t", "main"])
            .output()
            .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
            .unwrap_or_else(|e| format!("(capture-pane failed: {e})"))
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self
            .command()
            .arg("kill-server")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if let Some(path) = &self.socket_path {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// How the script turns GMCP on. TinTin++ refuses GMCP unless a script answers the
/// server's WILL GMCP itself.
#[derive(Clone, Copy)]
enum GmcpStyle {
    /// `Core.Hello` / `Core.Supports.Set`, as the GMCP spec and Mudlet spell them. The
    /// trailing `\}` stops #send adding a line end after each raw telnet sequence, which
    /// the game would otherwise take as empty lines and answer with extra prompts.
    Spec,
    /// Exactly what TinTin++ guides publish: lowercase `core.hello` / `core.supports.set`,
    /// sent with plain #send (so each is followed by CRLF).
    TinTinGuides,
}

/// One TinTin++ session against a tether, logging to a file we poll.
struct TinTin {
    tmux: Tmux,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl TinTin {
    fn start(tether: &Tether, label: &str, mccp: bool, gmcp: GmcpStyle) -> TinTin {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("tintin.log");
        let tin = dir.path().join("session.tin");
        std::fs::write(&tin, tintin_script(tether.telnet.port(), &log, mccp, gmcp))
            .expect("writing the TinTin++ script");
        let tt = find_program("tt++").expect("tt++ (checked by available)");
        // -G: no greeting screen, straight to the script.
        let command = format!("'{}' -G '{}'", tt.display(), tin.display());
        let socket = format!("tether-{}-{label}", std::process::id());
        TinTin {
            tmux: Tmux::start(socket, &command),
            log,
            _dir: dir,
        }
    }

    /// TinTin++'s log: what it received (decompressed, escapes as sent) and its telnet
    /// debug lines, in the order it processed them.
    fn raw_log(&self) -> String {
        read_lossy(&self.log)
    }

    /// The log without escapes: one line per debug message or line of game text.
    fn lines(&self) -> Vec<String> {
        self.raw_log()
            .lines()
            .flat_map(|line| unglue(&strip_ansi(line)))
            .collect()
    }

    fn wait_for_text(&self, needle: &str) {
        wait_for(&format!("TinTin++ to show {needle:?}"), || {
            strip_ansi(&self.raw_log()).contains(needle).then_some(())
        });
    }

    fn has_line(&self, prefix: &str) -> bool {
        self.lines().iter().any(|line| line.starts_with(prefix))
    }
}

impl Drop for TinTin {
    fn drop(&mut self) {
        // Runs before the fields (the tmux server) are dropped, so the screen is still there.
        if std::thread::panicking() {
            eprintln!(
                "--- TinTin++ log ---\n{}\n--- tmux pane ---\n{}",
                strip_ansi(&self.raw_log()),
                strip_ansi(&self.tmux.capture())
            );
        }
    }
}

/// What starts the lines TinTin++ prints itself (telnet debug, our #showme).
const TINTIN_MARKERS: &[&str] = &[
    "RCVD IAC",
    "SENT IAC",
    "INFO MCCP",
    "IAC SB GMCP",
    "GMCPROOM ",
];

/// A prompt has no line end, so TinTin++ logs whatever it prints next on the prompt's line
/// (`login> RCVD IAC SB MSSP`): split such a line where the debug message starts.
fn unglue(line: &str) -> Vec<String> {
    let at = TINTIN_MARKERS
        .iter()
        .flat_map(|marker| line.match_indices(marker).map(|(at, _)| at))
        // `RCVD IAC SB GMCP` is one message, not a prompt glued to `IAC SB GMCP`.
        .filter(|&at| at > 0 && !line[..at].ends_with("RCVD ") && !line[..at].ends_with("SENT "))
        .min();
    match at {
        Some(at) => vec![line[..at].to_string(), line[at..].to_string()],
        None => vec![line.to_string()],
    }
}

fn tintin_script(port: u16, log: &Path, mccp: bool, gmcp: GmcpStyle) -> String {
    let (hello, supports, end) = match gmcp {
        GmcpStyle::Spec => ("Core.Hello", "Core.Supports.Set", r"\}"),
        GmcpStyle::TinTinGuides => ("core.hello", "core.supports.set", "}"),
    };
    let mut tin = String::new();
    // Every option sent and received, every subnegotiation, MCCP start: into the log.
    tin.push_str("#config {debug telnet} on\n");
    if !mccp {
        // TinTin++ then answers WILL MCCP2 with DONT.
        tin.push_str("#config {mccp} off\n");
    }
    tin.push_str(&format!(
        "#event {{IAC WILL GMCP}} {{\
         #send {{\\xFF\\xFD\\xC9{end};\
         #send {{\\xFF\\xFA\\xC9{hello} {{\"client\":\"TinTin++\",\"version\":\"2.02.20\"}}\\xFF\\xF0{end};\
         #send {{\\xFF\\xFA\\xC9{supports} {SUPPORTS}\\xFF\\xF0{end}\
         }}\n"
    ));
    // A marked line per Room.Info, so the test can find it in the log.
    tin.push_str("#event {IAC SB GMCP Room.Info IAC SE} {#showme GMCPROOM %0}\n");
    tin.push_str(&format!("#session tether 127.0.0.1 {port}\n"));
    // After #session, so it logs that session; the script runs before any input is read,
    // so the log still starts with the server's first bytes.
    tin.push_str(&format!("#log overwrite {{{}}}\n", log.display()));
    tin
}

/// Logs in, talks and moves; returns once everything the game sent for it has arrived.
fn play_tintin(tintin: &TinTin, name: &str) {
    tintin.wait_for_text("connect <name>");
    tintin.tmux.type_line(&format!("create {name} secretpw"));
    tintin.wait_for_text("Your character has been created.");
    tintin.tmux.type_line("say hello from tintin");
    tintin.wait_for_text("You say, \"hello from tintin\"");
    tintin.tmux.type_line("north");
    // The game answers lines in order: once the answer to a later line is in, everything
    // it sent for `north` (text and GMCP, in whatever order) has arrived too.
    tintin.tmux.type_line("say arrived");
    tintin.wait_for_text("You say, \"arrived\"");
}

/// The debug lines, for the record (`--nocapture`).
fn print_negotiation(label: &str, lines: &[String]) {
    println!("--- {label}: TinTin++ telnet debug lines ---");
    for line in lines {
        if ["RCVD ", "SENT ", "INFO ", "IAC SB GMCP", "#COMPRESSION"]
            .iter()
            .any(|prefix| line.starts_with(prefix))
        {
            println!("{line}");
        }
    }
}

/// Room.Info payloads TinTin++ showed, in order (as TinTin++ tables: `{num}{1}{name}...`).
fn room_infos(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter_map(|line| line.strip_prefix("GMCPROOM "))
        .map(str::to_string)
        .collect()
}

/// `{name}{Town Square}` -> `Town Square`.
fn table_field<'a>(table: &'a str, key: &str) -> Option<&'a str> {
    let start = table.find(&format!("{{{key}}}{{"))? + key.len() + 3;
    let len = table[start..].find('}')?;
    Some(&table[start..start + len])
}

/// The parameters of each SGR escape (`ESC [ params m`) in `text`, resets left out.
fn colours(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("\x1b[") {
        rest = &rest[at + 2..];
        let len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == ';'))
            .unwrap_or(rest.len());
        if rest[len..].starts_with('m') && !matches!(&rest[..len], "" | "0") {
            found.push(rest[..len].to_string());
        }
    }
    found
}

/// What every TinTin++ session must show, MCCP2 or not.
fn assert_tintin_session(tintin: &TinTin, mccp: bool) {
    let lines = tintin.lines();
    let has = |prefix: &str| {
        assert!(
            tintin.has_line(prefix),
            "TinTin++ never logged a line starting {prefix:?}"
        );
    };

    // GMCP: a Room.Info at login and another after `north`, for a different room.
    has("RCVD IAC WILL GMCP");
    let rooms = room_infos(&lines);
    assert!(
        rooms.len() >= 2,
        "expected GMCP Room.Info at login and after north, TinTin++ showed {rooms:?}"
    );
    assert_ne!(rooms[0], rooms[1], "Room.Info did not change after north");
    has("IAC SB GMCP Comm.Channel.Text IAC SE");

    // Colour reached the client: the room that Room.Info names is printed in colour.
    let room = table_field(&rooms[0], "name").expect("a name in Room.Info");
    let raw = tintin.raw_log();
    let room_line = raw
        .lines()
        .find(|line| strip_ansi(line) == room)
        .unwrap_or_else(|| panic!("the room name {room:?} was never shown on a line of its own"));
    assert!(
        !colours(room_line).is_empty(),
        "the room name arrived without colour: {room_line:?}"
    );

    // What was agreed, in TinTin++'s own words.
    has("SENT IAC DO EOR");
    has("SENT IAC DO MSSP");
    for var in ["NAME", "PLAYERS", "UPTIME"] {
        assert!(
            lines.iter().any(|line| {
                let words: Vec<&str> = line.split_whitespace().collect();
                words.starts_with(&["RCVD", "IAC", "SB", "MSSP", "VAR", var])
            }),
            "MSSP variable {var} never arrived"
        );
    }
    has("SENT IAC WILL TERMINAL TYPE");
    has("SENT IAC SB TTYPE MTTS ");
    has("SENT IAC WILL NAWS");
    has("SENT IAC SB NAWS ");
    has("SENT IAC WILL CHARSET");
    has("SENT IAC SB CHARSET ACCEPTED UTF-8");
    // Prompts end with EOR once EOR is agreed; GA may only precede the first EOR (the
    // login prompt goes out with the offers, before the client has answered).
    let first_eor = lines
        .iter()
        .position(|line| line == "RCVD IAC EOR")
        .expect("no prompt ended with IAC EOR");
    let late_ga = lines[first_eor..].iter().any(|line| line == "RCVD IAC GA");
    assert!(!late_ga, "a prompt ended with GA after EOR was in use");

    if mccp {
        has("SENT IAC DO MCCP2");
        has("INFO MCCP2 INITIALIZED");
    } else {
        has("SENT IAC DONT MCCP2");
        assert!(
            !tintin.has_line("INFO MCCP2 INITIALIZED"),
            "compression started although TinTin++ refused MCCP2"
        );
    }
    assert!(
        !lines
            .iter()
            .any(|line| line.contains("COMPRESSION ERROR") || line.contains("MCCP2: FAILED")),
        "TinTin++ reported an MCCP2 error"
    );
}

#[test]
fn tintin_with_mccp2() {
    if !available("tmux") || !available("tt++") {
        return;
    }
    let tether = Tether::start();
    let tintin = TinTin::start(&tether, "mccp", true, GmcpStyle::Spec);
    play_tintin(&tintin, "Tinker");
    print_negotiation("TinTin++ with MCCP2", &tintin.lines());
    assert_tintin_session(&tintin, true);
}

#[test]
fn tintin_without_mccp2() {
    if !available("tmux") || !available("tt++") {
        return;
    }
    let tether = Tether::start();
    let tintin = TinTin::start(&tether, "nomccp", false, GmcpStyle::Spec);
    play_tintin(&tintin, "Tinman");
    print_negotiation("TinTin++ without MCCP2", &tintin.lines());
    assert_tintin_session(&tintin, false);
}

/// TinTin++ with MCCP2 on stays connected through five proxy upgrades while it types: each
/// hand-over ends its zlib stream and starts a new one, which TinTin++ must take without a
/// compression error, and afterwards everything it negotiated still holds (the game still
/// knows its window, charset and terminal; GMCP and coloured, EOR-ended prompts still come).
#[test]
fn tintin_with_mccp2_stays_through_five_proxy_upgrades() {
    if !available("tmux") || !available("tt++") {
        return;
    }
    let tether = Tether::start();
    let tintin = TinTin::start(&tether, "upgrades", true, GmcpStyle::Spec);
    play_tintin(&tintin, "Stayer");
    tintin.tmux.type_line("client");
    tintin.wait_for_text("Client: ");
    let before = client_line(&tintin);
    for round in 1..=5 {
        tintin.tmux.type_line(&format!("say before-{round}"));
        tether.upgrade_proxy();
        tintin.tmux.type_line(&format!("say after-{round}"));
        tintin.wait_for_text(&format!("You say, \"after-{round}\""));
    }
    tintin.tmux.type_line("south");
    tintin.tmux.type_line("client");
    tintin.tmux.type_line("say done");
    tintin.wait_for_text("You say, \"done\"");
    let text = strip_ansi(&tintin.raw_log());
    for round in 1..=5 {
        assert_eq!(
            text.matches(&format!("You say, \"before-{round}\""))
                .count(),
            1,
            "every line answered once"
        );
    }
    assert_eq!(
        client_line(&tintin),
        before,
        "what the game knows of the client"
    );
    let lines = tintin.lines();
    let streams = lines
        .iter()
        .filter(|line| line.starts_with("INFO MCCP2 INITIALIZED"))
        .count();
    assert_eq!(streams, 6, "one stream, then a new one per upgrade");
    assert!(
        !lines
            .iter()
            .any(|line| line.contains("COMPRESSION ERROR") || line.contains("MCCP2: FAILED")),
        "TinTin++ reported an MCCP2 error"
    );
    let rooms = room_infos(&lines);
    assert!(
        rooms.len() >= 3,
        "GMCP Room.Info after the upgrades: {rooms:?}"
    );
    assert_eq!(rooms[rooms.len() - 1], rooms[0], "back in the first room");
    let raw = tintin.raw_log();
    let last_prompt = raw
        .lines()
        .rev()
        .find(|line| strip_ansi(line).contains("hp "))
        .expect("a prompt");
    assert!(
        !colours(last_prompt).is_empty(),
        "the prompt lost its colour"
    );
    assert!(
        lines
            .iter()
            .rev()
            .take(200)
            .any(|line| line == "RCVD IAC EOR")
    );
}

/// The last `client` answer: what the game knows of TinTin++.
fn client_line(tintin: &TinTin) -> String {
    strip_ansi(&tintin.raw_log())
        .lines()
        .rev()
        .find(|line| line.contains("Client: "))
        .map(str::to_string)
        .expect("a client line")
}

/// TinTin++ players copy their GMCP setup from guides, which send `core.hello` and
/// `core.supports.set` in lowercase. GMCP's origin, IRE's documentation, says "Module and
/// message names are not case sensitive", so the game must honour them.
#[test]
fn tintin_gmcp_enabled_the_way_tintin_guides_show() {
    if !available("tmux") || !available("tt++") {
        return;
    }
    let tether = Tether::start();
    let tintin = TinTin::start(&tether, "guides", true, GmcpStyle::TinTinGuides);
    play_tintin(&tintin, "Tinpot");
    let lines = tintin.lines();
    print_negotiation("TinTin++ with lowercase core.supports.set", &lines);
    let gmcp: Vec<&String> = lines
        .iter()
        .filter(|line| line.starts_with("IAC SB GMCP "))
        .collect();
    assert!(
        room_infos(&lines).len() >= 2,
        "after `core.supports.set {SUPPORTS}` (lowercase, as TinTin++ guides send it), \
         login and `north` brought no GMCP Room.Info; GMCP messages received: {gmcp:?}"
    );
}

// ---------------------------------------------------------------------------------------
// telnetlib3
// ---------------------------------------------------------------------------------------

#[test]
fn telnetlib3_fingerprint() {
    if !available("telnetlib3") {
        return;
    }
    let tether = Tether::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let json = dir.path().join("fingerprint.json");
    let mut command = fingerprint_command();
    command
        .arg("127.0.0.1")
        .arg(tether.telnet.port().to_string())
        .arg("--save-json")
        .arg(&json)
        .arg("--silent")
        // Otherwise it would also file the fingerprint in a shared database.
        .env_remove("TELNETLIB3_DATA_DIR")
        .current_dir(dir.path());
    let probe = run("telnetlib3-fingerprint", command, dir.path());
    assert!(
        probe.status.success() && json.exists(),
        "telnetlib3-fingerprint failed ({}):\n{}{}",
        probe.status,
        probe.stdout,
        probe.stderr
    );

    let mut command = Command::new("python3");
    command.arg(script("fingerprint_facts.py")).arg(&json);
    let flat = run("fingerprint_facts", command, dir.path());
    assert!(
        flat.status.success(),
        "fingerprint_facts.py failed:\n{}",
        flat.stderr
    );
    println!("--- telnetlib3-fingerprint facts ---\n{}", flat.stdout);
    let facts = Facts::parse(&flat.stdout);

    // The options the proxy offers on connect, both as seen before the probe...
    let offered_at_connect: Vec<&str> = facts
        .pairs("server_offered")
        .into_iter()
        .filter(|(_, value)| *value == "True")
        .map(|(name, _)| name)
        .collect();
    let offered = facts.names("offered");
    let requested = facts.names("requested");
    for option in ["EOR", "GMCP", "MSSP", "MCCP2"] {
        assert!(
            offered_at_connect.contains(&option) && offered.contains(&option),
            "the proxy did not offer {option}: offered on connect {offered_at_connect:?}, \
             after the probe {offered:?}"
        );
    }
    // ...and the client options it asks for.
    for option in ["TTYPE", "NAWS", "NEW_ENVIRON", "CHARSET"] {
        assert!(
            requested.contains(&option),
            "the proxy did not ask for {option}: {requested:?}"
        );
    }
    // The probe sends DO/WILL for many options and the wrong-direction ones: the proxy must
    // neither loop nor accept a client-side option (NAWS, TTYPE) as its own.
    assert!(
        facts.names("looped").is_empty(),
        "negotiation loops: {:?}",
        facts.names("looped")
    );
    assert!(
        facts.names("wrong_direction").is_empty(),
        "accepted wrong-direction options: {:?}",
        facts.names("wrong_direction")
    );
    assert!(
        facts.names("refused").contains(&"ECHO"),
        "ECHO may only be on at a password prompt: {:?}",
        facts.names("refused")
    );

    // MSSP over telnet: the fingerprint accepts it, so the variables must be in the JSON.
    let mssp = facts.pairs("mssp");
    let var = |name: &str| {
        mssp.iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| *value)
            .unwrap_or_else(|| panic!("MSSP variable {name} missing; got {mssp:?}"))
    };
    assert!(!var("NAME").is_empty(), "empty MSSP NAME");
    assert!(
        var("PLAYERS").parse::<u32>().is_ok(),
        "MSSP PLAYERS is not a number: {:?}",
        var("PLAYERS")
    );
    let uptime: u64 = var("UPTIME").parse().expect("MSSP UPTIME is a number");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    assert!(
        uptime > 1_000_000_000 && uptime <= now,
        "MSSP UPTIME must be the start time in unix seconds, got {uptime} (now {now})"
    );
}

/// `telnetlib3-fingerprint`, or its entry point through python3 when pip put the script
/// somewhere not on PATH (`pip install --user` on a CI runner): the same program either way.
fn fingerprint_command() -> Command {
    match find_program("telnetlib3-fingerprint") {
        Some(path) => Command::new(path),
        None => {
            let mut command = Command::new("python3");
            command.args([
                "-c",
                "from telnetlib3.client import fingerprint_main; fingerprint_main()",
            ]);
            command
        }
    }
}

/// Runs tests/clients/telnetlib3_session.py; returns its facts and debug log.
fn telnetlib3_session(tether: &Tether, name: &str, extra: &[&str]) -> (Facts, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut command = Command::new("python3");
    command
        .arg(script("telnetlib3_session.py"))
        .arg("127.0.0.1")
        .arg(tether.telnet.port().to_string())
        .args(["--name", name, "--password", "secretpw"])
        .args(extra);
    let session = run("telnetlib3_session", command, dir.path());
    let facts = Facts::parse(&session.stdout);
    assert!(
        session.status.success() && facts.one("done") == Some("ok"),
        "the telnetlib3 session failed ({}): {:?}\n--- facts ---\n{}\n--- telnetlib3 log ---\n{}",
        session.status,
        facts.one("error"),
        session.stdout,
        session.stderr
    );
    (facts, session.stderr)
}

/// telnetlib3's negotiation log lines, for the record (`--nocapture`).
fn print_telnetlib3(label: &str, facts: &Facts, log: &str) {
    println!("--- {label}: telnetlib3 option states ---");
    for fields in facts.all("option") {
        println!("{}", fields.join(" "));
    }
    println!("--- {label}: telnetlib3 negotiation log ---");
    for line in log.lines() {
        let interesting = [
            "recv IAC",
            "send IAC",
            "MCCP2",
            "encoding negotiated",
            "env send",
        ];
        if interesting.iter().any(|marker| line.contains(marker)) {
            println!("{line}");
        }
    }
}

/// telnetlib3's belief about `option`: (server performs it, we perform it).
fn option_state(facts: &Facts, option: &str) -> (bool, bool) {
    let fields = facts
        .all("option")
        .into_iter()
        .find(|fields| fields.first().map(String::as_str) == Some(option))
        .unwrap_or_else(|| panic!("no option fact for {option}"));
    (
        fields.contains(&"remote=True".to_string()),
        fields.contains(&"local=True".to_string()),
    )
}

/// The packages listed by a `gmcp_phase <phase> <json list>` fact (a JSON list of plain
/// names, read without a JSON parser).
fn gmcp_phase(facts: &Facts, phase: &str) -> Vec<String> {
    let list = facts
        .all("gmcp_phase")
        .into_iter()
        .find(|fields| fields.first().map(String::as_str) == Some(phase))
        .and_then(|fields| fields.get(1).cloned())
        .unwrap_or_else(|| panic!("no gmcp_phase fact for {phase}"));
    list.trim_matches(['[', ']'])
        .split(',')
        .map(|name| name.trim().trim_matches('"').to_string())
        .filter(|name| !name.is_empty())
        .collect()
}

/// What every telnetlib3 session that sent its own Core.Supports.Set must show.
fn assert_telnetlib3_session(facts: &Facts, log: &str, mccp: bool) {
    assert!(facts.one("say_echoed").is_some(), "`say` was not answered");
    let sgr = facts.one("sgr").unwrap_or("[]");
    assert!(
        sgr != "[]",
        "no ANSI colour reached telnetlib3 (TTYPE xterm-256color)"
    );

    // GMCP after our Core.Supports.Set: the say on its channel, the new room after north.
    let play = gmcp_phase(facts, "play");
    for package in ["Comm.Channel.Text", "Room.Info"] {
        assert!(
            play.iter().any(|p| p == package),
            "no GMCP {package} after Core.Supports.Set {SUPPORTS}; got {play:?}"
        );
    }

    // Option states as telnetlib3 records them.
    assert_eq!(option_state(facts, "EOR"), (true, false), "EOR");
    assert_eq!(option_state(facts, "GMCP"), (true, false), "GMCP");
    for option in ["TTYPE", "NAWS", "NEW_ENVIRON", "CHARSET"] {
        assert!(
            option_state(facts, option).1,
            "telnetlib3 does not perform {option}"
        );
    }
    assert_eq!(
        option_state(facts, "ECHO"),
        (false, false),
        "ECHO outside a password"
    );
    assert!(
        log.contains("encoding negotiated: UTF-8"),
        "CHARSET UTF-8 not agreed"
    );

    // Prompts: GA only before EOR was agreed, EOR afterwards.
    let ends = facts.one("prompt_ends").unwrap_or("[]");
    let first_eor = ends.find("EOR").expect("no prompt ended with IAC EOR");
    assert!(
        !ends[first_eor..].contains("GA"),
        "a prompt ended with GA after EOR was in use: {ends}"
    );

    // MSSP as text (telnetlib3's client declines telnet MSSP unless told otherwise).
    let mssp: Vec<&str> = facts.names("mssp_text");
    for var in ["NAME", "PLAYERS", "UPTIME"] {
        assert!(mssp.contains(&var), "MSSP-REQUEST lacked {var}: {mssp:?}");
    }

    if mccp {
        assert!(option_state(facts, "MCCP2").0, "MCCP2 not agreed");
        assert_eq!(facts.one("mccp2_active"), Some("True"), "MCCP2 not active");
        assert!(
            log.contains("MCCP2 decompression started"),
            "no MCCP2 start"
        );
    } else {
        assert!(
            log.contains("send IAC DONT MCCP2_COMPRESS"),
            "MCCP2 not refused"
        );
        assert!(!option_state(facts, "MCCP2").0, "MCCP2 agreed anyway");
        assert_eq!(
            facts.one("mccp2_active"),
            Some("False"),
            "compressing anyway"
        );
    }
    // telnetlib3 falls back to raw deflate (and logs it) when a stream is not zlib (RFC 1950).
    for trouble in ["MCCP2 auto-detect failed", "MCCP2 decompression error"] {
        assert!(!log.contains(trouble), "telnetlib3 logged {trouble:?}");
    }
}

#[test]
fn telnetlib3_client_with_mccp2() {
    if !available("telnetlib3") {
        return;
    }
    let tether = Tether::start();
    let (facts, log) = telnetlib3_session(&tether, "Pyonmccp", &[]);
    print_telnetlib3("telnetlib3 client with MCCP2", &facts, &log);
    assert_telnetlib3_session(&facts, &log, true);
}

/// The same session, handed to a new proxy five times after its options are agreed and its
/// GMCP packages set: every fact checked afterwards (options, GMCP, colour, charset, MCCP2)
/// is one the new proxies carried.
#[test]
fn telnetlib3_client_with_mccp2_through_five_proxy_upgrades() {
    if !available("telnetlib3") {
        return;
    }
    let tether = Tether::start();
    let upgrade = format!(
        "'{}' upgrade-proxy --data '{}'",
        tether_tests::binary("tether").display(),
        tether.data_dir().display()
    );
    let (facts, log) = telnetlib3_session(
        &tether,
        "Lasting",
        &["--upgrades", "5", "--upgrade-command", &upgrade],
    );
    print_telnetlib3("telnetlib3 through five proxy upgrades", &facts, &log);
    let upgrades = facts.all("upgrade");
    assert_eq!(upgrades.len(), 5, "{upgrades:?}");
    assert!(
        upgrades.iter().all(|fields| fields[0] == "0"),
        "{upgrades:?}"
    );
    assert_telnetlib3_session(&facts, &log, true);
    assert!(tether.status().contains("upgrades 5"));
}

#[test]
fn telnetlib3_client_without_mccp2() {
    if !available("telnetlib3") {
        return;
    }
    let tether = Tether::start();
    let (facts, log) = telnetlib3_session(&tether, "Pyoffmccp", &["--no-mccp"]);
    print_telnetlib3("telnetlib3 client without MCCP2", &facts, &log);
    assert_telnetlib3_session(&facts, &log, false);
}

/// telnetlib3's client answers WILL GMCP with its own Core.Hello and a Core.Supports.Set of
/// lowercased modules (`"char 1"`, `"room 1"`, ...). GMCP module names are not case
/// sensitive (IRE's GMCP documentation), so that alone must bring the game's packages.
#[test]
fn telnetlib3_client_default_gmcp_handshake() {
    if !available("telnetlib3") {
        return;
    }
    let tether = Tether::start();
    let (facts, log) = telnetlib3_session(&tether, "Pydefault", &["--no-supports"]);
    let login = gmcp_phase(&facts, "login");
    let play = gmcp_phase(&facts, "play");
    let handshake: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("GMCP handshake"))
        .collect();
    assert!(
        login.iter().any(|p| p == "Room.Info") && play.iter().any(|p| p == "Room.Info"),
        "telnetlib3's own handshake {handshake:?} brought no Room.Info: at login {login:?}, \
         after say and north {play:?}"
    );
}

// ---------------------------------------------------------------------------------------
// The log readers themselves (no client needed)
// ---------------------------------------------------------------------------------------

#[test]
fn log_readers() {
    assert_eq!(
        unglue("login> RCVD IAC SB MSSP"),
        ["login> ", "RCVD IAC SB MSSP"]
    );
    assert_eq!(unglue("RCVD IAC SB GMCP"), ["RCVD IAC SB GMCP"]);
    assert_eq!(
        unglue("100hp >IAC SB GMCP Room.Info IAC SE"),
        ["100hp >", "IAC SB GMCP Room.Info IAC SE"]
    );
    assert_eq!(
        table_field("{num}{1}{name}{Town Square}{exits}{{n}{2}}", "name"),
        Some("Town Square")
    );
    assert_eq!(colours("\x1b[1;96mTown Square\x1b[0m \x1b[m"), ["1;96"]);
}
