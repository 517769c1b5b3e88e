//! `tether admin kick|wall|shutdown` (and `ban`/`unban` while a game runs): orders for the
//! running game, posted to the proxy's admin API (`POST /admin/orders`) on this host with the
//! admin token from the data directory, the way the dashboard sends them; and what
//! `tether status` adds from the proxy (`GET /admin/summary`).
//!
//! The HTTP here is one request to our own listener on loopback, plain HTTP/1.1 with
//! `Connection: close`: a few lines over `TcpStream`, where a client crate would bring a TLS
//! stack and a connection pool this never uses.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};

/// How long to wait for the proxy; the game answers an order at once, or within the proxy's
/// own limit when the core is away.
const TIMEOUT: Duration = Duration::from_secs(20);

/// How an order went.
pub enum Outcome {
    /// The game did it; what it said.
    Done(String),
    /// The game refused (not online, a bad name...); why.
    Refused(String),
    /// Nothing is listening: no game runs here (or its web listener is elsewhere).
    NoGame,
    /// A proxy runs but no game core is attached.
    NoCore(String),
}

/// Posts `order` (the JSON object the API takes, without `actor`) as `actor`, with the
/// admin token of `data`.
pub fn send(
    web: &str,
    data: &Path,
    actor: &str,
    mut order: serde_json::Value,
) -> anyhow::Result<Outcome> {
    let (token, _) = crate::admin::token_in(data, false)?;
    if let Some(fields) = order.as_object_mut() {
        fields.insert("actor".into(), actor.into());
    }
    let Some((status, body)) = exchange(web, &token, "POST", "/admin/orders", &order.to_string())?
    else {
        return Ok(Outcome::NoGame);
    };
    let said = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|json| json.get("said")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| body.trim().to_owned());
    Ok(match status {
        200 => Outcome::Done(said),
        422 => Outcome::Refused(said),
        503 => Outcome::NoCore(said),
        401 | 403 => bail!(
            "the proxy at {web} refused the admin token in {}: is it another game's?",
            data.display()
        ),
        _ => bail!("the proxy at {web} answered {status}: {said}"),
    })
}

/// The game as the proxy on this host sees it (`GET /admin/summary`), for `tether status`;
/// `None` when there is no admin token yet or nothing answers.
pub fn summary(web: &str, data: &Path) -> Option<serde_json::Value> {
    let path = data.join(tether_protocol::admin_token::FILE_IN_DATA);
    let token = tether_protocol::admin_token::read(&path).ok()??;
    match exchange(web, &token, "GET", "/admin/summary", "") {
        Ok(Some((200, body))) => serde_json::from_str(&body).ok(),
        _ => None,
    }
}

/// One request with the admin token: (status, body), or `None` when nothing listens.
fn exchange(
    web: &str,
    token: &str,
    method: &str,
    path: &str,
    body: &str,
) -> anyhow::Result<Option<(u16, String)>> {
    let mut stream = match TcpStream::connect(web) {
        Ok(stream) => stream,
        Err(error) if error.kind() == std::io::ErrorKind::ConnectionRefused => return Ok(None),
        Err(error) => return Err(error).with_context(|| format!("cannot reach {web}")),
    };
    stream.set_read_timeout(Some(TIMEOUT))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {web}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .with_context(|| format!("cannot send a request to {web}"))?;
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .with_context(|| format!("no answer from {web}"))?;
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("{web} did not answer in HTTP"))?;
    Ok(Some((status, body.to_owned())))
}
