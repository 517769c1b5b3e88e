//! Results: what one process measured, how several are added up, and how they are printed.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::bot::KindStats;
use crate::hist::Hist;
use crate::mix::Kind;

#[derive(Default, Clone, Serialize, Deserialize)]
pub struct Report {
    pub target: String,
    pub sessions: u64,
    pub processes: u64,
    pub source_addrs: u32,
    /// Seconds between two commands of one bot.
    pub rate_s: f64,
    pub mix: String,
    /// The measuring window's length (shorter than asked if interrupted).
    pub window_s: f64,
    pub connected: u64,
    pub connect_failed: u64,
    pub login_failed: u64,
    pub logged_in: u64,
    pub dropped: u64,
    /// Sessions the server compressed (MCCP2), and GMCP messages received, over the run.
    #[serde(default)]
    pub compressed: u64,
    #[serde(default)]
    pub gmcp_messages: u64,
    /// Duplicated answers: a token answered twice (or never sent).
    pub unexpected: u64,
    /// Measured commands sent and answered per second of the window (summed over processes).
    pub sent_per_s: f64,
    pub answered_per_s: f64,
    pub kinds: BTreeMap<String, KindStats>,
    pub login: Hist,
    pub failures: BTreeMap<String, u64>,
    /// Percentiles in milliseconds per kind and `all`: derived, recomputed after merging.
    #[serde(default)]
    pub summary: BTreeMap<String, Summary>,
}

#[derive(Default, Clone, Serialize, Deserialize)]
pub struct Summary {
    pub sent: u64,
    pub answered: u64,
    pub lost: u64,
    pub out_of_order: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

impl Summary {
    fn of(stats: &KindStats) -> Summary {
        Summary {
            sent: stats.sent,
            answered: stats.answered,
            lost: stats.lost,
            out_of_order: stats.out_of_order,
            p50_ms: ms(stats.hist.percentile(50.0)),
            p90_ms: ms(stats.hist.percentile(90.0)),
            p99_ms: ms(stats.hist.percentile(99.0)),
            max_ms: ms(stats.hist.max()),
            mean_ms: ms(stats.hist.mean()),
        }
    }
}

impl Report {
    /// Every kind together.
    pub fn all(&self) -> KindStats {
        let mut all = KindStats::default();
        for stats in self.kinds.values() {
            all.sent += stats.sent;
            all.answered += stats.answered;
            all.lost += stats.lost;
            all.out_of_order += stats.out_of_order;
            all.hist.merge(&stats.hist);
        }
        all
    }

    pub fn summarize(&mut self) {
        self.summary = self
            .kinds
            .iter()
            .map(|(name, stats)| (name.clone(), Summary::of(stats)))
            .collect();
        self.summary.insert("all".into(), Summary::of(&self.all()));
    }

    /// Adds another process's results (same run, other sessions).
    pub fn merge(&mut self, other: &Report) {
        self.sessions += other.sessions;
        self.processes += other.processes;
        self.window_s = self.window_s.max(other.window_s);
        self.connected += other.connected;
        self.connect_failed += other.connect_failed;
        self.login_failed += other.login_failed;
        self.logged_in += other.logged_in;
        self.dropped += other.dropped;
        self.compressed += other.compressed;
        self.gmcp_messages += other.gmcp_messages;
        self.unexpected += other.unexpected;
        // Each process measured its own window of the same length: rates add up.
        self.sent_per_s += other.sent_per_s;
        self.answered_per_s += other.answered_per_s;
        for (name, theirs) in &other.kinds {
            let mine = self.kinds.entry(name.clone()).or_default();
            mine.sent += theirs.sent;
            mine.answered += theirs.answered;
            mine.lost += theirs.lost;
            mine.out_of_order += theirs.out_of_order;
            mine.hist.merge(&theirs.hist);
        }
        self.login.merge(&other.login);
        for (reason, count) in &other.failures {
            *self.failures.entry(reason.clone()).or_default() += count;
        }
    }

    pub fn human(&self) -> String {
        let mut out = String::new();
        let all = self.all();
        let _ = writeln!(
            out,
            "tether-bots: {} sessions against {} ({} process{}, {} source address{}), one command per {} s per session, mix {}",
            self.sessions,
            self.target,
            self.processes,
            if self.processes == 1 { "" } else { "es" },
            self.source_addrs,
            if self.source_addrs == 1 { "" } else { "es" },
            self.rate_s,
            self.mix,
        );
        let _ = write!(
            out,
            "logins: {} ok, {} failed, {} could not connect",
            self.logged_in, self.login_failed, self.connect_failed,
        );
        if self.login.count() > 0 {
            let _ = write!(
                out,
                "; login time p50 {} p99 {} max {}",
                duration(self.login.percentile(50.0)),
                duration(self.login.percentile(99.0)),
                duration(self.login.max()),
            );
        }
        out.push('\n');
        if self.compressed > 0 || self.gmcp_messages > 0 {
            let _ = writeln!(
                out,
                "sessions compressed (MCCP2): {}; GMCP messages received: {}",
                self.compressed, self.gmcp_messages
            );
        }
        let _ = writeln!(
            out,
            "window {:.1} s: sent {} ({:.1}/s), answered {} ({:.1} commands/s), lost {}, out of order {}, duplicated {}, sessions dropped {}",
            self.window_s,
            all.sent,
            self.sent_per_s,
            all.answered,
            self.answered_per_s,
            all.lost,
            all.out_of_order,
            self.unexpected,
            self.dropped,
        );
        let _ = writeln!(
            out,
            "{:<5} {:>9} {:>9} {:>6} {:>6} {:>10} {:>10} {:>10} {:>10}",
            "kind", "sent", "answered", "lost", "order", "p50", "p90", "p99", "max"
        );
        let rows = Kind::ALL
            .iter()
            .filter_map(|kind| Some((kind.name(), self.kinds.get(kind.name())?.clone())))
            .chain([("all", all)]);
        for (name, stats) in rows {
            if stats.sent == 0 && name != "all" {
                continue;
            }
            let _ = writeln!(
                out,
                "{:<5} {:>9} {:>9} {:>6} {:>6} {:>10} {:>10} {:>10} {:>10}",
                name,
                stats.sent,
                stats.answered,
                stats.lost,
                stats.out_of_order,
                duration(stats.hist.percentile(50.0)),
                duration(stats.hist.percentile(90.0)),
                duration(stats.hist.percentile(99.0)),
                duration(stats.hist.max()),
            );
        }
        if !self.failures.is_empty() {
            let mut failures: Vec<_> = self.failures.iter().collect();
            failures.sort_by(|a, b| b.1.cmp(a.1));
            let _ = writeln!(out, "failures:");
            for (reason, count) in failures.into_iter().take(10) {
                let _ = writeln!(out, "  {count:>7}  {reason}");
            }
        }
        out
    }
}

/// Microseconds, readably: `0.53ms`, `12.3ms`, `1.52s`.
pub fn duration(micros: u64) -> String {
    let ms = micros as f64 / 1000.0;
    if ms < 10.0 {
        format!("{ms:.2}ms")
    } else if ms < 1000.0 {
        format!("{ms:.1}ms")
    } else {
        format!("{:.2}s", ms / 1000.0)
    }
}

/// One process's state, once a second: children send it to the parent as a JSON line.
#[derive(Default, Clone, Serialize, Deserialize)]
pub struct Progress {
    pub elapsed_s: f64,
    pub phase: String,
    pub sessions: u64,
    pub connected: u64,
    pub logged_in: u64,
    pub failed: u64,
    pub up: u64,
    pub dropped: u64,
    pub pending: u64,
    pub lost: u64,
    pub answered_total: u64,
    /// Answers during the last second, with their round trips.
    pub last_second: Hist,
}

impl Progress {
    pub fn merge(&mut self, other: &Progress) {
        self.elapsed_s = self.elapsed_s.max(other.elapsed_s);
        if self.phase.is_empty() {
            self.phase = other.phase.clone();
        } else if self.phase != other.phase && !self.phase.contains(&other.phase) {
            self.phase = format!("{}/{}", self.phase, other.phase);
        }
        self.sessions += other.sessions;
        self.connected += other.connected;
        self.logged_in += other.logged_in;
        self.failed += other.failed;
        self.up += other.up;
        self.dropped += other.dropped;
        self.pending += other.pending;
        self.lost += other.lost;
        self.answered_total += other.answered_total;
        self.last_second.merge(&other.last_second);
    }

    pub fn line(&self) -> String {
        format!(
            "[{:>5.0}s] {:<10} logged in {}/{} (failed {}) up {} | {} cmds/s p99 {} | pending {} lost {} dropped {}",
            self.elapsed_s,
            self.phase,
            self.logged_in,
            self.sessions,
            self.failed,
            self.up,
            self.last_second.count(),
            duration(self.last_second.percentile(99.0)),
            self.pending,
            self.lost,
            self.dropped,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(sessions: u64, rtts: &[u64]) -> Report {
        let mut say = KindStats::default();
        for rtt in rtts {
            say.sent += 1;
            say.answered += 1;
            say.hist.record(*rtt);
        }
        Report {
            sessions,
            processes: 1,
            answered_per_s: rtts.len() as f64 / 10.0,
            window_s: 10.0,
            kinds: [("say".to_owned(), say)].into(),
            ..Report::default()
        }
    }

    #[test]
    fn merging_adds_counts_rates_and_histograms() {
        // Below 128 µs the histogram is exact.
        let mut a = report(10, &[10, 20, 30]);
        let b = report(20, &[1000]);
        a.merge(&b);
        a.summarize();
        assert_eq!(a.sessions, 30);
        assert_eq!(a.processes, 2);
        assert!((a.answered_per_s - 0.4).abs() < 1e-9);
        let all = &a.summary["all"];
        assert_eq!(all.answered, 4);
        assert_eq!(all.max_ms, 1.0);
        assert_eq!(all.p50_ms, 0.02);
    }

    #[test]
    fn reports_survive_json() {
        let mut a = report(10, &[100, 200, 300]);
        a.summarize();
        let json = serde_json::to_string(&a).unwrap();
        let back: Report = serde_json::from_str(&json).unwrap();
        assert_eq!(back.kinds["say"].hist, a.kinds["say"].hist);
        assert!(back.human().contains("say"));
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(duration(530), "0.53ms");
        assert_eq!(duration(12_345), "12.3ms");
        assert_eq!(duration(1_520_000), "1.52s");
    }
}
