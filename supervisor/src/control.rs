//! The control socket `<data>/control.sock`: how `tether reload|status|stop` and the core's
//! @reload / @shutdown talk to a running supervisor. The requests and the reply rule are
//! defined once, in `tether_protocol::control`; this module serves them, and has the CLI's
//! client.
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

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::{Path, PathBuf};
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

pub use tether_protocol::control::{ParseError, Request, outcome};

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

#[derive(Debug, Error)]
pub enum ClientError {
    #[error("no tether supervisor is running at {}", path.display())]
    NotRunning { path: PathBuf },
    #[error("cannot talk to the tether supervisor at {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no reply from the tether supervisor at {} within {} s", path.display(), timeout.as_secs())]
    Timeout { path: PathBuf, timeout: Duration },
    #[error("the tether supervisor at {} closed the connection without an answer", path.display())]
    NoAnswer { path: PathBuf },
}

/// Asks the supervisor at `path`; hands each reply line to `on_line` as it arrives.
/// Returns whether the outcome was `ok`.
pub fn request(
    path: &Path,
    request: Request,
    mut on_line: impl FnMut(&str),
) -> Result<bool, ClientError> {
    let io = |source| ClientError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut stream = match StdUnixStream::connect(path) {
        Ok(stream) => stream,
        Err(err) if is_nobody_home(&err) => {
            return Err(ClientError::NotRunning {
                path: path.to_path_buf(),
            });
        }
        Err(err) => return Err(io(err)),
    };
    let timeout = request.client_timeout();
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream
        .write_all(format!("{}\n", request.as_str()).as_bytes())
        .map_err(io)?;
    let mut outcome_seen = None;
    for line in BufReader::new(stream).lines() {
        let line = match line {
            Ok(line) => line,
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(ClientError::Timeout {
                    path: path.to_path_buf(),
                    timeout,
                });
            }
            Err(err) => return Err(io(err)),
        };
        on_line(&line);
        if let Some(ok) = outcome(&line) {
            outcome_seen = Some(ok);
        }
    }
    outcome_seen.ok_or_else(|| ClientError::NoAnswer {
        path: path.to_path_buf(),
    })
}

/// A missing socket file, or one nobody listens on (a supervisor that died without
/// cleaning up), both mean there is no supervisor.
pub fn is_nobody_home(err: &std::io::Error) -> bool {
    matches!(
        err.kind(),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nobody_home_is_reported_clearly() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("control.sock");
        let err = request(&path, Request::Status, |_| {}).expect_err("nothing runs");
        assert!(matches!(err, ClientError::NotRunning { .. }));
        assert_eq!(
            err.to_string(),
            format!("no tether supervisor is running at {}", path.display())
        );

        // A stale socket file from a supervisor that was killed.
        drop(std::os::unix::net::UnixListener::bind(&path).expect("bind"));
        let err = request(&path, Request::Status, |_| {}).expect_err("nothing listens");
        assert!(matches!(err, ClientError::NotRunning { .. }));
    }

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
