//! One telnet connection: the async shell around the sans-IO pieces (telnet parser, option
//! negotiation, line assembler, flood guard, and the `Wire` that renders and compresses). It
//! reads bytes, turns them into lines for the link, and writes what the link routes back. It
//! never waits on the core: the link may be down for seconds and this task keeps reading,
//! negotiating, answering and queueing.

use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tracing::{debug, info};

use crate::admission::{Admission, Admitted};
use crate::close::{CloseReason, OVERFLOW_NOTICE};
use crate::keeper::Keeper;
use crate::link::{GameStatus, LinkHandle, SessionHandle, ToLink};
use crate::mailbox;
use tether_protocol::message::{self, ClientInfo, Delivery, DisplayPrefs, SessionInfo};

use crate::negotiation::{self, Capabilities, ClientEvent, MSSP_REQUEST, Negotiation};
use crate::relay::ToSession;
use crate::shutdown::{Shutdown, Stop};
use crate::state::{self, CarriedSession, Checkpoint, SessionState, SpeakerState};
use crate::telnet::{TelnetEvent, TelnetParser, option};
use crate::wire::{Wire, WireState};

/// Messages the link may queue for one session before it is considered stuck.
const OUTPUT_QUEUE: usize = 1024;
/// A client that does not take our output within this long is gone.
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
const READ_BUFFER: usize = 4096;

pub const SHUTDOWN_MESSAGE: &str = "The game is shutting down. Goodbye!";
/// For a connection whose socket cannot be handed to the next proxy.
const CANNOT_FOLLOW: &str =
    "The server is being upgraded and this connection cannot follow; please reconnect.";

/// What every session shares with the rest of the proxy.
#[derive(Clone)]
pub struct Context {
    pub link: LinkHandle,
    pub shutdown: Shutdown,
    pub game_status: GameStatus,
    /// When this proxy started (unix seconds): MSSP's UPTIME, since players have been able to
    /// play since then, whatever happened to cores.
    pub started: u64,
    /// Session ids, unique across telnet and web.
    pub ids: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Where connections and their checkpoints are kept, in case this proxy dies.
    pub keeper: Keeper,
    /// Who may connect; sessions hold their place in it.
    pub gate: std::sync::Arc<crate::gate::Gate>,
    /// Which listeners take the PROXY protocol.
    pub proxy_protocol: crate::server::ProxyProtocolOn,
    /// The port of the TLS telnet listener, for MSSP's `TLS` (and the older `SSL`).
    pub tls_port: Option<u16>,
}

impl Context {
    /// A context whose link has no task behind it, for speakers run without I/O (unit tests,
    /// fuzz targets): what they send the link is queued and goes nowhere.
    pub(crate) fn unlinked() -> Context {
        let link = LinkHandle::new(&crate::link::LinkConfig {
            core: crate::link::CoreAddress::Unix("nowhere".into()),
            proxy_name: "unlinked".into(),
            proxy_id: 1,
            max_queued_lines: crate::relay::DEFAULT_MAX_QUEUED_LINES,
            game_status: GameStatus::default(),
            cannot_start: Default::default(),
            keeper: Keeper::off(),
        });
        // Dropping the trigger counts as never firing for these callers: nothing waits on it.
        let (_trigger, shutdown) = crate::shutdown::channel();
        Context {
            link,
            shutdown,
            game_status: GameStatus::default(),
            started: 0,
            ids: std::sync::Arc::default(),
            keeper: Keeper::off(),
            gate: crate::gate::Gate::new(crate::gate::Limits::default()),
            proxy_protocol: crate::server::ProxyProtocolOn::default(),
            tls_port: None,
        }
    }

    pub fn next_session_id(&self) -> u64 {
        self.ids.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }
}

/// What a connection speaks, sans-IO: the telnet stream, or the web client's frames.
pub trait Speaker {
    /// What arrives from the client (bytes, frames).
    type In;
    /// What goes to the client.
    type Out;

    /// What to send as soon as the connection opens (negotiation offers).
    fn greet(&mut self);
    /// Input from the client: lines for the core, or the reason to close.
    fn input(&mut self, input: Self::In) -> Result<Vec<String>, CloseReason>;
    /// A message routed by the link; `Err` closes the connection with that reason.
    fn message(&mut self, message: ToSession) -> Result<(), CloseReason>;
    /// A line from tether itself.
    fn notice(&mut self, text: &str);
    /// The connection is about to close: last words (finish a compression stream...).
    fn closing(&mut self);
    /// What to send now, in order.
    fn take_output(&mut self) -> Vec<Self::Out>;
    /// Set when the client turned out to be something the core should hear about.
    fn client_changed(&mut self) -> Option<ClientInfo>;
    /// Everything this speaker knows, for the proxy that takes the connection over. What
    /// cannot be carried is ended cleanly first (an MCCP2 stream): its last bytes are part
    /// of the unwritten output in the state.
    fn hand_over(&mut self) -> SpeakerState;
    /// What the next proxy needs if this one dies now, for the keeper: the session at rest,
    /// without what a crash loses anyway (output not written, a line half typed).
    fn at_rest(&self) -> SpeakerState;
    /// Whether what [`Speaker::at_rest`] gives may have changed since the last call.
    fn checkpoint_due(&mut self) -> bool;
}

/// How a connection moves data; the lifecycle below does not care which.
pub trait Transport {
    type In;
    type Out;
    /// The next input; `Ok(None)` when the client closed.
    fn recv(
        &mut self,
    ) -> impl std::future::Future<Output = Result<Option<Self::In>, CloseReason>> + Send;
    /// Takes output to write, in order; nothing is written yet.
    fn queue(&mut self, output: Vec<Self::Out>) -> std::io::Result<()>;
    /// Writes what the socket takes now, without waiting: `Ok(true)` once nothing queued is
    /// left.
    fn write_now(&mut self) -> std::io::Result<bool>;
    /// Writes everything queued, giving up after [`WRITE_TIMEOUT`]. Cancel safe: what was
    /// not written stays queued, to be written later or carried to the next proxy, so a
    /// client that reads slowly never holds up a hand-over.
    fn flush(&mut self) -> impl std::future::Future<Output = std::io::Result<()>> + Send;
    fn close(&mut self, reason: &CloseReason) -> impl std::future::Future<Output = ()> + Send;
    /// A copy of the socket, for the keeper.
    fn socket_copy(&self) -> Option<OwnedFd>;
    /// Whether the connection is encrypted (for `/metrics`).
    fn is_tls(&self) -> bool;
    /// The socket, for another process to carry on with; the transport back if it cannot be
    /// carried (the connection is then closed like any other).
    fn into_socket(self) -> Result<CarriedSocket, Self>
    where
        Self: Sized;
}

/// What a transport's input and output weigh, for the byte counts in `/metrics`: the
/// payload (telnet bytes, or a WebSocket message's), not the framing around it.
pub trait Measured {
    fn byte_len(&self) -> usize;
}

impl Measured for Vec<u8> {
    fn byte_len(&self) -> usize {
        self.len()
    }
}

/// Queues `output` and writes it: a closing session's last words. Callers box it: a write
/// that may wait is the largest state of a session's future, and every idle session would
/// otherwise carry room for this one, which runs once, at the end (it was 560 bytes of each
/// session's 2 KiB).
async fn send<T: Transport>(transport: &mut T, output: Vec<T::Out>) -> std::io::Result<()> {
    transport.queue(output)?;
    transport.flush().await
}

/// Bytes for one connection, and how many of them are written: a queue the socket drains
/// with non-blocking writes, so a write can stop half way and go on later (or elsewhere).
#[derive(Default)]
pub(crate) struct Unsent {
    bytes: Vec<u8>,
    written: usize,
}

impl Unsent {
    pub(crate) fn new(bytes: Vec<u8>) -> Unsent {
        Unsent { bytes, written: 0 }
    }

    pub(crate) fn push(&mut self, bytes: Vec<u8>) {
        if self.bytes.is_empty() {
            // The common case: one burst, moved rather than copied.
            *self = Unsent::new(bytes);
        } else {
            self.bytes.extend_from_slice(&bytes);
        }
    }

    pub(crate) fn rest(&self) -> &[u8] {
        &self.bytes[self.written..]
    }

    pub(crate) fn is_done(&self) -> bool {
        self.written >= self.bytes.len()
    }

    /// `n` more bytes went out; once all did, the buffer is freed (an idle player holds
    /// none).
    pub(crate) fn advance(&mut self, n: usize) {
        self.written += n;
        if self.is_done() {
            *self = Unsent::default();
        }
    }

    pub(crate) fn take(&mut self) -> Vec<u8> {
        let rest = self.rest().to_vec();
        *self = Unsent::default();
        rest
    }

    /// Writes what the socket takes now, without waiting; `Ok` with bytes left means it is
    /// full.
    pub(crate) fn write_now(&mut self, socket: &TcpStream) -> std::io::Result<()> {
        write_now(self, |bytes| socket.try_write(bytes))
    }

    /// Writes all of it, waiting for the socket as needed (cancel safe).
    pub(crate) async fn write_all(&mut self, socket: &TcpStream) -> std::io::Result<()> {
        while !self.is_done() {
            socket.writable().await?;
            self.write_now(socket)?;
        }
        Ok(())
    }
}

fn write_now(
    unsent: &mut Unsent,
    mut try_write: impl FnMut(&[u8]) -> std::io::Result<usize>,
) -> std::io::Result<()> {
    while !unsent.is_done() {
        match try_write(unsent.rest()) {
            Ok(n) => unsent.advance(n),
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// Gives up on a client that does not take its output within [`WRITE_TIMEOUT`].
pub(crate) async fn within_write_timeout(
    write: impl std::future::Future<Output = std::io::Result<()>>,
) -> std::io::Result<()> {
    tokio::time::timeout(WRITE_TIMEOUT, write)
        .await
        .unwrap_or_else(|_| {
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "client stopped reading",
            ))
        })
}

/// A connection's socket on its way to another process, with what was read from it and not
/// made sense of yet (a WebSocket frame cut in half; telnet hands every byte to its parser).
#[derive(Debug)]
pub struct CarriedSocket {
    pub socket: OwnedFd,
    pub unread: Vec<u8>,
    /// Output queued for the client and not written yet (whole frames, for a WebSocket).
    pub unwritten: Vec<u8>,
}

/// Runs one new session until it closes or is handed over: registers it with the link, feeds
/// input through the speaker to the core, and what the core routes back out to the client.
///
/// The speaker comes boxed because a future keeps a copy of every argument of an `async fn`
/// and of the futures it awaits: inline, a telnet speaker (1.5 KiB, most of it option state)
/// was stored three times in every session's task. For the same reason this is not an
/// `async fn` itself: the registering happens now, and the task is `serve`'s future alone,
/// without a layer holding copies of the arguments (that layer cost every session 450 bytes).
pub fn run<S, T>(
    mut speaker: Box<S>,
    transport: T,
    session: u64,
    info: SessionInfo,
    context: Context,
) -> impl std::future::Future<Output = ()>
where
    S: Speaker,
    T: Transport<In = S::In, Out = S::Out>,
    S::In: Measured,
    S::Out: Measured,
{
    let (messages_tx, messages) = mailbox::mailbox(OUTPUT_QUEUE);
    let peer = info.remote_addr.clone();
    let kind = info.transport;
    info!(session, address = %peer, transport = %kind, "connected");
    crate::metrics::global().connected(kind, transport.is_tls());
    // The keeper hears of the connection before the link can tell it anything about it.
    keep(
        &context.keeper,
        session,
        kind,
        &*speaker,
        transport.socket_copy(),
    );
    context.link.send(ToLink::Opened {
        session,
        info,
        handle: SessionHandle {
            messages: messages_tx,
        },
    });
    speaker.greet();
    serve(speaker, transport, session, kind, messages, peer, context)
}

/// Carries on a session another proxy handed over (or this one, after a hand-over that did
/// not happen): the link knows it already; what was routed to it and not handled comes
/// first, then its unwritten output, then the same life as any session.
#[expect(clippy::too_many_arguments, reason = "a session's whole life, carried")]
pub async fn resume<S, T>(
    mut speaker: Box<S>,
    transport: T,
    session: u64,
    kind: message::Transport,
    messages: mailbox::Receiver<ToSession>,
    queued: Vec<ToSession>,
    peer: String,
    context: Context,
) where
    S: Speaker,
    T: Transport<In = S::In, Out = S::Out>,
    S::In: Measured,
    S::Out: Measured,
{
    debug!(session, %peer, "carried on from the previous proxy");
    for message in queued {
        if let Err(reason) = speaker.message(message) {
            // Handled as the loop would: the last words go out, then the connection closes.
            let mut transport = transport;
            speaker.closing();
            let _ = Box::pin(send(&mut transport, speaker.take_output())).await;
            return close(transport, session, &peer, reason, &context).await;
        }
    }
    serve(speaker, transport, session, kind, messages, peer, context).await;
}

/// Tells the keeper about a connection: a copy of its socket and its checkpoint.
pub fn keep<S: Speaker + ?Sized>(
    keeper: &Keeper,
    session: u64,
    kind: message::Transport,
    speaker: &S,
    socket: Option<OwnedFd>,
) {
    if !keeper.is_on() {
        return;
    }
    match socket {
        Some(socket) => keeper.opened(session, socket, checkpoint(kind, speaker)),
        None => debug!(session, "cannot copy the socket for the keeper"),
    }
}

fn checkpoint<S: Speaker + ?Sized>(kind: message::Transport, speaker: &S) -> Vec<u8> {
    state::encode(&Checkpoint {
        transport: kind,
        speaker: speaker.at_rest(),
    })
}

/// A short fingerprint of a checkpoint, to send only those that changed without holding a
/// copy of the last one in every session.
fn fingerprint(bytes: &[u8]) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    BuildHasherDefault::<DefaultHasher>::default().hash_one(bytes)
}

/// What one turn of a session's loop came to.
enum Turn {
    Lines(Vec<String>),
    Close(CloseReason),
    HandOver(tokio::sync::mpsc::UnboundedSender<CarriedSession>),
}

/// The life of a session once the link knows it.
async fn serve<S, T>(
    mut speaker: Box<S>,
    mut transport: T,
    session: u64,
    kind: message::Transport,
    mut messages: mailbox::Receiver<ToSession>,
    peer: String,
    mut context: Context,
) where
    S: Speaker,
    T: Transport<In = S::In, Out = S::Out>,
    S::In: Measured,
    S::Out: Measured,
{
    let link = context.link.clone();
    let counted = crate::metrics::global().session(kind, transport.is_tls());
    // What the keeper holds for this session (a fingerprint), so it hears only of changes.
    let mut kept = 0u64;
    // Should this task end any other way than below (a panic), the keeper must still let
    // the connection go, or its copy would hold it open with nobody serving it.
    let unkept = Unkept {
        keeper: &context.keeper,
        session,
    };
    let reason = loop {
        // Output first, written at once if the socket takes it (the usual case). Only a
        // full socket is waited for, in a future of its own: it is the largest state of
        // this loop, and boxed, no idle session carries room for it (it cost every session
        // half a kilobyte). A hand-over may stop a slow write half way (the rest travels).
        let output = speaker.take_output();
        counted.sent(output.iter().map(Measured::byte_len).sum());
        let written = transport.queue(output).and_then(|()| transport.write_now());
        let turn = match written {
            Err(error) => Some(Turn::Close(CloseReason::WriteFailed(error.to_string()))),
            Ok(true) => None,
            Ok(false) => {
                let flush = Box::pin(transport.flush());
                tokio::select! {
                    biased;
                    flushed = flush => match flushed {
                        Ok(()) => None,
                        Err(error) => Some(Turn::Close(CloseReason::WriteFailed(error.to_string()))),
                    },
                    stop = context.shutdown.wait() => Some(stop_turn(stop, &mut *speaker)),
                }
            }
        };
        let turn = match turn {
            Some(turn) => turn,
            None => tokio::select! {
            input = transport.recv() => match input {
                Ok(None) => Turn::Close(CloseReason::ClientClosed),
                Ok(Some(input)) => {
                    counted.received(input.byte_len());
                    match speaker.input(input) {
                        Ok(lines) => Turn::Lines(lines),
                        Err(reason) => Turn::Close(reason),
                    }
                }
                Err(error) => Turn::Close(error),
            },
            delivery = messages.recv() => match delivery {
                mailbox::Delivery::Closed => Turn::Close(CloseReason::LinkGone),
                mailbox::Delivery::Messages(queued) => {
                    // Everything already queued goes into the same write.
                    match queued.into_iter().try_for_each(|message| speaker.message(message)) {
                        Ok(()) => Turn::Lines(Vec::new()),
                        Err(reason) => Turn::Close(reason),
                    }
                }
                mailbox::Delivery::Overflowed => {
                    speaker.notice(OVERFLOW_NOTICE);
                    Turn::Close(CloseReason::OutputOverflow)
                }
            },
            stop = context.shutdown.wait() => stop_turn(stop, &mut *speaker),
            },
        };
        match turn {
            Turn::Lines(lines) => {
                for text in lines {
                    link.send(ToLink::Line { session, text });
                }
                if let Some(client) = speaker.client_changed() {
                    link.send(ToLink::Client { session, client });
                }
                if context.keeper.is_on() && speaker.checkpoint_due() {
                    let bytes = checkpoint(kind, &*speaker);
                    let print = fingerprint(&bytes);
                    if print != kept {
                        kept = print;
                        context.keeper.checkpoint(session, bytes);
                    }
                }
            }
            Turn::Close(reason) => {
                speaker.closing();
                let _ = Box::pin(send(&mut transport, speaker.take_output())).await;
                break reason;
            }
            Turn::HandOver(to) => {
                // The link is frozen: what it routed before that is all there will be.
                let queued = messages.take_queued();
                let speaker_state = speaker.hand_over();
                match transport.into_socket() {
                    Ok(CarriedSocket {
                        socket,
                        unread,
                        unwritten,
                    }) => {
                        let state = SessionState {
                            id: session,
                            transport: kind,
                            speaker: speaker_state,
                            queued,
                            unread,
                            unwritten,
                        };
                        // No word to the player or the core: the session goes on elsewhere.
                        let _ = to.send(CarriedSession { state, socket });
                        std::mem::forget(unkept);
                        return;
                    }
                    Err(back) => {
                        transport = back;
                        speaker.notice(CANNOT_FOLLOW);
                        speaker.closing();
                        let _ = Box::pin(send(&mut transport, speaker.take_output())).await;
                        break CloseReason::Shutdown;
                    }
                }
            }
        }
    };
    std::mem::forget(unkept);
    close(transport, session, &peer, reason, &context).await;
}

/// Tells the keeper a session is gone when dropped (see `serve`).
struct Unkept<'a> {
    keeper: &'a Keeper,
    session: u64,
}

impl Drop for Unkept<'_> {
    fn drop(&mut self) {
        self.keeper.closed(self.session);
    }
}

/// What a stop means for a session: goodbye, or off to the next proxy.
fn stop_turn<S: Speaker + ?Sized>(stop: Stop, speaker: &mut S) -> Turn {
    match stop {
        Stop::Goodbye => {
            speaker.notice(SHUTDOWN_MESSAGE);
            Turn::Close(CloseReason::Shutdown)
        }
        Stop::HandOver(to) => Turn::HandOver(to),
    }
}

async fn close<T: Transport>(
    mut transport: T,
    session: u64,
    peer: &str,
    reason: CloseReason,
    context: &Context,
) {
    transport.close(&reason).await;
    // Only now: the keeper's copy would keep a connection open that was not shut down.
    context.keeper.closed(session);
    info!(session, address = %peer, %reason, "disconnected");
    crate::metrics::global().ended(&reason);
    context.link.send(ToLink::Closed {
        session,
        reason: reason.to_string(),
    });
}

/// A mailbox for a session carried over from another proxy: the handle goes to the link
/// before anything is routed, the receiver to the session once it runs.
pub fn carried_mailbox() -> (SessionHandle, mailbox::Receiver<ToSession>) {
    let (messages, receiver) = mailbox::mailbox(OUTPUT_QUEUE);
    (SessionHandle { messages }, receiver)
}

/// Plain telnet over TCP.
///
/// Not an `async fn`, like [`run`]: the session's task is `serve`'s future alone.
pub fn serve_tcp(
    stream: TcpStream,
    peer: SocketAddr,
    session: u64,
    context: Context,
) -> impl std::future::Future<Output = ()> {
    if let Err(error) = stream.set_nodelay(true) {
        debug!(session, %error, "cannot disable Nagle");
    }
    let info = SessionInfo {
        transport: message::Transport::Telnet,
        remote_addr: peer.to_string(),
    };
    let speaker = Box::new(TelnetSpeaker::new(session, context.clone()));
    run(speaker, TcpTransport::new(stream), session, info, context)
}

/// A telnet player over TLS: the same session as [`serve_tcp`], through rustls.
pub fn serve_tls(
    stream: TcpStream,
    peer: SocketAddr,
    session: u64,
    config: std::sync::Arc<rustls::ServerConfig>,
    context: Context,
) -> impl std::future::Future<Output = ()> {
    if let Err(error) = stream.set_nodelay(true) {
        debug!(session, %error, "cannot disable Nagle");
    }
    let info = SessionInfo {
        transport: message::Transport::Telnet,
        remote_addr: peer.to_string(),
    };
    let speaker = Box::new(TelnetSpeaker::new(session, context.clone()));
    // Boxed: one TLS state per session is large, and only TLS sessions carry it.
    let transport = crate::tls::TlsTransport::new(stream, config);
    async move {
        match transport {
            Ok(transport) => run(speaker, transport, session, info, context).await,
            Err(reason) => debug!(session, ?reason, "cannot start TLS"),
        }
    }
}

pub struct TcpTransport {
    stream: TcpStream,
    unsent: Unsent,
}

impl TcpTransport {
    pub fn new(stream: TcpStream) -> TcpTransport {
        TcpTransport::resume(stream, Vec::new())
    }

    /// A connection carried over, with the output the previous proxy had not written.
    pub fn resume(stream: TcpStream, unwritten: Vec<u8>) -> TcpTransport {
        TcpTransport {
            stream,
            unsent: Unsent::new(unwritten),
        }
    }
}

/// Reads what the socket has into a buffer on the stack and copies out only what came.
///
/// Why not a buffer in the session: it would be held for the whole life of the connection,
/// 4 KiB per idle player. This is a plain function so the buffer is never part of a future.
fn try_read(stream: &TcpStream) -> std::io::Result<Vec<u8>> {
    let mut buffer = [0u8; READ_BUFFER];
    let n = stream.try_read(&mut buffer)?;
    Ok(buffer[..n].to_vec())
}

impl Transport for TcpTransport {
    type In = Vec<u8>;
    type Out = Vec<u8>;

    async fn recv(&mut self) -> Result<Option<Vec<u8>>, CloseReason> {
        loop {
            // Cancel safe, as `select!` in `run` needs: nothing is read until it is ready.
            if let Err(error) = self.stream.readable().await {
                return Err(CloseReason::ReadFailed(error.to_string()));
            }
            match try_read(&self.stream) {
                Ok(bytes) if bytes.is_empty() => return Ok(None),
                Ok(bytes) => return Ok(Some(bytes)),
                // Readiness can be a false alarm; wait for the next.
                Err(error)
                    if matches!(
                        error.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                    ) => {}
                Err(error) => return Err(CloseReason::ReadFailed(error.to_string())),
            }
        }
    }

    fn queue(&mut self, output: Vec<Vec<u8>>) -> std::io::Result<()> {
        for bytes in output.into_iter().filter(|bytes| !bytes.is_empty()) {
            self.unsent.push(bytes);
        }
        Ok(())
    }

    fn write_now(&mut self) -> std::io::Result<bool> {
        self.unsent.write_now(&self.stream)?;
        Ok(self.unsent.is_done())
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        within_write_timeout(self.unsent.write_all(&self.stream)).await
    }

    async fn close(&mut self, _reason: &CloseReason) {
        let _ = self.stream.shutdown().await;
    }

    fn socket_copy(&self) -> Option<OwnedFd> {
        use std::os::fd::AsFd;
        self.stream.as_fd().try_clone_to_owned().ok()
    }

    fn is_tls(&self) -> bool {
        false
    }

    fn into_socket(mut self) -> Result<CarriedSocket, TcpTransport> {
        // A copy of the descriptor: closing this one (as the stream drops) leaves the
        // connection open for whoever holds the copy. (A whole stream, unlike a write half,
        // does not shut the connection down when it is dropped.)
        use std::os::fd::AsFd;
        let copy = match self.stream.as_fd().try_clone_to_owned() {
            Ok(copy) => copy,
            Err(_) => return Err(self),
        };
        Ok(CarriedSocket {
            socket: copy,
            unread: Vec::new(),
            unwritten: self.unsent.take(),
        })
    }
}

/// A telnet session's state ([`TelnetSpeaker::state`]): a telnet command cut in half, every
/// option's negotiation and what it taught us, a partly typed line and the flood budget,
/// unwritten output and whether MCCP2 is on, the player's display settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TelnetState {
    parser: TelnetParser,
    negotiation: Negotiation,
    admission: Admission,
    wire: WireState,
    prefs: DisplayPrefs,
    input_hidden: bool,
    client_changed: Option<ClientInfo>,
}

/// The telnet protocol of one session, sans-IO: bytes in, lines for the core and bytes out.
/// Also spoken over WebSocket (`telnet.mudstandards.org`).
pub struct TelnetSpeaker {
    id: u64,
    context: Context,
    parser: TelnetParser,
    negotiation: Negotiation,
    admission: Admission,
    wire: Wire,
    prefs: DisplayPrefs,
    /// The client was asked to stop echoing (a password is being typed).
    input_hidden: bool,
    /// Set when negotiation learned something the core should hear.
    client_changed: Option<ClientInfo>,
    /// Input or a message may have changed what a checkpoint holds.
    unchecked: bool,
}

impl TelnetSpeaker {
    pub fn new(id: u64, context: Context) -> TelnetSpeaker {
        TelnetSpeaker {
            id,
            context,
            parser: TelnetParser::new(),
            negotiation: Negotiation::new(),
            admission: Admission::new(Instant::now()),
            wire: Wire::default(),
            prefs: DisplayPrefs::default(),
            input_hidden: false,
            client_changed: None,
            unchecked: true,
        }
    }

    /// Everything this speaker knows about the session, to carry it to another process. An
    /// MCCP2 stream is ended first (see [`Wire::hand_over`]).
    pub fn state(&mut self) -> TelnetState {
        TelnetState {
            parser: self.parser.clone(),
            negotiation: self.negotiation.clone(),
            admission: self.admission.clone(),
            wire: self.wire.hand_over(),
            prefs: self.prefs,
            input_hidden: self.input_hidden,
            client_changed: self.client_changed.clone(),
        }
    }

    /// A speaker that carries on from `state`.
    pub fn restore(id: u64, context: Context, state: TelnetState) -> TelnetSpeaker {
        TelnetSpeaker {
            id,
            context,
            parser: state.parser,
            negotiation: state.negotiation,
            admission: state.admission,
            wire: Wire::restore(state.wire),
            prefs: state.prefs,
            input_hidden: state.input_hidden,
            client_changed: state.client_changed,
            unchecked: true,
        }
    }

    #[cfg(test)]
    pub(crate) fn client(&self) -> &ClientInfo {
        &self.caps().client
    }

    #[cfg(test)]
    pub(crate) fn wants_gmcp(&self, package: &str) -> bool {
        self.negotiation.gmcp_message(package, "", &mut Vec::new())
    }

    fn caps(&self) -> &Capabilities {
        self.negotiation.capabilities()
    }

    /// Bytes from the client.
    fn bytes(&mut self, bytes: &[u8]) -> Result<Vec<String>, CloseReason> {
        // Fresh vectors per read rather than kept ones: an idle session holds no capacity.
        let mut telnet_events = Vec::new();
        self.parser.feed(bytes, &mut telnet_events);
        let mut admitted = Admitted::default();
        let now = Instant::now();
        let mut closing = Ok(());
        for event in &telnet_events {
            match event {
                TelnetEvent::Data(data) if closing.is_ok() => {
                    closing = self.admission.typed(data, now, &mut admitted);
                }
                TelnetEvent::Data(_) => {}
                // GMCP from the client spends from the same budget as lines, as on the web.
                TelnetEvent::Subnegotiation {
                    option: option::GMCP,
                    ..
                } if closing.is_ok() => match self.admission.message(now, &mut admitted.notices) {
                    Ok(true) => self.negotiate(event),
                    Ok(false) => {}
                    Err(reason) => closing = Err(reason),
                },
                other => self.negotiate(other),
            }
        }
        for notice in &admitted.notices {
            self.notice(notice);
        }
        closing?;
        let mut lines = admitted.lines;
        lines.retain(|line| {
            if line != MSSP_REQUEST {
                return true;
            }
            // The plain-text MSSP fallback is answered here, not by the game.
            let reply = Negotiation::mssp_plain(&self.mssp());
            let charset = self.caps().client.charset;
            negotiation::encode_text(charset, &reply, self.wire.pending());
            false
        });
        Ok(lines)
    }

    fn negotiate(&mut self, event: &TelnetEvent) {
        let mut answer = Vec::new();
        let mut happened = Vec::new();
        self.negotiation.handle(event, &mut answer, &mut happened);
        if happened.contains(&ClientEvent::StopCompression) {
            self.wire.stop_compression();
        }
        self.wire.pending().extend_from_slice(&answer);
        for event in happened {
            match event {
                ClientEvent::StartCompression => self.wire.start_compression(),
                ClientEvent::StopCompression => {}
                ClientEvent::CapabilitiesChanged => {
                    self.client_changed = Some(self.caps().client.clone());
                }
                ClientEvent::CharsetDecided(charset) => {
                    self.admission.set_charset(charset);
                    self.client_changed = Some(self.caps().client.clone());
                }
                ClientEvent::MsspRequested => {
                    let vars = self.mssp();
                    Negotiation::mssp_reply(&vars, self.wire.pending());
                }
                ClientEvent::Gmcp { package, .. } => {
                    debug!(session = self.id, %package, "GMCP from the client is not used yet");
                }
            }
        }
    }

    /// A message routed by the link.
    fn handle_message(&mut self, message: ToSession) -> Result<(), CloseReason> {
        // Disjoint fields: the capabilities are read while the wire is written, no copy.
        let caps = self.negotiation.capabilities();
        match message {
            ToSession::Core(Delivery::Output(text)) => self.wire.text(&text, caps, &self.prefs),
            ToSession::Core(Delivery::Prompt(text)) => {
                let end = self.negotiation.prompt_end();
                self.wire.prompt(&text, caps, &self.prefs, end);
            }
            ToSession::Notice(text) => self.wire.notice(&text, caps),
            ToSession::Core(Delivery::HideInput(hide)) => {
                self.unchecked = true;
                self.negotiation.hide_input(hide, self.wire.pending());
                if !hide && std::mem::replace(&mut self.input_hidden, false) {
                    // The client did not echo the Enter that ended the password either.
                    self.wire.pending().extend_from_slice(b"\r\n");
                }
                self.input_hidden |= hide;
            }
            ToSession::Core(Delivery::Gmcp { package, json }) => {
                self.negotiation
                    .gmcp_message(&package, &json, self.wire.pending());
            }
            ToSession::Core(Delivery::Display(prefs)) => {
                self.unchecked = true;
                self.prefs = prefs;
            }
            ToSession::Core(Delivery::Disconnect(reason)) => {
                // Never leave the client masking input after we are gone.
                self.negotiation.hide_input(false, self.wire.pending());
                let charset = self.negotiation.capabilities().client.charset;
                negotiation::encode_text(charset, &format!("{reason}\n"), self.wire.pending());
                return Err(CloseReason::Game(reason));
            }
            // The relay's own business; never routed to a session.
            ToSession::Core(
                Delivery::Ack(_)
                | Delivery::State(_)
                | Delivery::Playing { .. }
                | Delivery::LoginFailed
                | Delivery::OrderDone { .. },
            ) => {}
        }
        Ok(())
    }

    /// MSSP: the core's latest facts plus our own uptime.
    fn mssp(&self) -> Vec<(String, String)> {
        let mut vars = self
            .context
            .game_status
            .read()
            .map(|vars| vars.clone())
            .unwrap_or_default();
        if !vars.iter().any(|(name, _)| name == "NAME") {
            vars.push(("NAME".into(), "tether".into()));
        }
        if !vars.iter().any(|(name, _)| name == "PLAYERS") {
            vars.push(("PLAYERS".into(), "0".into()));
        }
        vars.push(("UPTIME".into(), self.context.started.to_string()));
        if let Some(port) = self.context.tls_port {
            // Mudlet reads `TLS` and offers to reconnect securely; `SSL` is its older name.
            vars.push(("TLS".into(), port.to_string()));
            vars.push(("SSL".into(), port.to_string()));
        }
        vars
    }
}

impl Speaker for TelnetSpeaker {
    type In = Vec<u8>;
    type Out = Vec<u8>;

    fn greet(&mut self) {
        self.negotiation.start(self.wire.pending());
    }

    fn input(&mut self, input: Vec<u8>) -> Result<Vec<String>, CloseReason> {
        // Negotiation, compression and the charset all change on input.
        self.unchecked = true;
        let lines = self.bytes(&input)?;
        if !lines.is_empty() {
            self.wire.line_typed();
        }
        Ok(lines)
    }

    fn message(&mut self, message: ToSession) -> Result<(), CloseReason> {
        self.handle_message(message)
    }

    fn notice(&mut self, text: &str) {
        self.wire.notice(text, self.negotiation.capabilities());
    }

    fn closing(&mut self) {
        // Finish a zlib stream properly so the client shows the last words.
        self.wire.stop_compression();
    }

    fn take_output(&mut self) -> Vec<Vec<u8>> {
        let bytes = self.wire.take();
        if bytes.is_empty() {
            Vec::new()
        } else {
            vec![bytes]
        }
    }

    fn client_changed(&mut self) -> Option<ClientInfo> {
        self.client_changed.take()
    }

    fn hand_over(&mut self) -> SpeakerState {
        SpeakerState::Telnet(Box::new(self.state()))
    }

    fn at_rest(&self) -> SpeakerState {
        SpeakerState::Telnet(Box::new(TelnetState {
            parser: TelnetParser::new(),
            negotiation: self.negotiation.clone(),
            admission: self.admission.at_rest(),
            wire: self.wire.at_rest(),
            prefs: self.prefs,
            input_hidden: self.input_hidden,
            client_changed: None,
        }))
    }

    fn checkpoint_due(&mut self) -> bool {
        std::mem::take(&mut self.unchecked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client that reads slowly must not hold up a hand-over: a write stopped half way
    /// leaves the rest queued, and the rest travels with the socket, every byte once.
    #[tokio::test]
    async fn output_a_slow_reader_has_not_taken_travels_whole() -> std::io::Result<()> {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let mut client = TcpStream::connect(listener.local_addr()?).await?;
        let (server, _) = listener.accept().await?;
        let mut first = TcpTransport::new(server);
        let output: Vec<u8> = (0..16 << 20).map(|i| (i % 251) as u8).collect();
        first.queue(vec![output.clone()])?;
        // Nobody reads: the write cannot finish, and is stopped.
        let stopped =
            tokio::time::timeout(std::time::Duration::from_millis(100), first.flush()).await;
        assert!(stopped.is_err(), "16 MiB do not fit in the socket buffers");
        let carried = first.into_socket().ok().expect("carried");
        assert!(!carried.unwritten.is_empty());
        assert!(carried.unwritten.len() < output.len());

        let stream = crate::websocket::adopt(carried.socket)?;
        let mut second = TcpTransport::resume(stream, carried.unwritten);
        let reading = tokio::spawn(async move {
            let mut got = vec![0u8; 16 << 20];
            client.read_exact(&mut got).await.map(|_| got)
        });
        second.flush().await?;
        assert_eq!(reading.await.expect("reader")?, output);
        Ok(())
    }

    /// Every idle connection holds its task's future and its speaker for as long as it is
    /// open, so their sizes are what thousands of idle players cost. The bounds are loose;
    /// crossing one means something big moved into every session (it has happened: inline
    /// arguments of `run` and full option tables once made this 4 KiB; a cold-path write
    /// and the `async fn` layers of `run` and `serve_tcp` made it 2 KiB, now 1 KiB; then the
    /// gate's `holding` wrapper, an `async fn` awaiting its argument, doubled it again).
    #[tokio::test]
    async fn a_session_stays_small() -> std::io::Result<()> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let stream = TcpStream::connect(addr).await?;
        let context = Context::unlinked();
        let permit = context
            .gate
            .admit(addr.ip(), crate::gate::Door::Telnet)
            .map_err(|refusal| std::io::Error::other(refusal.to_string()))?;
        // As the accept loop spawns it: holding its place at the gate.
        let task = crate::server::holding(permit, serve_tcp(stream, addr, 1, context));
        let task_size = std::mem::size_of_val(&task);
        let speaker_size = std::mem::size_of::<TelnetSpeaker>();
        println!("session future: {task_size} bytes, telnet speaker: {speaker_size} bytes");
        assert!(task_size <= 1280, "session future: {task_size} bytes");
        assert!(speaker_size <= 1024, "telnet speaker: {speaker_size} bytes");
        Ok(())
    }
}
