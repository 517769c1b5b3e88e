//! The proxy's end of the link: one task on the proxy's runtime that connects to the core,
//! attaches with a snapshot of every session, submits input in batches (one in flight; what
//! arrives meanwhile rides in the next one) and routes what the core delivers.
//!
//! Sessions hand their events to the link through a `LinkHandle`, which never waits: the
//! decisions about what to send, resend and tell players are the `Relay`'s, kept behind one
//! lock, and the link task only does the I/O. Being a task like the sessions (not a thread of
//! its own), tokio runs it next on the worker that woke it, so a player's line and its answer
//! need not cross threads. When the link drops it reconnects by itself, quickly: the backoff
//! is capped at 100 ms so a restarted core is picked up at once.
//!
//! The core is on this host (a Unix socket) or on another one (TCP with the link's TLS, see
//! `tether_protocol::link_tls`). At a hand-over, a Unix connection goes to the next proxy as
//! it is; a TLS one cannot (its keys live in this process), so the link `detach`es: the core
//! answers what is in flight, says `detached`, and keeps the sessions and their output for
//! the next proxy, which attaches with the same proxy id and is told it `resumed`.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tether_protocol::framing::{self, MessageReader};
use tether_protocol::message::{
    self, Attach, ClientInfo, CoreMessage, DecodeError, Hello, Order, OrderAction, ProxyEvent,
    ProxyMessage, SessionInfo, Welcome,
};
use tether_protocol::process::CoreNews;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::{Notify, oneshot};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tracing::{debug, info, warn};

use crate::keeper::Keeper;
use crate::mailbox;
use crate::metrics;
use crate::relay::{
    CoreHealth, KeptSlot, NoCore, OrderAnswer, Refused, Relay, RelayState, ToSession,
};
use crate::state;

/// Messages a player's session sends to the link.
#[derive(Debug)]
pub enum ToLink {
    Opened {
        session: u64,
        info: SessionInfo,
        handle: SessionHandle,
    },
    Line {
        session: u64,
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

/// The latest MSSP facts from the core, read by sessions when a client asks.
pub type GameStatus = std::sync::Arc<std::sync::RwLock<Vec<(String, String)>>>;

/// Why no core can start, as the supervisor last said (`CoreNews`); shared with the thread
/// that reads the news, which outlives any one link.
pub type CannotStart = std::sync::Arc<Mutex<Option<String>>>;

/// How the link reaches one session task.
#[derive(Debug, Clone)]
pub struct SessionHandle {
    /// Overflows, and so closes the session, when it cannot keep up with its output: a client
    /// that does not read must not make the proxy buffer forever.
    pub messages: mailbox::Sender<ToSession>,
}

/// Where the core is.
#[derive(Debug, Clone)]
pub enum CoreAddress {
    /// The link socket on this host.
    Unix(PathBuf),
    /// A core on another host: `host:port`, over TCP with the link's TLS.
    Remote {
        addr: String,
        tls: Arc<rustls::ClientConfig>,
    },
}

impl fmt::Display for CoreAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CoreAddress::Unix(path) => write!(f, "{}", path.display()),
            CoreAddress::Remote { addr, .. } => write!(f, "{addr} (TLS)"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct LinkConfig {
    pub core: CoreAddress,
    pub proxy_name: String,
    pub proxy_id: u64,
    pub max_queued_lines: usize,
    pub game_status: GameStatus,
    pub cannot_start: CannotStart,
    /// Where what the relay keeps for each session is checkpointed.
    pub keeper: Keeper,
}

/// The link's whole state, for the proxy that takes over from this one: the relay's, the
/// batch the core has not answered, and whether the core declined input. The connection to
/// the core itself travels beside it ([`FrozenLink`]), so the core sees nothing happen.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkState {
    relay: RelayState,
    in_flight: Option<Vec<ProxyEvent<'static>>>,
    declined: bool,
}

impl Default for LinkState {
    /// A link that never attached.
    fn default() -> LinkState {
        let now = Instant::now();
        LinkState {
            relay: Relay::new(now, 0).export(now),
            in_flight: None,
            declined: false,
        }
    }
}

impl LinkState {
    /// The link of a proxy that carries on after its predecessor died (see
    /// [`Relay::recovered`]).
    pub fn recovered(slots: impl IntoIterator<Item = (u64, KeptSlot)>) -> LinkState {
        let now = Instant::now();
        LinkState {
            relay: Relay::recovered(slots, now, 0).export(now),
            in_flight: None,
            declined: false,
        }
    }
}

/// A link stopped for a hand-over: the connection to the core, if one was attached, and the
/// bytes read from it that no message has covered yet.
#[derive(Debug)]
pub struct FrozenLink {
    pub connection: Option<(std::os::unix::net::UnixStream, Vec<u8>)>,
}

const BACKOFF_FIRST: Duration = Duration::from_millis(5);
const BACKOFF_CAP: Duration = Duration::from_millis(100);
/// How long a core that declined input may take to finish and close the link.
const STOPPING_CORE_GRACE: Duration = Duration::from_secs(10);
/// A core that refuses us (version mismatch, a certificate it does not accept) will not
/// change its mind every 100 ms.
const REFUSED_RETRY: Duration = Duration::from_secs(2);
/// How long a core on another host may take to prove its certificate.
const HANDSHAKE_LIMIT: Duration = Duration::from_secs(10);
/// How long a core may take to answer `detach`; a core that does not is treated as a lost
/// link, which the next proxy's attach recovers from.
const DETACH_LIMIT: Duration = Duration::from_secs(5);

/// How sessions reach the link. Cheap to clone; `send` never waits.
#[derive(Clone)]
pub struct LinkHandle {
    shell: Arc<Mutex<Shell>>,
    /// Wakes the link task when there may be input to submit.
    submit_ready: Arc<Notify>,
    /// Whether a core is attached right now.
    attached: Arc<tokio::sync::watch::Sender<bool>>,
    /// Set to stop the link for a hand-over; the link task answers with its connection.
    frozen: Arc<tokio::sync::watch::Sender<bool>>,
    cannot_start: CannotStart,
}

impl std::fmt::Debug for LinkHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkHandle").finish_non_exhaustive()
    }
}

impl LinkHandle {
    /// A link with no task behind it yet: `start` gives it one.
    pub fn new(config: &LinkConfig) -> LinkHandle {
        LinkHandle::with_shell(
            config,
            Shell {
                relay: Relay::new(Instant::now(), config.max_queued_lines),
                sessions: HashMap::new(),
                game_status: config.game_status.clone(),
                in_flight: None,
                declined: false,
                frozen: false,
                freeze_reply: None,
                keeper: config.keeper.clone(),
                resume_expected: false,
                attached_before: false,
                orders: Orders::default(),
                core_name: None,
            },
        )
    }

    fn with_shell(config: &LinkConfig, shell: Shell) -> LinkHandle {
        LinkHandle {
            shell: Arc::new(Mutex::new(shell)),
            submit_ready: Arc::new(Notify::new()),
            attached: Arc::new(tokio::sync::watch::Sender::new(false)),
            frozen: Arc::new(tokio::sync::watch::Sender::new(false)),
            cannot_start: config.cannot_start.clone(),
        }
    }

    /// Stops the link for a hand-over, at a point where nothing is half written or half
    /// handled: from now on it neither submits nor routes to sessions (what the core delivers
    /// meanwhile stays in the relay, to be routed by the next proxy). Returns the connection.
    pub async fn freeze(&self) -> FrozenLink {
        let (reply, frozen) = oneshot::channel();
        {
            let mut shell = self.lock();
            shell.frozen = true;
            shell.freeze_reply = Some(reply);
        }
        self.frozen.send_replace(true);
        frozen.await.unwrap_or(FrozenLink { connection: None })
    }

    /// The link's state once it is frozen and every session has stopped.
    pub fn export(&self) -> LinkState {
        let shell = self.lock();
        LinkState {
            relay: shell.relay.export(Instant::now()),
            in_flight: shell.in_flight.clone(),
            declined: shell.declined,
        }
    }

    /// Who each logged-in session plays, as the core said (for a successor).
    pub fn players(&self) -> Vec<(u64, String)> {
        self.lock().relay.players()
    }

    /// Tells the keeper what the relay holds for every session (a new keeper set).
    pub fn keep_all(&self) {
        let mut shell = self.lock();
        shell.relay.keep_all();
        shell.flush();
    }

    /// Resolves once a core is attached (at once if one is).
    pub async fn wait_attached(&self) {
        let mut attached = self.attached.subscribe();
        // The sender lives as long as `self`, so this cannot fail while we wait.
        let _ = attached.wait_for(|&up| up).await;
    }

    /// How the core looks from here (for `/health`).
    pub fn core_health(&self) -> CoreHealth {
        self.lock().relay.health(Instant::now())
    }

    /// The open sessions, for the dashboard.
    pub fn overview(&self, max: usize) -> crate::dashboard::Overview {
        self.lock().relay.overview(Instant::now(), max)
    }

    /// The core as the dashboard shows it: who it is and how it answers.
    pub fn core_summary(&self) -> String {
        let shell = self.lock();
        let name = shell.core_name.as_deref().unwrap_or("no core yet");
        match shell.relay.health(Instant::now()) {
            CoreHealth::Answering => format!("{name}, answering"),
            CoreHealth::NotAnswering(waited) => {
                format!("{name}, not answering for {:.1} s", waited.as_secs_f64())
            }
            CoreHealth::Detached(gap) => format!("detached for {:.1} s", gap.as_secs_f64()),
        }
    }

    /// The sessions, clients and queues as the relay has them now (for `/metrics`).
    pub fn census(&self) -> metrics::Census {
        self.lock().relay.census()
    }

    /// Why no core can start, as the supervisor last said (for `/health`).
    pub fn core_cannot_start(&self) -> Option<String> {
        lock(&self.cannot_start).clone()
    }

    /// Has the core carry out an operator's order, and waits for its answer.
    pub async fn order(
        &self,
        actor: String,
        action: OrderAction,
    ) -> Result<OrderAnswer, OrderError> {
        let (reply, answer) = oneshot::channel();
        {
            let mut shell = self.lock();
            shell.orders.next_id += 1;
            let id = shell.orders.next_id;
            shell.relay.order(Order { id, actor, action })?;
            shell.orders.waiting.insert(id, reply);
        }
        self.submit_ready.notify_one();
        match tokio::time::timeout(ORDER_LIMIT, answer).await {
            Ok(Ok(answer)) => Ok(answer),
            _ => Err(OrderError::NoAnswer),
        }
    }

    /// Takes one event from a session.
    pub fn send(&self, message: ToLink) {
        let mut shell = self.lock();
        shell.apply(message);
        shell.flush();
        drop(shell);
        self.submit_ready.notify_one();
    }

    fn lock(&self) -> MutexGuard<'_, Shell> {
        lock(&self.shell)
    }
}

/// A panic elsewhere must not take every player's link down with it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What the supervisor says about the core.
pub fn core_news(cannot_start: &CannotStart, news: CoreNews) {
    *lock(cannot_start) = match news {
        CoreNews::CannotStart(reason) => Some(reason),
        CoreNews::Running => None,
    };
}

/// Starts the link task on the current runtime. It runs until the process ends or the link
/// is frozen for a hand-over.
pub fn start(config: LinkConfig) -> LinkHandle {
    let link = LinkHandle::new(&config);
    spawn_tasks(config, link.clone(), None);
    link
}

/// Carries on a link another proxy (or this one, before a hand-over that failed) froze:
/// the relay as it was, and the connection to the core if there was one, read from where the
/// other reader stopped. The core does not see a new attach. `sessions` are the handles of
/// the sessions carried on with it: in place before anything is routed, so nothing the core
/// sends meanwhile finds a session missing.
pub fn resume(
    config: LinkConfig,
    state: LinkState,
    frozen: FrozenLink,
    sessions: HashMap<u64, SessionHandle>,
    players: Vec<(u64, String)>,
) -> LinkHandle {
    let mut relay = Relay::import(state.relay, Instant::now(), config.max_queued_lines);
    relay.watch_players(players);
    let link = LinkHandle::with_shell(
        &config,
        Shell {
            relay,
            sessions,
            game_status: config.game_status.clone(),
            in_flight: state.in_flight,
            declined: state.declined,
            frozen: false,
            freeze_reply: None,
            keeper: config.keeper.clone(),
            resume_expected: false,
            // The previous proxy's core: its next attach ends a gap.
            attached_before: true,
            orders: Orders::default(),
            core_name: None,
        },
    );
    metrics::global().took_over();
    crate::dashboard::hub().moment("this proxy took every connection over from its predecessor");
    let connection = match frozen.connection {
        Some((stream, unread)) => match stream
            .set_nonblocking(true)
            .and_then(|()| UnixStream::from_std(stream))
        {
            Ok(stream) => Some((stream, unread)),
            Err(error) => {
                warn!(%error, "cannot take over the link to the core; attaching again");
                None
            }
        },
        None => None,
    };
    {
        let mut shell = link.lock();
        if connection.is_some() {
            link.attached.send_replace(true);
        } else if shell.in_flight.is_none() && shell.relay.is_up() {
            // The other proxy detached cleanly (a TLS link): the core keeps the sessions for
            // this proxy's attach, whose answer says whether it did.
            shell.resume_expected = true;
        } else {
            // Whatever the other proxy had in flight is lost with its connection.
            shell.connection_lost();
        }
        // What the other proxy held back while frozen: for sessions, and for the core.
        shell.flush();
    }
    link.submit_ready.notify_one();
    spawn_tasks(config, link.clone(), connection);
    link
}

fn spawn_tasks(config: LinkConfig, link: LinkHandle, connection: Option<(UnixStream, Vec<u8>)>) {
    let ticking = link.clone();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(Duration::from_millis(250));
        let mut frozen = ticking.frozen.subscribe();
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = frozen.wait_for(|&frozen| frozen) => return,
            }
            let mut shell = ticking.lock();
            shell.relay.tick(Instant::now());
            shell.flush();
        }
    });
    tokio::spawn(run(config, link, connection));
}

struct Shell {
    relay: Relay,
    sessions: HashMap<u64, SessionHandle>,
    game_status: GameStatus,
    /// The batch the core has not answered yet.
    in_flight: Option<Vec<ProxyEvent<'static>>>,
    /// The core declined input on this connection: submit nothing more to it.
    declined: bool,
    /// Set once a hand-over asked the link to stop: from then on nothing is routed to
    /// sessions or submitted.
    frozen: bool,
    /// Where the link task sends the connection once it has stopped.
    freeze_reply: Option<oneshot::Sender<FrozenLink>>,
    keeper: Keeper,
    /// The previous proxy detached: nothing in flight was lost, and the core should say at
    /// attach that it kept the sessions. If it did not (it is another core), what was
    /// submitted and not acknowledged goes to it again.
    resume_expected: bool,
    /// A core has attached to this link before: the next attach ends a gap.
    attached_before: bool,
    orders: Orders,
    /// The attached core's name as it gave it (version and pid), for the dashboard.
    core_name: Option<String>,
}

/// Operators' orders waiting for the core's answer, by id.
#[derive(Default)]
struct Orders {
    next_id: u64,
    waiting: HashMap<u64, oneshot::Sender<OrderAnswer>>,
}

/// How long an operator waits for the core to carry an order out. The core answers at once;
/// no answer means it went away with the order (a crash or a reload in between).
const ORDER_LIMIT: Duration = Duration::from_secs(10);

/// Why an operator's order got no answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OrderError {
    #[error(transparent)]
    NoCore(#[from] NoCore),
    #[error(
        "the game core did not answer within {}s (it may have restarted, or be older than \
         this proxy); see `tether admin audit` for whether it was done",
        ORDER_LIMIT.as_secs()
    )]
    NoAnswer,
}

impl Shell {
    fn apply(&mut self, message: ToLink) {
        match message {
            ToLink::Opened {
                session,
                info,
                handle,
            } => {
                self.sessions.insert(session, handle);
                self.relay.opened(session, info);
            }
            ToLink::Line { session, text } => {
                match self.relay.line(session, text, Instant::now()) {
                    Ok(_) => metrics::global().line_taken(),
                    Err(Refused::QueueFull { limit }) => {
                        metrics::global().refused(metrics::Refusal::queue_full);
                        self.send(
                            session,
                            ToSession::Notice(format!(
                                "Too many lines are waiting for the game ({limit}); that last line \
                         was not accepted. Please wait a moment and send it again."
                            )),
                        )
                    }
                    Err(Refused::UnknownSession) => {
                        warn!(session, "line from a session the link does not know")
                    }
                }
            }
            ToLink::Closed { session, reason } => {
                self.sessions.remove(&session);
                self.relay.closed(session, reason);
            }
            ToLink::Client { session, client } => self.relay.client(session, client),
        }
    }

    /// Pushes what the relay decided out to sessions (unless the link is frozen: the next
    /// proxy routes it).
    fn flush(&mut self) {
        for answer in self.relay.take_answers() {
            if let Some(reply) = self.orders.waiting.remove(&answer.id) {
                let _ = reply.send(answer);
            }
        }
        // Whoever gave up waiting is forgotten (rarely anyone: most flushes skip the walk).
        if !self.orders.waiting.is_empty() {
            self.orders.waiting.retain(|_, reply| !reply.is_closed());
        }
        for (session, kept) in self.relay.take_kept() {
            if self.keeper.is_on() {
                self.keeper.link(session, state::encode(&kept));
            }
        }
        if self.frozen {
            return;
        }
        for (session, message) in self.relay.take_for_sessions() {
            self.send(session, message);
        }
    }

    fn send(&self, session: u64, message: ToSession) {
        let Some(handle) = self.sessions.get(&session) else {
            return;
        };
        handle.messages.send(message);
    }

    /// The next batch to submit, unless one is in flight or the core declines input.
    fn next_batch(&mut self) -> Option<&[ProxyEvent<'static>]> {
        if self.in_flight.is_some() || self.declined || self.frozen {
            return None;
        }
        let batch = self.relay.take_submits();
        if batch.is_empty() {
            return None;
        }
        self.relay.submitted(Instant::now());
        self.in_flight.insert(batch).as_slice().into()
    }

    /// The link task stopped for a hand-over: the connection goes to whoever froze it.
    fn hand_over(&mut self, connection: Option<(std::os::unix::net::UnixStream, Vec<u8>)>) {
        // Still frozen afterwards: nothing is routed or submitted until the link is exported.
        if let Some(reply) = self.freeze_reply.take() {
            let _ = reply.send(FrozenLink { connection });
        }
    }

    /// The connection ended: what it did not confirm goes to the next core.
    fn connection_lost(&mut self) {
        if self.relay.is_up() {
            crate::dashboard::hub().moment(
                "core went away (a reload, a restart or a crash): players' input is queued",
            );
        }
        if let Some(batch) = self.in_flight.take() {
            self.relay.not_delivered(&batch);
        }
        self.declined = false;
        self.relay.detached(Instant::now());
        self.flush();
    }
}

async fn run(config: LinkConfig, link: LinkHandle, mut carried: Option<(UnixStream, Vec<u8>)>) {
    let mut frozen = link.frozen.subscribe();
    let mut backoff = BACKOFF_FIRST;
    let mut logged_waiting = false;
    loop {
        let (stream, unread) = match carried.take() {
            Some((stream, unread)) => (LinkStream::Unix(stream), Some(unread)),
            None => {
                let connected = tokio::select! {
                    connected = connect(&config.core) => connected,
                    _ = frozen.wait_for(|&frozen| frozen) => {
                        link.lock().hand_over(None);
                        return;
                    }
                };
                match connected {
                    Ok(stream) => (stream, None),
                    Err(error)
                        if error
                            .get_ref()
                            .is_some_and(|inner| inner.is::<rustls::Error>()) =>
                    {
                        // The core's certificate is not one our authority signed, or the core
                        // turned ours down: not something a quick retry mends.
                        tracing::error!(core = %config.core, "cannot attach to the core: TLS: {error}");
                        if pause(REFUSED_RETRY, &mut frozen).await.is_err() {
                            link.lock().hand_over(None);
                            return;
                        }
                        continue;
                    }
                    Err(error) => {
                        if !logged_waiting {
                            info!(core = %config.core, %error, "waiting for the core");
                            logged_waiting = true;
                        }
                        if pause(backoff, &mut frozen).await.is_err() {
                            link.lock().hand_over(None);
                            return;
                        }
                        backoff = (backoff * 2).min(BACKOFF_CAP);
                        continue;
                    }
                }
            }
        };
        logged_waiting = false;
        let connected = Instant::now();
        let outcome = run_connection(stream, unread, &link, &config).await;
        let outcome = match outcome {
            Ok(Ended::Frozen(stream, unread)) => {
                link.lock().hand_over(Some((stream, unread)));
                return;
            }
            Ok(Ended::Detached) => {
                info!("detached from the core; the next proxy carries on");
                link.lock().hand_over(None);
                return;
            }
            Err(error) if *frozen.borrow() => {
                // Frozen, and the detach did not go through: the next proxy attaches as
                // after a lost link.
                warn!(
                    "the core did not confirm the detach ({error}); the next proxy attaches again"
                );
                let mut shell = link.lock();
                shell.connection_lost();
                shell.hand_over(None);
                return;
            }
            Ok(Ended::Closed) => Ok(()),
            Err(error) => Err(error),
        };
        link.lock().connection_lost();
        link.attached.send_replace(false);
        let mut wait = backoff;
        match outcome {
            Ok(()) => info!("link to the core closed; reconnecting"),
            Err(LinkError::Broken(reason)) => {
                info!("link to the core lost ({reason}); reconnecting")
            }
            Err(LinkError::Refused(reason)) => {
                tracing::error!("the core refused this proxy: {reason}");
                wait = REFUSED_RETRY;
            }
        }
        // After a link that worked, the next core is expected at once; a link that failed
        // straight away must not turn into a busy loop.
        if wait == backoff && connected.elapsed() > Duration::from_secs(1) {
            backoff = BACKOFF_FIRST;
            continue;
        }
        if pause(wait, &mut frozen).await.is_err() {
            link.lock().hand_over(None);
            return;
        }
        if wait == backoff {
            backoff = (backoff * 2).min(BACKOFF_CAP);
        }
    }
}

/// Sleeps `how_long`, unless the link is frozen meanwhile (`Err`).
async fn pause(
    how_long: Duration,
    frozen: &mut tokio::sync::watch::Receiver<bool>,
) -> Result<(), ()> {
    tokio::select! {
        () = tokio::time::sleep(how_long) => Ok(()),
        _ = frozen.wait_for(|&frozen| frozen) => Err(()),
    }
}

/// How a connection to the core ended without an error.
enum Ended {
    /// The core closed it.
    Closed,
    /// Stopped for a hand-over: the connection, and what was read from it and not handled.
    Frozen(std::os::unix::net::UnixStream, Vec<u8>),
    /// Stopped for a hand-over, and the core confirmed the `detach` (a TLS link).
    Detached,
}

enum LinkError {
    /// The core answered and said no: retrying at once will not help.
    Refused(String),
    /// The connection broke.
    Broken(String),
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkError::Refused(reason) | LinkError::Broken(reason) => f.write_str(reason),
        }
    }
}

/// The connection failed. A TLS failure (the core refused our certificate, or we refused its)
/// is a refusal: it will not mend in 100 ms.
fn broken(error: impl std::error::Error + 'static) -> LinkError {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    while let Some(error) = cause {
        let tls = error
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .or_else(|| error.downcast_ref::<rustls::Error>());
        if let Some(tls) = tls {
            return LinkError::Refused(format!("TLS: {tls}"));
        }
        cause = error.source();
    }
    LinkError::Broken(error.to_string())
}

/// A connection to the core, either kind.
enum LinkStream {
    Unix(UnixStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// Connects to the core; on another host, both sides prove their certificates.
async fn connect(core: &CoreAddress) -> std::io::Result<LinkStream> {
    match core {
        CoreAddress::Unix(path) => Ok(LinkStream::Unix(UnixStream::connect(path).await?)),
        CoreAddress::Remote { addr, tls } => {
            let tcp = TcpStream::connect(addr.as_str()).await?;
            // Each batch is one small write: waiting to fill a packet would delay every
            // command by a round trip.
            tcp.set_nodelay(true)?;
            let handshake = TlsConnector::from(tls.clone())
                .connect(tether_protocol::link_tls::core_server_name(), tcp);
            match tokio::time::timeout(HANDSHAKE_LIMIT, handshake).await {
                Ok(tls) => Ok(LinkStream::Tls(Box::new(tls?))),
                Err(_) => Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "no TLS handshake from the core",
                )),
            }
        }
    }
}

/// How `drive` stopped without an error.
enum Driven<R, W> {
    Closed,
    /// Frozen for a hand-over, between two messages: the halves, to pass on or detach.
    Frozen(MessageReader<R>, W),
}

/// Runs one connection to the core: attaches (unless `unread` says it carries on a
/// connection another proxy attached, with the bytes that proxy read and did not handle),
/// then submits and routes until it ends or the link is frozen.
async fn run_connection(
    stream: LinkStream,
    unread: Option<Vec<u8>>,
    link: &LinkHandle,
    config: &LinkConfig,
) -> Result<Ended, LinkError> {
    match stream {
        LinkStream::Unix(stream) => {
            let (reader, writer) = stream.into_split();
            let carried_on = unread.is_some();
            let reader = match unread {
                Some(unread) => MessageReader::resume(reader, unread),
                None => MessageReader::new(reader),
            };
            match drive(reader, writer, carried_on, link, config).await? {
                Driven::Closed => Ok(Ended::Closed),
                Driven::Frozen(reader, writer) => {
                    let (reader, unread) = reader.into_parts();
                    let stream = reader
                        .reunite(writer)
                        .map_err(|error| LinkError::Broken(error.to_string()))?
                        .into_std()
                        .map_err(broken)?;
                    Ok(Ended::Frozen(stream, unread))
                }
            }
        }
        LinkStream::Tls(stream) => {
            let (reader, writer) = tokio::io::split(*stream);
            match drive(MessageReader::new(reader), writer, false, link, config).await? {
                Driven::Closed => Ok(Ended::Closed),
                Driven::Frozen(reader, writer) => detach(reader, writer, link).await,
            }
        }
    }
}

/// Attaches (unless `carried_on`: the connection was attached by the proxy before this one),
/// then submits and routes until the connection ends or the link is frozen.
async fn drive<R, W>(
    mut reader: MessageReader<R>,
    mut writer: W,
    carried_on: bool,
    link: &LinkHandle,
    config: &LinkConfig,
) -> Result<Driven<R, W>, LinkError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    if !carried_on {
        let mut frozen = link.frozen.subscribe();
        tokio::select! {
            attached = attach(&mut reader, &mut writer, link, config) => attached?,
            // The next proxy attaches again; this half-made attach is worth nothing.
            _ = frozen.wait_for(|&frozen| frozen) => {
                return Err(LinkError::Broken("frozen during the attach".into()));
            }
        }
    }
    link.attached.send_replace(true);
    link.submit_ready.notify_one();
    // One task, two halves: whichever woke it makes progress, and neither needs a thread.
    let frozen = tokio::select! {
        read = read_core(&mut reader, link) => read.map(|()| false),
        frozen = submit(&mut writer, link) => frozen,
    }?;
    Ok(if frozen {
        Driven::Frozen(reader, writer)
    } else {
        Driven::Closed
    })
}

/// Ends a TLS link for a hand-over: after the last batch, `detach`, then everything the core
/// sends up to its `detached` is routed as usual (into the relay, for the next proxy).
async fn detach<R, W>(
    mut reader: MessageReader<R>,
    mut writer: W,
    link: &LinkHandle,
) -> Result<Ended, LinkError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut bytes = Vec::new();
    ProxyMessage::Detach.encode(&mut bytes);
    let detached = async {
        writer.write_all(&bytes).await.map_err(broken)?;
        let mut stopping = None;
        loop {
            let Some(message) = reader.next().await.map_err(broken)? else {
                return Err(LinkError::Broken(
                    "the core closed the link instead of answering the detach".into(),
                ));
            };
            if let Routed::Detached = route(&message, link, &mut stopping)? {
                return Ok(Ended::Detached);
            }
        }
    };
    let ended = tokio::time::timeout(DETACH_LIMIT, detached)
        .await
        .unwrap_or_else(|_| {
            Err(LinkError::Broken(format!(
                "no answer to the detach within {} s",
                DETACH_LIMIT.as_secs()
            )))
        })?;
    // A clean end, so the core reads the close as one.
    let _ = writer.shutdown().await;
    Ok(ended)
}

async fn attach<R, W>(
    reader: &mut MessageReader<R>,
    writer: &mut W,
    link: &LinkHandle,
    config: &LinkConfig,
) -> Result<(), LinkError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut bytes = Vec::new();
    let attach = ProxyMessage::Attach(Attach {
        hello: Hello {
            protocol_version: tether_protocol::PROTOCOL_VERSION,
            proxy_id: config.proxy_id,
            proxy_name: config.proxy_name.clone(),
        },
        sessions: link.lock().relay.snapshots(),
    });
    attach.encode(&mut bytes);
    drop(attach);
    let started = Instant::now();
    writer.write_all(&bytes).await.map_err(broken)?;
    let welcome = match reader.next().await.map_err(broken)? {
        Some(message) => read_welcome(&message)?,
        None => return Err(LinkError::Broken("connection closed during attach".into())),
    };
    let mut shell = link.lock();
    let sessions = shell.relay.session_count();
    // A stopping core's refusal of input was for its own connection (carried from a proxy
    // that detached from it, say); this core takes input.
    shell.declined = false;
    if std::mem::take(&mut shell.resume_expected) && !welcome.resumed {
        // Not the core the previous proxy detached from: it hears everything not
        // acknowledged again, as after a lost link.
        shell.relay.detached(Instant::now());
    }
    let gap = match shell.relay.health(Instant::now()) {
        CoreHealth::Detached(gap) if shell.attached_before => Some(gap),
        _ => None,
    };
    metrics::global().core_attached(gap);
    crate::dashboard::hub().moment(&match gap {
        Some(gap) => format!(
            "core attached: {} after {:.0} ms without one",
            welcome.core_name,
            gap.as_secs_f64() * 1000.0
        ),
        None => format!("core attached: {}", welcome.core_name),
    });
    shell.core_name = Some(welcome.core_name.clone());
    shell.attached_before = true;
    shell.relay.attached();
    shell.flush();
    info!(
        core = %welcome.core_name,
        sessions,
        resumed = welcome.resumed,
        attach_ms = started.elapsed().as_secs_f64() * 1000.0,
        "attached to the core"
    );
    Ok(())
}

/// Writes batches as the relay has them, one in flight at a time, until a write fails or the
/// link is frozen (`Ok(true)`), which it notices only between writes: a batch is never cut.
async fn submit<W: AsyncWrite + Unpin>(
    writer: &mut W,
    link: &LinkHandle,
) -> Result<bool, LinkError> {
    let mut bytes = Vec::new();
    let mut frozen = link.frozen.subscribe();
    loop {
        tokio::select! {
            biased;
            _ = frozen.wait_for(|&frozen| frozen) => return Ok(true),
            () = link.submit_ready.notified() => {}
        }
        {
            let mut shell = link.lock();
            let Some(batch) = shell.next_batch() else {
                continue;
            };
            message::encode_submit(batch, &mut bytes);
        }
        writer.write_all(&bytes).await.map_err(broken)?;
        bytes.clear();
    }
}

/// Routes what the core sends until it closes the connection.
async fn read_core<R: AsyncRead + Unpin>(
    reader: &mut MessageReader<R>,
    link: &LinkHandle,
) -> Result<(), LinkError> {
    // A connection carried over from another proxy may be to a core that is stopping.
    let mut stopping_deadline = link
        .lock()
        .declined
        .then(|| tokio::time::Instant::now() + STOPPING_CORE_GRACE);
    loop {
        let next = match stopping_deadline {
            None => reader.next().await,
            // A stopping core still delivers what it finished: stay until it closes the
            // link, so none of that output is lost, but not forever.
            Some(deadline) => match tokio::time::timeout_at(deadline, reader.next()).await {
                Ok(next) => next,
                Err(_) => return Err(LinkError::Broken("a stopping core did not close".into())),
            },
        };
        let Some(message) = next.map_err(broken)? else {
            return Ok(());
        };
        if let Routed::Detached = route(&message, link, &mut stopping_deadline)? {
            return Err(LinkError::Broken("the core said `detached` unasked".into()));
        }
    }
}

/// What `route` made of a message.
enum Routed {
    Done,
    /// The core's answer to `detach`: nothing more comes on this connection.
    Detached,
}

/// Acts on one message from the core. `stopping_deadline` is set when the core declines
/// input: it is stopping, and should close the link before then.
fn route(
    message: &framing::Message<'_>,
    link: &LinkHandle,
    stopping_deadline: &mut Option<tokio::time::Instant>,
) -> Result<Routed, LinkError> {
    let decoded = match CoreMessage::decode(message) {
        Ok(decoded) => decoded,
        Err(DecodeError::UnknownMessage { which, .. }) => {
            debug!(which, "ignoring a core message this proxy does not know");
            return Ok(Routed::Done);
        }
        Err(error) => return Err(broken(error)),
    };
    match decoded {
        CoreMessage::Deliver(events) => {
            let mut shell = link.lock();
            let now = Instant::now();
            for event in events {
                shell.relay.delivered(event, now);
            }
            shell.flush();
        }
        CoreMessage::Accepted => {
            let mut shell = link.lock();
            shell.in_flight = None;
            shell.relay.answered();
            shell.flush();
            drop(shell);
            link.submit_ready.notify_one();
        }
        CoreMessage::Declined(reason) => {
            let mut shell = link.lock();
            if let Some(batch) = shell.in_flight.take() {
                shell.relay.not_delivered(&batch);
            }
            shell.relay.answered();
            shell.flush();
            shell.declined = true;
            info!(%reason, "the core declined input; waiting for it to close the link");
            *stopping_deadline = Some(tokio::time::Instant::now() + STOPPING_CORE_GRACE);
        }
        CoreMessage::GameStatus(vars) => {
            let vars = vars.into_iter().map(|var| (var.name, var.value)).collect();
            let shell = link.lock();
            *shell
                .game_status
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = vars;
        }
        CoreMessage::Detached => return Ok(Routed::Detached),
        CoreMessage::Welcome(_) | CoreMessage::Refused(_) => {
            return Err(LinkError::Broken(
                "the core answered an attach twice".into(),
            ));
        }
    }
    Ok(Routed::Done)
}

/// The core's answer to `attach`, or why it will not have us.
fn read_welcome(message: &framing::Message<'_>) -> Result<Welcome, LinkError> {
    match CoreMessage::decode(message).map_err(broken)? {
        CoreMessage::Welcome(welcome) => {
            tether_protocol::check_version("core", welcome.protocol_version)
                .map_err(LinkError::Refused)?;
            Ok(welcome)
        }
        CoreMessage::Refused(reason) => Err(LinkError::Refused(reason)),
        // A stopping core: the next one is moments away.
        CoreMessage::Declined(reason) => Err(LinkError::Broken(reason)),
        _ => Err(LinkError::Broken(
            "the core did not answer the attach".into(),
        )),
    }
}
