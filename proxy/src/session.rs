//! One telnet connection: the async shell around the sans-IO pieces (telnet parser, option
//! negotiation, line assembler, flood guard, and the `Wire` that renders and compresses). It
//! reads bytes, turns them into lines for the link, and writes what the link routes back. It
//! never waits on the core: the link may be down for seconds and this task keeps reading,
//! negotiating, answering and queueing.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tracing::{debug, info};

use crate::admission::{Admission, Admitted};
use crate::close::{CloseReason, OVERFLOW_NOTICE};
use crate::link::{GameStatus, LinkHandle, SessionHandle, ToLink};
use crate::mailbox;
use tether_protocol::message::{self, ClientInfo, Delivery, DisplayPrefs, SessionInfo};

use crate::negotiation::{self, Capabilities, ClientEvent, MSSP_REQUEST, Negotiation};
use crate::relay::ToSession;
use crate::shutdown::Shutdown;
use crate::telnet::{TelnetEvent, TelnetParser, option};
use crate::wire::{Wire, WireState};

/// Messages the link may queue for one session before it is considered stuck.
const OUTPUT_QUEUE: usize = 1024;
/// A client that does not take our output within this long is gone.
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
const READ_BUFFER: usize = 4096;

pub const SHUTDOWN_MESSAGE: &str = "The game is shutting down. Goodbye!";

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
}

impl Context {
    /// A context whose link has no task behind it, for speakers run without I/O (unit tests,
    /// fuzz targets): what they send the link is queued and goes nowhere.
    pub(crate) fn unlinked() -> Context {
        let link = LinkHandle::new(&crate::link::LinkConfig {
            socket: "nowhere".into(),
            proxy_name: "unlinked".into(),
            proxy_id: 1,
            max_queued_lines: crate::relay::DEFAULT_MAX_QUEUED_LINES,
            game_status: GameStatus::default(),
        });
        // Dropping the trigger counts as never firing for these callers: nothing waits on it.
        let (_trigger, shutdown) = crate::shutdown::channel();
        Context {
            link,
            shutdown,
            game_status: GameStatus::default(),
            started: 0,
            ids: std::sync::Arc::default(),
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
}

/// How a connection moves data; the lifecycle below does not care which.
pub trait Transport {
    type In;
    type Out;
    /// The next input; `Ok(None)` when the client closed.
    fn recv(
        &mut self,
    ) -> impl std::future::Future<Output = Result<Option<Self::In>, CloseReason>> + Send;
    fn send(
        &mut self,
        output: Vec<Self::Out>,
    ) -> impl std::future::Future<Output = std::io::Result<()>> + Send;
    fn close(&mut self, reason: &CloseReason) -> impl std::future::Future<Output = ()> + Send;
}

/// Runs one session until it closes: registers it with the link, feeds input through the
/// speaker to the core, and what the core routes back out to the client.
///
/// The speaker comes boxed because a future keeps a copy of every argument of an `async fn`
/// and of the futures it awaits: inline, a telnet speaker (1.5 KiB, most of it option state)
/// was stored three times in every session's task.
pub async fn run<S, T>(
    mut speaker: Box<S>,
    mut transport: T,
    session: u64,
    info: SessionInfo,
    mut context: Context,
) where
    S: Speaker,
    T: Transport<In = S::In, Out = S::Out>,
{
    let (messages_tx, mut messages) = mailbox::mailbox(OUTPUT_QUEUE);
    let handle = SessionHandle {
        messages: messages_tx,
    };
    let peer = info.remote_addr.clone();
    let transport_name = info.transport;
    let link = context.link.clone();
    link.send(ToLink::Opened {
        session,
        info,
        handle,
    });
    info!(session, %peer, transport = %transport_name, "connected");

    speaker.greet();
    let mut sent = transport.send(speaker.take_output()).await;
    let reason = loop {
        if let Err(error) = sent {
            break CloseReason::WriteFailed(error.to_string());
        }
        let outcome = tokio::select! {
            input = transport.recv() => match input {
                Ok(None) => Err(CloseReason::ClientClosed),
                Ok(Some(input)) => speaker.input(input),
                Err(error) => Err(error),
            },
            delivery = messages.recv() => match delivery {
                mailbox::Delivery::Closed => Err(CloseReason::LinkGone),
                mailbox::Delivery::Messages(queued) => {
                    // Everything already queued goes into the same write.
                    queued
                        .into_iter()
                        .try_for_each(|message| speaker.message(message))
                        .map(|()| Vec::new())
                }
                mailbox::Delivery::Overflowed => {
                    speaker.notice(OVERFLOW_NOTICE);
                    Err(CloseReason::OutputOverflow)
                }
            },
            _ = context.shutdown.wait() => {
                speaker.notice(SHUTDOWN_MESSAGE);
                Err(CloseReason::Shutdown)
            }
        };
        match outcome {
            Ok(lines) => {
                for text in lines {
                    link.send(ToLink::Line { session, text });
                }
                if let Some(client) = speaker.client_changed() {
                    link.send(ToLink::Client { session, client });
                }
            }
            Err(reason) => {
                speaker.closing();
                let _ = transport.send(speaker.take_output()).await;
                break reason;
            }
        }
        sent = transport.send(speaker.take_output()).await;
    };
    transport.close(&reason).await;
    info!(session, %peer, %reason, "disconnected");
    link.send(ToLink::Closed {
        session,
        reason: reason.to_string(),
    });
}

/// Plain telnet over TCP.
pub async fn serve_tcp(stream: TcpStream, peer: SocketAddr, session: u64, context: Context) {
    if let Err(error) = stream.set_nodelay(true) {
        debug!(session, %error, "cannot disable Nagle");
    }
    let info = SessionInfo {
        transport: message::Transport::Telnet,
        remote_addr: peer.to_string(),
    };
    let speaker = Box::new(TelnetSpeaker::new(session, context.clone()));
    run(speaker, TcpTransport::new(stream), session, info, context).await;
}

struct TcpTransport {
    reader: tokio::net::tcp::OwnedReadHalf,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

impl TcpTransport {
    fn new(stream: TcpStream) -> TcpTransport {
        let (reader, writer) = stream.into_split();
        TcpTransport { reader, writer }
    }
}

/// Reads what the socket has into a buffer on the stack and copies out only what came.
///
/// Why not a buffer in the session: it would be held for the whole life of the connection,
/// 4 KiB per idle player. This is a plain function so the buffer is never part of a future.
fn try_read(reader: &tokio::net::tcp::OwnedReadHalf) -> std::io::Result<Vec<u8>> {
    let mut buffer = [0u8; READ_BUFFER];
    let n = reader.try_read(&mut buffer)?;
    Ok(buffer[..n].to_vec())
}

impl Transport for TcpTransport {
    type In = Vec<u8>;
    type Out = Vec<u8>;

    async fn recv(&mut self) -> Result<Option<Vec<u8>>, CloseReason> {
        loop {
            // Cancel safe, as `select!` in `run` needs: nothing is read until it is ready.
            if let Err(error) = self.reader.readable().await {
                return Err(CloseReason::ReadFailed(error.to_string()));
            }
            match try_read(&self.reader) {
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

    async fn send(&mut self, output: Vec<Vec<u8>>) -> std::io::Result<()> {
        for bytes in output {
            write(&mut self.writer, &bytes).await?;
        }
        Ok(())
    }

    async fn close(&mut self, _reason: &CloseReason) {
        let _ = self.writer.shutdown().await;
    }
}

async fn write(writer: &mut tokio::net::tcp::OwnedWriteHalf, bytes: &[u8]) -> std::io::Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    tokio::time::timeout(WRITE_TIMEOUT, writer.write_all(bytes))
        .await
        .unwrap_or_else(|_| {
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "client stopped reading",
            ))
        })
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
        }
    }

    /// Everything this speaker knows about the session, to carry it to another process.
    #[cfg_attr(
        not(test),
        expect(
            dead_code,
            reason = "the proxy hand-over (issue 15) will use it; until then its tests do"
        )
    )]
    pub fn state(&self) -> TelnetState {
        TelnetState {
            parser: self.parser.clone(),
            negotiation: self.negotiation.clone(),
            admission: self.admission.clone(),
            wire: self.wire.state(),
            prefs: self.prefs,
            input_hidden: self.input_hidden,
            client_changed: self.client_changed.clone(),
        }
    }

    /// A speaker that carries on from `state`.
    #[cfg_attr(
        not(test),
        expect(
            dead_code,
            reason = "the proxy hand-over (issue 15) will use it; until then its tests do"
        )
    )]
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
            ToSession::Core(Delivery::Display(prefs)) => self.prefs = prefs,
            ToSession::Core(Delivery::Disconnect(reason)) => {
                // Never leave the client masking input after we are gone.
                self.negotiation.hide_input(false, self.wire.pending());
                let charset = self.negotiation.capabilities().client.charset;
                negotiation::encode_text(charset, &format!("{reason}\n"), self.wire.pending());
                return Err(CloseReason::Game(reason));
            }
            // The relay's own business; never routed to a session.
            ToSession::Core(Delivery::Ack(_) | Delivery::State(_)) => {}
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
        self.bytes(&input)
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
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every idle connection holds its task's future and its speaker for as long as it is
    /// open, so their sizes are what thousands of idle players cost. The bounds are loose;
    /// crossing one means something big moved into every session (it has happened: inline
    /// arguments of `run` and full option tables once made this 4 KiB).
    #[tokio::test]
    async fn a_session_stays_small() -> std::io::Result<()> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let stream = TcpStream::connect(addr).await?;
        let task = serve_tcp(stream, addr, 1, Context::unlinked());
        let task_size = std::mem::size_of_val(&task);
        let speaker_size = std::mem::size_of::<TelnetSpeaker>();
        assert!(task_size <= 2048, "session future: {task_size} bytes");
        assert!(speaker_size <= 1024, "telnet speaker: {speaker_size} bytes");
        Ok(())
    }
}
