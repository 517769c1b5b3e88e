//! The web front door through the real binaries: WebSocket sessions (both mudstandards.org
//! subprotocols), the page, `/health`, and bad input.

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use tether_tests::{DEADLINE, Tether, http_get};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn connect(
    tether: &Tether,
    protocols: Option<&str>,
) -> Result<(Socket, Option<String>), Error> {
    let mut request = format!("ws://{}/ws", tether.http)
        .into_client_request()
        .expect("request");
    if let Some(protocols) = protocols {
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_str(protocols).expect("header"),
        );
    }
    let (socket, response) = tokio_tungstenite::connect_async(request).await?;
    let chosen = response
        .headers()
        .get("Sec-WebSocket-Protocol")
        .and_then(|value| value.to_str().ok())
        .map(str::to_string);
    Ok((socket, chosen))
}

/// Reads frames until one (binary as text, or text) contains `needle`; returns it.
async fn expect(socket: &mut Socket, needle: &str) -> String {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let frame = tokio::time::timeout(left, socket.next())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {needle:?}"));
        let text = match frame {
            Some(Ok(Message::Binary(bytes))) => String::from_utf8_lossy(&bytes).to_string(),
            Some(Ok(Message::Text(text))) => text.to_string(),
            Some(Ok(Message::Close(frame))) => panic!("closed ({frame:?}) waiting for {needle:?}"),
            Some(Ok(_)) => continue,
            Some(Err(error)) => panic!("websocket error {error} waiting for {needle:?}"),
            None => panic!("stream ended waiting for {needle:?}"),
        };
        if text.contains(needle) {
            return text;
        }
    }
}

async fn say(socket: &mut Socket, line: &str) {
    socket
        .send(Message::Binary(line.as_bytes().to_vec().into()))
        .await
        .expect("send");
}

#[tokio::test]
async fn web_and_telnet_players_share_one_world_through_a_reload() {
    let tether = Tether::start();
    let (mut web, chosen) = connect(&tether, Some("gmcp.mudstandards.org"))
        .await
        .expect("connect");
    assert_eq!(chosen.as_deref(), Some("gmcp.mudstandards.org"));
    expect(&mut web, "connect &lt;name&gt;").await;
    say(&mut web, "create Webby webpass1").await;
    expect(&mut web, "Your character has been created.").await;
    let room = expect(&mut web, "Room.Info").await;
    assert!(
        room.starts_with("Room.Info {"),
        "GMCP in a text frame: {room}"
    );

    let mut telly = tether.connect();
    telly.create("Telly", "telpass1");
    say(&mut web, "say hello from the web").await;
    telly.expect("Webby says, \"hello from the web\"");
    telly.send("say <b>hello</b> from telnet");
    let heard = expect(&mut web, "Telly says").await;
    assert!(
        heard.contains("&lt;b&gt;hello&lt;/b&gt;"),
        "HTML-escaped: {heard}"
    );

    tether.reload();
    say(&mut web, "say still here").await;
    telly.expect("Webby says, \"still here\"");
}

#[tokio::test]
async fn password_masking_and_prompts_travel_as_tether_packages() {
    let tether = Tether::start();
    let (mut web, _) = connect(&tether, None).await.expect("connect");
    expect(&mut web, "Tether.Prompt").await;
    say(&mut web, "create Masked").await;
    expect(&mut web, r#"Tether.Input {"hidden":true}"#).await;
    say(&mut web, "secret-words").await;
    expect(&mut web, r#"Tether.Input {"hidden":false}"#).await;
    expect(&mut web, "Your character has been created.").await;
}

#[tokio::test]
async fn without_a_subprotocol_the_default_is_gmcp_and_an_unknown_one_is_refused() {
    let tether = Tether::start();
    let (mut web, chosen) = connect(&tether, None).await.expect("connect");
    assert_eq!(chosen, None, "nothing offered, nothing answered");
    expect(&mut web, "connect &lt;name&gt;").await;

    match connect(&tether, Some("chat.example")).await {
        Err(Error::Http(response)) => {
            assert_eq!(response.status(), 400);
            let body =
                String::from_utf8_lossy(response.body().as_deref().unwrap_or_default()).to_string();
            assert!(body.contains("gmcp.mudstandards.org"), "{body}");
        }
        other => panic!(
            "an unknown subprotocol must be refused: {:?}",
            other.map(|r| r.1)
        ),
    }
}

#[tokio::test]
async fn the_telnet_subprotocol_carries_the_raw_telnet_stream() {
    let tether = Tether::start();
    let (mut web, chosen) = connect(
        &tether,
        Some("telnet.mudstandards.org, gmcp.mudstandards.org"),
    )
    .await
    .expect("connect");
    assert_eq!(chosen.as_deref(), Some("telnet.mudstandards.org"));
    let deadline = Instant::now() + DEADLINE;
    let mut received = Vec::new();
    while !received.windows(3).any(|w| w == [255, 251, 25]) {
        assert!(Instant::now() < deadline, "no IAC WILL EOR: {received:?}");
        if let Some(Ok(Message::Binary(bytes))) = web.next().await {
            received.extend_from_slice(&bytes);
        }
    }
    web.send(Message::Binary(
        b"create Framed framed123\r\n".to_vec().into(),
    ))
    .await
    .expect("send");
    expect(&mut web, "Your character has been created.").await;
}

#[tokio::test]
async fn an_oversized_frame_is_closed_with_a_reason_and_others_carry_on() {
    let tether = Tether::start();
    let (mut bystander, _) = connect(&tether, None).await.expect("connect");
    say(&mut bystander, "create Calm calmweb1").await;
    expect(&mut bystander, "Your character has been created.").await;

    let (mut big, _) = connect(&tether, None).await.expect("connect");
    let _ = big
        .send(Message::Binary(vec![b'a'; 200 * 1024].into()))
        .await;
    let deadline = Instant::now() + DEADLINE;
    let code = loop {
        assert!(Instant::now() < deadline, "never closed");
        match tokio::time::timeout(Duration::from_secs(5), big.next()).await {
            Ok(Some(Ok(Message::Close(Some(frame))))) => break frame.code,
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(_)) | None) => panic!("dropped without a close frame"),
            Err(_) => continue,
        }
    };
    assert_eq!(code, CloseCode::Size);

    say(&mut bystander, "say unaffected").await;
    expect(&mut bystander, "You say, &quot;unaffected&quot;").await;
}

#[tokio::test]
async fn invalid_utf8_in_a_frame_gets_a_notice_and_the_line_is_still_played() {
    let tether = Tether::start();
    let (mut web, _) = connect(&tether, None).await.expect("connect");
    say(&mut web, "create Garbled garbled1").await;
    expect(&mut web, "Your character has been created.").await;
    web.send(Message::Binary(b"say caf\xe9".to_vec().into()))
        .await
        .expect("send");
    expect(&mut web, "not valid UTF-8").await;
    expect(&mut web, "You say, &quot;caf\u{fffd}&quot;").await;
}

#[test]
fn the_page_and_health_are_served() {
    let tether = Tether::start();
    let page = http_get(tether.http, "/");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("<html"), "the web client");
    let health = http_get(tether.http, "/health");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.contains("attached"), "{health}");
}
