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

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tether_protocol::framing::{self, MessageReader};
use tether_protocol::message::{
    self, Attach, ClientInfo, CoreMessage, DecodeError, Hello, ProxyEvent, ProxyMessage,
    SessionInfo,
};
use tether_protocol::process::CoreNews;
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::Notify;
use tracing::{debug, info, warn};

use crate::mailbox;
use crate::relay::{CoreHealth, Refused, Relay, ToSession};

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

/// How the link reaches one session task.
#[derive(Debug, Clone)]
pub struct SessionHandle {
    /// Overflows, and so closes the session, when it cannot keep up with its output: a client
    /// that does not read must not make the proxy buffer forever.
    pub messages: mailbox::Sender<ToSession>,
}

#[derive(Debug, Clone)]
pub struct LinkConfig {
    pub socket: PathBuf,
    pub proxy_name: String,
    pub proxy_id: u64,
    pub max_queued_lines: usize,
    pub game_status: GameStatus,
}

const BACKOFF_FIRST: Duration = Duration::from_millis(5);
const BACKOFF_CAP: Duration = Duration::from_millis(100);
/// How long a core that declined input may take to finish and close the link.
const STOPPING_CORE_GRACE: Duration = Duration::from_secs(10);
/// A core that refuses us (version mismatch) will not change its mind every 100 ms.
const REFUSED_RETRY: Duration = Duration::from_secs(2);

/// How sessions reach the link. Cheap to clone; `send` never waits.
#[derive(Clone)]
pub struct LinkHandle {
    shell: Arc<Mutex<Shell>>,
    /// Wakes the link task when there may be input to submit.
    submit_ready: Arc<Notify>,
    /// Whether a core is attached right now.
    attached: Arc<tokio::sync::watch::Sender<bool>>,
}

impl std::fmt::Debug for LinkHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkHandle").finish_non_exhaustive()
    }
}

impl LinkHandle {
    /// A link with no task behind it yet: `start` gives it one.
    pub fn new(config: &LinkConfig) -> LinkHandle {
        LinkHandle {
            shell: Arc::new(Mutex::new(Shell {
                relay: Relay::new(Instant::now(), config.max_queued_lines),
                sessions: HashMap::new(),
                game_status: config.game_status.clone(),
                in_flight: None,
                declined: false,
                cannot_start: None,
            })),
            submit_ready: Arc::new(Notify::new()),
            attached: Arc::new(tokio::sync::watch::Sender::new(false)),
        }
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

    /// Why no core can start, as the supervisor last said (for `/health`).
    pub fn core_cannot_start(&self) -> Option<String> {
        self.lock().cannot_start.clone()
    }

    /// What the supervisor says about the core.
    pub fn core_news(&self, news: CoreNews) {
        self.lock().cannot_start = match news {
            CoreNews::CannotStart(reason) => Some(reason),
            CoreNews::Running => None,
        };
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
        // A panic elsewhere must not take every player's link down with it.
        self.shell
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Starts the link task on the current runtime. It runs for the life of the process.
pub fn start(config: LinkConfig) -> LinkHandle {
    let link = LinkHandle::new(&config);
    let ticking = link.clone();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(Duration::from_millis(250));
        loop {
            ticks.tick().await;
            let mut shell = ticking.lock();
            shell.relay.tick(Instant::now());
            shell.flush();
        }
    });
    tokio::spawn(run(config, link.clone()));
    link
}

struct Shell {
    relay: Relay,
    sessions: HashMap<u64, SessionHandle>,
    game_status: GameStatus,
    /// The batch the core has not answered yet.
    in_flight: Option<Vec<ProxyEvent<'static>>>,
    /// The core declined input on this connection: submit nothing more to it.
    declined: bool,
    /// The supervisor said no core can start, and why.
    cannot_start: Option<String>,
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
            ToLink::Line { session, text } => match self.relay.line(session, text) {
                Ok(_) => {}
                Err(Refused::QueueFull { limit }) => self.send(
                    session,
                    ToSession::Notice(format!(
                        "Too many lines are waiting for the game ({limit}); that last line \
                         was not accepted. Please wait a moment and send it again."
                    )),
                ),
                Err(Refused::UnknownSession) => {
                    warn!(session, "line from a session the link does not know")
                }
            },
            ToLink::Closed { session, reason } => {
                self.sessions.remove(&session);
                self.relay.closed(session, reason);
            }
            ToLink::Client { session, client } => self.relay.client(session, client),
        }
    }

    /// Pushes what the relay decided out to sessions.
    fn flush(&mut self) {
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
        if self.in_flight.is_some() || self.declined {
            return None;
        }
        let batch = self.relay.take_submits();
        if batch.is_empty() {
            return None;
        }
        self.relay.submitted(Instant::now());
        self.in_flight.insert(batch).as_slice().into()
    }

    /// The connection ended: what it did not confirm goes to the next core.
    fn connection_lost(&mut self) {
        if let Some(batch) = self.in_flight.take() {
            self.relay.not_delivered(&batch);
        }
        self.declined = false;
        self.relay.detached(Instant::now());
        self.flush();
    }
}

async fn run(config: LinkConfig, link: LinkHandle) {
    let mut backoff = BACKOFF_FIRST;
    let mut logged_waiting = false;
    loop {
        match UnixStream::connect(&config.socket).await {
            Ok(stream) => {
                logged_waiting = false;
                let connected = Instant::now();
                let outcome = run_connection(stream, &link, &config).await;
                link.lock().connection_lost();
                link.attached.send_replace(false);
                match outcome {
                    Ok(()) => info!("link to the core closed; reconnecting"),
                    Err(LinkError::Broken(reason)) => {
                        info!("link to the core lost ({reason}); reconnecting")
                    }
                    Err(LinkError::Refused(reason)) => {
                        tracing::error!("the core refused this proxy: {reason}");
                        tokio::time::sleep(REFUSED_RETRY).await;
                        continue;
                    }
                }
                // After a link that worked, the next core is expected at once; a link that
                // failed straight away must not turn into a busy loop.
                if connected.elapsed() > Duration::from_secs(1) {
                    backoff = BACKOFF_FIRST;
                    continue;
                }
            }
            Err(error) => {
                if !logged_waiting {
                    info!(socket = %config.socket.display(), %error, "waiting for the core");
                    logged_waiting = true;
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_CAP);
    }
}

enum LinkError {
    /// The core answered and said no: retrying at once will not help.
    Refused(String),
    /// The connection broke.
    Broken(String),
}

fn broken(error: impl std::fmt::Display) -> LinkError {
    LinkError::Broken(error.to_string())
}

async fn run_connection(
    stream: UnixStream,
    link: &LinkHandle,
    config: &LinkConfig,
) -> Result<(), LinkError> {
    let (reader, mut writer) = stream.into_split();
    let mut reader = MessageReader::new(reader);
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
    let core_name = match reader.next().await.map_err(broken)? {
        Some(message) => read_welcome(&message)?,
        None => return Err(LinkError::Broken("connection closed during attach".into())),
    };
    {
        let mut shell = link.lock();
        let sessions = shell.relay.session_count();
        shell.relay.attached();
        shell.flush();
        info!(
            core = %core_name,
            sessions,
            attach_ms = started.elapsed().as_secs_f64() * 1000.0,
            "attached to the core"
        );
    }
    link.attached.send_replace(true);
    link.submit_ready.notify_one();
    // One task, two halves: whichever woke it makes progress, and neither needs a thread.
    tokio::select! {
        read = read_core(reader, link) => read,
        written = submit(writer, link) => written,
    }
}

/// Writes batches as the relay has them, one in flight at a time, until a write fails.
async fn submit(mut writer: OwnedWriteHalf, link: &LinkHandle) -> Result<(), LinkError> {
    let mut bytes = Vec::new();
    loop {
        link.submit_ready.notified().await;
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
async fn read_core(
    mut reader: MessageReader<OwnedReadHalf>,
    link: &LinkHandle,
) -> Result<(), LinkError> {
    let mut stopping_deadline = None;
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
        let decoded = match CoreMessage::decode(&message) {
            Ok(decoded) => decoded,
            Err(DecodeError::UnknownMessage { which, .. }) => {
                debug!(which, "ignoring a core message this proxy does not know");
                continue;
            }
            Err(error) => return Err(broken(error)),
        };
        match decoded {
            CoreMessage::Deliver(events) => {
                let mut shell = link.lock();
                for event in events {
                    shell.relay.delivered(event);
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
                stopping_deadline = Some(tokio::time::Instant::now() + STOPPING_CORE_GRACE);
            }
            CoreMessage::GameStatus(vars) => {
                let vars = vars.into_iter().map(|var| (var.name, var.value)).collect();
                let shell = link.lock();
                *shell
                    .game_status
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = vars;
            }
            CoreMessage::Welcome(_) | CoreMessage::Refused(_) => {
                return Err(LinkError::Broken(
                    "the core answered an attach twice".into(),
                ));
            }
        }
    }
}

/// The core's answer to `attach`: its name, or why it will not have us.
fn read_welcome(message: &framing::Message<'_>) -> Result<String, LinkError> {
    match CoreMessage::decode(message).map_err(broken)? {
        CoreMessage::Welcome(welcome) => {
            tether_protocol::check_version("core", welcome.protocol_version)
                .map_err(LinkError::Refused)?;
            Ok(welcome.core_name)
        }
        CoreMessage::Refused(reason) => Err(LinkError::Refused(reason)),
        // A stopping core: the next one is moments away.
        CoreMessage::Declined(reason) => Err(LinkError::Broken(reason)),
        _ => Err(LinkError::Broken(
            "the core did not answer the attach".into(),
        )),
    }
}
