//! The game rules as a plain state machine: events go in, [`Outbox`] entries come out.
//!
//! Nothing here touches a socket, a clock or a thread, so the shell can drive it however it
//! likes and tests can drive it directly. The only slow operation, password hashing, leaves
//! as a [`PasswordJob`] and comes back through [`Game::password_done`].
//!
//! Durable state lives in the database and in the per-session blob the proxy keeps for us
//! ([`Delivery::State`]); everything in a `Game` can be rebuilt from those two, which is what
//! makes a core restart invisible to players.

mod admin_commands;
pub(crate) mod builtin;
mod clock;
pub(crate) mod gmcp;
mod login;
pub(crate) mod moderation;
mod msg;
pub(crate) mod names;
mod roster;
mod throttle;

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tether_protocol::SessionKey;
use tether_protocol::markup::ColorDepth;
use tether_protocol::message::{ClientInfo, Delivery, DisplayPrefs, MsspVariable};
use tether_protocol::witness::{LineId, Witness};

use crate::api::{Access, Args, CommandError, Ctx, Event, NotSaved, Rules, Who};
use crate::db::{CharacterRecord, Db, DbError};
use crate::password::Work;
pub use crate::password::{PasswordDone, PasswordJob};
use crate::world::World;
use roster::Roster;

thread_local! {
    /// Set while a command runs inside `catch_unwind`: a panic then is that command's, and the
    /// game survives it.
    static IN_COMMAND: Cell<bool> = const { Cell::new(false) };
}

/// Whether a panic on this thread, now, would be caught by a command's isolation. Any other
/// panic is the engine's own bug (see the core's panic hook in `main.rs`).
pub fn panic_is_isolated() -> bool {
    IN_COMMAND.with(Cell::get)
}

/// Lines a session may send while its password job runs; past that it is disconnected rather
/// than letting one client grow the game's memory without bound.
const MAX_QUEUED_LINES: usize = 256;

/// The word players type in `config color <word>` for a colour choice (`None`: what the
/// client says it can show), also how the database stores it.
pub fn color_word(color: Option<ColorDepth>) -> &'static str {
    match color {
        None => "auto",
        Some(ColorDepth::None) => "none",
        Some(ColorDepth::Ansi16) => "16",
        Some(ColorDepth::Ansi256) => "256",
        Some(ColorDepth::TrueColor) => "truecolor",
    }
}

/// Reads [`color_word`] and a few spellings players are likely to try: the colour choice, or
/// `None` when the word is not one.
pub fn parse_color_word(word: &str) -> Option<Option<ColorDepth>> {
    Some(match word.to_ascii_lowercase().as_str() {
        "auto" => None,
        "none" | "off" => Some(ColorDepth::None),
        "16" | "ansi" | "ansi16" => Some(ColorDepth::Ansi16),
        "256" | "ansi256" | "xterm256" => Some(ColorDepth::Ansi256),
        "truecolor" | "truecolour" | "24bit" | "rgb" => Some(ColorDepth::TrueColor),
        _ => return None,
    })
}

/// Something only the shell can do, asked for by an administrator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminRequest {
    Reload,
    UpgradeProxy,
    Shutdown,
}

/// What handling one event produced, in order per session.
#[derive(Debug, Default)]
pub struct Outbox {
    pub events: Vec<(SessionKey, Delivery)>,
    pub jobs: Vec<PasswordJob>,
    /// With the session that asked, so the shell can tell it how the request went (`None`:
    /// the game itself asked, as when a planned shutdown falls due).
    pub requests: Vec<(Option<SessionKey>, AdminRequest)>,
}

impl Outbox {
    pub fn new() -> Outbox {
        Outbox::default()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.jobs.is_empty() && self.requests.is_empty()
    }

    pub(crate) fn push(&mut self, key: SessionKey, event: Delivery) {
        self.events.push((key, event));
    }

    pub(crate) fn text(&mut self, key: SessionKey, text: impl Into<String>) {
        self.push(key, Delivery::Output(text.into()));
    }

    pub(crate) fn gmcp(&mut self, key: SessionKey, message: Option<Delivery>) {
        if let Some(message) = message {
            self.push(key, message);
        }
    }
}

/// The blob the proxy keeps for a session: who is logged in, or whose password the next
/// line is. A guest with neither has an empty blob.
#[derive(Serialize, Deserialize, Default)]
struct StateBlob {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    character: Option<i64>,
    /// Kept here so that a core restarted between the prompt and the answer still treats
    /// the answer as a password, never as a command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    password_for: Option<SecretFor>,
    /// The password line came in and is being checked, and the proxy was told to show input
    /// again; a restarted core gets the line again but must not repeat that.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    checking: bool,
}

/// The blob a proxy kept for a session, or `None` if it kept none or it cannot be read (the
/// session is then logged out, and the log says why).
fn parse_blob(key: SessionKey, state: &[u8]) -> Option<StateBlob> {
    if state.is_empty() {
        return None;
    }
    serde_json::from_slice(state)
        .inspect_err(|error| {
            tracing::warn!(session = %key, %error, "unreadable session state; session is logged out");
        })
        .ok()
}

/// Characters read ahead for sessions being restored, with their data, by id.
type Loaded = HashMap<i64, (CharacterRecord, Vec<(String, String)>)>;

/// A session a proxy brought along when it attached (see [`Game::sessions_restored`]).
pub struct RestoredSession {
    pub key: SessionKey,
    pub remote_addr: String,
    /// The blob the core asked the proxy to keep; empty if none.
    pub state: Vec<u8>,
    pub client: ClientInfo,
}

impl StateBlob {
    fn encode(&self) -> Vec<u8> {
        if self.character.is_none() && self.password_for.is_none() {
            return Vec::new();
        }
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Whose password the next line is, after a `connect <name>` or `create <name>` without one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum SecretFor {
    Connect(String),
    Create(String),
}

#[derive(Debug, Clone)]
pub(crate) struct Player {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) room: String,
    pub(crate) title: String,
    display: DisplayPrefs,
    /// The game's attributes for this character (name to JSON), loaded at login and written
    /// through: reading one costs no database access.
    pub(crate) data: HashMap<String, String>,
}

struct Session {
    player: Option<Player>,
    /// We told the proxy to disconnect; further lines are acknowledged and ignored.
    closing: bool,
    pending: Option<Pending>,
    queue: VecDeque<(u64, String)>,
    /// The next line is this password.
    secret: Option<SecretFor>,
    /// The proxy's blob still names a password to wait for, even if the line came in: it is
    /// replaced only once that line is fully handled, in step with its ack.
    secret_in_blob: bool,
    /// We told the proxy to hide input and have not told it to show input again.
    input_hidden: bool,
    /// The player's address, as the proxy saw it (or as the PROXY protocol told it).
    peer: Option<std::net::IpAddr>,
    /// Failed logins on this connection (see `throttle::PER_CONNECTION`).
    failed_logins: u32,
    /// When this core first saw the session (opened, or restored after a restart).
    arrived: Instant,
    /// When its last line came in (or `arrived`).
    last_line: Instant,
}

impl Session {
    /// In the game, not on the way out.
    fn is_present(&self) -> bool {
        self.player.is_some() && !self.closing
    }

    fn new(player: Option<Player>, remote_addr: &str, now: Instant) -> Session {
        Session {
            player,
            closing: false,
            pending: None,
            queue: VecDeque::new(),
            secret: None,
            secret_in_blob: false,
            input_hidden: false,
            peer: remote_addr
                .parse::<std::net::SocketAddr>()
                .map(|addr| addr.ip())
                .ok(),
            failed_logins: 0,
            arrived: now,
            last_line: now,
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
    Create {
        name: String,
    },
    Connect {
        /// As typed, normalised; it may name nobody.
        name: String,
        character_id: Option<i64>,
    },
}

/// How long a connection may stay without logging in: nothing on a public port waits
/// forever for a client that never says who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginLimits {
    /// From connecting to being logged in.
    pub total: Duration,
    /// Without typing anything, before logging in.
    pub idle: Duration,
}

impl Default for LoginLimits {
    fn default() -> Self {
        LoginLimits {
            total: Duration::from_secs(300),
            idle: Duration::from_secs(120),
        }
    }
}

pub struct Game {
    /// The time as of the last [`Game::tick`]: the game reads no clock of its own.
    now: Instant,
    /// The same moment as `now`, in milliseconds since the Unix epoch: what outlives a
    /// process (ticks' last runs, timers' due times) is kept in this time.
    unix_ms: i64,
    login_limits: LoginLimits,
    pub(crate) world: World,
    db: Db,
    /// The game's commands, hooks, ticks and timers (see `api`).
    pub(crate) rules: Rc<Rules>,
    /// Rooms' attributes, (room, name) to JSON; all loaded at start (rooms are few).
    room_data: HashMap<(String, String), String>,
    /// When ticks and timers are due (see `clock`).
    clock: clock::Clock,
    /// Sessions gain or lose a character, move or go away only through
    /// [`Game::insert_session`], [`Game::remove_session`], [`Game::set_player`] and
    /// [`Game::move_player`], which keep `roster`, `guests` and `present` in step (as does
    /// [`Game::disconnect`] when a session starts closing).
    sessions: BTreeMap<SessionKey, Session>,
    roster: Roster,
    /// Sessions with no character yet (at the login prompt): what the login limits check,
    /// every second, without a walk over 10,000 players in the game (which held the core
    /// for milliseconds each time).
    guests: BTreeSet<SessionKey>,
    /// Sessions with a character that are not closing: [`Game::players_online`], asked for
    /// every time the core sends output, without a walk over every session.
    present: usize,
    /// Apart from `sessions` because the proxy may report a client before or after it opens
    /// or restores the session.
    clients: BTreeMap<SessionKey, ClientInfo>,
    /// Tells a job's result apart from that of an older job for the same session key.
    next_ticket: u64,
    /// Where the line being handled is recorded, so a death in it can be blamed on it.
    witness: Option<Witness>,
    /// Lines that were being handled at two core deaths in a row: never run again.
    quarantine: BTreeSet<LineId>,
    /// A planned shutdown counting down (see `moderation`); read from the database at the
    /// first tick, when the game first knows the time.
    countdown: Option<moderation::Countdown>,
    countdown_resumed: bool,
}

impl Game {
    /// A game of `rules` in `world`, keeping its data in `db` (whose migrations, the game's
    /// included, must have run: see [`Db::run_game_migrations`]).
    pub fn new(world: World, db: Db, rules: Rules) -> Result<Game, DbError> {
        let room_data = db
            .room_data()?
            .into_iter()
            .map(|(room, key, value)| ((room, key), value))
            .collect();
        let clock = clock::Clock::new(db.timers()?);
        Ok(Game {
            now: Instant::now(),
            unix_ms: 0,
            login_limits: LoginLimits::default(),
            world,
            db,
            rules: Rc::new(rules),
            room_data,
            clock,
            sessions: BTreeMap::new(),
            roster: Roster::default(),
            guests: BTreeSet::new(),
            present: 0,
            clients: BTreeMap::new(),
            next_ticket: 1,
            witness: None,
            quarantine: BTreeSet::new(),
            countdown: None,
            countdown_resumed: false,
        })
    }

    pub fn set_login_limits(&mut self, limits: LoginLimits) {
        self.login_limits = limits;
    }

    /// Time passing: runs the game's ticks and timers that are due and closes connections
    /// that took too long to log in. The shell calls it about ten times a second, with the
    /// time and the same time in milliseconds since the Unix epoch.
    pub fn tick(&mut self, now: Instant, unix_ms: i64, out: &mut Outbox) {
        self.now = now;
        self.unix_ms = unix_ms;
        let mark = out.events.len();
        if !self.countdown_resumed {
            self.countdown_resumed = true;
            self.resume_countdown();
        }
        self.run_countdown(out);
        self.run_ticks(out);
        self.run_timers(out);
        self.prompt_bystanders(mark, None, out);
        if !self.clock.limits_due(now) {
            return;
        }
        let limits = self.login_limits;
        let late: Vec<(SessionKey, &'static str)> = self
            .guests
            .iter()
            .filter_map(|key| Some((key, self.sessions.get(key)?)))
            .filter(|(_, s)| !s.closing && s.pending.is_none())
            .filter_map(|(key, s)| {
                if now.saturating_duration_since(s.arrived) >= limits.total {
                    Some((*key, msg::login_took_too_long()))
                } else if now.saturating_duration_since(s.last_line) >= limits.idle {
                    Some((*key, msg::login_idle()))
                } else {
                    None
                }
            })
            .collect();
        for (key, why) in late {
            tracing::info!(session = %key, why, "closing a connection that did not log in");
            self.disconnect(key, why, out);
        }
    }

    /// Records every line this game handles in `witness` (see `tether_protocol::witness`).
    pub fn set_witness(&mut self, witness: Witness) {
        self.witness = Some(witness);
    }

    /// Lines the supervisor found in the hands of two dying cores in a row: when they come
    /// again they are acknowledged and their player told, not run.
    pub fn set_quarantine(&mut self, lines: impl IntoIterator<Item = LineId>) {
        self.quarantine.extend(lines);
    }

    pub fn world(&self) -> &World {
        &self.world
    }

    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Sessions whose client the proxy has described (see [`Game::session_client`]).
    pub fn client_count(&self) -> usize {
        self.clients.len()
    }

    /// Characters in the game, not counting connections on their way out.
    pub fn players_online(&self) -> usize {
        self.present
    }

    /// What the proxy answers MSSP requests with, apart from what only it knows (uptime,
    /// ports, protocols).
    pub fn mssp(&self) -> Vec<MsspVariable> {
        let world = tether_protocol::markup::plain(self.world.name());
        [
            ("NAME", world),
            ("PLAYERS", self.players_online().to_string()),
            ("CODEBASE", "tether".to_owned()),
            ("FAMILY", "Custom".to_owned()),
            ("LANGUAGE", "English".to_owned()),
            ("GENRE", "Fantasy".to_owned()),
            ("GAMEPLAY", "Social".to_owned()),
            ("GAMESYSTEM", "None".to_owned()),
            ("STATUS", "Alpha".to_owned()),
            ("AREAS", self.world.area_count().to_string()),
            ("ROOMS", self.world.rooms().count().to_string()),
            ("LEVELS", "0".to_owned()),
            ("CLASSES", "0".to_owned()),
            ("RACES", "0".to_owned()),
        ]
        .into_iter()
        .map(|(name, value)| MsspVariable {
            name: name.to_owned(),
            value,
        })
        .collect()
    }

    pub fn session_opened(&mut self, key: SessionKey, remote_addr: &str, out: &mut Outbox) {
        tracing::info!(session = %key, address = remote_addr, "session opened");
        if self
            .insert_session(key, Session::new(None, remote_addr, self.now))
            .is_some()
        {
            tracing::warn!(session = %key, "session opened twice; starting it over");
        }
        if let Some(ban) = self.address_ban(key) {
            tracing::info!(session = %key, address = remote_addr, "refused a banned address");
            return self.disconnect(key, &msg::banned(&ban, self.unix_ms), out);
        }
        out.text(key, msg::banner(self.world.name()));
        self.prompt(key, out);
    }

    /// Restores a session from the blob the proxy kept. Emits nothing for the session itself:
    /// its player saw no interruption, and the proxy kept their display settings, input echo
    /// and GMCP state.
    pub fn session_restored(
        &mut self,
        key: SessionKey,
        remote_addr: &str,
        state: &[u8],
        out: &mut Outbox,
    ) {
        let blob = parse_blob(key, state);
        self.restore(key, remote_addr, blob, &mut Loaded::new(), out);
    }

    /// Every session a proxy brought along when it attached (to a core taking over after a
    /// reload or a crash), as [`Game::session_restored`] and [`Game::session_client`] each,
    /// with all their characters read from the database in two queries instead of two per
    /// session: one by one, they were most of a 120 ms attach at 10,000 sessions, while every
    /// player waited.
    pub fn sessions_restored(&mut self, sessions: Vec<RestoredSession>, out: &mut Outbox) {
        let blobs: Vec<Option<StateBlob>> = sessions
            .iter()
            .map(|session| parse_blob(session.key, &session.state))
            .collect();
        let ids: Vec<i64> = blobs
            .iter()
            .flatten()
            .filter_map(|blob| blob.character)
            .collect();
        let mut loaded = self.load_characters(&ids);
        for (session, blob) in sessions.into_iter().zip(blobs) {
            self.restore(session.key, &session.remote_addr, blob, &mut loaded, out);
            self.session_client(session.key, session.client);
        }
    }

    /// The characters of `ids` with their data; empty (each then read alone, and any error
    /// said for its session) if the database cannot answer for all of them at once.
    fn load_characters(&self, ids: &[i64]) -> Loaded {
        if ids.is_empty() {
            return Loaded::new();
        }
        let (records, mut data) = match (self.db.characters(ids), self.db.characters_data(ids)) {
            (Ok(records), Ok(data)) => (records, data),
            (Err(error), _) | (_, Err(error)) => {
                tracing::warn!(error = %chain(&error), "cannot load the restored characters at once; loading each alone");
                return Loaded::new();
            }
        };
        records
            .into_iter()
            .map(|record| {
                let data = data.remove(&record.id).unwrap_or_default();
                (record.id, (record, data))
            })
            .collect()
    }

    fn restore(
        &mut self,
        key: SessionKey,
        remote_addr: &str,
        blob: Option<StateBlob>,
        loaded: &mut Loaded,
        out: &mut Outbox,
    ) {
        let (player, secret, checking) = self.restored_player(key, blob, loaded);
        if let Some(player) = &player {
            // Only possible if the proxy lost track of a takeover; the restored session wins.
            if let Some(other) = self.session_of(player.id).filter(|k| *k != key) {
                self.detach(other, out);
            }
        }
        tracing::debug!(session = %key, logged_in = player.is_some(), "session restored");
        let mut session = Session::new(player, remote_addr, self.now);
        if secret.is_some() {
            session.input_hidden = !checking;
            session.secret_in_blob = true;
            session.secret = secret;
        }
        self.insert_session(key, session);
    }

    /// What the proxy knows about a session's client; sent when the session opens or is
    /// restored and whenever the client tells the proxy something new.
    pub fn session_client(&mut self, key: SessionKey, info: ClientInfo) {
        tracing::debug!(session = %key, ?info, "client info");
        self.clients.insert(key, info);
    }

    pub fn session_closed(&mut self, key: SessionKey, out: &mut Outbox) {
        if let Some(who) = self.who(key) {
            Ctx::new(self, out, None).fire_for(who, &Event::Disconnected);
        }
        self.clients.remove(&key);
        let Some(session) = self.remove_session(key) else {
            return;
        };
        if let Some(player) = session.player {
            tracing::info!(session = %key, character = %player.name, "left the game");
            let mark = out.events.len();
            self.tell_room(&player.room, key, &msg::left_game(&player.name), out);
            self.prompt_bystanders(mark, Some(key), out);
        } else {
            tracing::info!(session = %key, "session closed");
        }
    }

    /// Tells a proxy that attached who each of its logged-in sessions plays (for the
    /// operator's view; see `Delivery::Playing`).
    pub fn announce_players(&self, proxy: u64, out: &mut Outbox) {
        let first = SessionKey { proxy, session: 0 };
        let of_proxy = self
            .sessions
            .range(first..)
            .take_while(|(key, _)| key.proxy == proxy);
        for (key, session) in of_proxy {
            if let Some(player) = &session.player {
                out.push(
                    *key,
                    Delivery::Playing {
                        character: player.name.clone(),
                        fresh: false,
                    },
                );
            }
        }
    }

    pub fn proxy_detached(&mut self, proxy: u64) {
        self.clients.retain(|key, _| key.proxy != proxy);
        let gone: Vec<SessionKey> = self
            .sessions
            .keys()
            .filter(|key| key.proxy == proxy)
            .copied()
            .collect();
        for key in &gone {
            self.remove_session(*key);
        }
        tracing::info!(proxy, sessions = gone.len(), "proxy detached");
    }

    pub fn line(&mut self, key: SessionKey, seq: u64, text: &str, out: &mut Outbox) {
        if let Some(session) = self.sessions.get_mut(&key) {
            session.last_line = self.now;
        }
        let mark = out.events.len();
        self.line_inner(key, seq, text, out);
        self.prompt_bystanders(mark, Some(key), out);
    }

    /// A failed write as the API reports it; a lost database file is also flagged to the
    /// supervisor (see `db`).
    pub(crate) fn not_saved_error(&self, error: DbError) -> NotSaved {
        let error = NotSaved::from(error);
        if error.lost
            && let Some(witness) = &self.witness
        {
            witness.set_database_lost();
        }
        error
    }

    /// What to tell a player whose change could not be saved.
    pub(crate) fn not_saved(&self, error: &NotSaved) -> String {
        if error.lost {
            msg::database_lost()
        } else {
            msg::not_saved()
        }
    }

    /// Shows the player count to the supervisor (see `tether_protocol::witness`).
    fn note_players(&self) {
        if let Some(witness) = &self.witness {
            witness.set_players(self.present);
        }
    }

    fn line_inner(&mut self, key: SessionKey, seq: u64, text: &str, out: &mut Outbox) {
        let session = self.sessions.entry(key).or_insert_with(|| {
            tracing::warn!(
                session = %key,
                "line for an unknown session; treating it as a new one"
            );
            Session::new(None, "", self.now)
        });
        if session.pending.is_none() && session.queue.is_empty() {
            self.handle_line(key, seq, text, out);
        } else if session.closing {
            // Disconnecting after an overflow: the rest of the input is moot.
        } else if session.queue.len() < MAX_QUEUED_LINES {
            session.queue.push_back((seq, text.to_owned()));
        } else {
            tracing::warn!(session = %key, "input queue overflow while logging in; disconnecting");
            session.queue.clear();
            self.disconnect(key, msg::too_much_input(), out);
        }
    }

    pub fn password_done(&mut self, done: PasswordDone, out: &mut Outbox) {
        let key = done.key;
        let Some(session) = self.sessions.get_mut(&key) else {
            tracing::debug!(session = %key, "password result for a session that is gone");
            return;
        };
        if session
            .pending
            .as_ref()
            .is_none_or(|p| p.ticket != done.ticket)
        {
            tracing::debug!(session = %key, "stale password result ignored");
            return;
        }
        let Some(pending) = session.pending.take() else {
            return;
        };
        let mark = out.events.len();
        if !session.closing {
            // Normally done when the password line came in; here in case anything ever keeps
            // input hidden through the check, since the outcome's text must not follow an
            // unechoed password on the same line.
            self.reveal_input(key, out);
            login::finish(self, key, pending.purpose, done.outcome, out);
        }
        self.finish_line(key, pending.seq, out);
        self.drain_queue(key, out);
        self.prompt_bystanders(mark, Some(key), out);
    }

    fn handle_line(&mut self, key: SessionKey, seq: u64, text: &str, out: &mut Outbox) {
        let Some(session) = self.sessions.get_mut(&key) else {
            return;
        };
        let line = LineId { key, seq };
        // A login line may hold a password: it is never written down, not even for a log.
        let at_login = session.player.is_none() || session.secret.is_some();
        let character = session.player.as_ref().map_or("", |p| p.name.as_str());
        let shown = (!at_login).then_some(text);
        if self.quarantine.remove(&line) {
            tracing::error!(
                session = %line,
                character,
                line = shown.unwrap_or("(a login line, not shown)"),
                "a line that two cores died handling was not run again"
            );
            out.text(key, msg::quarantined(shown));
        } else if !session.closing {
            if let Some(witness) = &self.witness {
                witness.begin(line, character, shown);
            }
            // A bug in one command must not take the game down for everyone: a panic is
            // caught here, the player told, the line acknowledged, and the game goes on.
            let handled = catch_panic(|| self.dispatch_line(key, seq, text, out));
            if let Some(witness) = &self.witness {
                witness.end();
            }
            if let Err(panic) = handled {
                let character = self.player(key).map_or("", |p| p.name.as_str());
                tracing::error!(
                    session = %line,
                    character,
                    line = shown.unwrap_or("(a login line, not shown)"),
                    panic,
                    "a command panicked; the game carries on"
                );
                out.text(key, msg::command_failed());
            }
        }
        // A line that started a password job is acknowledged when the job is done.
        let waiting = self.sessions.get(&key).is_some_and(|s| s.pending.is_some());
        if !waiting {
            self.finish_line(key, seq, out);
        }
    }

    /// Runs one line in the state its session is in.
    fn dispatch_line(&mut self, key: SessionKey, seq: u64, text: &str, out: &mut Outbox) {
        if let Some(fault) = crate::fault::requested(text) {
            crate::fault::trigger(fault);
        }
        let Some(session) = self.sessions.get_mut(&key) else {
            return;
        };
        if let Some(secret) = session.secret.take() {
            login::secret_line(self, key, seq, secret, text, out);
        } else if session.player.is_some() {
            self.play(key, text, out);
        } else {
            login::guest(self, key, seq, text, out);
        }
    }

    /// Closes off a handled line: settles a password that was being waited for, shows a
    /// prompt and acknowledges the line.
    fn finish_line(&mut self, key: SessionKey, seq: u64, out: &mut Outbox) {
        if let Some(session) = self.sessions.get_mut(&key)
            && session.secret.is_none()
        {
            self.reveal_input(key, out);
            self.forget_secret_blob(key, out);
        }
        self.prompt(key, out);
        out.push(key, Delivery::Ack(seq));
    }

    /// Shows the session the prompt that fits where it is; nothing if it is closing.
    fn prompt(&mut self, key: SessionKey, out: &mut Outbox) {
        let Some(session) = self.sessions.get(&key) else {
            return;
        };
        if session.closing {
            return;
        }
        let prompt = match (&session.secret, &session.player) {
            (Some(SecretFor::Connect(_)), _) => msg::password_prompt(),
            (Some(SecretFor::Create(_)), _) => msg::new_password_prompt(),
            (None, Some(player)) => {
                let who = Who {
                    session: key,
                    character: player.id,
                };
                self.game_prompt(who, out)
            }
            (None, None) => msg::login_prompt(),
        };
        out.push(key, Delivery::Prompt(prompt));
    }

    /// The game's prompt for a player in the game (see `Rules::prompt`).
    fn game_prompt(&mut self, who: Who, out: &mut Outbox) -> String {
        let rules = self.rules.clone();
        let Some(hook) = &rules.prompt else {
            return msg::default_prompt();
        };
        let mut prompt = None;
        let ctx = Ctx::new(self, out, Some(who));
        // Prompts are also built outside any command (after a password check, for bystanders):
        // a panic in one must be as harmless there.
        isolated("the prompt", || prompt = Some(hook(&ctx, who)));
        prompt.unwrap_or_else(msg::default_prompt)
    }

    /// Gives a fresh prompt to everyone other than `except` who was shown text since
    /// `out.events[mark]`: their old prompt has scrolled away above it.
    fn prompt_bystanders(&mut self, mark: usize, except: Option<SessionKey>, out: &mut Outbox) {
        let shown: BTreeSet<SessionKey> = out.events[mark.min(out.events.len())..]
            .iter()
            .filter(|(k, e)| Some(*k) != except && matches!(e, Delivery::Output(_)))
            .map(|(k, _)| *k)
            .collect();
        for key in shown {
            self.prompt(key, out);
        }
    }

    /// Asks the proxy to hide the player's typing (the next line is a password).
    fn hide_input(&mut self, key: SessionKey, out: &mut Outbox) {
        if let Some(session) = self.sessions.get_mut(&key)
            && !session.input_hidden
        {
            session.input_hidden = true;
            out.push(key, Delivery::HideInput(true));
        }
    }

    /// Undoes [`Game::hide_input`]; a no-op unless input is hidden, so it is safe anywhere.
    fn reveal_input(&mut self, key: SessionKey, out: &mut Outbox) {
        if let Some(session) = self.sessions.get_mut(&key)
            && session.input_hidden
        {
            session.input_hidden = false;
            out.push(key, Delivery::HideInput(false));
        }
    }

    /// Tells the proxy a guest is no longer waiting to type a password.
    fn forget_secret_blob(&mut self, key: SessionKey, out: &mut Outbox) {
        if let Some(session) = self.sessions.get_mut(&key)
            && session.secret_in_blob
        {
            session.secret_in_blob = false;
            if session.player.is_none() && !session.closing {
                out.push(key, Delivery::State(StateBlob::default().encode()));
            }
        }
    }

    /// Starts waiting for a password on the next line.
    fn ask_secret(&mut self, key: SessionKey, secret: SecretFor, out: &mut Outbox) {
        let Some(session) = self.sessions.get_mut(&key) else {
            return;
        };
        let blob = StateBlob {
            password_for: Some(secret.clone()),
            ..StateBlob::default()
        };
        session.secret = Some(secret);
        session.secret_in_blob = true;
        out.push(key, Delivery::State(blob.encode()));
        self.hide_input(key, out);
    }

    /// Sends the last words and stops handling the session's input. Input that was hidden is
    /// shown again first, so the player's terminal is not left without echo.
    pub(crate) fn disconnect(&mut self, key: SessionKey, reason: &str, out: &mut Outbox) {
        self.reveal_input(key, out);
        let Some(session) = self.sessions.get_mut(&key) else {
            return;
        };
        if !session.closing {
            session.closing = true;
            if session.player.is_some() {
                self.present -= 1;
                self.note_players();
            }
            out.push(key, Delivery::Disconnect(reason.to_owned()));
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

    /// The player, or else the password awaited and whether its line is already being checked.
    /// The character comes from `loaded` if it is there, else from the database.
    fn restored_player(
        &mut self,
        key: SessionKey,
        blob: Option<StateBlob>,
        loaded: &mut Loaded,
    ) -> (Option<Player>, Option<SecretFor>, bool) {
        let Some(blob) = blob else {
            return (None, None, false);
        };
        let Some(id) = blob.character else {
            return (None, blob.password_for, blob.checking);
        };
        let found = match loaded.remove(&id) {
            Some((record, data)) => Ok(Some(self.player_from_parts(record, data))),
            None => self.db.character(id).and_then(|record| {
                record
                    .map(|record| self.player_from_record(record))
                    .transpose()
            }),
        };
        let player = match found {
            Ok(Some(player)) => Some(player),
            Ok(None) => {
                tracing::warn!(session = %key, id, "restored character no longer exists");
                None
            }
            Err(error) => {
                tracing::error!(session = %key, error = %chain(&error), "cannot load restored character");
                None
            }
        };
        (player, None, false)
    }

    /// Builds the in-game player, moving it to the start room if its room left the world.
    fn player_from_record(&mut self, record: CharacterRecord) -> Result<Player, DbError> {
        // Playing on without the game's data would show defaults, then save over the real
        // values: no data, no login.
        let data = self.db.character_data(record.id)?;
        Ok(self.player_from_parts(record, data))
    }

    /// The in-game player from its record and its data (name, JSON).
    fn player_from_parts(
        &mut self,
        record: CharacterRecord,
        data: Vec<(String, String)>,
    ) -> Player {
        let data = data.into_iter().collect();
        let mut room = record.room;
        if self.world.room(&room).is_none() {
            let start = self.world.start_for(&record.name).to_owned();
            if room.is_empty() {
                // Made by `tether admin create`, which knows no world.
                tracing::info!(name = %record.name, %start, "first login; placed at the start");
            } else {
                tracing::info!(name = %record.name, %room, %start, "room is gone; moving to start");
            }
            if let Err(error) = self.db.set_room(record.id, &start) {
                tracing::error!(error = %chain(&error), "cannot save the move to the start room");
            }
            room = start;
        }
        let color = parse_color_word(&record.color).unwrap_or_else(|| {
            tracing::warn!(name = %record.name, color = %record.color, "unknown colour setting");
            None
        });
        Player {
            id: record.id,
            name: record.name,
            room,
            title: record.title,
            display: DisplayPrefs {
                wrap: record.wrap,
                color,
            },
            data,
        }
    }

    /// Takes a character away from a session that is being replaced by another one.
    fn detach(&mut self, key: SessionKey, out: &mut Outbox) {
        self.set_player(key, None);
        self.disconnect(key, msg::logged_in_elsewhere(), out);
    }

    /// Whether the session's client agreed to GMCP. Messages for clients that did not are
    /// never built: the proxy would drop them, and at 10,000 players building, sending and
    /// dropping one per `say` listener was a tenth of the core's and the link's work.
    pub(crate) fn speaks_gmcp(&self, key: SessionKey) -> bool {
        self.clients.get(&key).is_some_and(|client| client.gmcp)
    }

    /// What the proxy told us about the session's client (nothing yet: all unknown).
    pub(crate) fn client(&self, key: SessionKey) -> ClientInfo {
        self.clients.get(&key).cloned().unwrap_or_default()
    }

    fn player(&self, key: SessionKey) -> Option<&Player> {
        self.sessions.get(&key)?.player.as_ref()
    }

    /// Whether the session plays an administrator. Asked of the database each time (admin
    /// commands are rare), so that `tether admin promote`/`demote` count at once.
    pub(crate) fn is_admin(&self, key: SessionKey) -> bool {
        let Some(player) = self.player(key) else {
            return false;
        };
        self.db.is_admin(player.id).unwrap_or_else(|error| {
            tracing::error!(session = %key, error = %chain(&error), "cannot check an administrator");
            false
        })
    }

    /// The session playing a character, if any.
    fn session_of(&self, character_id: i64) -> Option<SessionKey> {
        self.roster.session_of(character_id)
    }

    /// Adds or replaces a session; the one replaced, if any, comes back.
    fn insert_session(&mut self, key: SessionKey, session: Session) -> Option<Session> {
        let old = self.remove_session(key);
        match &session.player {
            Some(player) => self.roster.add(key, player.id, &player.room),
            None => {
                self.guests.insert(key);
            }
        }
        self.present += usize::from(session.is_present());
        self.note_players();
        self.sessions.insert(key, session);
        old
    }

    fn remove_session(&mut self, key: SessionKey) -> Option<Session> {
        let session = self.sessions.remove(&key)?;
        match &session.player {
            Some(player) => self.roster.remove(key, player.id, &player.room),
            None => {
                self.guests.remove(&key);
            }
        }
        self.present -= usize::from(session.is_present());
        self.note_players();
        Some(session)
    }

    /// Gives a session a character or takes it away; nothing if the session is gone.
    fn set_player(&mut self, key: SessionKey, player: Option<Player>) {
        let Some(session) = self.sessions.get_mut(&key) else {
            return;
        };
        match &session.player {
            Some(old) => self.roster.remove(key, old.id, &old.room),
            None => {
                self.guests.remove(&key);
            }
        }
        match &player {
            Some(new) => self.roster.add(key, new.id, &new.room),
            None => {
                self.guests.insert(key);
            }
        }
        self.present -= usize::from(session.is_present());
        session.player = player;
        self.present += usize::from(session.is_present());
        self.note_players();
    }

    pub(crate) fn move_player(&mut self, key: SessionKey, to: &str) {
        let Some(player) = self.sessions.get_mut(&key).and_then(|s| s.player.as_mut()) else {
            return;
        };
        self.roster.moved(key, &player.room, to);
        player.room = to.to_owned();
    }

    /// Checks the kept indexes (who is in which room, how many are present) against the
    /// sessions, the slow way: `testing` does after every step.
    pub(crate) fn check_bookkeeping(&self) {
        assert_eq!(
            self.roster,
            self.roster_from_sessions(),
            "the roster is off"
        );
        let guests: BTreeSet<SessionKey> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.player.is_none())
            .map(|(key, _)| *key)
            .collect();
        assert_eq!(self.guests, guests, "the guests are off");
        assert_eq!(
            self.present,
            self.present_from_sessions(),
            "the count is off"
        );
    }

    pub(crate) fn db(&self) -> &Db {
        &self.db
    }

    pub(crate) fn into_db(self) -> Db {
        self.db
    }

    /// The players online, counted the slow way, for tests to compare with the kept count.
    fn present_from_sessions(&self) -> usize {
        self.sessions.values().filter(|s| s.is_present()).count()
    }

    /// The roster as it should be, built the slow way, for tests to compare with the kept one.
    fn roster_from_sessions(&self) -> Roster {
        let mut roster = Roster::default();
        for (key, session) in &self.sessions {
            if let Some(player) = &session.player {
                roster.add(*key, player.id, &player.room);
            }
        }
        roster
    }

    /// Players in the game who are not on their way out, in no particular order.
    fn present(&self) -> impl Iterator<Item = (SessionKey, &Player)> {
        self.sessions
            .iter()
            .filter(|(_, s)| !s.closing)
            .filter_map(|(key, s)| Some((*key, s.player.as_ref()?)))
    }

    /// Everyone present in `room` with their character, sorted by name. Costs the size of
    /// the room, not of the game: at 10,000 players online anything more stalls the core.
    fn present_in(&self, room: &str) -> Vec<(SessionKey, &Player)> {
        let mut players: Vec<_> = self
            .roster
            .in_room(room)
            .filter_map(|key| {
                let session = self.sessions.get(&key).filter(|s| !s.closing)?;
                Some((key, session.player.as_ref()?))
            })
            .collect();
        players.sort_by(|a, b| a.1.name.cmp(&b.1.name));
        players
    }

    fn tell_room(&self, room: &str, except: SessionKey, text: &str, out: &mut Outbox) {
        for (key, _) in self.present_in(room) {
            if key != except {
                out.text(key, text);
            }
        }
    }

    // ---- What the API (`api::Ctx`) reads and changes ----

    /// The player in the game on session `key`.
    pub(crate) fn who(&self, key: SessionKey) -> Option<Who> {
        let session = self.sessions.get(&key).filter(|s| !s.closing)?;
        Some(Who {
            session: key,
            character: session.player.as_ref()?.id,
        })
    }

    /// `who`'s character, while they are in the game on that session.
    pub(crate) fn player_of(&self, who: Who) -> Option<&Player> {
        let session = self.sessions.get(&who.session).filter(|s| !s.closing)?;
        session.player.as_ref().filter(|p| p.id == who.character)
    }

    fn player_of_mut(&mut self, who: Who) -> Option<&mut Player> {
        let session = self.sessions.get_mut(&who.session).filter(|s| !s.closing)?;
        session.player.as_mut().filter(|p| p.id == who.character)
    }

    pub(crate) fn players_in(&self, room: &str) -> Vec<Who> {
        self.present_in(room)
            .into_iter()
            .map(|(session, player)| Who {
                session,
                character: player.id,
            })
            .collect()
    }

    /// Everyone in the game, sorted by name.
    pub(crate) fn online(&self) -> Vec<Who> {
        let mut players: Vec<_> = self.present().collect();
        players.sort_by(|a, b| a.1.name.cmp(&b.1.name));
        players
            .into_iter()
            .map(|(session, player)| Who {
                session,
                character: player.id,
            })
            .collect()
    }

    pub(crate) fn find_online(&self, name: &str) -> Option<Who> {
        let key = self.name_lookup(name)?;
        self.who(key)
    }

    /// The session of the character called `name` (any case), through the roster.
    fn name_lookup(&self, name: &str) -> Option<SessionKey> {
        self.present()
            .find(|(_, p)| p.name.eq_ignore_ascii_case(name))
            .map(|(key, _)| key)
    }

    pub(crate) fn save_room(&mut self, who: Who, room: &str) -> Result<(), NotSaved> {
        self.db
            .set_room(who.character, room)
            .map_err(|error| self.not_saved_error(error))
    }

    pub(crate) fn set_title(
        &mut self,
        who: Who,
        title: &str,
        out: &mut Outbox,
    ) -> Result<(), NotSaved> {
        self.db
            .set_title(who.character, title)
            .map_err(|error| self.not_saved_error(error))?;
        let speaks_gmcp = self.speaks_gmcp(who.session);
        if let Some(player) = self.player_of_mut(who) {
            player.title = title.to_owned();
            // The full name clients show includes the title.
            if speaks_gmcp {
                out.gmcp(who.session, gmcp::char_name(player));
            }
        }
        Ok(())
    }

    pub(crate) fn set_character_data(
        &mut self,
        who: Who,
        key: &str,
        json: String,
    ) -> Result<(), NotSaved> {
        self.db
            .set_character_data(who.character, key, &json)
            .map_err(|error| self.not_saved_error(error))?;
        if let Some(player) = self.player_of_mut(who) {
            player.data.insert(key.to_owned(), json);
        }
        Ok(())
    }

    pub(crate) fn room_data(&self, room: &str, key: &str) -> Option<&str> {
        self.room_data
            .get(&(room.to_owned(), key.to_owned()))
            .map(String::as_str)
    }

    pub(crate) fn set_room_data(
        &mut self,
        room: &str,
        key: &str,
        json: String,
    ) -> Result<(), NotSaved> {
        self.db
            .set_room_data(room, key, &json)
            .map_err(|error| self.not_saved_error(error))?;
        self.room_data
            .insert((room.to_owned(), key.to_owned()), json);
        Ok(())
    }

    /// Runs a line from a player in the game: the command it names, or else the game's
    /// fallback, or else "Huh?".
    fn play(&mut self, key: SessionKey, text: &str, out: &mut Outbox) {
        let Some(me) = self.who(key) else {
            return;
        };
        let rules = self.rules.clone();
        let mut ctx = Ctx::new(self, out, Some(me));
        let found = rules
            .commands
            .find(text)
            .filter(|(command, _)| command.access == Access::Everyone || ctx.is_admin(me));
        let result = match found {
            Some((command, args)) => match (command.handler)(&mut ctx, args) {
                Err(CommandError::Usage) => Err(msg::usage(&command.usage)),
                Err(CommandError::Refused(why)) => Err(why),
                Err(CommandError::NotSaved(error)) => {
                    tracing::error!(session = %key, command = %command.name, %error, "a change was not saved");
                    Err(ctx.game.not_saved(&error))
                }
                Ok(()) => Ok(()),
            },
            None => {
                let (word, args) = Args::new(text).split_first();
                let word = word.to_lowercase();
                match &rules.fallback {
                    _ if word.is_empty() => Ok(()),
                    Some(fallback) if fallback(&mut ctx, &word, args) => Ok(()),
                    _ => Err(msg::huh().to_owned()),
                }
            }
        };
        if let Err(text) = result {
            ctx.send(me, text);
        }
    }
}

/// Runs `work` so that a panic in it is caught and logged, not the end of the core (see
/// [`panic_is_isolated`]): for a game's code, a bug costs only the line, tick or hook it
/// was in. Whether it finished comes back.
pub(crate) fn isolated(what: &str, work: impl FnOnce()) -> bool {
    match catch_panic(work) {
        Ok(()) => true,
        Err(panic) => {
            tracing::error!(panic, "{what} panicked; the game carries on");
            false
        }
    }
}

/// Runs `work`, catching a panic in it; what the panic said comes back.
fn catch_panic(work: impl FnOnce()) -> Result<(), String> {
    let outer = IN_COMMAND.with(|flag| flag.replace(true));
    let done = std::panic::catch_unwind(AssertUnwindSafe(work));
    IN_COMMAND.with(|flag| flag.set(outer));
    done.map_err(|panic| panic_message(&*panic).to_owned())
}

/// An error with its causes, for logs that only show `Display`.
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
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

/// What a panic said, as far as it can be read.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(not a message)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handed_off_types_are_send() {
        fn send<T: Send>() {}
        send::<PasswordJob>();
        send::<PasswordDone>();
    }

    #[test]
    fn color_words() {
        for choice in [
            None,
            Some(ColorDepth::None),
            Some(ColorDepth::Ansi16),
            Some(ColorDepth::Ansi256),
            Some(ColorDepth::TrueColor),
        ] {
            assert_eq!(parse_color_word(color_word(choice)), Some(choice));
        }
        assert_eq!(parse_color_word("OFF"), Some(Some(ColorDepth::None)));
        assert_eq!(parse_color_word("purple"), None);
    }
}
