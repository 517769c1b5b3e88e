//! Is the core alive, and which line killed it: two small policies, free of processes and
//! clocks so they can be tested directly.
//!
//! **Hung or busy.** A core bumps a progress counter on its witness page (see
//! `tether_protocol::witness`) every time its event loop turns (at least every 100 ms, from a
//! timer on that loop) and every time it handles a line. So a core that is merely busy (a
//! burst of thousands of lines, a slow command among many) keeps counting, and only a core
//! whose one thread is stuck (an endless loop, a deadlock, `kill -STOP`, a disk that never
//! answers) stops. [`Liveness`] watches the counter; a core silent for the hang timeout is
//! declared hung and replaced like a crashed one. A core loading its world has not printed
//! READY yet and is not watched: its start-up has its own, longer limit.
//!
//! **Poison lines.** After each unplanned death the supervisor reads which line the dead core
//! was handling. [`Suspects`] remembers it; a line found in the hands of two dying cores in a
//! row is quarantined: every later core is told never to run it. A core found stuck in the
//! suspect line itself gets [`SUSPECT_HANG_TIMEOUT`] instead of the whole hang timeout: that
//! line has had one already, and every player is waiting on it a second time.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use tether_protocol::witness::{Handling, LineId};

/// How long a core may make no progress before it is killed, unless configured.
pub const DEFAULT_HANG_TIMEOUT: Duration = Duration::from_secs(5);
/// The shortest hang timeout allowed: a few of the core's 100 ms progress ticks.
pub const MIN_HANG_TIMEOUT: Duration = Duration::from_millis(500);
/// A core silent this long is reported as not answering (status, watchdog), not killed yet.
pub const SILENT_AFTER: Duration = Duration::from_secs(1);
/// How long a core may be stuck in the very line the last dead core was stuck in: that line
/// already had a whole hang timeout, and everyone is waiting on it a second time.
pub const SUSPECT_HANG_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Progress within [`SILENT_AFTER`].
    Live,
    /// No progress for this long, still within the hang timeout.
    Silent(Duration),
    /// No progress for this long, past the hang timeout.
    Hung(Duration),
}

/// Watches one core's progress counter.
#[derive(Debug, Clone)]
pub struct Liveness {
    timeout: Duration,
    progress: u64,
    since: Instant,
}

impl Liveness {
    pub fn new(progress: u64, now: Instant, timeout: Duration) -> Liveness {
        Liveness {
            timeout,
            progress,
            since: now,
        }
    }

    /// The counter read `progress` at `now`.
    pub fn observe(&mut self, progress: u64, now: Instant) -> Verdict {
        if progress != self.progress {
            self.progress = progress;
            self.since = now;
        }
        self.verdict(now)
    }

    pub fn verdict(&self, now: Instant) -> Verdict {
        self.verdict_within(self.timeout, now)
    }

    /// The verdict with a shorter timeout (for a core stuck in a suspect line).
    pub fn verdict_within(&self, timeout: Duration, now: Instant) -> Verdict {
        let silent = now.saturating_duration_since(self.since);
        if silent >= timeout.min(self.timeout) {
            Verdict::Hung(silent)
        } else if silent >= SILENT_AFTER {
            Verdict::Silent(silent)
        } else {
            Verdict::Live
        }
    }
}

/// What a core's death says about the line it was handling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blame {
    /// It was not handling a line (or the record was torn by the death itself).
    None,
    /// The first death in that line: it is run again, once.
    Suspect(LineId),
    /// The second death in a row in that line: it is quarantined.
    Quarantined(LineId),
}

/// The lines the last deaths were blamed on.
#[derive(Debug, Default)]
pub struct Suspects {
    last_death: Option<LineId>,
    /// Newest last; bounded, since each entry only matters until its line comes again.
    quarantined: VecDeque<LineId>,
}

/// Quarantined lines passed to each new core; a line is usually resubmitted at once, so
/// only recent entries can still matter.
const MAX_QUARANTINED: usize = 32;

impl Suspects {
    /// A core died (not as planned) handling `handling`.
    pub fn core_died(&mut self, handling: Option<&Handling>) -> Blame {
        let line = handling.filter(|h| !h.torn).map(|h| h.line);
        let previous = std::mem::replace(&mut self.last_death, line);
        match line {
            None => Blame::None,
            Some(line) if previous == Some(line) => {
                self.last_death = None;
                if self.quarantined.len() == MAX_QUARANTINED {
                    self.quarantined.pop_front();
                }
                self.quarantined.push_back(line);
                Blame::Quarantined(line)
            }
            Some(line) => Blame::Suspect(line),
        }
    }

    /// The line the last death was blamed on, which one more core is running again.
    pub fn suspect(&self) -> Option<LineId> {
        self.last_death
    }

    /// A core ran and stopped as planned: deaths around it are not in a row.
    pub fn core_stopped_cleanly(&mut self) {
        self.last_death = None;
    }

    /// The value of `TETHER_QUARANTINE` for the next core; empty if there is none.
    pub fn quarantine_list(&self) -> String {
        let ids: Vec<String> = self.quarantined.iter().map(LineId::to_string).collect();
        ids.join(",")
    }
}

#[cfg(test)]
mod tests {
    use tether_protocol::SessionKey;

    use super::*;

    #[test]
    fn a_counting_core_is_live_and_a_silent_one_hangs_after_the_timeout() {
        let start = Instant::now();
        let timeout = Duration::from_secs(5);
        let mut liveness = Liveness::new(0, start, timeout);
        // Busy: the counter moves on every look, however long it runs.
        for i in 1..=100 {
            let now = start + Duration::from_millis(250 * i);
            assert_eq!(liveness.observe(i, now), Verdict::Live);
        }
        let stuck_at = start + Duration::from_millis(25_000);
        assert_eq!(
            liveness.observe(100, stuck_at + Duration::from_millis(1500)),
            Verdict::Silent(Duration::from_millis(1500))
        );
        assert_eq!(
            liveness.observe(100, stuck_at + timeout),
            Verdict::Hung(timeout)
        );
        // A suspect line gets a shorter timeout.
        assert_eq!(
            liveness.verdict_within(SUSPECT_HANG_TIMEOUT, stuck_at + Duration::from_millis(1500)),
            Verdict::Hung(Duration::from_millis(1500))
        );
        // Progress again (a long command finished) makes it live again.
        assert_eq!(
            liveness.observe(101, stuck_at + timeout + Duration::from_millis(1)),
            Verdict::Live
        );
    }

    fn handling(seq: u64) -> Handling {
        Handling {
            line: LineId {
                key: SessionKey {
                    proxy: 1,
                    session: 2,
                },
                seq,
            },
            character: "Bob".into(),
            text: "fault abort".into(),
            torn: false,
        }
    }

    #[test]
    fn the_second_death_in_a_row_on_one_line_quarantines_it() {
        let mut suspects = Suspects::default();
        let line = handling(5).line;
        assert_eq!(suspects.core_died(Some(&handling(5))), Blame::Suspect(line));
        assert_eq!(suspects.suspect(), Some(line));
        assert_eq!(suspects.quarantine_list(), "");
        assert_eq!(
            suspects.core_died(Some(&handling(5))),
            Blame::Quarantined(line)
        );
        assert_eq!(suspects.quarantine_list(), "1:2:5");
        assert_eq!(suspects.suspect(), None);
        // A third death is a new story.
        assert_eq!(suspects.core_died(Some(&handling(5))), Blame::Suspect(line));
    }

    #[test]
    fn deaths_on_different_lines_or_apart_are_not_in_a_row() {
        let mut suspects = Suspects::default();
        suspects.core_died(Some(&handling(5)));
        assert_eq!(
            suspects.core_died(Some(&handling(6))),
            Blame::Suspect(handling(6).line)
        );
        suspects.core_died(None);
        assert_eq!(
            suspects.core_died(Some(&handling(6))),
            Blame::Suspect(handling(6).line)
        );
        suspects.core_stopped_cleanly();
        assert_eq!(
            suspects.core_died(Some(&handling(6))),
            Blame::Suspect(handling(6).line)
        );
        let mut torn = handling(6);
        torn.torn = true;
        assert_eq!(suspects.core_died(Some(&torn)), Blame::None);
        assert_eq!(suspects.quarantine_list(), "");
    }
}
