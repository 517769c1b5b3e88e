//! Waiting for every proxy to come back before play resumes.
//!
//! After a core restart the proxies reattach one by one, a few hundred microseconds apart. If
//! the new core handled input as soon as the first one was back, a player on that proxy could
//! speak before the players on another proxy were re-attached, and they would never hear it.
//! So a new core remembers which proxies the previous one served (the roster, a small file
//! rewritten on every attach and detach) and holds input until all of them are back, or until
//! a short grace period ends (a proxy may have died with the old core).

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use tether_protocol::SessionKey;
use tether_protocol::message::SessionEvent;

/// One event from a proxy, owned so it can wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    pub key: SessionKey,
    pub event: SessionEvent<'static>,
}

/// How long input may wait for a proxy that does not come back.
pub const GRACE: Duration = Duration::from_millis(500);

#[derive(Debug)]
pub struct Gathering {
    missing: HashSet<u64>,
    deadline: Instant,
    held: Vec<Input>,
}

impl Gathering {
    /// `None` when nobody is expected (a first start): input flows at once.
    pub fn new(expected: impl IntoIterator<Item = u64>, now: Instant) -> Option<Gathering> {
        let missing: HashSet<u64> = expected.into_iter().collect();
        (!missing.is_empty()).then(|| Gathering {
            missing,
            deadline: now + GRACE,
            held: Vec::new(),
        })
    }

    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    pub fn attached(&mut self, proxy: u64) {
        self.missing.remove(&proxy);
    }

    pub fn is_over(&self, now: Instant) -> bool {
        self.missing.is_empty() || now >= self.deadline
    }

    pub fn hold(&mut self, input: Input) {
        self.held.push(input);
    }

    /// Everything held, in arrival order.
    pub fn release(self) -> Vec<Input> {
        self.held
    }
}

/// The proxies attached to the previous core. A missing or unreadable file means none.
pub fn load_roster(path: &Path) -> Vec<u64> {
    std::fs::read_to_string(path)
        .map(|text| {
            text.lines()
                .filter_map(|line| line.trim().parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Records the proxies attached now; written aside and renamed so a crash never leaves half.
pub fn save_roster(path: &Path, proxies: impl IntoIterator<Item = u64>) -> std::io::Result<()> {
    let text: String = proxies.into_iter().map(|id| format!("{id}\n")).collect();
    let staging = path.with_extension("new");
    std::fs::write(&staging, text)?;
    std::fs::rename(&staging, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(proxy: u64, seq: u64) -> Input {
        Input {
            key: SessionKey { proxy, session: 1 },
            event: SessionEvent::Line {
                seq,
                text: format!("say {seq}").into(),
            },
        }
    }

    #[test]
    fn a_first_start_expects_nobody() {
        assert!(Gathering::new([], Instant::now()).is_none());
    }

    #[test]
    fn input_is_held_until_every_proxy_is_back() {
        let now = Instant::now();
        let mut gathering = Gathering::new([1, 2], now).expect("two expected");
        gathering.attached(1);
        gathering.hold(line(1, 1));
        gathering.hold(line(1, 2));
        assert!(!gathering.is_over(now));
        gathering.attached(2);
        assert!(gathering.is_over(now));
        assert_eq!(gathering.release(), vec![line(1, 1), line(1, 2)]);
    }

    #[test]
    fn a_proxy_that_never_returns_delays_play_only_by_the_grace_period() {
        let now = Instant::now();
        let mut gathering = Gathering::new([1, 2], now).expect("two expected");
        gathering.attached(1);
        assert!(!gathering.is_over(now + GRACE / 2));
        assert!(gathering.is_over(now + GRACE));
    }

    #[test]
    fn the_roster_round_trips_and_tolerates_garbage() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("proxies");
        assert!(load_roster(&path).is_empty());
        save_roster(&path, [7, 42]).expect("save");
        let mut loaded = load_roster(&path);
        loaded.sort();
        assert_eq!(loaded, [7, 42]);
        std::fs::write(&path, "12\nnot a number\n").expect("write");
        assert_eq!(load_roster(&path), [12]);
    }
}
