//! The contract between the supervisor and the processes it starts: what the core inherits
//! and what the core and the proxy say back. One definition, used by every side.
//!
//! - fd [`LINK_FD`] (announced in [`LINK_FD_VAR`]) is the link socket's listener, bound once
//!   by the supervisor so it never disappears while cores are swapped;
//! - fd [`crate::witness::WITNESS_FD`] is the core's witness page;
//! - [`CONTROL_VAR`] names the supervisor's control socket (for `@reload` and `@shutdown`);
//! - [`QUARANTINE_VAR`] lists lines the core must not run (see [`crate::witness`]);
//! - on stdout the core prints [`READY_LINE`] once it accepts links, or, if it cannot start,
//!   one [`FAILED_PREFIX`] line with the reason, so the supervisor can tell the operator why
//!   without digging through the log;
//! - the proxy prints [`READY_LINE`] once it listens and a core is attached (the game is
//!   open: what systemd hears as `READY=1`);
//! - a proxy started with [`HANDOVER_FLAG`] listens there for a successor; one started with
//!   [`TAKE_OVER_FLAG`] as well takes everything over from the proxy listening there, and
//!   prints [`READY_LINE`] once it has (the old one has let go), or a [`FAILED_PREFIX`] line
//!   with the reason (the old one carries on);
//! - the supervisor tells the proxy, as [`CoreNews`] lines on the proxy's stdin (when it
//!   is started with [`CORE_NEWS_FLAG`]), when no core can start and why, so that `/health`
//!   can say it.

use std::os::fd::RawFd;

/// The descriptor number the core finds the link listener on.
pub const LINK_FD: RawFd = 3;
/// Set to [`LINK_FD`] when the core inherits the link listener.
pub const LINK_FD_VAR: &str = "TETHER_LINK_FD";
/// The supervisor's control socket.
pub const CONTROL_VAR: &str = "TETHER_CONTROL";
/// Lines never to run again, as `proxy:session:seq` separated by commas.
pub const QUARANTINE_VAR: &str = "TETHER_QUARANTINE";

/// The line a core prints on stdout once it is initialised and accepting on the link.
pub const READY_LINE: &str = "READY";
/// Starts the line a core prints on stdout when it cannot start; the reason follows.
pub const FAILED_PREFIX: &str = "FAILED ";

/// The proxy's option naming its hand-over socket, where a successor takes over from it.
pub const HANDOVER_FLAG: &str = "--handover";
/// The proxy's flag: take over from the proxy listening on the hand-over socket.
pub const TAKE_OVER_FLAG: &str = "--take-over";

/// The proxy's flag: read [`CoreNews`] from stdin.
pub const CORE_NEWS_FLAG: &str = "--core-news-on-stdin";

/// What the supervisor tells the proxy about the core, one line each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoreNews {
    /// No core runs and none will until the operator acts; the core said why.
    CannotStart(String),
    /// A core serves again.
    Running,
}

impl CoreNews {
    /// The line to write, newline included.
    pub fn line(&self) -> String {
        match self {
            CoreNews::CannotStart(reason) => format!("core-cannot-start {}\n", one_line(reason)),
            CoreNews::Running => "core-running\n".to_string(),
        }
    }

    /// `None` for a line this side does not know (newer supervisors may say more).
    pub fn parse(line: &str) -> Option<CoreNews> {
        let line = line.trim_end();
        if line == "core-running" {
            Some(CoreNews::Running)
        } else {
            line.strip_prefix("core-cannot-start ")
                .map(|reason| CoreNews::CannotStart(reason.to_string()))
        }
    }
}

/// What a line of a core's stdout means to the supervisor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoreSays<'a> {
    Ready,
    Failed(&'a str),
    /// Anything else: logged.
    Other(&'a str),
}

impl<'a> CoreSays<'a> {
    pub fn parse(line: &'a str) -> CoreSays<'a> {
        let line = line.trim_end();
        if line == READY_LINE {
            CoreSays::Ready
        } else if let Some(reason) = line.strip_prefix(FAILED_PREFIX) {
            CoreSays::Failed(reason)
        } else {
            CoreSays::Other(line)
        }
    }
}

/// The line a core prints when it cannot start: one line, whatever the reason holds.
pub fn failed_line(reason: &str) -> String {
    format!("{FAILED_PREFIX}{}", one_line(reason))
}

/// A reason that may span lines (a TOML error with its excerpt) as one line of a line protocol.
fn one_line(text: &str) -> String {
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    lines.join(" / ")
}

/// Raises this process's soft open-file limit to its hard limit and returns it. The proxy
/// holds one descriptor per player, and the supervisor (as the proxy's keeper) one more: the
/// usual soft limit of 1,024 would cap a game far below what the machine allows. The load
/// generator does the same for its bots.
pub fn raise_open_file_limit() -> nix::Result<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    }
    Ok(hard)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_news_reads_back() {
        for news in [
            CoreNews::CannotStart("file is not a database".into()),
            CoreNews::Running,
        ] {
            assert_eq!(CoreNews::parse(&news.line()), Some(news));
        }
        assert_eq!(CoreNews::parse("something newer"), None);
    }

    #[test]
    fn a_failure_reads_back_as_one_line() {
        let line = failed_line("loading the world: world.toml line 89\n  exit north: no room");
        assert_eq!(
            CoreSays::parse(&line),
            CoreSays::Failed("loading the world: world.toml line 89 / exit north: no room")
        );
        assert_eq!(CoreSays::parse("READY\r"), CoreSays::Ready);
        assert_eq!(CoreSays::parse("hello"), CoreSays::Other("hello"));
    }
}
