//! The proxy is replaced while players are connected (`tether upgrade-proxy`, SIGUSR2, the
//! in-game `@upgrade-proxy`): nobody is disconnected, nothing typed is lost, the core sees the
//! same sessions go on, and every connection keeps its whole state (a compressed stream that
//! stays valid zlib, a password half typed and still hidden, a login half done).

use std::path::Path;

use tether_tests::typing::{assert_exactly_once_in_order, type_through};
use tether_tests::{Client, Options, RawClient, Tether, binary, wait_for};

const IAC: u8 = 255;
const WILL: u8 = 251;
const WONT: u8 = 252;
const DO: u8 = 253;
const ECHO: u8 = 1;

fn with_log() -> Tether {
    Tether::start_with(Options {
        capture_log: true,
        ..Options::default()
    })
}

#[test]
fn five_upgrades_while_typing_with_mccp2_lose_nothing() {
    let tether = with_log();
    let mut player = tether.connect().with_mccp2();
    player.create("Wanderer", "hunter22");
    player.send("title the Unbroken");
    player.expect("You are now known as");
    // Someone in the same room would see any leaving or arriving the core thought happened.
    let mut bystander = tether.connect();
    bystander.create("Watcher", "hunter22");
    let first_proxy = tether.proxy_pid();
    let sessions_seen = |log: &str| {
        ["session opened", "session closed", "left the game"].map(|what| log.matches(what).count())
    };
    let before = sessions_seen(&tether.log());

    let typed = type_through(&mut player, || {
        for _ in 0..5 {
            tether.upgrade_proxy();
        }
    });
    assert_exactly_once_in_order(&typed);
    eprintln!(
        "5 proxy upgrades: {} lines, longest wait {:?}",
        typed.sent, typed.longest_wait
    );

    assert_ne!(tether.proxy_pid(), first_proxy, "the proxy was replaced");
    assert!(
        tether.status().contains("upgrades 5"),
        "{}",
        tether.status()
    );
    player.send("who");
    player.expect("Wanderer the Unbroken");
    let mccp2 = player.mccp2.as_ref().expect("compressing");
    // One stream before the upgrades and one after each, every earlier one ended whole.
    assert_eq!((mccp2.started, mccp2.ended), (6, 5));
    bystander.send("say still here");
    bystander.expect("You say, \"still here\"");
    let seen = bystander.transcript.join("\n");
    assert!(
        !seen.contains("has left the game") && !seen.contains("arrives"),
        "the bystander saw a session end or begin:\n{seen}"
    );
    assert_eq!(
        sessions_seen(&tether.log()),
        before,
        "the core saw sessions open or close"
    );
}

/// The old proxy leaves the instant it has handed everything over, and the new one says READY
/// a moment later: the supervisor may hear of the exit first. It must wait for the new
/// proxy's word rather than take the exit for a crash (which once started a recovering proxy
/// beside the new one: two proxies serving, a needless "recovered" notice, one left behind).
#[test]
fn the_old_proxy_leaving_before_the_new_one_is_ready_is_no_crash() {
    let tether = Tether::start_with(Options {
        capture_log: true,
        env: vec![
            ("TETHER_FAULTS".into(), "1".into()),
            ("TETHER_FAULT_TAKE_OVER_READY_MS".into(), "300".into()),
        ],
        ..Options::default()
    });
    let mut player = tether.connect();
    player.create("Steady", "hunter22");
    let first = tether.proxy_pid();
    let said = tether.upgrade_proxy();
    assert!(said.contains("took every connection over"), "{said}");
    tether.expect_log(&["injected fault: READY comes late after a take-over"]);
    let serving = tether.proxy_pid();
    assert_ne!(serving, first);

    player.send("say after the upgrade");
    player.expect("You say, \"after the upgrade\"");
    let seen = player.transcript.join("\n");
    assert!(!seen.contains("recovered from a fault"), "{seen}");
    let log = tether.log();
    assert!(
        !log.contains("--recover") && !log.contains("kept connections"),
        "{log}"
    );
    // Exactly one proxy runs for this game: the one the supervisor knows.
    let data = tether.data_dir();
    let proxies = tether_tests::processes_naming(&data, "tether-proxy");
    assert_eq!(proxies, [serving], "{log}");
    tether.expect_log(&[&format!(
        "proxy (pid {first}) exited (status 0) while its successor"
    )]);
}

#[test]
fn a_half_typed_password_stays_hidden_and_a_half_done_login_stays_half_done() {
    let tether = Tether::start();
    let mut existing = tether.connect();
    existing.create("Alice", "hunter22");
    existing.send("quit");
    existing.expect_closed();

    // Half way through choosing a password: the client is not echoing.
    let mut creating = RawClient::connect(tether.telnet);
    creating.expect(b"login>");
    creating.send_line("create Bob");
    creating.expect(b"Choose a password");
    // As a real client does: agree that the server echoes (it then shows nothing).
    creating.send(&[IAC, DO, ECHO]);
    creating.send(b"secr");
    // Half way through logging in: asked for the password.
    let mut connecting = tether.connect();
    connecting.expect("login>");
    connecting.send("connect Alice");
    connecting.expect_line("the password prompt", |_| true);
    // At the login prompt.
    let mut guest = tether.connect();
    guest.expect("login>");

    tether.upgrade_proxy();

    creating.send(b"et99\r\n");
    creating.expect(b"Your character has been created.");
    creating.send_line("look");
    creating.expect(b"Exits");
    // Echo is given back to the client exactly as it would have been without the upgrade.
    let after = creating.received.clone();
    assert!(
        after.windows(3).any(|w| w == [IAC, WONT, ECHO]),
        "the client was never told to echo again"
    );
    assert!(after.windows(3).any(|w| w == [IAC, WILL, ECHO]));

    // A wrong password is still a wrong password: the session did not come back logged in.
    connecting.send("not-her-password");
    connecting.expect("Wrong name or password.");
    connecting.send("look");
    connecting.expect("login>");
    guest.send("look");
    guest.expect("login>");
    guest.send("connect Bob secret99");
    guest.expect("Welcome back");
}

/// A proxy binary that can be swapped: a script that runs whatever `program` says.
fn swappable_proxy(dir: &Path) -> std::path::PathBuf {
    let script = dir.join("proxy.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nexec $(cat {}) \"$@\"\n",
            dir.join("program").display()
        ),
    )
    .expect("proxy script");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    script
}

fn use_program(dir: &Path, program: &str) {
    std::fs::write(dir.join("program"), program).expect("program");
}

/// A successor that says HELLO, takes everything, and dies before it says TAKEN: the old
/// proxy has frozen every session and must bring them all back.
const DYING_TAKER: &str = r#"
import socket, sys
args = sys.argv[1:]
path = args[args.index("--handover") + 1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(path)
s.send(b"H\x01")
while True:
    m, _, _, _ = s.recvmsg(65536, socket.CMSG_SPACE(4 * 200))
    if not m or m[:1] == b"E":
        break
sys.exit(7)
"#;

#[test]
fn a_broken_new_proxy_is_refused_and_everyone_stays() {
    let dir = tempfile::tempdir().expect("temp dir");
    let script = swappable_proxy(dir.path());
    use_program(dir.path(), &binary("tether-proxy").display().to_string());
    let taker = dir.path().join("dying_taker.py");
    std::fs::write(&taker, DYING_TAKER).expect("taker script");
    let tether = Tether::start_with(Options {
        proxy_bin: Some(script),
        ..Options::default()
    });
    let mut player = tether.connect().with_mccp2();
    player.create("Steady", "hunter22");
    let proxy = tether.proxy_pid();

    // A binary that does not start at all.
    use_program(dir.path(), "false");
    let (ok, text) = tether.ctl(&["upgrade-proxy"]);
    assert!(!ok, "{text}");
    assert!(text.contains("proxy upgrade failed"), "{text}");
    player.send("say one");
    player.expect("You say, \"one\"");

    // One that takes everything and dies before it says it has.
    use_program(dir.path(), &format!("python3 {}", taker.display()));
    player.send_raw(b"say tw");
    let (ok, text) = tether.ctl(&["upgrade-proxy"]);
    assert!(!ok, "{text}");
    assert!(text.contains("status 7"), "{text}");
    player.send("o");
    player.expect("You say, \"two\"");
    assert_eq!(tether.proxy_pid(), proxy, "the old proxy carries on");

    // And a good one afterwards.
    use_program(dir.path(), &binary("tether-proxy").display().to_string());
    tether.upgrade_proxy();
    player.send("say three");
    player.expect("You say, \"three\"");
    assert!(!player.is_closed());
    let mccp2 = player.mccp2.as_ref().expect("compressing");
    assert_eq!(
        mccp2.started,
        mccp2.ended + 1,
        "every replaced stream ended whole"
    );
}

#[test]
fn admins_and_signals_upgrade_the_proxy_too() {
    let tether = Tether::start();
    let mut admin = tether.connect();
    admin.create("Boss", "hunter22");
    tether.promote("Boss");
    let first = tether.proxy_pid();
    admin.send("@upgrade-proxy");
    admin.expect("Upgrading the proxy");
    admin.expect("[tether] proxy upgraded in");
    let second = tether.wait_for_new_proxy(first);

    tether.signal(nix::sys::signal::Signal::SIGUSR2);
    tether.wait_for_new_proxy(second);
    admin.send("say still here");
    admin.expect("You say, \"still here\"");

    // New players are let in by the new proxy.
    let mut newcomer: Client = wait_for("a new player", || Some(tether.connect()));
    newcomer.create("Late", "hunter22");
}

mod websocket {
    use futures::{SinkExt, StreamExt};
    use tether_tests::{DEADLINE, Tether};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::http::HeaderValue;

    type Socket = tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >;

    async fn connect(tether: &Tether, protocol: &str) -> Socket {
        let mut request = format!("ws://{}/ws", tether.http)
            .into_client_request()
            .expect("request");
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_str(protocol).expect("header"),
        );
        tokio_tungstenite::connect_async(request)
            .await
            .expect("connect")
            .0
    }

    /// The next frame whose text contains `needle`; a close or an error fails the test (the
    /// browser would have had to reconnect).
    async fn expect(socket: &mut Socket, needle: &str) -> String {
        loop {
            let frame = tokio::time::timeout(DEADLINE, socket.next())
                .await
                .unwrap_or_else(|_| panic!("timed out waiting for {needle:?}"));
            let text = match frame {
                Some(Ok(Message::Binary(bytes))) => String::from_utf8_lossy(&bytes).to_string(),
                Some(Ok(Message::Text(text))) => text.to_string(),
                Some(Ok(Message::Close(frame))) => panic!("closed ({frame:?})"),
                Some(Ok(_)) => continue,
                Some(Err(error)) => panic!("websocket error {error}"),
                None => panic!("the connection ended"),
            };
            if text.contains(needle) {
                return text;
            }
        }
    }

    async fn type_line(socket: &mut Socket, line: &str) {
        socket
            .send(Message::Binary(line.as_bytes().to_vec().into()))
            .await
            .expect("send");
    }

    async fn upgrade(tether: &Tether) {
        let dir = tether.data_dir();
        let done = tokio::task::spawn_blocking(move || {
            std::process::Command::new(tether_tests::binary("tether"))
                .args(["upgrade-proxy", "--data"])
                .arg(dir)
                .output()
                .expect("tether upgrade-proxy")
        })
        .await
        .expect("upgrade");
        assert!(done.status.success(), "{done:?}");
    }

    #[tokio::test]
    async fn browser_and_telnet_over_websocket_sessions_stay_through_upgrades() {
        let tether = Tether::start();
        let mut web = connect(&tether, "gmcp.mudstandards.org").await;
        expect(&mut web, "connect &lt;name&gt;").await;
        type_line(&mut web, "create Webby webpass1").await;
        expect(&mut web, "Your character has been created.").await;
        // The package list is part of what travels with the session.
        web.send(Message::Text(r#"Core.Supports.Set ["Room 1"]"#.into()))
            .await
            .expect("send");
        let mut raw = connect(&tether, "telnet.mudstandards.org").await;
        expect(&mut raw, "connect <name>").await;
        type_line(&mut raw, "create Rawly rawpass1\r\n").await;
        expect(&mut raw, "Your character has been created.").await;

        for round in 1..=3 {
            // Lines typed while the hand-over happens are answered once, in order.
            for n in 1..=5 {
                type_line(&mut web, &format!("say web-{round}-{n}")).await;
            }
            let (_, ()) = tokio::join!(upgrade(&tether), async {
                type_line(&mut raw, &format!("say raw-{round}\r\n")).await;
            });
            for n in 1..=5 {
                expect(&mut web, &format!("You say, &quot;web-{round}-{n}&quot;")).await;
            }
            expect(&mut raw, &format!("You say, \"raw-{round}\"")).await;
        }
        type_line(&mut web, "north").await;
        let room = expect(&mut web, "Room.Info").await;
        assert!(room.starts_with("Room.Info {"), "{room}");
        assert!(tether.status().contains("upgrades 3"));
    }

    /// A proxy killed without warning: the browser and the telnet-over-WebSocket client stay
    /// connected (no close frame, no reconnect), each is told once, and what the session
    /// had negotiated (the browser's GMCP package list) is still in force.
    #[tokio::test]
    async fn websocket_sessions_stay_connected_through_a_proxy_crash() {
        let tether = Tether::start();
        let mut web = connect(&tether, "gmcp.mudstandards.org").await;
        expect(&mut web, "connect &lt;name&gt;").await;
        type_line(&mut web, "create Webby webpass1").await;
        expect(&mut web, "Your character has been created.").await;
        web.send(Message::Text(r#"Core.Supports.Set ["Room 1"]"#.into()))
            .await
            .expect("send");
        let mut raw = connect(&tether, "telnet.mudstandards.org").await;
        expect(&mut raw, "connect <name>").await;
        type_line(&mut raw, "create Rawly rawpass1\r\n").await;
        expect(&mut raw, "Your character has been created.").await;
        // The checkpoint with the package list is sent once the input is handled.
        type_line(&mut web, "say before").await;
        expect(&mut web, "You say, &quot;before&quot;").await;

        let proxy = tether.proxy_pid();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(proxy),
            nix::sys::signal::Signal::SIGKILL,
        )
        .expect("kill the proxy");
        tether.wait_for_new_proxy(proxy);

        expect(&mut web, "The server recovered from a fault").await;
        expect(&mut raw, "[tether] The server recovered from a fault").await;
        type_line(&mut web, "say web-after").await;
        expect(&mut web, "You say, &quot;web-after&quot;").await;
        type_line(&mut raw, "say raw-after\r\n").await;
        expect(&mut raw, "You say, \"raw-after\"").await;
        type_line(&mut web, "north").await;
        let room = expect(&mut web, "Room.Info").await;
        assert!(room.starts_with("Room.Info {"), "{room}");
        assert!(tether.status().contains("recoveries 1"));
    }
}
