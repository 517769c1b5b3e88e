//! The game rules as a plain state machine: events go in, [`Outbox`] entries come out.
//!
//! Nothing here touches a socket, a clock or a thread, so the shell can drive it however it
//! likes and tests can drive it directly. The only slow operation, password hashing, leaves
//! as a [`PasswordJob`] and comes back through [`Game::password_done`].
//!
//! Durable state lives in the database and in the per-session blob the proxy keeps for us
//! ([`Outgoing::State`]); everything in a `Game` can be rebuilt from those two, which is what
//! makes a core restart invisible to players.

mod commands;
mod login;
mod msg;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};
use tether_protocol::SessionKey;

use crate::db::{CharacterRecord, Db};
use crate::password::Work;
pub use crate::password::{PasswordDone, PasswordJob};
use crate::world::World;

/// Lines a session may send while its password job runs; past that it is disconnected rather
/// than letting one client grow the game's memory without bound.
const MAX_QUEUED_LINES: usize = 256;

/// Something to deliver to one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    /// Text for the player; lines are separated by `\n`, the last one has no line end.
    Text(String),
    /// An opaque blob for the proxy to keep and hand back with the session after a restart.
    State(Vec<u8>),
    /// Every line up to and including this sequence number has been handled.
    Ack(u64),
    /// Close the connection after showing this reason.
    Disconnect(String),
}

/// Something only the shell can do, asked for by an administrator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminRequest {
    Reload,
    Shutdown,
}

/// What handling one event produced, in order per session.
#[derive(Debug, Default)]
pub struct Outbox {
    pub events: Vec<(SessionKey, Outgoing)>,
    pub jobs: Vec<PasswordJob>,
    /// With the session that asked, so the shell can tell it how the request went.
    pub requests: Vec<(SessionKey, AdminRequest)>,
}

impl Outbox {
    pub fn new() -> Outbox {
        Outbox::default()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.jobs.is_empty() && self.requests.is_empty()
    }

    fn push(&mut self, key: SessionKey, event: Outgoing) {
        self.events.push((key, event));
    }

    fn text(&mut self, key: SessionKey, text: impl Into<String>) {
        self.push(key, Outgoing::Text(text.into()));
    }
}

/// The blob the proxy keeps for a logged-in session.
#[derive(Serialize, Deserialize)]
struct StateBlob {
    character: i64,
}

#[derive(Debug, Clone)]
struct Player {
    id: i64,
    name: String,
    room: String,
    title: String,
    is_admin: bool,
}

struct Session {
    player: Option<Player>,
    /// We told the proxy to disconnect; further lines are acknowledged and ignored.
    closing: bool,
    pending: Option<Pending>,
    queue: VecDeque<(u64, String)>,
}

impl Session {
    fn new(player: Option<Player>) -> Session {
        Session {
            player,
            closing: false,
            pending: None,
            queue: VecDeque::new(),
        }
    }
}

/// A password job in flight, and what to do when it returns.
struct Pending {
    ticket: u64,
    seq: u64,
    purpose: Purpose,
}

enum Purpose {
    Create { name: String },
    Connect { character_id: Option<i64> },
}

pub struct Game {
    world: World,
    db: Db,
    sessions: BTreeMap<SessionKey, Session>,
    /// Tells a job's result apart from that of an older job for the same session key.
    next_ticket: u64,
}

impl Game {
    pub fn new(world: World, db: Db) -> Game {
        Game {
            world,
            db,
            sessions: BTreeMap::new(),
            next_ticket: 1,
        }
    }

    pub fn world(&self) -> &World {
        &self.world
    }

    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    pub fn session_opened(&mut self, key: SessionKey, remote_addr: &str, out: &mut Outbox) {
        tracing::info!(?key, remote_addr, "session opened");
        if self.sessions.insert(key, Session::new(None)).is_some() {
            tracing::warn!(?key, "session opened twice; starting it over");
        }
        out.text(key, msg::banner(self.world.name()));
    }

    pub fn session_restored(&mut self, key: SessionKey, state: &[u8], out: &mut Outbox) {
        let player = self.player_from_blob(key, state);
        if let Some(player) = &player {
            // Only possible if the proxy lost track of a takeover; the restored session wins.
            if let Some(other) = self.session_of(player.id).filter(|k| *k != key) {
                self.detach(other, out);
            }
        }
        tracing::debug!(?key, logged_in = player.is_some(), "session restored");
        self.sessions.insert(key, Session::new(player));
    }

    pub fn session_closed(&mut self, key: SessionKey, out: &mut Outbox) {
        let Some(session) = self.sessions.remove(&key) else {
            return;
        };
        if let Some(player) = session.player {
            tracing::info!(?key, name = %player.name, "left the game");
            self.tell_room(&player.room, key, &msg::left_game(&player.name), out);
        } else {
            tracing::info!(?key, "session closed");
        }
    }

    pub fn proxy_detached(&mut self, proxy: u64) {
        let before = self.sessions.len();
        self.sessions.retain(|key, _| key.proxy != proxy);
        tracing::info!(
            proxy,
            sessions = before - self.sessions.len(),
            "proxy detached"
        );
    }

    pub fn line(&mut self, key: SessionKey, seq: u64, text: &str, out: &mut Outbox) {
        let session = self.sessions.entry(key).or_insert_with(|| {
            tracing::warn!(
                ?key,
                "line for an unknown session; treating it as a new one"
            );
            Session::new(None)
        });
        if session.pending.is_none() && session.queue.is_empty() {
            self.handle_line(key, seq, text, out);
        } else if session.closing {
            // Disconnecting after an overflow: the rest of the input is moot.
        } else if session.queue.len() < MAX_QUEUED_LINES {
            session.queue.push_back((seq, text.to_owned()));
        } else {
            tracing::warn!(?key, "input queue overflow while logging in; disconnecting");
            session.closing = true;
            session.queue.clear();
            out.push(key, Outgoing::Disconnect(msg::too_much_input().to_owned()));
        }
    }

    pub fn password_done(&mut self, done: PasswordDone, out: &mut Outbox) {
        let key = done.key;
        let Some(session) = self.sessions.get_mut(&key) else {
            tracing::debug!(?key, "password result for a session that is gone");
            return;
        };
        if session
            .pending
            .as_ref()
            .is_none_or(|p| p.ticket != done.ticket)
        {
            tracing::debug!(?key, "stale password result ignored");
            return;
        }
        let Some(pending) = session.pending.take() else {
            return;
        };
        if !session.closing {
            login::finish(self, key, pending.purpose, done.outcome, out);
        }
        out.push(key, Outgoing::Ack(pending.seq));
        self.drain_queue(key, out);
    }

    fn handle_line(&mut self, key: SessionKey, seq: u64, text: &str, out: &mut Outbox) {
        let Some(session) = self.sessions.get(&key) else {
            return;
        };
        if !session.closing {
            if session.player.is_some() {
                commands::play(self, key, text, out);
            } else {
                login::guest(self, key, seq, text, out);
            }
        }
        // A line that started a password job is acknowledged when the job is done.
        let waiting = self.sessions.get(&key).is_some_and(|s| s.pending.is_some());
        if !waiting {
            out.push(key, Outgoing::Ack(seq));
        }
    }

    fn drain_queue(&mut self, key: SessionKey, out: &mut Outbox) {
        loop {
            let Some(session) = self.sessions.get_mut(&key) else {
                return;
            };
            if session.pending.is_some() {
                return;
            }
            let Some((seq, text)) = session.queue.pop_front() else {
                return;
            };
            self.handle_line(key, seq, &text, out);
        }
    }

    fn start_job(
        &mut self,
        key: SessionKey,
        seq: u64,
        purpose: Purpose,
        work: Work,
        out: &mut Outbox,
    ) {
        let Some(session) = self.sessions.get_mut(&key) else {
            return;
        };
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        session.pending = Some(Pending {
            ticket,
            seq,
            purpose,
        });
        out.jobs.push(PasswordJob { key, ticket, work });
    }

    fn player_from_blob(&mut self, key: SessionKey, state: &[u8]) -> Option<Player> {
        if state.is_empty() {
            return None;
        }
        let blob: StateBlob = match serde_json::from_slice(state) {
            Ok(blob) => blob,
            Err(error) => {
                tracing::warn!(?key, %error, "unreadable session state; session is logged out");
                return None;
            }
        };
        match self.db.character(blob.character) {
            Ok(Some(record)) => Some(self.player_from_record(record)),
            Ok(None) => {
                tracing::warn!(
                    ?key,
                    id = blob.character,
                    "restored character no longer exists"
                );
                None
            }
            Err(error) => {
                tracing::error!(?key, error = %chain(&error), "cannot load restored character");
                None
            }
        }
    }

    /// Builds the in-game player, moving it to the start room if its room left the world.
    fn player_from_record(&mut self, record: CharacterRecord) -> Player {
        let mut room = record.room;
        if self.world.room(&room).is_none() {
            let start = self.world.start().to_owned();
            tracing::info!(name = %record.name, %room, %start, "room is gone; moving to start");
            if let Err(error) = self.db.set_room(record.id, &start) {
                tracing::error!(error = %chain(&error), "cannot save the move to the start room");
            }
            room = start;
        }
        Player {
            id: record.id,
            name: record.name,
            room,
            title: record.title,
            is_admin: record.is_admin,
        }
    }

    /// Takes a character away from a session that is being replaced by another one.
    fn detach(&mut self, key: SessionKey, out: &mut Outbox) {
        let Some(session) = self.sessions.get_mut(&key) else {
            return;
        };
        session.player = None;
        if !session.closing {
            session.closing = true;
            out.push(
                key,
                Outgoing::Disconnect(msg::logged_in_elsewhere().to_owned()),
            );
        }
    }

    fn player(&self, key: SessionKey) -> Option<&Player> {
        self.sessions.get(&key)?.player.as_ref()
    }

    fn player_mut(&mut self, key: SessionKey) -> Option<&mut Player> {
        self.sessions.get_mut(&key)?.player.as_mut()
    }

    /// The session playing a character, if any.
    fn session_of(&self, character_id: i64) -> Option<SessionKey> {
        self.sessions
            .iter()
            .find(|(_, s)| s.player.as_ref().is_some_and(|p| p.id == character_id))
            .map(|(key, _)| *key)
    }

    /// Players in the game who are not on their way out, sorted by name.
    fn active_players(&self) -> Vec<(SessionKey, &Player)> {
        let mut players: Vec<_> = self
            .sessions
            .iter()
            .filter(|(_, s)| !s.closing)
            .filter_map(|(key, s)| Some((*key, s.player.as_ref()?)))
            .collect();
        players.sort_by(|a, b| a.1.name.cmp(&b.1.name));
        players
    }

    fn tell_room(&self, room: &str, except: SessionKey, text: &str, out: &mut Outbox) {
        for (key, player) in self.active_players() {
            if key != except && player.room == room {
                out.text(key, text);
            }
        }
    }
}

/// An error with its causes, for logs that only show `Display`.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Splits off the first word; the rest comes back trimmed.
fn split_word(text: &str) -> (&str, &str) {
    let text = text.trim();
    match text.split_once(char::is_whitespace) {
        Some((word, rest)) => (word, rest.trim()),
        None => (text, ""),
    }
}
