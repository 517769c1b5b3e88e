//! The control socket `<data>/control.sock`: how `tether reload|status|stop` and the core's
//! @reload / @shutdown talk to a running supervisor. The requests, the reply rule and the
//! client are defined once, in `tether_protocol::control`; this module serves them.
//!
//! Protocol: the client connects and writes one line, `reload`, `status` or `shutdown`
//! (`stop` is accepted too). The supervisor answers with lines and closes the connection.
//! Reply lines that start with `ok: ` or `error: ` are outcomes, other lines are details;
//! the last outcome line decides. So:
//!
//! - `status`: `ok: ...` and detail lines, right away.
//! - `reload`: one line once the reload is over: `ok: reloaded in <N> ms` (the old core has
//!   exited) or `error: reload failed: <reason>` (the old core keeps running). A core that
//!   asked for its own replacement therefore never sees the `ok`.
//! - `shutdown`: `ok: shutting down` at once, then `ok: stopped in <N> ms` just before the
//!   supervisor exits, so a client that reads to the end knows everything has stopped.

use std::time::Duration;

use thiserror::Error;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::{debug, warn};

use crate::shutdown;

/// A request longer than this is not one of ours.
const MAX_REQUEST: u64 = 256;
/// A client that connects and says nothing must not hold a task forever.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

pub use tether_protocol::control::{ClientError, Request, is_nobody_home, request};

/// Sends reply lines to one waiting client; dropping it ends the reply.
#[derive(Debug, Clone)]
pub struct Replier(mpsc::UnboundedSender<String>);

impl Replier {
    pub fn line(&self, line: impl Into<String>) {
        // The client may have hung up; the supervisor carries on regardless.
        let _ = self.0.send(line.into());
    }
}

/// One request from a client, for the supervisor to answer.
#[derive(Debug)]
pub struct Incoming {
    pub request: Request,
    pub reply: Replier,
}

#[derive(Debug, Error)]
pub enum ServeError {
    #[error("cannot use the control socket")]
    Listener(#[source] std::io::Error),
}

/// Accepts clients until `stop` fires, then waits (briefly) for the replies in flight:
/// the last line of a `shutdown` reply is written after the supervisor has stopped
/// everything, and must still reach the client.
pub async fn serve(
    listener: std::os::unix::net::UnixListener,
    requests: mpsc::Sender<Incoming>,
    mut stop: shutdown::Signal,
) -> Result<(), ServeError> {
    listener
        .set_nonblocking(true)
        .map_err(ServeError::Listener)?;
    let listener = UnixListener::from_std(listener).map_err(ServeError::Listener)?;
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.fired() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(answer(stream, requests.clone()));
                }
                Err(err) => {
                    warn!("control socket: accept failed: {err}");
                    // Typically EMFILE; do not spin on it.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    drop(requests);
    let drained = tokio::time::timeout(Duration::from_secs(2), async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        debug!("control socket: gave up on slow clients");
    }
    Ok(())
}

async fn answer(stream: UnixStream, requests: mpsc::Sender<Incoming>) {
    let (read, mut write) = stream.into_split();
    let mut reader = tokio::io::BufReader::new(read.take(MAX_REQUEST));
    let mut line = Vec::new();
    let request =
        match tokio::time::timeout(REQUEST_TIMEOUT, reader.read_until(b'\n', &mut line)).await {
            Ok(Ok(_)) => String::from_utf8_lossy(&line).parse::<Request>(),
            Ok(Err(err)) => {
                debug!("control socket: read failed: {err}");
                return;
            }
            Err(_) => {
                let _ = write.write_all(b"error: no request received\n").await;
                return;
            }
        };
    let request = match request {
        Ok(request) => request,
        Err(err) => {
            let _ = write.write_all(format!("error: {err}\n").as_bytes()).await;
            return;
        }
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let incoming = Incoming {
        request,
        reply: Replier(tx),
    };
    if requests.send(incoming).await.is_err() {
        let _ = write
            .write_all(b"error: the tether supervisor is shutting down\n")
            .await;
        return;
    }
    while let Some(reply) = rx.recv().await {
        if write
            .write_all(format!("{reply}\n").as_bytes())
            .await
            .is_err()
        {
            // The client left; keep draining so the supervisor never blocks on it.
            while rx.recv().await.is_some() {}
            return;
        }
    }
    let _ = write.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::io::Write;
    use std::os::unix::net::UnixStream as StdUnixStream;

    #[tokio::test]
    async fn a_round_trip_through_the_server() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("control.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
        let (tx, mut rx) = mpsc::channel(4);
        let (stop, signal) = shutdown::channel();
        let server = tokio::spawn(serve(listener, tx, signal));
        let responder = tokio::spawn(async move {
            while let Some(incoming) = rx.recv().await {
                match incoming.request {
                    Request::Status => {
                        incoming.reply.line("ok: fine");
                        incoming.reply.line("core: pid 42");
                    }
                    _ => incoming.reply.line("error: not now"),
                }
            }
        });

        let client_path = path.clone();
        let (ok, lines) = tokio::task::spawn_blocking(move || {
            let mut lines = Vec::new();
            let ok = request(&client_path, Request::Status, |l| lines.push(l.to_string()));
            (ok.expect("answered"), lines)
        })
        .await
        .expect("client thread");
        assert!(ok);
        assert_eq!(lines, ["ok: fine", "core: pid 42"]);

        let client_path = path.clone();
        let ok =
            tokio::task::spawn_blocking(move || request(&client_path, Request::Reload, |_| {}))
                .await
                .expect("client thread")
                .expect("answered");
        assert!(!ok);

        let raw = tokio::task::spawn_blocking(move || {
            let mut stream = StdUnixStream::connect(&path).expect("connect");
            stream.write_all(b"dance\n").expect("write");
            let mut reply = String::new();
            std::io::Read::read_to_string(&mut stream, &mut reply).expect("read");
            reply
        })
        .await
        .expect("client thread");
        assert!(raw.starts_with("error: unknown request \"dance\""), "{raw}");

        stop.fire();
        server.await.expect("server task").expect("server");
        responder.await.expect("responder");
    }
}
