//! The operators' live dashboard: a page (`GET /admin`) and a WebSocket (`/admin/live`) that
//! pushes what happens as it happens, behind the admin token.
//!
//! Publish/subscribe inside the proxy: a [`Hub`] per process holds a broadcast channel that
//! every open dashboard subscribes to. The link publishes the game's moments to it (a core
//! attaching or going away, this proxy taking over from its predecessor, an operator's order
//! done); a ticker publishes the numbers once a second (lines per second, round-trip
//! percentiles, sessions) and the session list every two seconds. With no dashboard open
//! nothing is gathered: the only cost on a player's path is one relaxed atomic load per
//! answered line ([`round_trip`]).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex, Once, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::broadcast;

use crate::link::LinkHandle;

/// What a dashboard that lags this far behind misses (it catches up at the next tick).
const CHANNEL: usize = 256;
/// The moments a dashboard that opens is shown from before it opened.
const HISTORY: usize = 100;
/// Rows in the session list: enough to see who is on; the totals count everyone.
const MAX_ROWS: usize = 500;

/// See the module's documentation.
pub struct Hub {
    events: broadcast::Sender<Arc<str>>,
    history: Mutex<VecDeque<Arc<str>>>,
    /// Set while at least one dashboard is open: round trips are sampled only then.
    watched: AtomicBool,
    samples: Mutex<Vec<Duration>>,
}

static HUB: LazyLock<Hub> = LazyLock::new(|| Hub {
    events: broadcast::channel(CHANNEL).0,
    history: Mutex::new(VecDeque::with_capacity(HISTORY)),
    watched: AtomicBool::new(false),
    samples: Mutex::new(Vec::new()),
});

/// This process's hub.
pub fn hub() -> &'static Hub {
    &HUB
}

/// A line's round trip, for the percentiles; kept only while someone watches.
pub fn round_trip(waited: Duration) {
    let hub = hub();
    if hub.watched.load(Ordering::Relaxed) {
        lock(&hub.samples).push(waited);
    }
}

/// What a dashboard is sent, as JSON objects tagged by `type`.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Push<'a> {
    /// Something that happened: kept in the history too.
    Moment { at_ms: u64, what: &'a str },
    /// The numbers of the last second.
    Tick(Tick),
    /// Who is connected.
    Sessions(Overview),
}

#[derive(Debug, Serialize)]
pub struct Tick {
    pub at_ms: u64,
    pub lines_per_second: u64,
    /// Of the lines answered in the last second; `None` when none were.
    pub round_trip_p50_ms: Option<f64>,
    pub round_trip_p99_ms: Option<f64>,
    pub sessions: usize,
    pub players: i64,
    pub core: String,
    pub proxy_uptime_s: u64,
}

/// The sessions as the relay has them, for the dashboard's table.
#[derive(Debug, Default, Serialize)]
pub struct Overview {
    pub total: usize,
    pub rows: Vec<SessionRow>,
}

#[derive(Debug, Serialize)]
pub struct SessionRow {
    pub session: u64,
    pub transport: &'static str,
    pub address: String,
    pub client: String,
    /// `None` at the login prompt.
    pub character: Option<String>,
    /// Since the player last typed a line here; `None` if they have not since this proxy
    /// started.
    pub idle_s: Option<u64>,
}

impl Hub {
    /// Records a moment and shows it to every open dashboard.
    pub fn moment(&self, what: &str) {
        let push = Push::Moment {
            at_ms: unix_ms(),
            what,
        };
        let Ok(json) = serde_json::to_string(&push) else {
            return;
        };
        let json: Arc<str> = json.into();
        {
            let mut history = lock(&self.history);
            if history.len() == HISTORY {
                history.pop_front();
            }
            history.push_back(json.clone());
        }
        let _ = self.events.send(json);
    }

    /// A new dashboard's feed, and the history it starts with.
    pub fn subscribe(&self) -> (broadcast::Receiver<Arc<str>>, Vec<Arc<str>>) {
        let receiver = self.events.subscribe();
        self.watched.store(true, Ordering::Relaxed);
        let history = lock(&self.history).iter().cloned().collect();
        (receiver, history)
    }

    fn publish(&self, push: &Push<'_>) {
        if let Ok(json) = serde_json::to_string(push) {
            let _ = self.events.send(json.into());
        }
    }
}

/// Starts the ticker (once per process) that feeds open dashboards their numbers.
pub fn start_ticker(link: LinkHandle) {
    static STARTED: Once = Once::new();
    STARTED.call_once(|| {
        tokio::spawn(tick(link));
    });
}

async fn tick(link: LinkHandle) {
    let hub = hub();
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut lines_before = crate::metrics::global().lines_taken();
    let mut count = 0u64;
    loop {
        every.tick().await;
        let lines = crate::metrics::global().lines_taken();
        let lines_per_second = lines.saturating_sub(lines_before);
        lines_before = lines;
        let watched = hub.events.receiver_count() > 0;
        hub.watched.store(watched, Ordering::Relaxed);
        let mut samples = std::mem::take(&mut *lock(&hub.samples));
        if !watched {
            continue;
        }
        samples.sort_unstable();
        let census = link.census();
        hub.publish(&Push::Tick(Tick {
            at_ms: unix_ms(),
            lines_per_second,
            round_trip_p50_ms: percentile(&samples, 50),
            round_trip_p99_ms: percentile(&samples, 99),
            sessions: census.sessions.iter().map(|(_, n)| *n as usize).sum(),
            players: census.players,
            core: link.core_summary(),
            proxy_uptime_s: crate::metrics::uptime().as_secs(),
        }));
        if count.is_multiple_of(2) {
            hub.publish(&Push::Sessions(link.overview(MAX_ROWS)));
        }
        count += 1;
    }
}

/// The `p`th percentile of sorted `samples`, in milliseconds (nearest rank).
fn percentile(samples: &[Duration], p: usize) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let rank = (samples.len() * p).div_ceil(100).clamp(1, samples.len());
    Some(samples[rank - 1].as_secs_f64() * 1000.0)
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&samples, 50), Some(50.0));
        assert_eq!(percentile(&samples, 99), Some(99.0));
        assert_eq!(percentile(&samples[..1], 99), Some(1.0));
        assert_eq!(percentile(&[], 50), None);
    }

    #[test]
    fn moments_are_kept_for_dashboards_that_open_later() {
        let hub = hub();
        hub.moment("core attached");
        let (_, history) = hub.subscribe();
        let last = history.last().expect("a moment");
        assert!(last.contains(r#""type":"moment""#), "{last}");
        assert!(last.contains("core attached"), "{last}");
    }
}
