//! What a game on the open internet needs from its host and its players' text: private files,
//! and nothing typed that draws one thing and says another.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use tether_tests::{Options, Tether};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn the_data_directory_and_the_database_are_the_owners_alone() {
    let root = tempfile::tempdir().expect("temp dir");
    let options = || Options {
        root: Some(root.path().to_path_buf()),
        capture_log: true,
        ..Options::default()
    };
    let tether = Tether::start_with(options());
    let mut player = tether.connect();
    player.create("Hashed", "secret-one");
    let data = tether.data_dir();
    let db = data.join("tether.db");
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&db), 0o600);
    assert_eq!(mode(&data.join("tether.db-wal")), 0o600);
    assert!(!tether.log().contains("open to other users"));
    drop(player);
    drop(tether);

    // Files an older tether (or an operator's cp) left readable are tightened at start.
    for (path, open) in [
        (data.clone(), 0o755),
        (db.clone(), 0o644),
        (data.join("tether.db-wal"), 0o644),
    ] {
        if path.exists() {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(open)).expect("chmod");
        }
    }
    let tether = Tether::start_with(options());
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&db), 0o600);
    tether.expect_log(&["data directory was open to other users (mode 755); made it 700"]);
    tether.expect_log(&[
        "tether.db",
        "was open to other users (mode 644); made it 600",
    ]);
    let mut player = tether.connect();
    player.login("Hashed", "secret-one");
}

#[test]
fn characters_that_draw_nothing_never_reach_another_screen() {
    let tether = Tether::start();
    let mut alice = tether.connect();
    alice.create("Alice", "wonderland");
    let mut bob = tether.connect();
    bob.create("Bob", "builder1");

    bob.send("title \u{200b}the\u{200d} Bo\u{feff}ld");
    bob.expect("You are now known as");
    alice.send("who");
    let who = alice.expect("Bob the");
    assert!(who.contains("Bob the Bold"), "{who:?}");

    bob.send("emote wa\u{200b}ves as A\u{200c}lice");
    let emote = alice.expect("waves");
    assert!(emote.contains("Bob waves as Alice"), "{emote:?}");

    bob.send("tell alice \u{2060}hi\u{feff}");
    let tell = alice.expect("tells you");
    assert!(tell.ends_with("\"hi\""), "{tell:?}");
}

#[test]
fn the_operator_makes_admins_on_the_host_and_nobody_else_can() {
    let tether = Tether::start();
    // Before anyone connects: the operator makes the first administrator.
    let (ok, text) = tether.admin(&["create", "warden"], "keys-to-all\n");
    assert!(
        ok && text.contains("created Warden, an administrator"),
        "{text}"
    );
    let (ok, text) = tether.admin(&["create", "warden"], "another-one\n");
    assert!(!ok && text.contains("already taken"), "{text}");
    let (ok, text) = tether.admin(&["create", "w4rden"], "another-one\n");
    assert!(!ok && text.contains("only the letters"), "{text}");
    let (ok, text) = tether.admin(&["create", "shorty"], "abc\n");
    assert!(!ok && text.contains("6 to 128 characters"), "{text}");
    let (ok, text) = tether.admin(&["create", "silent"], "");
    assert!(!ok && text.contains("no password"), "{text}");

    let mut warden = tether.connect();
    warden.login("Warden", "keys-to-all");
    warden.send("help");
    warden.expect("@reload");

    let mut guest = tether.connect();
    guest.create("Guest", "just-looking");
    guest.send("@shutdown");
    guest.expect("Huh?");

    let (ok, text) = tether.admin(&["list"], "");
    assert!(ok, "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].starts_with("Guest") && lines[0].contains("player"),
        "{text}"
    );
    assert!(
        lines[1].starts_with("Warden") && lines[1].contains("admin"),
        "{text}"
    );
    assert!(!text.contains("argon2"), "no hash is shown: {text}");

    let (ok, text) = tether.admin(&["demote", "Warden"], "");
    assert!(
        ok && text.contains("Warden is no longer an administrator"),
        "{text}"
    );
    warden.send("@reload");
    warden.expect("Huh?");
    let (ok, text) = tether.admin(&["demote", "warden"], "");
    assert!(ok && text.contains("was not an administrator"), "{text}");
    let (ok, text) = tether.admin(&["promote", "nobody"], "");
    assert!(!ok && text.contains("no account named Nobody"), "{text}");

    let (ok, text) = tether.admin(&["reset-password", "guest"], "a-new-secret\n");
    assert!(ok && text.contains("Guest has a new password"), "{text}");
    let mut again = tether.connect();
    again.send("connect Guest just-looking");
    again.expect("Wrong name or password.");
    again.send("connect Guest a-new-secret");
    again.expect("Welcome back, Guest.");

    // Run as another user (root beside a game run by `tether`), it would leave files the game
    // cannot write: refused, saying how to do it.
    if nix::unistd::geteuid().is_root() {
        let data = tether.data_dir();
        std::os::unix::fs::chown(&data, Some(4321), None).expect("chown");
        let (ok, text) = tether.admin(&["list"], "");
        std::os::unix::fs::chown(&data, Some(0), None).expect("chown back");
        assert!(
            !ok && text.contains("run `tether admin` as the user the game runs as"),
            "{text}"
        );
    }
}

#[test]
fn failed_logins_are_throttled_and_logged_for_fail2ban() {
    let tether = Tether::start_with(Options {
        capture_log: true,
        ..Options::default()
    });
    let mut owner = tether.connect();
    owner.create("Carol", "correct-horse");

    // Three wrong passwords on one connection close it, with the reason.
    let mut guesser = tether.connect();
    for _ in 0..3 {
        guesser.send("connect carol battery-staple");
        guesser.expect("Wrong name or password.");
    }
    let last = guesser.expect_closed();
    assert!(
        last.iter()
            .any(|line| line.contains("Too many failed logins")),
        "{last:?}"
    );
    // More guesses for the same character, from a new connection: past five in a row, the
    // next attempt waits (the test connects from loopback, which is not counted by address,
    // so this is the account's own limit), and waiting costs no password check.
    let mut again = tether.connect();
    for _ in 0..3 {
        again.send("connect carol battery-staple");
        again.expect("Wrong name or password.");
    }
    let mut third = tether.connect();
    third.send("connect carol correct-horse");
    let said = third.expect("Too many failed logins");
    assert!(
        said.contains("for this character. Please try again in"),
        "{said}"
    );

    let failed = tether
        .log()
        .matches("login failed account=Carol address=127.0.0.1")
        .count();
    assert_eq!(failed, 6, "{}", tether.log());
    tether.expect_log(&["login throttled account=Carol address=127.0.0.1 seconds="]);
    assert!(
        !tether.log().contains("battery-staple") && !tether.log().contains("correct-horse"),
        "no password is logged"
    );

    // The shipped fail2ban filter finds every one of them, with the address.
    let found = std::process::Command::new("fail2ban-regex")
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    if !tether_tests::real_client("fail2ban-regex", found) {
        return;
    }
    let filter =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/fail2ban/filter.d/tether.conf");
    let log = tether.data_dir().with_file_name("tether.log");
    let out = std::process::Command::new("fail2ban-regex")
        .args(["--print-all-matched"])
        .arg(&log)
        .arg(&filter)
        .output()
        .expect("running fail2ban-regex");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}");
    assert!(report.contains(" ignored, 7 matched,"), "{report}");
    assert!(report.contains("127.0.0.1"), "{report}");
}

/// Behind a load balancer speaking the PROXY protocol, the player's own address is the one
/// that counts: per-address limits, the login log, throttling. Connections that never log in
/// are closed in time.
#[test]
fn behind_a_balancer_the_players_address_counts_and_idle_guests_are_closed() {
    let tether = Tether::start_with(Options {
        capture_log: true,
        proxy_protocol: true,
        config: Some(
            "proxy_protocol = [\"telnet\"]\n\
             [limits]\n\
             max_connections_per_address = 2\n\
             login_idle_timeout = 2\n"
                .into(),
        ),
        ..Options::default()
    });
    let v1 = |ip: &str| format!("PROXY TCP4 {ip} 127.0.0.1 50000 4000\r\n");
    let mut first = tether.connect_as(v1("203.0.113.50"));
    first.expect("connect <name>");
    let mut second = tether.connect_as(v1("203.0.113.50"));
    second.expect("connect <name>");
    // A third from the same player is turned away; another player is not.
    let mut third = tether.connect_as(v1("203.0.113.50"));
    let refused = third.expect_closed();
    assert!(
        refused
            .iter()
            .any(|l| l.contains("Too many connections from your address")),
        "{refused:?}"
    );
    let mut other = tether.connect_as(v1("203.0.113.51"));
    other.expect("connect <name>");

    // The log names the player's address, not the balancer's.
    first.send("connect nobody wrong-pass");
    first.expect("Wrong name or password.");
    tether.expect_log(&["login failed account=Nobody address=203.0.113.50"]);
    // A v2 (binary) header works the same.
    let mut v2 = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    v2.extend([
        0x21, 0x11, 0, 12, 198, 51, 100, 9, 127, 0, 0, 1, 0x1f, 0x90, 0x0f, 0xa0,
    ]);
    let mut binary = tether.connect_as(v2);
    binary.expect("connect <name>");
    binary.send("connect nobody wrong-pass");
    binary.expect("Wrong name or password.");
    tether.expect_log(&["login failed account=Nobody address=198.51.100.9"]);

    // Without a header, a connection is closed before a word is said to it.
    let mut bare = tether.connect_as("look\r\n");
    let said = bare.expect_closed();
    assert!(said.is_empty(), "{said:?}");
    tether.expect_log(&["connection closed: no PROXY protocol header"]);

    // A guest who types nothing is closed after the idle limit, saying why; one who plays
    // is not.
    let mut player = tether.connect_as(v1("203.0.113.60"));
    player.create("Busy", "busy-busy");
    let idle = other.expect_closed();
    assert!(
        idle.iter()
            .any(|l| l.contains("Nothing typed for too long while logging in.")),
        "{idle:?}"
    );
    player.send("say still here");
    player.expect("You say, \"still here\"");
}

/// One host holding connections until the proxy's open-file limit would lock everyone out;
/// the gate keeps a reserve, so `/health` answers, players already in play on, and the log
/// says why newcomers are turned away.
#[test]
fn a_full_proxy_keeps_a_reserve_for_health_and_the_players_it_has() {
    let tether = Tether::start_with(Options {
        capture_log: true,
        // 256 descriptors: a reserve of 64, so 192 connections for players.
        open_files: Some(256),
        ..Options::default()
    });
    let mut player = tether.connect();
    player.create("Early", "early-bird");
    // Loopback is not limited per address: one "host" fills the proxy.
    let mut crowd: Vec<_> = (0..200).map(|_| tether.connect()).collect();
    let mut welcomed = 0;
    let mut full = 0;
    for client in &mut crowd {
        let said = client.expect_line("the banner or a refusal", |line| {
            line.contains("connect <name>") || line.contains("server is full")
        });
        if said.contains("server is full") {
            full += 1;
            client.expect_closed();
        } else {
            welcomed += 1;
        }
    }
    // The player, the 192 - 1 let in, and the rest refused.
    assert_eq!((welcomed, full), (191, 9));
    tether.expect_log(&["refusing new connections: the rest of the open-file limit is kept"]);
    let health = tether_tests::http_get(tether.http, "/health");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    player.send("say still playing");
    player.expect("You say, \"still playing\"");
    // Places that come free (once the proxy has seen those players leave) are taken again.
    crowd.truncate(150);
    tether_tests::wait_for("a newcomer to be let in", || {
        let mut newcomer = tether.connect();
        let said = newcomer.expect_line("the banner or a refusal", |line| {
            line.contains("connect <name>") || line.contains("server is full")
        });
        said.contains("connect <name>").then_some(())
    });
}
