//! The operators' live feed (`/admin/live`, what the dashboard page shows): refused without
//! the admin token, and then pushing what happens as it happens: who is connected, the
//! numbers of each second, a core reload, an operator's order.

use std::time::Instant;

use futures::{SinkExt, StreamExt};
use tether_tests::{DEADLINE, Tether, http_get, http_post_json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens the feed and presents `token`.
async fn feed(tether: &Tether, token: &str) -> Socket {
    let url = format!("ws://{}/admin/live", tether.http);
    let (mut socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("the feed opens");
    socket
        .send(Message::Text(token.into()))
        .await
        .expect("send the token");
    socket
}

/// The close frame the feed ends with: (code, reason).
async fn closed(socket: &mut Socket) -> (CloseCode, String) {
    loop {
        match tokio::time::timeout(DEADLINE, socket.next()).await {
            Ok(Some(Ok(Message::Close(Some(frame))))) => {
                return (frame.code, frame.reason.to_string());
            }
            Ok(Some(Ok(Message::Text(text)))) => panic!("refused, yet it sent {text}"),
            Ok(Some(Ok(_))) => {}
            other => panic!("no close frame: {other:?}"),
        }
    }
}

/// Reads pushes until one of `kind` satisfies `wanted`; returns it.
async fn expect(
    socket: &mut Socket,
    kind: &str,
    mut wanted: impl FnMut(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let frame = tokio::time::timeout(left, socket.next())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for a {kind} push"));
        let Some(Ok(Message::Text(text))) = frame else {
            panic!("the feed ended waiting for a {kind} push: {frame:?}");
        };
        let push: serde_json::Value = serde_json::from_str(&text).expect("pushes are JSON");
        if push["type"] == kind && wanted(&push) {
            return push;
        }
    }
}

#[tokio::test]
async fn the_live_feed_refuses_anyone_without_the_admin_token() {
    let tether = Tether::start();
    let page = http_get(tether.http, "/admin");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("admin token"), "the page asks for the token");

    let mut socket = feed(&tether, "anything").await;
    let (code, reason) = closed(&mut socket).await;
    assert_eq!(code, CloseCode::Policy);
    assert!(reason.contains("no admin token is set"), "{reason}");

    let token = tether.admin_token();
    let mut socket = feed(&tether, &token[..63]).await;
    let (code, reason) = closed(&mut socket).await;
    assert_eq!(
        (code, reason.as_str()),
        (CloseCode::Policy, "wrong admin token")
    );
}

#[tokio::test]
async fn the_live_feed_pushes_sessions_numbers_and_moments() {
    let tether = Tether::start();
    let token = tether.admin_token();
    let mut socket = feed(&tether, &token).await;
    let hello = expect(&mut socket, "hello", |_| true).await;
    assert!(
        hello["core"]
            .as_str()
            .is_some_and(|core| core.contains("answering")),
        "{hello}"
    );

    let mut bob = tether.connect();
    bob.create("Bob", "bobs-secret");
    let sessions = expect(&mut socket, "sessions", |push| {
        push["rows"]
            .as_array()
            .is_some_and(|rows| rows.iter().any(|row| row["character"] == "Bob"))
    })
    .await;
    // `tether status` shows the same from the proxy: who plays on what, which core.
    let (ok, status) = tether.ctl(&["status", "--http", &tether.http.to_string()]);
    assert!(ok, "{status}");
    let game = status
        .lines()
        .find(|line| line.starts_with("game: "))
        .unwrap_or_else(|| panic!("no game line in {status}"));
    assert!(
        game.contains("core tether-core ")
            && game.contains("answering")
            && game.contains("players 1 (telnet 1, websocket 0, websocket-telnet 0)"),
        "{game}"
    );
    let row = sessions["rows"]
        .as_array()
        .and_then(|rows| rows.iter().find(|row| row["character"] == "Bob"))
        .expect("Bob's row");
    assert_eq!(row["transport"], "telnet", "{row}");
    assert!(
        row["address"]
            .as_str()
            .is_some_and(|a| a.starts_with("127.0.0.1:")),
        "{row}"
    );

    // Lines answered while the feed is open show in a second's numbers.
    let typist = std::thread::spawn(move || {
        for n in 0..20 {
            bob.send(&format!("say line {n}"));
            bob.expect(&format!("line {n}"));
        }
        bob
    });
    let tick = expect(&mut socket, "tick", |push| {
        push["lines_per_second"].as_u64().is_some_and(|n| n > 0)
            && push["round_trip_p50_ms"].is_number()
    })
    .await;
    assert!(tick["players"].as_i64() >= Some(1), "{tick}");
    assert!(tick["round_trip_p99_ms"].as_f64() >= tick["round_trip_p50_ms"].as_f64());
    let _bob = typist.join().expect("the typist");

    // A reload is a moment, and so is an operator's order.
    tether.reload();
    expect(&mut socket, "moment", |push| {
        push["what"]
            .as_str()
            .is_some_and(|what| what.contains("core attached") && what.contains("without one"))
    })
    .await;
    let bearer = format!("Bearer {token}");
    let answer = http_post_json(
        tether.http,
        "/admin/orders",
        &[("Authorization", &bearer)],
        r#"{"order":"wall","text":"hello","actor":"host:ops"}"#,
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    expect(&mut socket, "moment", |push| {
        push["what"] == "host:ops: wall: Said to everyone."
    })
    .await;
}
