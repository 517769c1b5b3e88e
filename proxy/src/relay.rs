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

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// How long a core may be away before players are told; shorter gaps print nothing.
pub const NOTICE_AFTER: Duration = Duration::from_secs(2);
/// Lines one session may have waiting for a core (sent but unacknowledged, or queued).
pub const DEFAULT_MAX_QUEUED_LINES: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    pub transport: String,
    pub remote_addr: String,
}

/// What negotiation learned about a player's client; the core gets it and every new core
/// gets it again at attach. Unknown text is empty, unknown numbers are 0.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientInfo {
    pub client_name: String,
    pub client_version: String,
    pub terminal_type: String,
    pub mtts: u32,
    pub width: u16,
    pub height: u16,
    pub charset: String,
    pub screen_reader: bool,
    pub gmcp: bool,
}

/// A player's display settings, chosen in game and kept by the proxy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DisplayPrefs {
    pub wrap: bool,
    /// `None`: what the client announced.
    pub color: Option<tether_protocol::markup::ColorDepth>,
}

/// An event for the core, in a `submit` batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submit {
    Opened {
        session: u64,
        info: SessionInfo,
    },
    Line {
        session: u64,
        seq: u64,
        text: String,
    },
    Closed {
        session: u64,
        reason: String,
    },
    Client {
        session: u64,
        client: ClientInfo,
    },
}

/// A session as handed to a newly attached core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub session: u64,
    pub info: SessionInfo,
    pub state: Vec<u8>,
    pub acked_seq: u64,
    pub client: ClientInfo,
}

/// An event from the core, in a `deliver` batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivered {
    Ack {
        session: u64,
        seq: u64,
    },
    State {
        session: u64,
        state: Vec<u8>,
    },
    /// Something for the player's connection.
    Show {
        session: u64,
        message: ToSession,
    },
}

/// What the shell must do to a player's connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToSession {
    /// Game text from the core, in markup.
    Output(String),
    /// A prompt in markup: no line end, then EOR or GA.
    Prompt(String),
    /// A message from tether itself (shown as such, never from a player).
    Notice(String),
    /// Stop (true) or resume (false) the client's local echo.
    HideInput(bool),
    Gmcp {
        package: String,
        json: String,
    },
    Display(DisplayPrefs),
    /// Show the reason and close.
    Disconnect(String),
}

/// Why a line was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    QueueFull { limit: usize },
    UnknownSession,
}

#[derive(Debug)]
struct Slot {
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

#[derive(Debug)]
pub struct Relay {
    sessions: BTreeMap<u64, Slot>,
    link: LinkState,
    outbox: Vec<Submit>,
    to_sessions: Vec<(u64, ToSession)>,
    max_queued_lines: usize,
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

    pub fn opened(&mut self, session: u64, info: SessionInfo) {
        let announced = self.is_up();
        if announced {
            self.outbox.push(Submit::Opened {
                session,
                info: info.clone(),
            });
        }
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
            },
        );
    }

    /// A player typed a line. Returns its sequence number, or why it was refused (the caller
    /// tells the player: a refused line is never silently dropped).
    pub fn line(&mut self, session: u64, text: String) -> Result<u64, Refused> {
        let up = self.is_up();
        let slot = self
            .sessions
            .get_mut(&session)
            .ok_or(Refused::UnknownSession)?;
        if slot.unacked.len() >= self.max_queued_lines {
            return Err(Refused::QueueFull {
                limit: self.max_queued_lines,
            });
        }
        let seq = slot.next_seq;
        slot.next_seq += 1;
        if up {
            self.outbox.push(Submit::Line {
                session,
                seq,
                text: text.clone(),
            });
            slot.sent_seq = seq;
        }
        slot.unacked.push_back((seq, text));
        Ok(seq)
    }

    pub fn closed(&mut self, session: u64, reason: String) {
        let up = self.is_up();
        let Some(slot) = self.sessions.get_mut(&session) else {
            return;
        };
        if up {
            self.outbox.push(Submit::Closed { session, reason });
            self.sessions.remove(&session);
        } else if slot.unacked.is_empty() && !slot.announced {
            // No core ever heard of it and it left nothing to deliver.
            self.sessions.remove(&session);
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
            self.outbox.push(Submit::Client {
                session,
                client: client.clone(),
            });
        }
        slot.client = client;
    }

    /// The link is attached: the snapshot to hand to the core at `attach`. Call `attached`
    /// once the core has accepted it.
    pub fn snapshots(&self) -> Vec<Snapshot> {
        self.sessions
            .iter()
            .filter(|(_, slot)| slot.announced)
            .map(|(&session, slot)| Snapshot {
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
                self.outbox.push(Submit::Opened {
                    session,
                    info: slot.info.clone(),
                });
                if slot.client != ClientInfo::default() {
                    self.outbox.push(Submit::Client {
                        session,
                        client: slot.client.clone(),
                    });
                }
                slot.announced = true;
            }
            for (seq, text) in &slot.unacked {
                if *seq > slot.sent_seq {
                    self.outbox.push(Submit::Line {
                        session,
                        seq: *seq,
                        text: text.clone(),
                    });
                }
            }
            slot.sent_seq = slot.next_seq - 1;
            if let Some(reason) = slot.closed.take() {
                self.outbox.push(Submit::Closed { session, reason });
                finished.push(session);
            }
        }
        for session in finished {
            self.sessions.remove(&session);
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
    pub fn not_delivered(&mut self, batch: &[Submit]) {
        for submit in batch {
            if let Submit::Opened { session, .. } = submit
                && let Some(slot) = self.sessions.get_mut(session)
            {
                slot.announced = false;
            }
        }
    }

    /// Events from the core, in order.
    pub fn delivered(&mut self, event: Delivered) {
        match event {
            Delivered::Ack { session, seq } => {
                if let Some(slot) = self.sessions.get_mut(&session) {
                    while slot.unacked.front().is_some_and(|(s, _)| *s <= seq) {
                        slot.unacked.pop_front();
                    }
                    slot.acked_seq = slot.acked_seq.max(seq);
                    slot.sent_seq = slot.sent_seq.max(slot.acked_seq);
                }
            }
            Delivered::State { session, state } => {
                if let Some(slot) = self.sessions.get_mut(&session) {
                    slot.state = state;
                }
            }
            Delivered::Show { session, message } => {
                if self.is_live(session) {
                    self.to_sessions.push((session, message));
                }
            }
        }
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

    /// The next `submit` batch (empty: nothing to send).
    pub fn take_submits(&mut self) -> Vec<Submit> {
        std::mem::take(&mut self.outbox)
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
            transport: "telnet".into(),
            remote_addr: "127.0.0.1:5000".into(),
        }
    }

    fn up_relay(now: Instant) -> Relay {
        let mut relay = Relay::new(now, 3);
        assert!(relay.snapshots().is_empty());
        relay.attached();
        relay
    }

    fn line_texts(submits: &[Submit]) -> Vec<(u64, String)> {
        submits
            .iter()
            .filter_map(|s| match s {
                Submit::Line { seq, text, .. } => Some((*seq, text.clone())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn lines_go_straight_out_while_attached() {
        let now = Instant::now();
        let mut relay = up_relay(now);
        relay.opened(1, info());
        assert_eq!(relay.line(1, "look".into()), Ok(1));
        assert_eq!(relay.line(1, "say hi".into()), Ok(2));
        let submits = relay.take_submits();
        assert_eq!(
            submits[0],
            Submit::Opened {
                session: 1,
                info: info()
            }
        );
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
        relay.line(1, "one".into()).unwrap();
        relay.line(1, "two".into()).unwrap();
        relay.take_submits();
        relay.delivered(Delivered::Ack { session: 1, seq: 1 });
        relay.detached(now);
        relay.line(1, "three".into()).unwrap();
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
        relay.delivered(Delivered::State {
            session: 7,
            state: b"char=3".to_vec(),
        });
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
            relay.line(1, format!("l{i}")).unwrap();
        }
        assert_eq!(
            relay.line(1, "l3".into()),
            Err(Refused::QueueFull { limit: 3 })
        );
        relay.attached();
        assert_eq!(line_texts(&relay.take_submits()).len(), 3);
    }

    #[test]
    fn sessions_that_opened_during_the_gap_are_announced_not_restored() {
        let now = Instant::now();
        let mut relay = Relay::new(now, 10);
        relay.opened(4, info());
        relay.line(4, "create bob secret1".into()).unwrap();
        assert!(relay.snapshots().is_empty());
        relay.attached();
        let submits = relay.take_submits();
        assert_eq!(
            submits[0],
            Submit::Opened {
                session: 4,
                info: info()
            }
        );
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
            vec![Submit::Opened {
                session: 2,
                info: info()
            }]
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
            vec![Submit::Opened {
                session: 3,
                info: info()
            }]
        );
    }

    #[test]
    fn client_info_reaches_the_core_now_and_every_later_core() {
        let now = Instant::now();
        let mut relay = up_relay(now);
        relay.opened(1, info());
        relay.take_submits();
        let client = ClientInfo {
            client_name: "TINTIN++".into(),
            width: 120,
            ..ClientInfo::default()
        };
        relay.client(1, client.clone());
        assert_eq!(
            relay.take_submits(),
            vec![Submit::Client {
                session: 1,
                client: client.clone()
            }]
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
        relay.line(1, "say bye".into()).unwrap();
        relay.closed(1, "eof".into());
        relay.attached();
        let submits = relay.take_submits();
        assert_eq!(line_texts(&submits), vec![(1, "say bye".into())]);
        assert_eq!(
            submits.last(),
            Some(&Submit::Closed {
                session: 1,
                reason: "eof".into()
            })
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
        relay.line(1, "fault hang".into()).unwrap();
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
        relay.delivered(Delivered::Show {
            session: 1,
            message: ToSession::Output("hello".into()),
        });
        relay.delivered(Delivered::Show {
            session: 99,
            message: ToSession::Output("nobody".into()),
        });
        relay.delivered(Delivered::Show {
            session: 1,
            message: ToSession::Disconnect("Goodbye.".into()),
        });
        assert_eq!(
            relay.take_for_sessions(),
            vec![
                (1, ToSession::Output("hello".into())),
                (1, ToSession::Disconnect("Goodbye.".into()))
            ]
        );
    }

    #[test]
    fn an_ack_for_a_line_already_resent_does_not_resend_it_again() {
        let now = Instant::now();
        let mut relay = up_relay(now);
        relay.opened(1, info());
        relay.line(1, "a".into()).unwrap();
        relay.line(1, "b".into()).unwrap();
        relay.take_submits();
        relay.delivered(Delivered::Ack { session: 1, seq: 2 });
        relay.detached(now);
        relay.attached();
        assert!(line_texts(&relay.take_submits()).is_empty());
    }
}
