//! The core's end of the link: serves any number of proxies on the link socket and runs the
//! `Game` on the same single thread (one thread owning the world keeps the rules simple).
//!
//! Each proxy connection is a stream of messages each way (see `schema/link.capnp`). Input
//! arrives in `submit` batches, handled in order and answered `accepted`; the game's output is
//! queued per proxy and written in `deliver` batches by one pump task per connection, which
//! also writes the answers, so a command's answer and its output leave in one write (see
//! `outbound` for the bounds). Password hashing runs on the blocking pool so a login never
//! stalls the world.
//!
//! Stopping (SIGTERM) is the planned half of a reload: stop accepting, stop taking input
//! (batches are `declined`, their lines stay unacknowledged and the proxy hands them to the
//! next core), finish running password jobs, write everything queued, then return.
//!
//! Proxies on the core's host connect to the link socket. Proxies on other hosts connect to
//! the `RemoteDoor`, a TCP listener where nothing is read before the proxy has proven its
//! certificate (see `tether_protocol::link_tls`); from then on the two are the same. A proxy
//! handing over to a successor passes a Unix connection on as it is; a TLS one cannot move,
//! so that proxy `detach`es: the core parks its port, keeping the sessions and what it
//! delivers meanwhile, until the successor attaches with the same proxy id.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tether_protocol::SessionKey;
use tether_protocol::control;
use tether_protocol::framing::{self, MessageReader};
use tether_protocol::message::{
    self, CoreMessage, DecodeError, Delivery, ProxyEvent, ProxyMessage, SessionEvent, Welcome,
};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixListener};
use tokio::sync::{Notify, Semaphore};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use crate::game::{AdminRequest, Game, Outbox, RestoredSession};
use crate::gather::{self, Gathering, Input};
use crate::outbound::Outbound;

/// How long a stopping core waits for in-flight work before giving up on it.
const DRAIN_LIMIT: Duration = Duration::from_secs(8);
/// Password hashes run at once, at most one per CPU and never more than this: each keeps its
/// 19 MiB of argon2 memory for the next one (see `password`), and four already log in about
/// a hundred players a second.
const MAX_HASHERS: usize = 4;
/// How long a proxy on another host may take to prove its certificate.
const HANDSHAKE_LIMIT: Duration = Duration::from_secs(10);
/// How long a detached proxy's sessions and output wait for its successor: the longest a
/// proxy upgrade may take, with room to spare. After that they are let go as if the proxy
/// had disconnected.
const PARK_LIMIT: Duration = Duration::from_secs(30);

/// Where proxies on other hosts attach: TCP, with the link's TLS.
pub struct RemoteDoor {
    pub listener: TcpListener,
    pub tls: Arc<tokio_rustls::rustls::ServerConfig>,
}

struct Port {
    /// Tells this attachment from a later one by the same proxy.
    generation: u64,
    outbound: Outbound,
    /// The connection this attachment arrived on: its pump sends `outbound`.
    connection: Rc<Connection>,
    /// Wakes input held back while `outbound` was backed up (or the port went away).
    caught_up: Rc<Notify>,
    /// The pump is writing this port's output.
    delivering: bool,
    /// The player count in the MSSP facts this proxy has: the only one of them that changes
    /// while a core runs, so the facts are rebuilt and sent again only when it does.
    mssp_sent: Option<usize>,
    /// The proxy detached for a successor: nothing is written to `connection` any more, and
    /// `outbound` waits for the successor's attach.
    parked: bool,
}

/// One proxy connection's outgoing side, shared by its reader (which answers) and its pump
/// (which writes).
#[derive(Default)]
struct Connection {
    /// Answers (welcome, refused, accepted, declined) to write before any output, in order.
    answers: RefCell<Vec<CoreMessage>>,
    /// Wakes the pump when there is something to write.
    wake: Notify,
    /// The proxy closed its side: the pump writes what is left and ends.
    closed: Cell<bool>,
    /// `detached` is among the answers: once it is written, no output follows it here.
    detached: Cell<bool>,
}

impl Connection {
    fn answer(&self, answer: CoreMessage) {
        self.answers.borrow_mut().push(answer);
        self.wake.notify_one();
    }
}

struct CoreState {
    game: Game,
    proxies: HashMap<u64, Port>,
    draining: bool,
    password_jobs: usize,
    next_generation: u64,
    control_socket: Option<PathBuf>,
    name: String,
    /// Bounds the password hashes running at once.
    hashers: Arc<Semaphore>,
    /// Input waits here until every proxy of the previous core is back (see `gather`).
    gathering: Option<Gathering>,
    /// Where the attached proxies are recorded for the next core.
    roster: PathBuf,
}

type Shared = Rc<RefCell<CoreState>>;

impl CoreState {
    fn save_roster(&self) {
        if let Err(error) = gather::save_roster(&self.roster, self.proxies.keys().copied()) {
            warn!(%error, path = %self.roster.display(), "cannot record the attached proxies");
        }
    }

    fn handle(&mut self, key: SessionKey, event: SessionEvent<'_>, outbox: &mut Outbox) {
        match event {
            SessionEvent::Opened(info) => self.game.session_opened(key, &info.remote_addr, outbox),
            SessionEvent::Line { seq, text } => self.game.line(key, seq, &text, outbox),
            SessionEvent::Closed(_) => self.game.session_closed(key, outbox),
            SessionEvent::Client(info) => self.game.session_client(key, *info),
            SessionEvent::Order(order) => self.game.order(key.proxy, *order, outbox),
        }
    }

    /// Queues an event for the proxy holding `key`; its pump sends it in the next batch.
    fn send(&mut self, key: SessionKey, delivery: Delivery) {
        if let Some(port) = self.proxies.get_mut(&key.proxy) {
            port.outbound.push(key.session, delivery);
            port.connection.wake.notify_one();
        }
    }
}

/// Runs the core on `listener` until `stop` resolves, then drains. Must run inside a LocalSet.
///
/// `roster` is the file where the attached proxies are recorded, for the next core.
pub async fn serve(
    listener: UnixListener,
    remote: Option<RemoteDoor>,
    game: Game,
    control_socket: Option<PathBuf>,
    roster: PathBuf,
    stop: impl std::future::Future<Output = ()>,
) {
    let gathering = Gathering::new(gather::load_roster(&roster), Instant::now());
    let deadline = gathering.as_ref().map(Gathering::deadline);
    let shared: Shared = Rc::new(RefCell::new(CoreState {
        gathering,
        roster,
        game,
        proxies: HashMap::new(),
        draining: false,
        password_jobs: 0,
        next_generation: 1,
        control_socket,
        hashers: Arc::new(Semaphore::new(
            std::thread::available_parallelism()
                .map_or(2, usize::from)
                .min(MAX_HASHERS),
        )),
        name: format!(
            "tether-core {} (pid {})",
            env!("CARGO_PKG_VERSION"),
            std::process::id()
        ),
    }));
    if let Some(deadline) = deadline {
        info!("holding input until the previous core's proxies are back");
        let shared = shared.clone();
        tokio::task::spawn_local(async move {
            tokio::time::sleep_until(deadline.into()).await;
            end_gathering(&shared);
        });
    }
    {
        // Time passing, for the game's ticks and timers and the login timeouts. Not while
        // draining (the next core carries them on) nor while gathering (the previous core
        // may still be running them): one core at a time runs the game's clock.
        let shared = shared.clone();
        tokio::task::spawn_local(async move {
            let mut ticks = tokio::time::interval(Duration::from_millis(100));
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let state = shared.borrow();
                if state.draining {
                    return;
                }
                if state.gathering.is_some() {
                    continue;
                }
                drop(state);
                let unix_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |since| {
                        i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
                    });
                let mut outbox = Outbox::default();
                shared
                    .borrow_mut()
                    .game
                    .tick(Instant::now(), unix_ms, &mut outbox);
                dispatch(&shared, outbox);
            }
        });
    }
    tokio::pin!(stop);
    let acceptor = remote
        .as_ref()
        .map(|door| TlsAcceptor::from(door.tls.clone()));
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let (reader, writer) = stream.into_split();
                    tokio::task::spawn_local(serve_connection(reader, writer, shared.clone()));
                }
                Err(error) => {
                    warn!(%error, "accept on the link socket failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            accepted = accept_remote(remote.as_ref()) => match (accepted, &acceptor) {
                (Ok((stream, peer)), Some(acceptor)) => {
                    tokio::task::spawn_local(serve_remote(
                        stream,
                        peer,
                        acceptor.clone(),
                        shared.clone(),
                    ));
                }
                (Ok(_), None) => {}
                (Err(error), _) => {
                    warn!(%error, "accept on the remote link listener failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = &mut stop => break,
        }
    }
    // The listeners may be shared with the next core: let it take new links from now on.
    drop(listener);
    drop(remote);
    drain(&shared).await;
}

async fn accept_remote(
    door: Option<&RemoteDoor>,
) -> std::io::Result<(TcpStream, std::net::SocketAddr)> {
    match door {
        Some(door) => door.listener.accept().await,
        None => std::future::pending().await,
    }
}

/// A proxy on another host: nothing it sends is read until its certificate is proven.
async fn serve_remote(
    stream: TcpStream,
    peer: std::net::SocketAddr,
    acceptor: TlsAcceptor,
    shared: Shared,
) {
    // Every command's answer is one small write: waiting to fill a packet would add a
    // round trip's delay to each.
    let _ = stream.set_nodelay(true);
    match tokio::time::timeout(HANDSHAKE_LIMIT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => {
            info!(%peer, "a proxy on another host proved its certificate");
            let (reader, writer) = tokio::io::split(tls);
            serve_connection(reader, writer, shared).await;
        }
        Ok(Err(error)) => warn!(
            %peer,
            "refused a proxy link from {peer}: {}",
            why_refused(&error)
        ),
        Err(_) => warn!(
            %peer,
            "refused a proxy link from {peer}: no TLS handshake within {} s",
            HANDSHAKE_LIMIT.as_secs()
        ),
    }
}

async fn drain(shared: &Shared) {
    let started = Instant::now();
    shared.borrow_mut().draining = true;
    info!("stopping: no new input; finishing and delivering what is in progress");
    loop {
        let busy = {
            let state = shared.borrow();
            state.password_jobs > 0
                || state.proxies.values().any(|port| {
                    // A parked port's output goes with this core: its successor attaches to
                    // the next one, which restores the sessions from its snapshots.
                    !port.parked
                        && (port.delivering
                            || !port.outbound.is_empty()
                            || !port.connection.answers.borrow().is_empty())
                })
        };
        if !busy {
            break;
        }
        if started.elapsed() > DRAIN_LIMIT {
            warn!("gave up waiting for in-flight work; unacknowledged lines will be resent");
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    info!(
        drain_ms = started.elapsed().as_secs_f64() * 1000.0,
        "stopped cleanly"
    );
}

/// Lets held input through once every expected proxy is back or the grace period is over.
fn end_gathering(shared: &Shared) {
    let mut outbox = Outbox::default();
    {
        let mut state = shared.borrow_mut();
        let over = state
            .gathering
            .as_ref()
            .is_some_and(|gathering| gathering.is_over(Instant::now()));
        if !over {
            return;
        }
        let Some(gathering) = state.gathering.take() else {
            return;
        };
        let held = gathering.release();
        info!(
            held = held.len(),
            "every proxy is back (or given up on); play resumes"
        );
        for input in held {
            state.handle(input.key, input.event, &mut outbox);
        }
        // Proxies that did not come back are forgotten.
        state.save_roster();
    }
    dispatch(shared, outbox);
}

async fn serve_connection<R, W>(reader: R, writer: W, shared: Shared)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + 'static,
{
    let mut reader = MessageReader::new(reader);
    let connection = Rc::new(Connection::default());
    let attached = match reader.next().await {
        Ok(Some(message)) => attach(&shared, &connection, &message),
        Ok(None) => return,
        Err(error) => Err(CoreMessage::Refused(format!("unreadable attach: {error}"))),
    };
    let pump_task = tokio::task::spawn_local(pump(
        shared.clone(),
        attached.as_ref().ok().copied(),
        connection.clone(),
        writer,
    ));
    let (proxy_id, generation) = match attached {
        Ok(attached) => attached,
        Err(answer) => {
            // The pump writes the reason and closes.
            connection.answer(answer);
            connection.closed.set(true);
            let _ = pump_task.await;
            return;
        }
    };
    let link = Submissions {
        shared: shared.clone(),
        connection: connection.clone(),
        proxy_id,
        generation,
    };
    loop {
        let message = match reader.next().await {
            Ok(Some(message)) => message,
            Ok(None) => break,
            Err(error) => {
                debug!(%error, proxy = proxy_id, "link connection ended with an error");
                break;
            }
        };
        match read_submit(&message) {
            Ok(Incoming::Submit(events)) => link.submit(events).await,
            Ok(Incoming::Detach) => link.detach(),
            Err(error) => {
                warn!(%error, proxy = proxy_id, "closing a link that sent a bad message");
                break;
            }
        }
    }
    connection.closed.set(true);
    connection.wake.notify_one();
    let mut state = shared.borrow_mut();
    let port = state
        .proxies
        .get(&proxy_id)
        .filter(|port| port.generation == generation);
    if port.is_some_and(|port| port.parked) {
        let shared = shared.clone();
        tokio::task::spawn_local(async move {
            tokio::time::sleep(PARK_LIMIT).await;
            let mut state = shared.borrow_mut();
            let still_parked = state
                .proxies
                .get(&proxy_id)
                .is_some_and(|port| port.generation == generation);
            if still_parked {
                state.proxies.remove(&proxy_id);
                state.game.proxy_detached(proxy_id);
                state.save_roster();
                warn!(
                    proxy = proxy_id,
                    "a detached proxy's successor did not attach within {} s; its sessions are let go",
                    PARK_LIMIT.as_secs()
                );
            }
        });
    } else if port.is_some() {
        if let Some(port) = state.proxies.remove(&proxy_id) {
            port.caught_up.notify_one();
        }
        state.game.proxy_detached(proxy_id);
        if !state.draining {
            state.save_roster();
        }
        info!(proxy = proxy_id, "proxy detached");
    }
}

/// A failed link handshake, as an operator needs to read it.
fn why_refused(error: &std::io::Error) -> String {
    use tokio_rustls::rustls::Error as Tls;
    match error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<Tls>())
    {
        Some(Tls::InvalidCertificate(why)) => format!(
            "its certificate was not signed by this game's link authority ({why:?}); give it \
             one from `tether link-certs proxy NAME` on this host"
        ),
        Some(Tls::NoCertificatesPresented) => {
            "it presented no certificate (is it a tether proxy started with --core?)".into()
        }
        Some(Tls::AlertReceived(alert)) => format!(
            "it does not accept this core's certificate (it sent {alert:?}): its ca.pem is \
             another game's"
        ),
        _ => error.to_string(),
    }
}

/// Routes what the game produced: output to proxies, password work to the blocking pool,
/// admin requests to the supervisor.
fn dispatch(shared: &Shared, outbox: Outbox) {
    let Outbox {
        events,
        jobs,
        requests,
    } = outbox;
    let mut state = shared.borrow_mut();
    for (key, outgoing) in events {
        state.send(key, outgoing);
    }
    for job in jobs {
        state.password_jobs += 1;
        let shared = shared.clone();
        let hashers = state.hashers.clone();
        tokio::task::spawn_local(async move {
            // Each argon2 run takes ~19 MiB and a core's worth of time: a burst of logins
            // waits its turn instead of running hundreds at once.
            let permit = hashers.acquire_owned().await;
            let done = tokio::task::spawn_blocking(move || {
                let _permit = permit;
                job.run()
            })
            .await;
            shared.borrow_mut().password_jobs -= 1;
            match done {
                Ok(done) => {
                    let mut outbox = Outbox::default();
                    shared.borrow_mut().game.password_done(done, &mut outbox);
                    dispatch(&shared, outbox);
                }
                Err(error) => warn!(%error, "password job failed"),
            }
        });
    }
    for (requester, request) in requests {
        let command = match request {
            AdminRequest::Reload => control::Request::Reload,
            AdminRequest::UpgradeProxy => control::Request::UpgradeProxy,
            AdminRequest::Shutdown => control::Request::Shutdown,
        };
        tokio::task::spawn_local(ask_supervisor(
            shared.clone(),
            requester,
            state.control_socket.clone(),
            command,
        ));
    }
}

/// Passes an admin's request to the supervisor and tells the admin if it went wrong. (When a
/// reload works, this core is gone before the answer comes: the admin hears nothing more.)
async fn ask_supervisor(
    shared: Shared,
    requester: Option<SessionKey>,
    socket: Option<PathBuf>,
    request: control::Request,
) {
    let command = request.as_str();
    let failure = match socket {
        None => Some(format!(
            "this core runs without a supervisor ({} is not set)",
            tether_protocol::process::CONTROL_VAR
        )),
        Some(socket) => {
            let asked = tokio::task::spawn_blocking(move || {
                let mut reply = Vec::new();
                let ok = control::request(&socket, request, |line| reply.push(line.to_owned()));
                (ok, reply)
            })
            .await;
            match asked {
                Ok((Ok(true), reply)) => {
                    info!(command, reply = %reply.join(" / "), "supervisor answered");
                    // A reload replaces this core before the answer; a proxy upgrade does
                    // not, and the admin hears how it went.
                    if request == control::Request::UpgradeProxy
                        && let Some(outcome) = reply
                            .iter()
                            .rev()
                            .find(|line| control::outcome(line).is_some())
                        && let Some(requester) = requester
                    {
                        let said = outcome.trim_start_matches("ok:").trim();
                        shared.borrow_mut().send(
                            requester,
                            Delivery::Output(tether_protocol::markup::escape(&format!(
                                "[tether] {said}"
                            ))),
                        );
                    }
                    None
                }
                Ok((Ok(false), reply)) => control::failure(&reply.join("\n")).map(str::to_owned),
                // The supervisor stops a core that asked for its own replacement before it
                // answers: no outcome is not a failure.
                Ok((Err(control::ClientError::NoAnswer { .. }), _)) => None,
                Ok((Err(error), _)) => Some(error.to_string()),
                Err(error) => Some(format!("the request was lost: {error}")),
            }
        }
    };
    if let Some(failure) = failure {
        warn!(command, %failure, "admin request failed");
        let Some(requester) = requester else {
            return;
        };
        shared.borrow_mut().send(
            requester,
            Delivery::Output(format!(
                "The {command} did not happen: {}",
                tether_protocol::markup::escape(&failure)
            )),
        );
    }
}

/// One pump per connection: writes its answers, then the attached port's queued events, as
/// few writes as there are wake-ups. The socket's buffer is the flow control: while a write
/// waits for the proxy to read, output piles up in `outbound`, and past its high-water mark
/// the proxy's next batch waits for `accepted`.
async fn pump<W: AsyncWrite + Unpin>(
    shared: Shared,
    attached: Option<(u64, u64)>,
    connection: Rc<Connection>,
    mut writer: W,
) {
    let mut bytes = Vec::new();
    loop {
        if connection.answers.borrow().is_empty() && !connection.closed.get() {
            connection.wake.notified().await;
        }
        for answer in connection.answers.borrow_mut().drain(..) {
            answer.encode(&mut bytes);
        }
        let port_gone = match attached {
            // After `detached`, what is delivered waits in the port for the successor.
            _ if connection.detached.get() => true,
            Some((proxy_id, generation)) => !take_output(&shared, proxy_id, generation, &mut bytes),
            None => true,
        };
        if !bytes.is_empty() {
            let written = writer.write_all(&bytes).await;
            bytes.clear();
            if bytes.capacity() > WRITE_CHUNK {
                bytes = Vec::new();
            }
            if let Some((proxy_id, generation)) = attached {
                let mut state = shared.borrow_mut();
                if let Some(port) = state.proxies.get_mut(&proxy_id)
                    && port.generation == generation
                {
                    port.delivering = false;
                    if !port.outbound.is_empty() {
                        // What was left over (or came in meanwhile) goes in the next write.
                        connection.wake.notify_one();
                    }
                }
            }
            if let Err(error) = written {
                // The connection is gone; its end is handled where it is read.
                debug!(%error, "writing to a proxy failed");
                return;
            }
        }
        let answered = connection.answers.borrow().is_empty();
        // `detached` is the last message on the connection: it is written, so end it.
        if (connection.closed.get() || connection.detached.get()) && answered && port_gone {
            let _ = writer.shutdown().await;
            return;
        }
    }
}

/// Bytes gathered for one write; what is queued past this waits for the next one.
const WRITE_CHUNK: usize = 1 << 20;

/// Moves this port's MSSP facts (if they changed) and queued events into `bytes`, and marks the
/// port as delivering if anything was taken. `false`: the port is gone or was replaced.
fn take_output(shared: &Shared, proxy_id: u64, generation: u64, bytes: &mut Vec<u8>) -> bool {
    let mut state = shared.borrow_mut();
    let state = &mut *state;
    let players = state.game.players_online();
    let Some(port) = state.proxies.get_mut(&proxy_id) else {
        return false;
    };
    if port.generation != generation {
        return false;
    }
    // MSSP facts (player count...) travel only when they changed.
    if port.mssp_sent != Some(players) {
        CoreMessage::GameStatus(state.game.mssp()).encode(bytes);
        port.mssp_sent = Some(players);
    }
    while !port.outbound.is_empty() && bytes.len() < WRITE_CHUNK {
        message::encode_deliver(&port.outbound.next_batch(), bytes);
    }
    if !port.outbound.is_backed_up() {
        port.caught_up.notify_one();
    }
    port.delivering = !bytes.is_empty();
    true
}

/// Takes a proxy's opening message: on success the port is in place and this is its key.
fn attach(
    shared: &Shared,
    connection: &Rc<Connection>,
    message: &framing::Message<'_>,
) -> Result<(u64, u64), CoreMessage> {
    let unreadable =
        |error: DecodeError| CoreMessage::Refused(format!("unreadable attach: {error}"));
    let ProxyMessage::Attach(attach) = ProxyMessage::decode(message).map_err(unreadable)? else {
        return Err(CoreMessage::Refused(
            "the first message on a link must be an attach".into(),
        ));
    };
    tether_protocol::check_version("proxy", attach.hello.protocol_version)
        .map_err(CoreMessage::Refused)?;
    let proxy_id = attach.hello.proxy_id;
    let sessions = attach.sessions.len();

    let mut outbox = Outbox::default();
    let (generation, resumed) = {
        let mut state = shared.borrow_mut();
        if state.draining {
            // Declined, not refused: the proxy should retry at once and find the next core.
            return Err(CoreMessage::Declined("this core is shutting down".into()));
        }
        let mut outbound = Outbound::default();
        let resumed = match state.proxies.remove(&proxy_id) {
            // Its successor: the sessions carry on as they are here, with what was
            // delivered since the detach.
            Some(port) if port.parked => {
                outbound = port.outbound;
                true
            }
            Some(port) => {
                port.caught_up.notify_one();
                // Its pump stops sending output; its connection stays open for the answer to
                // whatever it still submits.
                port.connection.wake.notify_one();
                state.game.proxy_detached(proxy_id);
                false
            }
            None => false,
        };
        if !resumed {
            let restored = attach
                .sessions
                .into_iter()
                .map(|snapshot| RestoredSession {
                    key: SessionKey {
                        proxy: proxy_id,
                        session: snapshot.session,
                    },
                    remote_addr: snapshot.info.remote_addr,
                    state: snapshot.state,
                    client: snapshot.client,
                })
                .collect();
            state.game.sessions_restored(restored, &mut outbox);
        }
        state.game.announce_players(proxy_id, &mut outbox);
        let generation = state.next_generation;
        state.next_generation += 1;
        connection.answer(CoreMessage::Welcome(Welcome {
            protocol_version: tether_protocol::PROTOCOL_VERSION,
            core_name: state.name.clone(),
            resumed,
        }));
        let delivering = !outbound.is_empty();
        state.proxies.insert(
            proxy_id,
            Port {
                generation,
                outbound,
                connection: connection.clone(),
                caught_up: Rc::new(Notify::new()),
                delivering: false,
                mssp_sent: None,
                parked: false,
            },
        );
        if delivering {
            connection.wake.notify_one();
        }
        if let Some(gathering) = &mut state.gathering {
            gathering.attached(proxy_id);
        }
        state.save_roster();
        (generation, resumed)
    };
    dispatch(shared, outbox);
    end_gathering(shared);
    if resumed {
        info!(proxy = %attach.hello.proxy_name, sessions, "proxy attached again after its detach; its sessions carry on");
    } else {
        info!(proxy = %attach.hello.proxy_name, sessions, "proxy attached");
    }
    Ok((proxy_id, generation))
}

/// Where one proxy's input is taken, one batch at a time.
struct Submissions {
    shared: Shared,
    connection: Rc<Connection>,
    proxy_id: u64,
    /// The attachment this connection made: input that waited while the proxy attached
    /// again is declined, since the proxy submits it again on its new connection.
    generation: u64,
}

impl Submissions {
    async fn submit(&self, events: Vec<ProxyEvent<'_>>) {
        // Answering later holds the proxy's next batch back: its sessions' input waits in
        // their bounded queues instead of growing ours.
        self.wait_until_caught_up().await;
        let answer = match self.handle(events) {
            Ok(()) => CoreMessage::Accepted,
            Err(reason) => CoreMessage::Declined(reason.into()),
        };
        // The pump was woken by what this input produced and writes the answer with it.
        self.connection.answer(answer);
    }

    async fn wait_until_caught_up(&self) {
        loop {
            let caught_up = {
                let state = self.shared.borrow();
                match state.proxies.get(&self.proxy_id) {
                    Some(port)
                        if port.generation == self.generation && port.outbound.is_backed_up() =>
                    {
                        port.caught_up.clone()
                    }
                    // Caught up, or gone: `handle` tells the two apart.
                    _ => return,
                }
            };
            caught_up.notified().await;
        }
    }

    /// The proxy hands over to a successor (see the module's note): after the answers
    /// already queued, `detached`, and the port waits for the successor.
    fn detach(&self) {
        let mut state = self.shared.borrow_mut();
        if let Some(port) = state.proxies.get_mut(&self.proxy_id)
            && port.generation == self.generation
        {
            port.parked = true;
            port.delivering = false;
            info!(
                proxy = self.proxy_id,
                "proxy detached for a successor; its sessions wait"
            );
        }
        self.connection.detached.set(true);
        self.connection.answer(CoreMessage::Detached);
    }

    fn handle(&self, events: Vec<ProxyEvent<'_>>) -> Result<(), &'static str> {
        let mut outbox = Outbox::default();
        {
            let mut state = self.shared.borrow_mut();
            if state.draining {
                // Nothing here is handled: the proxy submits it again to the next core.
                return Err("this core is stopping; the next one will take this");
            }
            let current = state
                .proxies
                .get(&self.proxy_id)
                .is_some_and(|port| port.generation == self.generation);
            if !current {
                return Err("this link was replaced by a newer attach");
            }
            let proxy = self.proxy_id;
            let key = |session| SessionKey { proxy, session };
            if let Some(gathering) = &mut state.gathering {
                for event in events {
                    let event = event.into_owned();
                    gathering.hold(Input {
                        key: key(event.session),
                        event: event.event,
                    });
                }
                return Ok(());
            }
            for event in events {
                state.handle(key(event.session), event.event, &mut outbox);
            }
        }
        dispatch(&self.shared, outbox);
        Ok(())
    }
}

/// Why a proxy's connection is closed after its attach.
#[derive(Debug, thiserror::Error)]
enum BadSubmit {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("a second attach on one connection")]
    SecondAttach,
}

/// What a proxy may send after its attach.
enum Incoming<'m> {
    Submit(Vec<ProxyEvent<'m>>),
    Detach,
}

/// The events of a `submit`, or a `detach`; another attach is a broken peer.
fn read_submit<'m>(message: &'m framing::Message<'_>) -> Result<Incoming<'m>, BadSubmit> {
    match ProxyMessage::decode(message)? {
        ProxyMessage::Submit(events) => Ok(Incoming::Submit(events)),
        ProxyMessage::Detach => Ok(Incoming::Detach),
        ProxyMessage::Attach(_) => Err(BadSubmit::SecondAttach),
    }
}
