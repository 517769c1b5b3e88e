//! One bot's logic, without sockets: lines and clock ticks in, bytes to send out. The task
//! in `run.rs` does the I/O; keeping the decisions here makes them testable.
//!
//! Round trips: every command a bot types carries a token its answer echoes. `say` does so
//! by itself (`say tok..` is answered `You say, "tok.."`). `look`, moves and `who` have no
//! echo, so the bot types the command and, in the same write, `say <token>`; servers answer a
//! connection's lines in order, so the echo arrives after the command's own answer, and the
//! time until it is the command's round trip plus a `say` (which the `say` figures show
//! separately). Open loop: a bot types on its schedule whether or not earlier answers came,
//! as a player does, so a slow server shows up as latency, not as a lower command rate.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::hist::Hist;
use crate::mix::{Kind, Mix, Rng};
use crate::token;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginStep {
    Create,
    Connect,
}

/// Everything about a run that bots read and never change.
pub struct Plan {
    pub run_id: u32,
    pub password: String,
    /// Tried in order, each after the previous one was refused.
    pub login_steps: Vec<LoginStep>,
    pub login_timeout: Duration,
    pub rate: Duration,
    pub mix: Mix,
    /// The two directions a bot alternates between, so that it walks back where it was.
    pub moves: (String, String),
    pub drain: Duration,
    /// Logged-in bots type nothing until the window's `play_from` (`--idle`).
    pub wait_to_play: bool,
}

/// The measuring window, decided once every bot has logged in (or failed to).
#[derive(Clone, Copy, Debug, Default)]
pub struct Window {
    /// With `--idle`, when the silent bots start typing.
    pub play_from: Option<Instant>,
    pub start: Option<Instant>,
    pub end: Option<Instant>,
    /// Everyone is done: connections may close now.
    pub close: bool,
}

/// Counters the progress line reads while the run goes on.
#[derive(Default)]
pub struct Counters {
    pub connected: AtomicU64,
    pub connect_failed: AtomicU64,
    pub login_failed: AtomicU64,
    pub logged_in: AtomicU64,
    /// Logged in and still connected.
    pub up: AtomicU64,
    pub dropped: AtomicU64,
    /// Bots that will not send or measure anything more (finished, failed, dropped).
    pub done: AtomicU64,
    /// Commands sent but not answered yet, measured or not.
    pub pending: AtomicU64,
    /// Measured commands known to be lost: their session closed before the answer.
    pub lost: AtomicU64,
    pub answered: AtomicU64,
    /// Sessions whose server compressed (MCCP2) what it sent, and GMCP messages received, by
    /// sessions that have ended.
    pub compressed: AtomicU64,
    pub gmcp_messages: AtomicU64,
}

#[derive(Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct KindStats {
    pub sent: u64,
    pub answered: u64,
    pub lost: u64,
    /// Answers that arrived after the answer to a later command of the same bot.
    pub out_of_order: u64,
    /// Round trips of measured commands, in microseconds.
    pub hist: Hist,
}

#[derive(Default)]
pub struct Measured {
    pub kinds: [KindStats; 4],
    /// From connecting to the first echo after logging in, in microseconds.
    pub login: Hist,
    /// Tokens of this bot that matched no command waiting for an answer (duplicates).
    pub unexpected: u64,
    pub failures: BTreeMap<String, u64>,
}

pub struct Shared {
    pub plan: Plan,
    pub window: watch::Sender<Window>,
    pub counters: Counters,
    pub measured: Mutex<Measured>,
    /// Every answer of the current second, for the progress line.
    pub live: Mutex<Hist>,
}

impl Shared {
    pub fn new(plan: Plan) -> Shared {
        Shared {
            plan,
            window: watch::Sender::new(Window::default()),
            counters: Counters::default(),
            measured: Mutex::default(),
            live: Mutex::default(),
        }
    }

    fn measured(&self) -> std::sync::MutexGuard<'_, Measured> {
        // A panicking bot cannot leave the counters half-updated in a way that matters.
        self.measured.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn fail(&self, reason: &str) {
        *self
            .measured()
            .failures
            .entry(reason.to_owned())
            .or_default() += 1;
    }
}

/// Lines that mean a login command was refused. Heuristics: tether, Evennia and the usual
/// wordings; on a server that words it differently a refusal ends in the login timeout.
const REFUSALS: &[&str] = &[
    "wrong name or password",
    "incorrect",
    "already taken",
    "already an account",
    "already exists",
    "does not exist",
    "not found",
    "no such",
    "invalid",
    "must be at least",
    "can be at most",
    "may contain only",
];

/// Lines that mean `create` worked but did not log in (Evennia): `connect` follows.
/// Evennia 5.0.1 words it "You can now log with the command 'connect ...'".
const CREATED_NOT_LOGGED_IN: &[&str] = &["you can now log in", "you can now log with the command"];

#[derive(Debug, PartialEq, Eq)]
enum Phase {
    LoggingIn {
        step: usize,
        deadline: Instant,
        /// Whether `connect` already followed a `create` that did not log in.
        followed_up: bool,
    },
    Playing,
    /// The window ended: no more commands, waiting for the measured ones' answers.
    Draining,
    /// Nothing more to measure (finished, failed or dropped).
    Done,
}

struct Pending {
    seq: u64,
    kind: Kind,
    sent: Instant,
    measured: bool,
}

pub struct Bot<'a> {
    shared: &'a Shared,
    global: u64,
    name: String,
    rng: Rng,
    phase: Phase,
    connected_at: Instant,
    /// The last sequence number used; login probes use the first few.
    seq: u64,
    first_command_seq: u64,
    outstanding: VecDeque<Pending>,
    /// The highest sequence number answered so far: an answer below it is out of order.
    /// (Comparing with the oldest unanswered command instead would count every answer after
    /// a lost one as out of order.)
    highest_answered: u64,
    next_send: Instant,
    /// Logged in but silent until the window's `play_from` (`--idle`).
    waiting_to_play: bool,
    north: bool,
    /// Bytes to send; the I/O side takes them.
    pub out: Vec<u8>,
}

impl<'a> Bot<'a> {
    /// A bot that just connected: it sends its first login command at once.
    pub fn connected(shared: &'a Shared, global: u64, name: String, now: Instant) -> Bot<'a> {
        let plan = &shared.plan;
        let mut bot = Bot {
            shared,
            global,
            name,
            rng: Rng::new(u64::from(plan.run_id) << 32 ^ global),
            phase: Phase::LoggingIn {
                step: 0,
                deadline: now + plan.login_timeout,
                followed_up: false,
            },
            connected_at: now,
            seq: 0,
            first_command_seq: u64::MAX,
            outstanding: VecDeque::new(),
            highest_answered: 0,
            next_send: now,
            waiting_to_play: false,
            north: true,
            out: Vec::new(),
        };
        shared.counters.connected.fetch_add(1, Relaxed);
        match plan.login_steps.first() {
            Some(step) => bot.send_login(*step),
            None => bot.fail("no login steps"),
        }
        bot
    }

    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    pub fn was_logged_in(&self) -> bool {
        self.first_command_seq != u64::MAX
    }

    /// When `on_timer` wants to run next; `None` when only a line or the window can wake it.
    pub fn next_wake(&self) -> Option<Instant> {
        let window = *self.shared.window.borrow();
        match self.phase {
            Phase::LoggingIn { deadline, .. } => Some(match window.end {
                Some(end) => deadline.min(end),
                None => deadline,
            }),
            // Until `play_from` is known only the window's change can wake a silent bot.
            Phase::Playing if self.waiting_to_play => window.play_from,
            Phase::Playing => Some(match window.end {
                Some(end) => self.next_send.min(end),
                None => self.next_send,
            }),
            Phase::Draining => window.end.map(|end| end + self.shared.plan.drain),
            Phase::Done => None,
        }
    }

    /// Login step `step`, then a probe whose echo means "logged in".
    fn send_login(&mut self, step: LoginStep) {
        let verb = match step {
            LoginStep::Create => "create",
            LoginStep::Connect => "connect",
        };
        let line = format!("{verb} {} {}\r\n", self.name, self.shared.plan.password);
        self.out.extend_from_slice(line.as_bytes());
        self.seq += 1;
        let probe = token::format(self.shared.plan.run_id, self.global, self.seq);
        self.out
            .extend_from_slice(format!("say {probe}\r\n").as_bytes());
    }

    fn fail(&mut self, reason: &str) {
        let counters = &self.shared.counters;
        counters.login_failed.fetch_add(1, Relaxed);
        counters.done.fetch_add(1, Relaxed);
        self.shared.fail(reason);
        self.phase = Phase::Done;
    }

    pub fn on_line(&mut self, line: &[u8], now: Instant) {
        let mut seqs = Vec::new();
        token::scan(line, self.shared.plan.run_id, self.global, |seq| {
            seqs.push(seq)
        });
        match self.phase {
            Phase::LoggingIn { .. } => {
                // The echo of any of this bot's probes: whichever login step worked, the
                // server now takes `say` from this connection.
                if !seqs.is_empty() {
                    self.logged_in(now);
                } else {
                    self.login_answer(line);
                }
            }
            Phase::Playing | Phase::Draining => {
                for seq in seqs {
                    self.answer(seq, now);
                }
                if self.phase == Phase::Draining && !self.waiting_for_measured() {
                    self.finish();
                }
            }
            Phase::Done => {}
        }
    }

    fn login_answer(&mut self, line: &[u8]) {
        let Phase::LoggingIn {
            step, followed_up, ..
        } = &mut self.phase
        else {
            return;
        };
        let lower = String::from_utf8_lossy(line).to_lowercase();
        let steps = &self.shared.plan.login_steps;
        if !*followed_up
            && steps.get(*step) == Some(&LoginStep::Create)
            && CREATED_NOT_LOGGED_IN.iter().any(|p| lower.contains(p))
        {
            *followed_up = true;
            self.send_login(LoginStep::Connect);
            return;
        }
        if !REFUSALS.iter().any(|p| lower.contains(p)) {
            return;
        }
        *step += 1;
        *followed_up = false;
        match steps.get(*step).copied() {
            Some(next) => self.send_login(next),
            None => {
                // The refusal itself is the most useful reason; it is the server's text,
                // with the bot's name taken out so that equal refusals add up.
                let text = String::from_utf8_lossy(line);
                let reason: String = without_name(text.trim(), &self.name)
                    .chars()
                    .take(80)
                    .collect();
                self.fail(&format!("refused: {reason}"));
            }
        }
    }

    fn logged_in(&mut self, now: Instant) {
        let counters = &self.shared.counters;
        counters.logged_in.fetch_add(1, Relaxed);
        counters.up.fetch_add(1, Relaxed);
        self.shared
            .measured()
            .login
            .record(micros(now - self.connected_at));
        self.first_command_seq = self.seq + 1;
        // Bots log in one after another; the jitter spreads their commands over the period
        // so that they do not type in lockstep with the login ramp.
        let rate = self.shared.plan.rate;
        self.next_send = now + rate.mul_f64(self.rng.unit());
        self.waiting_to_play = self.shared.plan.wait_to_play;
        self.phase = Phase::Playing;
    }

    pub fn on_timer(&mut self, now: Instant) {
        let window = *self.shared.window.borrow();
        match self.phase {
            Phase::LoggingIn { deadline, .. } => {
                if window.end.is_some_and(|end| now >= end) {
                    self.fail("run ended during login");
                } else if now >= deadline {
                    self.fail("login timed out");
                }
            }
            Phase::Playing => {
                if window.end.is_some_and(|end| now >= end) {
                    self.phase = Phase::Draining;
                    if !self.waiting_for_measured() {
                        self.finish();
                    }
                } else if self.waiting_to_play {
                    if let Some(from) = window.play_from.filter(|from| now >= *from) {
                        self.waiting_to_play = false;
                        self.next_send = from + self.shared.plan.rate.mul_f64(self.rng.unit());
                    }
                } else if now >= self.next_send {
                    self.send_command(now, &window);
                    // If the bot fell behind (a busy machine), it does not catch up in a
                    // burst: the schedule restarts from now.
                    self.next_send = (self.next_send + self.shared.plan.rate).max(now);
                }
            }
            Phase::Draining => {
                if window
                    .end
                    .is_some_and(|end| now >= end + self.shared.plan.drain)
                {
                    self.finish();
                }
            }
            Phase::Done => {}
        }
    }

    fn send_command(&mut self, now: Instant, window: &Window) {
        let kind = self.shared.plan.mix.pick(&mut self.rng);
        self.seq += 1;
        let tok = token::format(self.shared.plan.run_id, self.global, self.seq);
        let command = match kind {
            Kind::Say => format!("say {tok}\r\n"),
            Kind::Look => format!("look\r\nsay {tok}\r\n"),
            Kind::Who => format!("who\r\nsay {tok}\r\n"),
            Kind::Move => {
                let (there, back) = &self.shared.plan.moves;
                let way = if self.north { there } else { back };
                self.north = !self.north;
                format!("{way}\r\nsay {tok}\r\n")
            }
        };
        self.out.extend_from_slice(command.as_bytes());
        let measured = window.start.is_some_and(|start| now >= start)
            && window.end.is_some_and(|end| now < end);
        if measured {
            self.shared.measured().kinds[kind.index()].sent += 1;
        }
        self.shared.counters.pending.fetch_add(1, Relaxed);
        self.outstanding.push_back(Pending {
            seq: self.seq,
            kind,
            sent: now,
            measured,
        });
    }

    fn answer(&mut self, seq: u64, now: Instant) {
        if seq < self.first_command_seq {
            // A late echo of a login probe.
            return;
        }
        let Some(position) = self.outstanding.iter().position(|p| p.seq == seq) else {
            self.shared.measured().unexpected += 1;
            return;
        };
        let Some(pending) = self.outstanding.remove(position) else {
            return;
        };
        let late = seq < self.highest_answered;
        self.highest_answered = self.highest_answered.max(seq);
        let counters = &self.shared.counters;
        counters.pending.fetch_sub(1, Relaxed);
        counters.answered.fetch_add(1, Relaxed);
        let rtt = micros(now - pending.sent);
        self.shared
            .live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .record(rtt);
        if pending.measured {
            let mut measured = self.shared.measured();
            let stats = &mut measured.kinds[pending.kind.index()];
            stats.answered += 1;
            stats.hist.record(rtt);
            if late {
                stats.out_of_order += 1;
            }
        }
    }

    fn waiting_for_measured(&self) -> bool {
        self.outstanding.iter().any(|p| p.measured)
    }

    /// Stops measuring: whatever measured command is still unanswered is lost.
    fn finish(&mut self) {
        let counters = &self.shared.counters;
        counters
            .pending
            .fetch_sub(self.outstanding.len() as u64, Relaxed);
        let mut lost = 0;
        {
            let mut measured = self.shared.measured();
            for pending in self.outstanding.drain(..).filter(|p| p.measured) {
                measured.kinds[pending.kind.index()].lost += 1;
                lost += 1;
            }
        }
        counters.lost.fetch_add(lost, Relaxed);
        counters.done.fetch_add(1, Relaxed);
        self.phase = Phase::Done;
    }

    /// The server closed the connection (or it broke).
    pub fn on_closed(&mut self) {
        match self.phase {
            Phase::LoggingIn { .. } => self.fail("closed by the server during login"),
            Phase::Playing | Phase::Draining => {
                let counters = &self.shared.counters;
                counters.dropped.fetch_add(1, Relaxed);
                counters.up.fetch_sub(1, Relaxed);
                self.finish();
            }
            // After its measurements a bot no longer cares.
            Phase::Done => {}
        }
    }
}

/// `text` with `name` (in any case) replaced by `<name>`.
fn without_name(text: &str, name: &str) -> String {
    if name.is_empty() {
        return text.to_owned();
    }
    // ASCII lowercasing keeps byte offsets, so positions found in `lower` are valid in `text`.
    let lower = text.to_ascii_lowercase();
    let needle = name.to_ascii_lowercase();
    let mut out = String::new();
    let mut from = 0;
    while let Some(at) = lower[from..].find(&needle) {
        out.push_str(&text[from..from + at]);
        out.push_str("<name>");
        from += at + needle.len();
    }
    out.push_str(&text[from..]);
    out
}

pub fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(steps: Vec<LoginStep>) -> Plan {
        Plan {
            run_id: 9,
            password: "secret1".into(),
            login_steps: steps,
            login_timeout: Duration::from_secs(30),
            rate: Duration::from_secs(1),
            mix: Mix::parse("say=1,look=1,move=1,who=1").unwrap(),
            moves: ("north".into(), "south".into()),
            drain: Duration::from_secs(5),
            wait_to_play: false,
        }
    }

    fn sent(bot: &mut Bot) -> String {
        String::from_utf8(std::mem::take(&mut bot.out)).unwrap()
    }

    #[test]
    fn auto_login_connects_then_creates() {
        let shared = Shared::new(plan(vec![LoginStep::Connect, LoginStep::Create]));
        let now = Instant::now();
        let mut bot = Bot::connected(&shared, 3, "Botaaad".into(), now);
        assert_eq!(
            sent(&mut bot),
            "connect Botaaad secret1\r\nsay tok9r3s1\r\n"
        );
        bot.on_line(b"Welcome to Tether Town!", now);
        assert_eq!(sent(&mut bot), "");
        bot.on_line(b"Wrong name or password.", now);
        assert_eq!(sent(&mut bot), "create Botaaad secret1\r\nsay tok9r3s2\r\n");
        // The first probe's answer while logged out does not echo the token.
        bot.on_line(b"You are not logged in. Use \"connect <name>\"", now);
        bot.on_line(b"Welcome, Botaaad! Your character has been created.", now);
        bot.on_line(b"You say, \"tok9r3s2\"", now + Duration::from_millis(5));
        assert_eq!(bot.phase, Phase::Playing);
        assert_eq!(shared.counters.logged_in.load(Relaxed), 1);
        assert_eq!(shared.measured().login.max(), 5000);
    }

    #[test]
    fn evennia_style_create_is_followed_by_connect() {
        let shared = Shared::new(plan(vec![LoginStep::Create]));
        let now = Instant::now();
        let mut bot = Bot::connected(&shared, 0, "Botaaaa".into(), now);
        sent(&mut bot);
        bot.on_line(b"A new account 'Botaaaa' was created. Welcome!", now);
        bot.on_line(
            b"You can now log in with the command 'connect Botaaaa <password>'.",
            now,
        );
        assert_eq!(
            sent(&mut bot),
            "connect Botaaaa secret1\r\nsay tok9r0s2\r\n"
        );
        bot.on_line(b"You say, \"tok9r0s2\"", now);
        assert_eq!(bot.phase, Phase::Playing);
    }

    #[test]
    fn refusal_of_the_last_step_fails_with_the_server_text() {
        let shared = Shared::new(plan(vec![LoginStep::Create]));
        let now = Instant::now();
        let mut bot = Bot::connected(&shared, 0, "Botaaaa".into(), now);
        bot.on_line(b"The name Botaaaa is already taken.", now);
        assert!(bot.is_done());
        assert_eq!(shared.counters.login_failed.load(Relaxed), 1);
        let failures = &shared.measured().failures;
        assert_eq!(
            failures.keys().next().unwrap(),
            "refused: The name <name> is already taken."
        );
        assert_eq!(
            without_name("BOTAAAA, botaaaa!", "Botaaaa"),
            "<name>, <name>!"
        );
        assert_eq!(without_name("née Botaaaa", "Botaaaa"), "née <name>");
    }

    #[test]
    fn idle_bots_stay_silent_until_play_from() {
        let shared = Shared::new(Plan {
            wait_to_play: true,
            ..plan(vec![LoginStep::Connect])
        });
        let now = Instant::now();
        let mut bot = Bot::connected(&shared, 0, "Botaaaa".into(), now);
        sent(&mut bot);
        bot.on_line(b"You say, \"tok9r0s1\"", now);
        assert_eq!(bot.phase, Phase::Playing);
        assert_eq!(
            bot.next_wake(),
            None,
            "silent until the window says when to play"
        );
        bot.on_timer(now + Duration::from_secs(60));
        assert_eq!(sent(&mut bot), "");
        let from = now + Duration::from_secs(100);
        shared.window.send_modify(|w| {
            w.play_from = Some(from);
            w.start = Some(from);
            w.end = Some(from + Duration::from_secs(10));
        });
        assert_eq!(bot.next_wake(), Some(from));
        bot.on_timer(from - Duration::from_millis(1));
        assert_eq!(sent(&mut bot), "");
        bot.on_timer(from);
        let first = bot.next_wake().unwrap();
        assert!(first >= from && first <= from + Duration::from_secs(1));
        bot.on_timer(first);
        assert!(sent(&mut bot).contains("tok9r0s2"));
    }

    #[test]
    fn login_times_out() {
        let shared = Shared::new(plan(vec![LoginStep::Connect]));
        let now = Instant::now();
        let mut bot = Bot::connected(&shared, 0, "Botaaaa".into(), now);
        bot.on_timer(now + Duration::from_secs(29));
        assert!(!bot.is_done());
        assert_eq!(bot.next_wake(), Some(now + Duration::from_secs(30)));
        bot.on_timer(now + Duration::from_secs(30));
        assert!(bot.is_done());
    }

    fn playing<'a>(shared: &'a Shared, now: Instant) -> Bot<'a> {
        let mut bot = Bot::connected(shared, 1, "Botaaab".into(), now);
        bot.on_line(b"You say, \"tok9r1s1\"", now);
        sent(&mut bot);
        bot
    }

    #[test]
    fn commands_carry_tokens_and_are_timed_per_kind() {
        let shared = Shared::new(plan(vec![LoginStep::Connect]));
        let t0 = Instant::now();
        let mut bot = playing(&shared, t0);
        shared.window.send_replace(Window {
            start: Some(t0),
            end: Some(t0 + Duration::from_secs(100)),
            ..Window::default()
        });
        let mut moves = Vec::new();
        let mut t = t0;
        for _ in 0..40 {
            t = bot.next_wake().unwrap();
            bot.on_timer(t);
            let out = sent(&mut bot);
            let (first, _) = out.split_once("\r\n").unwrap();
            let tok = token::format(9, 1, bot.seq);
            assert!(out.ends_with(&format!("say {tok}\r\n")), "{out}");
            if first == "north" || first == "south" {
                moves.push(first.to_owned());
            }
            bot.on_line(
                format!("You say, \"{tok}\"").as_bytes(),
                t + Duration::from_millis(2),
            );
        }
        assert!(moves.len() >= 2);
        for (i, way) in moves.iter().enumerate() {
            assert_eq!(way, if i % 2 == 0 { "north" } else { "south" });
        }
        let measured = shared.measured();
        let total: u64 = measured.kinds.iter().map(|k| k.answered).sum();
        assert_eq!(total, 40);
        assert!(
            measured
                .kinds
                .iter()
                .all(|k| k.answered > 0 && k.hist.max() == 2000)
        );
        assert!(t > t0 + Duration::from_secs(30), "one command a second");
    }

    #[test]
    fn out_of_order_unexpected_and_lost_answers() {
        let shared = Shared::new(plan(vec![LoginStep::Connect]));
        let t0 = Instant::now();
        let mut bot = playing(&shared, t0);
        let end = t0 + Duration::from_secs(10);
        shared.window.send_replace(Window {
            start: Some(t0),
            end: Some(end),
            ..Window::default()
        });
        for _ in 0..3 {
            let t = bot.next_wake().unwrap();
            bot.on_timer(t);
        }
        // seqs 2, 3, 4 sent; 3 answered first, then 3 again, then 2, 4 never.
        bot.on_line(b"You say, \"tok9r1s3\"", t0 + Duration::from_secs(4));
        bot.on_line(b"You say, \"tok9r1s3\"", t0 + Duration::from_secs(4));
        bot.on_line(b"Botaaac says, \"tok9r2s4\"", t0 + Duration::from_secs(4));
        bot.on_timer(end);
        assert_eq!(bot.phase, Phase::Draining);
        assert_eq!(bot.next_wake(), Some(end + Duration::from_secs(5)));
        bot.on_line(b"You say, \"tok9r1s2\"", end);
        assert_eq!(bot.phase, Phase::Draining, "seq 4 is still awaited");
        bot.on_timer(end + Duration::from_secs(5));
        assert!(bot.is_done());
        let measured = shared.measured();
        let sum = |f: fn(&KindStats) -> u64| measured.kinds.iter().map(f).sum::<u64>();
        assert_eq!(sum(|k| k.sent), 3);
        assert_eq!(sum(|k| k.answered), 2);
        assert_eq!(sum(|k| k.out_of_order), 1);
        assert_eq!(sum(|k| k.lost), 1);
        assert_eq!(measured.unexpected, 1);
        assert_eq!(shared.counters.pending.load(Relaxed), 0);
    }

    #[test]
    fn a_drop_loses_what_was_waiting() {
        let shared = Shared::new(plan(vec![LoginStep::Connect]));
        let t0 = Instant::now();
        let mut bot = playing(&shared, t0);
        shared.window.send_replace(Window {
            start: Some(t0),
            end: Some(t0 + Duration::from_secs(10)),
            ..Window::default()
        });
        let t = bot.next_wake().unwrap();
        bot.on_timer(t);
        bot.on_closed();
        assert!(bot.is_done());
        assert_eq!(shared.counters.dropped.load(Relaxed), 1);
        assert_eq!(shared.counters.lost.load(Relaxed), 1);
        assert_eq!(shared.counters.up.load(Relaxed), 0);
    }

    #[test]
    fn commands_outside_the_window_are_not_measured() {
        let shared = Shared::new(plan(vec![LoginStep::Connect]));
        let t0 = Instant::now();
        let mut bot = playing(&shared, t0);
        let t = bot.next_wake().unwrap();
        bot.on_timer(t);
        shared.window.send_replace(Window {
            start: Some(t + Duration::from_secs(1)),
            end: Some(t + Duration::from_secs(1)),
            ..Window::default()
        });
        bot.on_timer(t + Duration::from_secs(1));
        // The unmeasured command does not hold the bot back from finishing.
        assert!(bot.is_done());
        let measured = shared.measured();
        assert_eq!(measured.kinds.iter().map(|k| k.sent).sum::<u64>(), 0);
        assert_eq!(measured.kinds.iter().map(|k| k.lost).sum::<u64>(), 0);
    }
}
