//! The supervisor's control socket, as both ends speak it: the requests (`reload`,
//! `upgrade-proxy`, `upgrade-supervisor`, `status`, `shutdown`), how a reply says how it went, and the client ([`request`]). The supervisor
//! serves it; `tether reload|status|stop` and the core's `@reload`/`@shutdown` are its clients.
//!
//! A client writes one request line; the supervisor answers with lines and closes. Reply lines
//! that start with `ok: ` or `error: ` are outcomes, other lines are details; the last outcome
//! line decides ([`failure`]).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use thiserror::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    Reload,
    /// Replace the proxy with a new one that takes every connection over.
    UpgradeProxy,
    /// Re-execute the supervisor's binary in place, keeping the proxy and the core.
    UpgradeSupervisor,
    Status,
    Shutdown,
}

impl Request {
    pub fn as_str(self) -> &'static str {
        match self {
            Request::Reload => "reload",
            Request::UpgradeProxy => "upgrade-proxy",
            Request::UpgradeSupervisor => "upgrade-supervisor",
            Request::Status => "status",
            Request::Shutdown => "shutdown",
        }
    }

    /// How long a client waits for each reply line. A reload may wait 30 s for the new
    /// core and 10 s for the old one; a shutdown 10 s for each child.
    pub fn client_timeout(self) -> Duration {
        match self {
            Request::Status | Request::UpgradeSupervisor => Duration::from_secs(15),
            Request::Reload | Request::UpgradeProxy | Request::Shutdown => Duration::from_secs(120),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    #[error(
        "empty request; expected reload, upgrade-proxy, upgrade-supervisor, status or shutdown"
    )]
    Empty,
    #[error(
        "unknown request {0:?}; expected reload, upgrade-proxy, upgrade-supervisor, status or shutdown"
    )]
    Unknown(String),
}

impl FromStr for Request {
    type Err = ParseError;

    fn from_str(line: &str) -> Result<Request, ParseError> {
        let word = line.trim();
        let request = match word.to_ascii_lowercase().as_str() {
            "" => return Err(ParseError::Empty),
            "reload" => Request::Reload,
            "upgrade-proxy" => Request::UpgradeProxy,
            "upgrade-supervisor" => Request::UpgradeSupervisor,
            "status" => Request::Status,
            "shutdown" | "stop" => Request::Shutdown,
            _ => {
                let shown: String = word.chars().take(40).collect();
                return Err(ParseError::Unknown(shown));
            }
        };
        Ok(request)
    }
}

/// What a reply line says about the outcome, if anything.
pub fn outcome(line: &str) -> Option<bool> {
    if line.starts_with("ok:") {
        Some(true)
    } else if line.starts_with("error:") {
        Some(false)
    } else {
        None
    }
}

/// Why a whole reply says the request failed: the text of its last outcome line, if that is
/// an error. `None`: it succeeded, or the reply ended before any outcome (a core that asked
/// for its own replacement is stopped before the `ok`).
pub fn failure(reply: &str) -> Option<&str> {
    let last = reply.lines().rev().find(|line| outcome(line).is_some())?;
    last.strip_prefix("error:").map(str::trim_start)
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

/// Asks the supervisor at `path`; hands each reply line to `on_line` as it arrives. Returns
/// whether the outcome was `ok`. Blocking: an async caller runs it on a blocking thread.
pub fn request(
    path: &Path,
    request: Request,
    mut on_line: impl FnMut(&str),
) -> Result<bool, ClientError> {
    let io = |source| ClientError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut stream = match UnixStream::connect(path) {
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

    #[test]
    fn requests_parse_leniently_but_not_loosely() {
        assert_eq!("reload\n".parse(), Ok(Request::Reload));
        assert_eq!("  status\r\n".parse(), Ok(Request::Status));
        assert_eq!("shutdown".parse(), Ok(Request::Shutdown));
        assert_eq!("stop\n".parse(), Ok(Request::Shutdown));
        assert_eq!("RELOAD".parse(), Ok(Request::Reload));
        assert_eq!("\n".parse::<Request>(), Err(ParseError::Empty));
        assert_eq!(
            "reboot\n".parse::<Request>(),
            Err(ParseError::Unknown("reboot".into()))
        );
        assert!(matches!(
            "reload now".parse::<Request>(),
            Err(ParseError::Unknown(_))
        ));
    }

    #[test]
    fn unknown_requests_are_quoted_shortly() {
        let long = "x".repeat(500);
        let Err(ParseError::Unknown(shown)) = long.parse::<Request>() else {
            panic!("a long word is unknown");
        };
        assert_eq!(shown.len(), 40);
    }

    #[test]
    fn outcomes_come_from_the_prefix() {
        assert_eq!(outcome("ok: reloaded in 5 ms"), Some(true));
        assert_eq!(outcome("error: reload failed: boom"), Some(false));
        assert_eq!(outcome("core: pid 3"), None);
        assert_eq!(outcome("last reload: error: x"), None);
    }

    #[test]
    fn the_last_outcome_decides() {
        assert_eq!(
            failure("error: reload failed: boom\n"),
            Some("reload failed: boom")
        );
        assert_eq!(failure("ok: shutting down\nok: stopped in 3 ms\n"), None);
        assert_eq!(failure("error: first\nok: then fine\n"), None);
        assert_eq!(failure(""), None);
    }
}
