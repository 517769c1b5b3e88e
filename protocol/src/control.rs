//! The supervisor's control socket, as both ends speak it: the requests (`reload`, `status`,
//! `shutdown`) and how a reply says how it went. The supervisor serves it; `tether
//! reload|status|stop` and the core's `@reload`/`@shutdown` are its clients.
//!
//! A client writes one request line; the supervisor answers with lines and closes. Reply lines
//! that start with `ok: ` or `error: ` are outcomes, other lines are details; the last outcome
//! line decides ([`failure`]).

use std::str::FromStr;
use std::time::Duration;

use thiserror::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    Reload,
    Status,
    Shutdown,
}

impl Request {
    pub fn as_str(self) -> &'static str {
        match self {
            Request::Reload => "reload",
            Request::Status => "status",
            Request::Shutdown => "shutdown",
        }
    }

    /// How long a client waits for each reply line. A reload may wait 30 s for the new
    /// core and 10 s for the old one; a shutdown 10 s for each child.
    pub fn client_timeout(self) -> Duration {
        match self {
            Request::Status => Duration::from_secs(15),
            Request::Reload | Request::Shutdown => Duration::from_secs(120),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    #[error("empty request; expected reload, status or shutdown")]
    Empty,
    #[error("unknown request {0:?}; expected reload, status or shutdown")]
    Unknown(String),
}

impl FromStr for Request {
    type Err = ParseError;

    fn from_str(line: &str) -> Result<Request, ParseError> {
        let word = line.trim();
        let request = match word.to_ascii_lowercase().as_str() {
            "" => return Err(ParseError::Empty),
            "reload" => Request::Reload,
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

#[cfg(test)]
mod tests {
    use super::*;

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
