//! What the proxy remembers about each session on the core's behalf, and what it must (re)send.
//!
//! This is the heart of "nothing lost": a sans-IO state machine, driven by the session tasks
//! (opened / line / closed), by the link (up / down / delivered events) and by a clock. It
//! never touches a socket; the link shell turns its decisions into link messages.
//!
//! Every line a player types gets a per-session sequence number and stays here until a core
//! acknowledges it. When the link drops, everything unacknowledged is submitted again, in
//! order, to the next core, before anything typed later. While no core is attached lines
//! queue up to a per-session bound; past it the player is told the line was not accepted.

use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use tether_protocol::message::{
    ClientInfo, CoreEvent, Delivery, Order, ProxyEvent, SessionEvent, SessionInfo, SessionSnapshot,
};

/// How long a core may be away before players are told; shorter gaps print nothing.
pub const NOTICE_AFTER: Duration = Duration::from_secs(2);
/// Lines one session may have waiting for a core (sent but unacknowledged, or queued) while
/// no core is attached.
pub const DEFAULT_MAX_QUEUED_LINES: usize = 100;
/// While a core is attached, lines go to it at once, and a pasted script or a speedwalk
/// may have several hundred in flight before the first answers come back: the bound is this
/// many times the queue's (the flood guard's rate limit comes first for a real client). It
/// still bounds the memory one session can make the proxy keep.
pub const IN_FLIGHT_FACTOR: usize = 10;

/// What the shell must do to a player's connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToSession {
    /// What the core delivered for the player (never `Ack`, `State`, `Playing`,
    /// `LoginFailed` or `OrderDone`: those are the relay's).
    Core(Delivery),
    /// A message from tether itself (shown as such, never from a player).
    Notice(String),
}

/// Why a line was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    QueueFull { limit: usize },
    UnknownSession,
}

/// What the relay keeps for one session: who it is, what the core asked to keep, and every
/// line not yet acknowledged with its sequence number. Part of a session's whole state
/// (`state::SessionState`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    info: SessionInfo,
    client: ClientInfo,
    state: Vec<u8>,
    next_seq: u64,
    acked_seq: u64,
    /// Lines not yet acknowledged, oldest first; those with seq <= `sent_seq` are on the
    /// current link already.
    unacked: VecDeque<(u64, String)>,
    sent_seq: u64,
    /// Whether some core has been told this session opened. A session that connected while
    /// no core was attached is announced as new (banner and all) rather than restored.
    announced: bool,
    /// The connection is gone but lines it typed still wait for a core.
    closed: Option<String>,
    /// What the operator's view (metrics, the dashboard) knows of the session. Not carried to
    /// another proxy: the core announces who plays to every proxy that attaches, idle time
    /// starts again, and a line in flight during a hand-over goes unmeasured.
    #[serde(skip)]
    watched: Watched,
}

/// What the keeper holds of a [`Slot`]: what a proxy that carries on after a crash needs to
/// restore the session in the core. Lines not yet acknowledged are not in it: sending each
/// one to the keeper would put the supervisor on every command's path, so a crash loses
/// those typed in its last moments (the player is told).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptSlot {
    pub info: SessionInfo,
    pub client: ClientInfo,
    pub state: Vec<u8>,
    pub announced: bool,
}

/// A [`Relay`]'s whole state, as [`Relay::export`] takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayState {
    sessions: BTreeMap<u64, Slot>,
    link: CarriedLink,
    outbox: Vec<ProxyEvent<'static>>,
    to_sessions: Vec<(u64, ToSession)>,
}

/// [`LinkState`] with its times as durations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum CarriedLink {
    Up {
        waiting_for: Option<Duration>,
        noticed: bool,
    },
    Down {
        down_for: Duration,
        noticed: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LinkState {
    /// A core is attached. `waiting_since`: a batch has been in flight, unanswered, since
    /// then; `noticed`: players were told the game is not answering.
    Up {
        waiting_since: Option<Instant>,
        noticed: bool,
    },
    Down {
        since: Instant,
        noticed: bool,
    },
}

/// How the core looks from here, for `/health`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoreHealth {
    /// Attached and answering.
    Answering,
    /// Attached, but the batch in flight has waited this long (at least `NOTICE_AFTER`).
    NotAnswering(Duration),
    /// No core attached, for this long.
    Detached(Duration),
}

const NOT_ANSWERING: &str =
    "The game is not answering; what you type is kept and will be answered once it is back.";
const RESTARTING: &str =
    "The game is restarting; what you type is kept and will be answered shortly.";
const BACK: &str = "The game is back.";

/// One event for the core's next batch.
fn event(session: u64, event: SessionEvent<'static>) -> ProxyEvent<'static> {
    ProxyEvent { session, event }
}

#[derive(Debug)]
pub struct Relay {
    sessions: BTreeMap<u64, Slot>,
    link: LinkState,
    outbox: Vec<ProxyEvent<'static>>,
    to_sessions: Vec<(u64, ToSession)>,
    max_queued_lines: usize,
    /// Sessions whose [`KeptSlot`] changed since [`Relay::take_kept`].
    kept: BTreeSet<u64>,
    /// Answers to operators' orders, for [`Relay::take_answers`]. Not carried: whoever waits
    /// for them is in this process.
    answers: Vec<OrderAnswer>,
}

/// The core's answer to an operator's order ([`Relay::order`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderAnswer {
    pub id: u64,
    pub ok: bool,
    /// Plain text, for the operator.
    pub said: String,
}

/// An order cannot be sent: no core is attached to carry it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no game core is attached to carry the order out; try again when it is back")]
pub struct NoCore;

/// See [`Slot::watched`]. Kept in the slot rather than in a map of its own: a player's line
/// then costs the operator's view no lookup and, once the queue has its room, no allocation.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Watched {
    /// The character the session plays, as the core said ([`Delivery::Playing`]).
    character: Option<String>,
    /// When the player last typed a line here.
    last_line: Option<Instant>,
    /// When each line this proxy took and the core has not acknowledged reached it, oldest
    /// first, for the round trip in `/metrics` and on the dashboard.
    typed_at: VecDeque<(u64, Instant)>,
}

impl Relay {
    pub fn new(now: Instant, max_queued_lines: usize) -> Self {
        Relay {
            sessions: BTreeMap::new(),
            link: LinkState::Down {
                since: now,
                // Nobody is connected at start-up, and nobody should be told about it later.
                noticed: true,
            },
            outbox: Vec::new(),
            to_sessions: Vec::new(),
            max_queued_lines,
            kept: BTreeSet::new(),
            answers: Vec::new(),
        }
    }

    pub fn is_up(&self) -> bool {
        matches!(self.link, LinkState::Up { .. })
    }

    pub fn health(&self, now: Instant) -> CoreHealth {
        match self.link {
            LinkState::Up {
                waiting_since: Some(since),
                ..
            } if now.duration_since(since) >= NOTICE_AFTER => {
                CoreHealth::NotAnswering(now.duration_since(since))
            }
            LinkState::Up { .. } => CoreHealth::Answering,
            LinkState::Down { since, .. } => CoreHealth::Detached(now.duration_since(since)),
        }
    }

    /// A batch was submitted: the core's answer is awaited from now on.
    pub fn submitted(&mut self, now: Instant) {
        if let LinkState::Up {
            waiting_since: waiting_since @ None,
            ..
        } = &mut self.link
        {
            *waiting_since = Some(now);
        }
    }

    /// The core answered the batch in flight: if players were told it was not answering,
    /// they are told it is back.
    pub fn answered(&mut self) {
        if let LinkState::Up {
            waiting_since,
            noticed,
        } = &mut self.link
        {
            *waiting_since = None;
            if std::mem::take(noticed) {
                self.tell_everyone(BACK);
            }
        }
    }

    /// Tells every live session `notice`.
    fn tell_everyone(&mut self, notice: &str) {
        for (&session, slot) in &self.sessions {
            if slot.closed.is_none() && slot.announced {
                self.to_sessions
                    .push((session, ToSession::Notice(notice.to_string())));
            }
        }
    }

    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// The sessions, their clients and their queues, counted for `/metrics`. A walk over
    /// every session, so for a scrape, never for a line.
    pub fn census(&self) -> crate::metrics::Census {
        let mut census = crate::metrics::Census {
            core_attached: self.is_up(),
            ..Default::default()
        };
        // Every transport, at 0 when nobody uses it: a graph wants a 0, not a gap.
        let mut by_transport: BTreeMap<&'static str, i64> =
            tether_protocol::message::Transport::ALL
                .into_iter()
                .map(|transport| (transport.name(), 0))
                .collect();
        let mut players_by_transport = by_transport.clone();
        for slot in self.sessions.values().filter(|slot| slot.closed.is_none()) {
            let transport = slot.info.transport.name();
            *by_transport.entry(transport).or_default() += 1;
            census.gmcp += i64::from(slot.client.gmcp);
            let playing = slot.watched.character.is_some();
            census.players += i64::from(playing);
            *players_by_transport.entry(transport).or_default() += i64::from(playing);
            census.screen_reader += i64::from(slot.client.screen_reader);
            let queued = i64::try_from(slot.unacked.len()).unwrap_or(i64::MAX);
            census.queued_lines += queued;
            census.session_queue_max = census.session_queue_max.max(queued);
        }
        census.sessions = by_transport.into_iter().collect();
        census.players_by_transport = players_by_transport.into_iter().collect();
        census
    }

    pub fn opened(&mut self, session: u64, info: SessionInfo) {
        let announced = self.is_up();
        if announced {
            self.outbox
                .push(event(session, SessionEvent::Opened(info.clone())));
        }
        self.kept.insert(session);
        self.sessions.insert(
            session,
            Slot {
                info,
                client: ClientInfo::default(),
                state: Vec::new(),
                next_seq: 1,
                acked_seq: 0,
                unacked: VecDeque::new(),
                sent_seq: 0,
                announced,
                closed: None,
                watched: Watched::default(),
            },
        );
    }

    /// A player typed a line. Returns its sequence number, or why it was refused (the caller
    /// tells the player: a refused line is never silently dropped).
    pub fn line(&mut self, session: u64, text: String, now: Instant) -> Result<u64, Refused> {
        let up = self.is_up();
        let slot = self
            .sessions
            .get_mut(&session)
            .ok_or(Refused::UnknownSession)?;
        let limit = if up {
            self.max_queued_lines.saturating_mul(IN_FLIGHT_FACTOR)
        } else {
            self.max_queued_lines
        };
        if slot.unacked.len() >= limit {
            return Err(Refused::QueueFull { limit });
        }
        let seq = slot.next_seq;
        slot.next_seq += 1;
        if up {
            self.outbox.push(event(
                session,
                SessionEvent::Line {
                    seq,
                    text: Cow::Owned(text.clone()),
                },
            ));
            slot.sent_seq = seq;
        }
        slot.unacked.push_back((seq, text));
        slot.watched.last_line = Some(now);
        slot.watched.typed_at.push_back((seq, now));
        Ok(seq)
    }

    pub fn closed(&mut self, session: u64, reason: String) {
        let up = self.is_up();
        let Some(slot) = self.sessions.get_mut(&session) else {
            return;
        };
        if up {
            self.outbox
                .push(event(session, SessionEvent::Closed(reason)));
            self.forget(session);
        } else if slot.unacked.is_empty() && !slot.announced {
            // No core ever heard of it and it left nothing to deliver.
            self.forget(session);
        } else {
            slot.closed = Some(reason);
        }
    }

    /// Negotiation learned something about the client: the core hears it now if attached, and
    /// every later core at attach.
    pub fn client(&mut self, session: u64, client: ClientInfo) {
        let up = self.is_up();
        let Some(slot) = self.sessions.get_mut(&session) else {
            return;
        };
        if up && slot.announced {
            self.outbox.push(event(
                session,
                SessionEvent::Client(Box::new(client.clone())),
            ));
        }
        slot.client = client;
        self.kept.insert(session);
    }

    /// The link is attached: the snapshot to hand to the core at `attach`. Call `attached`
    /// once the core has accepted it.
    pub fn snapshots(&self) -> Vec<SessionSnapshot> {
        self.sessions
            .iter()
            .filter(|(_, slot)| slot.announced)
            .map(|(&session, slot)| SessionSnapshot {
                session,
                info: slot.info.clone(),
                state: slot.state.clone(),
                acked_seq: slot.acked_seq,
                client: slot.client.clone(),
            })
            .collect()
    }

    /// The core accepted `attach` with the snapshots from `snapshots`: queue what it has not
    /// seen yet, in order, and tell players the wait is over if they were told about it.
    pub fn attached(&mut self) {
        if let LinkState::Down { noticed: true, .. } = self.link {
            self.tell_everyone(BACK);
        }
        self.link = LinkState::Up {
            waiting_since: None,
            noticed: false,
        };
        let mut finished = Vec::new();
        for (&session, slot) in &mut self.sessions {
            if !slot.announced {
                self.outbox
                    .push(event(session, SessionEvent::Opened(slot.info.clone())));
                if slot.client != ClientInfo::default() {
                    self.outbox.push(event(
                        session,
                        SessionEvent::Client(Box::new(slot.client.clone())),
                    ));
                }
                slot.announced = true;
                self.kept.insert(session);
            }
            for (seq, text) in &slot.unacked {
                if *seq > slot.sent_seq {
                    self.outbox.push(event(
                        session,
                        SessionEvent::Line {
                            seq: *seq,
                            text: Cow::Owned(text.clone()),
                        },
                    ));
                }
            }
            slot.sent_seq = slot.next_seq - 1;
            if let Some(reason) = slot.closed.take() {
                self.outbox
                    .push(event(session, SessionEvent::Closed(reason)));
                finished.push(session);
            }
        }
        for session in finished {
            self.forget(session);
        }
    }

    /// The link is gone: whatever was sent and not acknowledged must go to the next core.
    pub fn detached(&mut self, now: Instant) {
        if let LinkState::Up {
            waiting_since,
            noticed,
        } = self.link
        {
            // A core that stopped answering and was then replaced is one gap, not two: it
            // started when the answers stopped, and is announced at most once.
            self.link = LinkState::Down {
                since: waiting_since.unwrap_or(now),
                noticed,
            };
        }
        let unsent = std::mem::take(&mut self.outbox);
        self.not_delivered(&unsent);
        for slot in self.sessions.values_mut() {
            slot.sent_seq = slot.acked_seq;
        }
    }

    /// A submitted batch may not have been taken (declined, or the link broke). Lines need nothing
    /// here (unacknowledged lines are resent anyway), but a session whose `Opened` was lost
    /// must be announced to the next core, or its player would never see the welcome.
    pub fn not_delivered(&mut self, batch: &[ProxyEvent<'_>]) {
        for submitted in batch {
            if let SessionEvent::Opened(_) = submitted.event
                && let Some(slot) = self.sessions.get_mut(&submitted.session)
            {
                slot.announced = false;
            }
        }
    }

    /// Events from the core, in order, as they arrive (`now`).
    pub fn delivered(&mut self, CoreEvent { session, delivery }: CoreEvent, now: Instant) {
        match delivery {
            Delivery::Ack(seq) => {
                if let Some(slot) = self.sessions.get_mut(&session) {
                    while slot.unacked.front().is_some_and(|(s, _)| *s <= seq) {
                        slot.unacked.pop_front();
                    }
                    let typed_at = &mut slot.watched.typed_at;
                    while let Some(&(typed, at)) = typed_at.front()
                        && typed <= seq
                    {
                        crate::metrics::global().answered(now.saturating_duration_since(at));
                        typed_at.pop_front();
                    }
                    slot.acked_seq = slot.acked_seq.max(seq);
                    slot.sent_seq = slot.sent_seq.max(slot.acked_seq);
                }
            }
            Delivery::State(state) => {
                if let Some(slot) = self.sessions.get_mut(&session) {
                    slot.state = state;
                    self.kept.insert(session);
                }
            }
            Delivery::Playing { character, fresh } => {
                if fresh {
                    crate::metrics::global().logged_in();
                }
                if let Some(slot) = self.sessions.get_mut(&session) {
                    slot.watched.character = Some(character);
                }
            }
            Delivery::LoginFailed => crate::metrics::global().login_failed(),
            Delivery::OrderDone { id, ok, said } => {
                self.answers.push(OrderAnswer { id, ok, said });
            }
            show => {
                if self.is_live(session) {
                    self.to_sessions.push((session, ToSession::Core(show)));
                }
            }
        }
    }

    /// The open sessions for the dashboard, at most `max` of them (the most recently active
    /// first). A walk over every session: for the dashboard's ticker, never for a line.
    pub fn overview(&self, now: Instant, max: usize) -> crate::dashboard::Overview {
        let mut rows: Vec<crate::dashboard::SessionRow> = self
            .sessions
            .iter()
            .filter(|(_, slot)| slot.closed.is_none())
            .map(|(&session, slot)| {
                let client = [&slot.client.client_name, &slot.client.client_version]
                    .into_iter()
                    .flatten()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(" ");
                crate::dashboard::SessionRow {
                    session,
                    transport: slot.info.transport.name(),
                    address: slot.info.remote_addr.clone(),
                    client,
                    character: slot.watched.character.clone(),
                    idle_s: slot
                        .watched
                        .last_line
                        .map(|at| now.saturating_duration_since(at).as_secs()),
                }
            })
            .collect();
        let total = rows.len();
        rows.sort_by_key(|row| (row.idle_s.is_none(), row.idle_s));
        rows.truncate(max);
        crate::dashboard::Overview { total, rows }
    }

    /// Who each logged-in session plays (see [`Watched::character`]).
    pub fn players(&self) -> Vec<(u64, String)> {
        self.sessions
            .iter()
            .filter_map(|(&session, slot)| Some((session, slot.watched.character.clone()?)))
            .collect()
    }

    /// Who sessions play, as a predecessor knew it ([`Relay::players`]).
    pub fn watch_players(&mut self, players: Vec<(u64, String)>) {
        for (session, character) in players {
            if let Some(slot) = self.sessions.get_mut(&session) {
                slot.watched.character = Some(character);
            }
        }
    }

    /// The session is gone from here for good.
    fn forget(&mut self, session: u64) {
        self.sessions.remove(&session);
    }

    /// Time passes: a gap longer than `NOTICE_AFTER` (no core, or a core that does not
    /// answer) is announced once.
    pub fn tick(&mut self, now: Instant) {
        let notice = match &mut self.link {
            LinkState::Down {
                since,
                noticed: noticed @ false,
            } if now.duration_since(*since) >= NOTICE_AFTER => {
                *noticed = true;
                RESTARTING
            }
            LinkState::Up {
                waiting_since: Some(since),
                noticed: noticed @ false,
            } if now.duration_since(*since) >= NOTICE_AFTER => {
                *noticed = true;
                NOT_ANSWERING
            }
            _ => return,
        };
        for (&session, slot) in &self.sessions {
            if slot.closed.is_none() {
                self.to_sessions
                    .push((session, ToSession::Notice(notice.to_string())));
            }
        }
    }

    /// Everything the relay knows, to carry it to another process. Times are carried as how
    /// long ago they were, since an `Instant` means nothing in another process.
    pub fn export(&self, now: Instant) -> RelayState {
        let ago = |at: Instant| now.saturating_duration_since(at);
        RelayState {
            sessions: self.sessions.clone(),
            link: match self.link {
                LinkState::Up {
                    waiting_since,
                    noticed,
                } => CarriedLink::Up {
                    waiting_for: waiting_since.map(ago),
                    noticed,
                },
                LinkState::Down { since, noticed } => CarriedLink::Down {
                    down_for: ago(since),
                    noticed,
                },
            },
            outbox: self.outbox.clone(),
            to_sessions: self.to_sessions.clone(),
        }
    }

    /// A relay that carries on from `state`, exported by another process.
    pub fn import(state: RelayState, now: Instant, max_queued_lines: usize) -> Relay {
        let at = |ago: Duration| now.checked_sub(ago).unwrap_or(now);
        Relay {
            sessions: state.sessions,
            link: match state.link {
                CarriedLink::Up {
                    waiting_for,
                    noticed,
                } => LinkState::Up {
                    waiting_since: waiting_for.map(at),
                    noticed,
                },
                CarriedLink::Down { down_for, noticed } => LinkState::Down {
                    since: at(down_for),
                    noticed,
                },
            },
            outbox: state.outbox,
            to_sessions: state.to_sessions,
            max_queued_lines,
            kept: BTreeSet::new(),
            answers: Vec::new(),
        }
    }

    /// The relay of a proxy that carries on after its predecessor died: the sessions as the
    /// keeper kept them, nothing waiting, no core attached yet (the next attach restores
    /// them in the core, which forgot them when the dead proxy's link closed).
    pub fn recovered(
        slots: impl IntoIterator<Item = (u64, KeptSlot)>,
        now: Instant,
        max_queued_lines: usize,
    ) -> Relay {
        let sessions = slots
            .into_iter()
            .map(|(session, kept)| {
                let slot = Slot {
                    info: kept.info,
                    client: kept.client,
                    state: kept.state,
                    next_seq: 1,
                    acked_seq: 0,
                    unacked: VecDeque::new(),
                    sent_seq: 0,
                    announced: kept.announced,
                    closed: None,
                    watched: Watched::default(),
                };
                (session, slot)
            })
            .collect();
        Relay {
            sessions,
            link: LinkState::Down {
                since: now,
                noticed: false,
            },
            outbox: Vec::new(),
            to_sessions: Vec::new(),
            max_queued_lines,
            kept: BTreeSet::new(),
            answers: Vec::new(),
        }
    }

    /// What changed for the keeper since the last call.
    pub fn take_kept(&mut self) -> Vec<(u64, KeptSlot)> {
        let changed = std::mem::take(&mut self.kept);
        changed
            .into_iter()
            .filter_map(|session| {
                let slot = self.sessions.get(&session)?;
                Some((
                    session,
                    KeptSlot {
                        info: slot.info.clone(),
                        client: slot.client.clone(),
                        state: slot.state.clone(),
                        announced: slot.announced,
                    },
                ))
            })
            .collect()
    }

    /// Every session is to be told to the keeper again (a new keeper set).
    pub fn keep_all(&mut self) {
        self.kept.extend(self.sessions.keys().copied());
    }

    /// The next `submit` batch (empty: nothing to send).
    pub fn take_submits(&mut self) -> Vec<ProxyEvent<'static>> {
        std::mem::take(&mut self.outbox)
    }

    /// Sends an operator's order to the core with the next batch; its answer comes back
    /// through [`Relay::take_answers`]. Refused while no core is attached, rather than kept:
    /// an operator who kicks someone wants it done now or to hear why not.
    pub fn order(&mut self, order: Order) -> Result<(), NoCore> {
        if !self.is_up() {
            return Err(NoCore);
        }
        self.outbox.push(ProxyEvent {
            session: 0,
            event: SessionEvent::Order(Box::new(order)),
        });
        Ok(())
    }

    /// The answers to orders that came in since the last call.
    pub fn take_answers(&mut self) -> Vec<OrderAnswer> {
        std::mem::take(&mut self.answers)
    }

    /// Messages for player connections produced since the last call.
    pub fn take_for_sessions(&mut self) -> Vec<(u64, ToSession)> {
        std::mem::take(&mut self.to_sessions)
    }

    fn is_live(&self, session: u64) -> bool {
        self.sessions
            .get(&session)
            .is_some_and(|slot| slot.closed.is_none())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> SessionInfo {
        SessionInfo {
            transport: tether_protocol::message::Transport::Telnet,
            remote_addr: "127.0.0.1:5000".into(),
        }
    }

    fn up_relay(now: Instant) -> Relay {
        let mut relay = Relay::new(now, 3);
        assert!(relay.snapshots().is_empty());
        relay.attached();
        relay
    }

    fn line_texts(submits: &[ProxyEvent<'_>]) -> Vec<(u64, String)> {
        submits
            .iter()
            .filter_map(|s| match &s.event {
                SessionEvent::Line { seq, text } => Some((*seq, text.to_string())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn lines_go_straight_out_while_attached() {
        let now = Instant::now();
        let mut relay = up_relay(now);
        relay.opened(1, info());
        assert_eq!(relay.line(1, "look".into(), Instant::now()), Ok(1));
        assert_eq!(relay.line(1, "say hi".into(), Instant::now()), Ok(2));
        let submits = relay.take_submits();
        assert_eq!(submits[0], event(1, SessionEvent::Opened(info())));
        assert_eq!(
            line_texts(&submits),
            vec![(1, "look".into()), (2, "say hi".into())]
        );
        assert!(relay.take_submits().is_empty());
    }

    #[test]
    fn unacknowledged_lines_are_resent_in_order_to_the_next_core() {
        let now = Instant::now();
        let mut relay = up_relay(now);
        relay.opened(1, info());
        relay.line(1, "one".into(), Instant::now()).unwrap();
        relay.line(1, "two".into(), Instant::now()).unwrap();
        relay.take_submits();
        relay.delivered(
            CoreEvent {
                session: 1,
                delivery: Delivery::Ack(1),
            },
            Instant::now(),
        );
        relay.detached(now);
        relay.line(1, "three".into(), Instant::now()).unwrap();
        assert!(
            relay.take_submits().is_empty(),
            "nothing is sent while down"
        );

        let snaps = relay.snapshots();
        assert_eq!(snaps.len(), 1);
        assert_eq!(snaps[0].acked_seq, 1);
        relay.attached();
        assert_eq!(
            line_texts(&relay.take_submits()),
            vec![(2, "two".into()), (3, "three".into())]
        );
    }

    #[test]
    fn state_blob_travels_in_the_snapshot() {
        let now = Instant::now();
        let mut relay = up_relay(now);
        relay.opened(7, info());
        relay.take_submits();
        relay.delivered(
            CoreEvent {
                session: 7,
                delivery: Delivery::State(b"char=3".to_vec()),
            },
            Instant::now(),
        );
        relay.detached(now);
        assert_eq!(relay.snapshots()[0].state, b"char=3".to_vec());
    }

    #[test]
    fn queue_bound_refuses_with_a_reason_instead_of_dropping() {
        let now = Instant::now();
        let mut relay = up_relay(now);
        relay.opened(1, info());
        relay.detached(now);
        for i in 0..3 {
            relay.line(1, format!("l{i}"), Instant::now()).unwrap();
        }
        assert_eq!(
            relay.line(1, "l3".into(), Instant::now()),
            Err(Refused::QueueFull { limit: 3 })
        );
        relay.attached();
        assert_eq!(line_texts(&relay.take_submits()).len(), 3);
    }

    #[test]
    fn an_attached_core_takes_a_paste_longer_than_the_queue() {
        let now = Instant::now();
        let mut relay = up_relay(now);
        relay.opened(1, info());
        // 3 is this relay's queue bound; a core is attached, so many more may be in flight.
        for i in 0..30 {
            relay.line(1, format!("l{i}"), Instant::now()).unwrap();
        }
        assert_eq!(
            relay.line(1, "one too many".into(), Instant::now()),
            Err(Refused::QueueFull {
                limit: 3 * IN_FLIGHT_FACTOR
            })
        );
        assert_eq!(line_texts(&relay.take_submits()).len(), 30);
        // Once the link drops, nothing more queues until the backlog is under the bound.
        relay.detached(now);
        assert_eq!(
            relay.line(1, "later".into(), Instant::now()),
            Err(Refused::QueueFull { limit: 3 })
        );
    }

    #[test]
    fn sessions_that_opened_during_the_gap_are_announced_not_restored() {
        let now = Instant::now();
        let mut relay = Relay::new(now, 10);
        relay.opened(4, info());
        relay
            .line(4, "create bob secret1".into(), Instant::now())
            .unwrap();
        assert!(relay.snapshots().is_empty());
        relay.attached();
        let submits = relay.take_submits();
        assert_eq!(submits[0], event(4, SessionEvent::Opened(info())));
        assert_eq!(line_texts(&submits), vec![(1, "create bob secret1".into())]);
    }

    #[test]
    fn a_session_whose_opening_was_lost_is_announced_to_the_next_core() {
        let now = Instant::now();
        let mut relay = up_relay(now);
        relay.opened(2, info());
        let batch = relay.take_submits();
        relay.not_delivered(&batch);
        relay.detached(now);
        assert!(relay.snapshots().is_empty(), "not restored silently");
        relay.attached();
        assert_eq!(
            relay.take_submits(),
            vec![event(2, SessionEvent::Opened(info()))]
        );
    }

    #[test]
    fn an_opening_queued_but_never_sent_is_announced_to_the_next_core() {
        let now = Instant::now();
        let mut relay = up_relay(now);
        relay.opened(3, info());
        relay.detached(now);
        relay.attached();
        assert_eq!(
            relay.take_submits(),
            vec![event(3, SessionEvent::Opened(info()))]
        );
    }

    #[test]
    fn client_info_reaches_the_core_now_and_every_later_core() {
        let now = Instant::now();
        let mut relay = up_relay(now);
        relay.opened(1, info());
        relay.take_submits();
        let client = ClientInfo {
            client_name: Some("TINTIN++".into()),
            width: Some(120),
            ..ClientInfo::default()
        };
        relay.client(1, client.clone());
        assert_eq!(
            relay.take_submits(),
            vec![event(1, SessionEvent::Client(Box::new(client.clone())))]
        );
        relay.detached(now);
        assert_eq!(relay.snapshots()[0].client, client);
    }

    #[test]
    fn a_session_closed_during_the_gap_still_delivers_its_lines_then_closes() {
        let now = Instant::now();
        let mut relay = up_relay(now);
        relay.opened(1, info());
        relay.take_submits();
        relay.detached(now);
        relay.line(1, "say bye".into(), Instant::now()).unwrap();
        relay.closed(1, "eof".into());
        relay.attached();
        let submits = relay.take_submits();
        assert_eq!(line_texts(&submits), vec![(1, "say bye".into())]);
        assert_eq!(
            submits.last(),
            Some(&event(1, SessionEvent::Closed("eof".into())))
        );
        assert_eq!(relay.session_count(), 0);
    }

    #[test]
    fn short_gaps_are_silent_long_gaps_are_announced_once() {
        let start = Instant::now();
        let mut relay = up_relay(start);
        relay.opened(1, info());
        relay.take_submits();
        relay.detached(start);
        relay.tick(start + Duration::from_millis(500));
        assert!(relay.take_for_sessions().is_empty());
        relay.tick(start + NOTICE_AFTER);
        relay.tick(start + NOTICE_AFTER * 2);
        let notices = relay.take_for_sessions();
        assert_eq!(notices.len(), 1);
        relay.attached();
        assert_eq!(
            relay.take_for_sessions(),
            vec![(1, ToSession::Notice("The game is back.".into()))]
        );

        relay.detached(start);
        relay.attached();
        assert!(relay.take_for_sessions().is_empty(), "short gap: silent");
    }

    #[test]
    fn a_core_that_stops_answering_is_announced_once_across_its_replacement() {
        let start = Instant::now();
        let mut relay = up_relay(start);
        relay.opened(1, info());
        relay.line(1, "fault hang".into(), Instant::now()).unwrap();
        relay.take_submits();
        relay.submitted(start);
        assert_eq!(relay.health(start), CoreHealth::Answering);
        relay.tick(start + Duration::from_millis(1500));
        assert!(
            relay.take_for_sessions().is_empty(),
            "a short wait is silent"
        );

        relay.tick(start + NOTICE_AFTER);
        relay.tick(start + NOTICE_AFTER * 2);
        assert_eq!(
            relay.take_for_sessions(),
            vec![(1, ToSession::Notice(NOT_ANSWERING.into()))]
        );
        assert_eq!(
            relay.health(start + NOTICE_AFTER * 2),
            CoreHealth::NotAnswering(NOTICE_AFTER * 2)
        );

        // The hung core is killed: the gap goes on, without a second notice.
        let killed = start + Duration::from_secs(5);
        relay.detached(killed);
        relay.tick(killed + NOTICE_AFTER);
        assert!(relay.take_for_sessions().is_empty());
        assert_eq!(
            relay.health(killed),
            CoreHealth::Detached(Duration::from_secs(5))
        );
        relay.attached();
        assert_eq!(
            relay.take_for_sessions(),
            vec![(1, ToSession::Notice(BACK.into()))]
        );
        assert_eq!(
            line_texts(&relay.take_submits()),
            vec![(1, "fault hang".into())]
        );
    }

    #[test]
    fn a_slow_answer_that_comes_is_followed_by_the_game_is_back() {
        let start = Instant::now();
        let mut relay = up_relay(start);
        relay.opened(1, info());
        relay.submitted(start);
        relay.answered();
        relay.tick(start + NOTICE_AFTER * 2);
        assert!(relay.take_for_sessions().is_empty(), "answered in time");

        relay.submitted(start);
        relay.tick(start + NOTICE_AFTER);
        relay.answered();
        assert_eq!(
            relay.take_for_sessions(),
            vec![
                (1, ToSession::Notice(NOT_ANSWERING.into())),
                (1, ToSession::Notice(BACK.into()))
            ]
        );
    }

    #[test]
    fn output_and_disconnect_are_routed_to_live_sessions_only() {
        let now = Instant::now();
        let mut relay = up_relay(now);
        relay.opened(1, info());
        relay.delivered(
            CoreEvent {
                session: 1,
                delivery: Delivery::Output("hello".into()),
            },
            Instant::now(),
        );
        relay.delivered(
            CoreEvent {
                session: 99,
                delivery: Delivery::Output("nobody".into()),
            },
            Instant::now(),
        );
        relay.delivered(
            CoreEvent {
                session: 1,
                delivery: Delivery::Disconnect("Goodbye.".into()),
            },
            Instant::now(),
        );
        assert_eq!(
            relay.take_for_sessions(),
            vec![
                (1, ToSession::Core(Delivery::Output("hello".into()))),
                (1, ToSession::Core(Delivery::Disconnect("Goodbye.".into())))
            ]
        );
    }

    #[test]
    fn an_ack_for_a_line_already_resent_does_not_resend_it_again() {
        let now = Instant::now();
        let mut relay = up_relay(now);
        relay.opened(1, info());
        relay.line(1, "a".into(), Instant::now()).unwrap();
        relay.line(1, "b".into(), Instant::now()).unwrap();
        relay.take_submits();
        relay.delivered(
            CoreEvent {
                session: 1,
                delivery: Delivery::Ack(2),
            },
            Instant::now(),
        );
        relay.detached(now);
        relay.attached();
        assert!(line_texts(&relay.take_submits()).is_empty());
    }
}
