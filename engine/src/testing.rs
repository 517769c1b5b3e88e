//! Testing a game without any process, socket or clock: a [`TestGame`] is the real engine
//! (logins, sessions, the database in memory, the game's rules) driven the way the link
//! drives it, with the proxy's part played by the test.
//!
//! ```
//! use tether_engine::testing::{TestGame, texts};
//! use tether_engine::{Command, Rules};
//!
//! let mut rules = Rules::new();
//! rules.command(Command::new("ping").run(|ctx, _| {
//!     let me = ctx.me().unwrap();
//!     ctx.send(me, "pong");
//!     Ok(())
//! }));
//! let mut game = TestGame::new(rules);
//! game.create(1, "Alice");
//! let out = game.send(1, "ping");
//! assert_eq!(texts(&out, 1), ["pong"]);
//! ```

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tether_protocol::SessionKey;
use tether_protocol::markup::plain;
use tether_protocol::message::{ClientInfo, Delivery};

use crate::{Db, Game, RestoredSession, Rules, World};

/// A small world for tests: a hall (the start) and a yard north of it.
pub const WORLD: &str = r#"
    name = "Testville"
    start = "hall"
    [rooms.hall]
    name = "Great Hall"
    description = "A draughty hall."
    exits = { north = "yard" }
    details = { tapestry = "A faded hunting scene." }
    [rooms.yard]
    name = "Courtyard"
    description = "A muddy yard."
    exits = { south = "hall" }
"#;

/// The key of test session `n` (all on proxy 1).
pub fn key(n: u64) -> SessionKey {
    SessionKey {
        proxy: 1,
        session: n,
    }
}

/// What handling something produced, in order (see [`Game`]).
pub type Outbox = crate::game::Outbox;

/// A game, its database in memory, and the sequence numbers a proxy would give each line.
/// After every step it checks the engine's own bookkeeping (who is in which room, who is
/// online) against the sessions, so a game's test also tests the engine under it.
pub struct TestGame {
    game: Game,
    seqs: HashMap<u64, u64>,
    now: Instant,
    unix_ms: i64,
}

impl TestGame {
    /// `rules` in [`WORLD`], with a fresh database.
    pub fn new(rules: Rules) -> TestGame {
        TestGame::in_world(rules, WORLD)
    }

    /// `rules` in the world of the TOML `world`, with a fresh database.
    pub fn in_world(rules: Rules, world: &str) -> TestGame {
        let db = Db::open_in_memory().expect("a database in memory");
        TestGame::with_db(rules, world, db)
    }

    /// `rules` in `world` on `db` (the game's migrations are run on it first).
    pub fn with_db(rules: Rules, world: &str, db: Db) -> TestGame {
        // A fixed start, far from zero: what a real clock would give.
        TestGame::starting_at(rules, world, db, Instant::now(), 1_800_000_000_000)
    }

    fn starting_at(rules: Rules, world: &str, mut db: Db, now: Instant, unix_ms: i64) -> TestGame {
        db.run_game_migrations(&rules)
            .expect("the game's migrations run");
        let world = World::from_toml_str(world).expect("the test world loads");
        let game = Game::new(world, db, rules).expect("the game loads");
        let mut test = TestGame {
            game,
            seqs: HashMap::new(),
            now,
            unix_ms,
        };
        test.advance(Duration::ZERO);
        test
    }

    /// The engine, for what this harness has no shortcut for.
    pub fn game(&mut self) -> &mut Game {
        &mut self.game
    }

    pub fn db(&self) -> &Db {
        self.game.db()
    }

    /// The last sequence number session `n` used: a restored session carries on from the
    /// proxy's count.
    pub fn set_last_seq(&mut self, n: u64, seq: u64) {
        self.seqs.insert(n, seq);
    }

    /// Opens session `n`, as if from 127.0.0.1.
    pub fn open(&mut self, n: u64) -> Outbox {
        self.open_from(n, "127.0.0.1:5000")
    }

    pub fn open_from(&mut self, n: u64, remote_addr: &str) -> Outbox {
        let mut out = Outbox::new();
        self.game.session_opened(key(n), remote_addr, &mut out);
        self.check();
        out
    }

    /// Session `n` closes (the player hung up).
    pub fn close(&mut self, n: u64) -> Outbox {
        let mut out = Outbox::new();
        self.game.session_closed(key(n), &mut out);
        self.check();
        out
    }

    /// Sends a line without running password jobs (they stay in the returned outbox).
    pub fn send_only(&mut self, n: u64, text: &str) -> Outbox {
        let seq = self.seqs.entry(n).or_default();
        *seq += 1;
        let mut out = Outbox::new();
        self.game.line(key(n), *seq, text, &mut out);
        self.check();
        out
    }

    /// Sends a line and runs any password work at once, as the shell would on a thread.
    pub fn send(&mut self, n: u64, text: &str) -> Outbox {
        let mut out = self.send_only(n, text);
        self.run_jobs(&mut out);
        out
    }

    /// Runs the password jobs in `out`, adding what they produce to it.
    pub fn run_jobs(&mut self, out: &mut Outbox) {
        while !out.jobs.is_empty() {
            for job in std::mem::take(&mut out.jobs) {
                self.game.password_done(job.run(), out);
            }
        }
        self.check();
    }

    /// Lets `by` pass: ticks and timers that fall due run (the engine ticks ten times a
    /// second; so does this, however far it jumps).
    pub fn advance(&mut self, by: Duration) -> Outbox {
        let mut out = Outbox::new();
        let step = Duration::from_millis(100);
        let mut left = by;
        loop {
            let now = left.min(step);
            self.now += now;
            self.unix_ms += i64::try_from(now.as_millis()).unwrap_or(i64::MAX);
            self.game.tick(self.now, self.unix_ms, &mut out);
            left -= now;
            if left.is_zero() {
                break;
            }
        }
        self.check();
        out
    }

    /// Reports session `n`'s client as one that agreed to GMCP, as the proxy would.
    pub fn speaks_gmcp(&mut self, n: u64) {
        let info = ClientInfo {
            gmcp: true,
            ..ClientInfo::default()
        };
        self.game.session_client(key(n), info);
    }

    /// Opens session `n` and creates a character; the state blob the proxy keeps for it
    /// comes back.
    pub fn create(&mut self, n: u64, name: &str) -> Vec<u8> {
        self.open(n);
        let out = self.send(n, &format!("create {name} secret1"));
        state_of(&out, n).expect("create should log in")
    }

    /// A core restart as the players live it: a new game of `rules` on this one's database,
    /// with sessions `blobs` restored from what the proxy kept.
    pub fn restart(self, rules: Rules, world: &str, blobs: &[(u64, Vec<u8>)]) -> TestGame {
        let db = self.game.into_db();
        let mut next = TestGame::starting_at(rules, world, db, self.now, self.unix_ms);
        next.seqs = self.seqs;
        let mut out = Outbox::new();
        // As a core takes a proxy's sessions over: all at once.
        let restored = blobs
            .iter()
            .map(|(n, blob)| RestoredSession {
                key: key(*n),
                remote_addr: "127.0.0.1:5000".into(),
                state: blob.clone(),
                client: ClientInfo::default(),
            })
            .collect();
        next.game.sessions_restored(restored, &mut out);
        next.check();
        next
    }

    fn check(&self) {
        self.game.check_bookkeeping();
    }
}

/// Fails if `markup` has a brace that is not a tag: a misspelt tag, which the renderer would
/// show as text. For a game's own message functions.
pub fn assert_well_formed_markup(markup: &str) {
    for token in tether_protocol::markup::tokens(markup) {
        if let tether_protocol::markup::Token::Text(text) = token {
            assert!(!text.contains(['{', '}']), "{markup:?}");
        }
    }
}

/// The markup session `n` was sent, one entry per text.
pub fn markups(out: &Outbox, n: u64) -> Vec<&str> {
    out.events
        .iter()
        .filter(|(k, _)| *k == key(n))
        .filter_map(|(_, e)| match e {
            Delivery::Output(t) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}

/// What session `n` read, without colours.
pub fn texts(out: &Outbox, n: u64) -> Vec<String> {
    markups(out, n).into_iter().map(plain).collect()
}

/// [`texts`] as one string, a line per text.
pub fn text(out: &Outbox, n: u64) -> String {
    texts(out, n).join("\n")
}

/// The prompts session `n` was shown, without colours.
pub fn prompts(out: &Outbox, n: u64) -> Vec<String> {
    out.events
        .iter()
        .filter_map(|(k, e)| match e {
            Delivery::Prompt(p) if *k == key(n) => Some(plain(p)),
            _ => None,
        })
        .collect()
}

/// The lines of session `n` acknowledged.
pub fn acks(out: &Outbox, n: u64) -> Vec<u64> {
    out.events
        .iter()
        .filter_map(|(k, e)| match e {
            Delivery::Ack(seq) if *k == key(n) => Some(*seq),
            _ => None,
        })
        .collect()
}

/// The blob the proxy is left holding for session `n`.
pub fn state_of(out: &Outbox, n: u64) -> Option<Vec<u8>> {
    out.events.iter().rev().find_map(|(k, e)| match e {
        Delivery::State(blob) if *k == key(n) => Some(blob.clone()),
        _ => None,
    })
}

/// Why session `n` was disconnected, if it was.
pub fn disconnect_of(out: &Outbox, n: u64) -> Option<&str> {
    out.events.iter().find_map(|(k, e)| match e {
        Delivery::Disconnect(reason) if *k == key(n) => Some(reason.as_str()),
        _ => None,
    })
}

/// The GMCP bodies of `package` session `n` was sent, as JSON.
pub fn gmcp_of(out: &Outbox, n: u64, package: &str) -> Vec<serde_json::Value> {
    out.events
        .iter()
        .filter_map(|(k, e)| match e {
            Delivery::Gmcp { package: p, json } if *k == key(n) && p == package => {
                serde_json::from_str(json).ok()
            }
            _ => None,
        })
        .collect()
}
