//! What an operator's Prometheus scrapes at `/metrics`: this proxy's counters, and gauges
//! read from the link's bookkeeping at scrape time.
//!
//! The counters live in the proxy because it is the process that lives longest among those
//! that see players: a core reload or crash resets nothing here. (A proxy upgrade starts a
//! new process and so new counters; Prometheus's `rate()` and `increase()` take a reset in
//! their stride.)
//!
//! They are process-wide ([`global`]): every part of the proxy counts into the same
//! registry without a handle threaded through each layer, and a counter is an atomic add,
//! which the hot path does not notice. What can be read off the relay (sessions, their
//! clients, queues, the link) is not counted as it happens but gathered when scraped
//! ([`Census`]), so it costs nothing between scrapes.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tether_protocol::message::Transport;

use crate::close::CloseReason;

/// The `Content-Type` of what [`render`] returns.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// A connection's kind, as labels: its transport and whether it is encrypted.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ViaLabel {
    transport: &'static str,
    tls: bool,
}

impl ViaLabel {
    fn of(transport: Transport, tls: bool) -> ViaLabel {
        ViaLabel {
            transport: transport.name(),
            tls,
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransportLabel {
    transport: &'static str,
}

/// Why a session ended, as a label (its [`CloseReason`] without the words).
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Ended {
    client_closed,
    read_failed,
    write_failed,
    frame_too_large,
    websocket_error,
    flood,
    output_overflow,
    game,
    shutdown,
    link_gone,
}

impl Ended {
    fn of(reason: &CloseReason) -> Ended {
        match reason {
            CloseReason::ClientClosed => Ended::client_closed,
            CloseReason::ReadFailed(_) => Ended::read_failed,
            CloseReason::WriteFailed(_) => Ended::write_failed,
            CloseReason::FrameTooLarge(_) => Ended::frame_too_large,
            CloseReason::WebSocketError(_) => Ended::websocket_error,
            CloseReason::Flood => Ended::flood,
            CloseReason::OutputOverflow => Ended::output_overflow,
            CloseReason::Game(_) => Ended::game,
            CloseReason::Shutdown => Ended::shutdown,
            CloseReason::LinkGone => Ended::link_gone,
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndedLabel {
    reason: Ended,
}

/// Input the proxy did not pass on as typed, as a label.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Refusal {
    /// A line over the length limit (its bytes dropped up to its end).
    overlong,
    /// Bytes that were not UTF-8 (replaced, and the player told).
    invalid_utf8,
    /// A line refused by the flood guard.
    too_fast,
    /// A line refused because too many were waiting for a core.
    queue_full,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabel {
    why: Refusal,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FeatureLabel {
    feature: &'static str,
}

/// Every counter and gauge; one per process (see [`global`]).
pub struct Metrics {
    registry: Registry,
    connections: Family<ViaLabel, Counter>,
    bytes_in: Family<ViaLabel, Counter>,
    bytes_out: Family<ViaLabel, Counter>,
    mccp2_saved: Counter,
    lines: Counter,
    logins: Counter,
    login_failures: Counter,
    refused: Family<RefusalLabel, Counter>,
    ended: Family<EndedLabel, Counter>,
    round_trip: Histogram,
    core_attaches: Counter,
    core_gap: Histogram,
    handovers: Counter,
    // Gathered at scrape time from the relay ([`Census`]).
    sessions: Family<TransportLabel, Gauge>,
    sessions_with: Family<FeatureLabel, Gauge>,
    players: Gauge,
    core_attached: Gauge,
    queued_lines: Gauge,
    session_queue_max: Gauge,
    uptime: Gauge,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
static STARTED: LazyLock<std::time::Instant> = LazyLock::new(std::time::Instant::now);

/// How long this proxy process has run.
pub fn uptime() -> Duration {
    STARTED.elapsed()
}

/// This process's metrics.
pub fn global() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    fn new() -> Metrics {
        LazyLock::force(&STARTED);
        let mut registry = Registry::with_prefix("tether");
        let metrics = Metrics {
            connections: Family::default(),
            bytes_in: Family::default(),
            bytes_out: Family::default(),
            mccp2_saved: Counter::default(),
            lines: Counter::default(),
            logins: Counter::default(),
            login_failures: Counter::default(),
            refused: Family::default(),
            ended: Family::default(),
            // 0.25 ms to about 8 s.
            round_trip: Histogram::new(exponential_buckets(0.000_25, 2.0, 16)),
            core_attaches: Counter::default(),
            // 1 ms to about 65 s.
            core_gap: Histogram::new(exponential_buckets(0.001, 2.0, 17)),
            handovers: Counter::default(),
            sessions: Family::default(),
            sessions_with: Family::default(),
            players: Gauge::default(),
            core_attached: Gauge::default(),
            queued_lines: Gauge::default(),
            session_queue_max: Gauge::default(),
            uptime: Gauge::default(),
            registry: Registry::default(),
        };
        let m = &metrics;
        registry.register(
            "connections",
            "Player connections accepted, by transport",
            m.connections.clone(),
        );
        registry.register(
            "received_bytes",
            "Bytes received from players, by transport (after TLS, before telnet decoding)",
            m.bytes_in.clone(),
        );
        registry.register(
            "sent_bytes",
            "Bytes sent to players, by transport (after MCCP2 compression, before TLS)",
            m.bytes_out.clone(),
        );
        registry.register(
            "mccp2_saved_bytes",
            "Bytes MCCP2 compression saved (uncompressed minus compressed)",
            m.mccp2_saved.clone(),
        );
        registry.register(
            "lines",
            "Lines players typed that were taken for the game",
            m.lines.clone(),
        );
        registry.register(
            "logins",
            "Logins to a character, new characters included (as the core reported them)",
            m.logins.clone(),
        );
        registry.register(
            "login_failures",
            "Logins refused for a wrong password (as the core reported them)",
            m.login_failures.clone(),
        );
        registry.register(
            "input_refused",
            "Input refused or altered, by why (the player is told each time)",
            m.refused.clone(),
        );
        registry.register(
            "disconnects",
            "Sessions that ended, by reason",
            m.ended.clone(),
        );
        registry.register(
            "round_trip_seconds",
            "From a line reaching the proxy to the core acknowledging it with its answer, seconds",
            m.round_trip.clone(),
        );
        registry.register(
            "core_attaches",
            "Times a core attached to this proxy (its first, and after every reload or restart)",
            m.core_attaches.clone(),
        );
        registry.register(
            "core_gap_seconds",
            "How long this proxy was without a core before one attached again, seconds",
            m.core_gap.clone(),
        );
        registry.register(
            "proxy_handovers",
            "Times this proxy took every connection over from another (an upgrade or a recovery)",
            m.handovers.clone(),
        );
        registry.register(
            "sessions",
            "Sessions open now, by transport",
            m.sessions.clone(),
        );
        registry.register(
            "sessions_with",
            "Sessions open now with a feature: tls, mccp2 (compressed output), gmcp, screen_reader",
            m.sessions_with.clone(),
        );
        registry.register(
            "players",
            "Sessions playing a character now (logged in)",
            m.players.clone(),
        );
        registry.register(
            "core_attached",
            "1 while a core is attached to this proxy, else 0",
            m.core_attached.clone(),
        );
        registry.register(
            "queued_lines",
            "Lines typed and not yet acknowledged by a core, over every session",
            m.queued_lines.clone(),
        );
        registry.register(
            "session_queue_max",
            "The most lines any one session has waiting for a core",
            m.session_queue_max.clone(),
        );
        registry.register(
            "proxy_uptime_seconds",
            "Seconds since this proxy process started",
            m.uptime.clone(),
        );
        Metrics {
            registry,
            ..metrics
        }
    }

    pub fn connected(&self, transport: Transport, tls: bool) {
        self.connections
            .get_or_create(&ViaLabel::of(transport, tls))
            .inc();
    }

    /// What one session counts into for as long as it is served here: its byte counters,
    /// looked up once, and its place in the TLS gauge.
    pub fn session(&self, transport: Transport, tls: bool) -> SessionCounters {
        let via = ViaLabel::of(transport, tls);
        SessionCounters {
            received: self.bytes_in.get_or_create_owned(&via),
            sent: self.bytes_out.get_or_create_owned(&via),
            _tls: tls.then(|| self.holding("tls")),
        }
    }

    /// A compressed write: `plain` bytes became `compressed`.
    pub fn compressed(&self, plain: usize, compressed: usize) {
        self.mccp2_saved
            .inc_by(plain.saturating_sub(compressed) as u64);
    }

    pub fn line_taken(&self) {
        self.lines.inc();
    }

    /// Lines taken since the process started (for the dashboard's rate).
    pub fn lines_taken(&self) -> u64 {
        self.lines.get()
    }

    pub fn logged_in(&self) {
        self.logins.inc();
    }

    pub fn login_failed(&self) {
        self.login_failures.inc();
    }

    pub fn refused(&self, why: Refusal) {
        self.refused.get_or_create(&RefusalLabel { why }).inc();
    }

    pub fn ended(&self, reason: &CloseReason) {
        self.ended
            .get_or_create(&EndedLabel {
                reason: Ended::of(reason),
            })
            .inc();
    }

    pub fn answered(&self, waited: Duration) {
        self.round_trip.observe(waited.as_secs_f64());
        crate::dashboard::round_trip(waited);
    }

    /// A core attached, after `gap` without one (none for the first).
    pub fn core_attached(&self, gap: Option<Duration>) {
        self.core_attaches.inc();
        if let Some(gap) = gap {
            self.core_gap.observe(gap.as_secs_f64());
        }
    }

    pub fn took_over(&self) {
        self.handovers.inc();
    }

    /// A session's output starts being compressed; it stops when the result is dropped.
    pub fn compressing(&self) -> Holding {
        self.holding("mccp2")
    }

    fn holding(&self, feature: &'static str) -> Holding {
        Holding::new(
            self.sessions_with
                .get_or_create_owned(&FeatureLabel { feature }),
        )
    }
}

/// See [`Metrics::session`].
#[derive(Debug)]
pub struct SessionCounters {
    received: Counter,
    sent: Counter,
    _tls: Option<Holding>,
}

impl SessionCounters {
    pub fn received(&self, bytes: usize) {
        self.received.inc_by(bytes as u64);
    }

    pub fn sent(&self, bytes: usize) {
        if bytes > 0 {
            self.sent.inc_by(bytes as u64);
        }
    }
}

/// One session's part of a gauge, given back when dropped (however the session ends).
#[must_use = "the gauge counts the session only while this is held"]
pub struct Holding(Gauge);

impl Holding {
    fn new(gauge: Gauge) -> Holding {
        gauge.inc();
        Holding(gauge)
    }
}

impl Drop for Holding {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl std::fmt::Debug for Holding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Holding")
    }
}

/// What the relay knows right now, for the gauges.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Census {
    /// Open sessions by transport name.
    pub sessions: Vec<(&'static str, i64)>,
    pub gmcp: i64,
    pub screen_reader: i64,
    /// Sessions playing a character (logged in).
    pub players: i64,
    /// The same, by transport name.
    pub players_by_transport: Vec<(&'static str, i64)>,
    pub core_attached: bool,
    pub queued_lines: i64,
    pub session_queue_max: i64,
}

/// The metrics in the Prometheus text format, with the gauges set from `census`.
pub fn render(census: &Census) -> String {
    let m = global();
    for (transport, count) in &census.sessions {
        m.sessions
            .get_or_create(&TransportLabel { transport })
            .set(*count);
    }
    m.sessions_with
        .get_or_create(&FeatureLabel { feature: "gmcp" })
        .set(census.gmcp);
    m.sessions_with
        .get_or_create(&FeatureLabel {
            feature: "screen_reader",
        })
        .set(census.screen_reader);
    m.players.set(census.players);
    m.core_attached.set(i64::from(census.core_attached));
    m.queued_lines.set(census.queued_lines);
    m.session_queue_max.set(census.session_queue_max);
    m.uptime
        .set(i64::try_from(uptime().as_secs()).unwrap_or(i64::MAX));
    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &m.registry);
    text
}
