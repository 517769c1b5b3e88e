//! The proxy's end of the link: a thread running capnp-rpc (which is `!Send`) on a
//! current-thread runtime, talking to the session tasks through channels.
//!
//! It connects to the core's socket, attaches with a snapshot of every session, submits input
//! in batches (one call in flight; what arrives meanwhile rides in the next one) and routes
//! what the core delivers. When the link drops it reconnects by itself, quickly: the backoff is
//! capped at 100 ms so a restarted core is picked up at once. The decisions about what to
//! resend and what to tell players are the `Relay`'s; this file only does the I/O.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use capnp_rpc::{RpcSystem, rpc_twoparty_capnp::Side, twoparty};
use futures::FutureExt;
use tether_protocol::link_capnp::{
    ColorChoice, client_info, core, core_event, link, proxy, proxy_event,
};
use tether_protocol::markup::ColorDepth;
use tokio::net::UnixStream;
use tokio::sync::{Notify, mpsc};
use tokio_util::compat::{TokioAsyncReadCompatExt, TokioAsyncWriteCompatExt};
use tracing::{debug, info, warn};

use crate::mailbox;
use crate::relay::{
    ClientInfo, Delivered, DisplayPrefs, Refused, Relay, SessionInfo, Submit, ToSession,
};

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
    /// Whether a core is attached right now (for the web health check).
    pub link_up: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

const BACKOFF_FIRST: Duration = Duration::from_millis(5);
const BACKOFF_CAP: Duration = Duration::from_millis(100);
/// How long a core that refused input may take to finish and close the link.
const STOPPING_CORE_GRACE: Duration = Duration::from_secs(10);
/// A core that refuses us (version mismatch) will not change its mind every 100 ms.
const REFUSED_RETRY: Duration = Duration::from_secs(2);

/// Starts the link thread. It runs for the life of the process.
pub fn spawn(
    config: LinkConfig,
    from_sessions: mpsc::Receiver<ToLink>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("tether-link".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => {
                    tracing::error!(%error, "cannot start the link runtime");
                    std::process::exit(1);
                }
            };
            let local = tokio::task::LocalSet::new();
            local.block_on(&runtime, run(config, from_sessions));
        })
}

struct Shell {
    relay: Relay,
    sessions: HashMap<u64, SessionHandle>,
    submit_ready: Rc<Notify>,
    game_status: GameStatus,
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

    /// Pushes what the relay decided out to sessions and wakes the submitter if needed.
    fn flush(&mut self) {
        for (session, message) in self.relay.take_for_sessions() {
            self.send(session, message);
        }
        self.submit_ready.notify_one();
    }

    fn send(&self, session: u64, message: ToSession) {
        let Some(handle) = self.sessions.get(&session) else {
            return;
        };
        handle.messages.send(message);
    }
}

async fn run(config: LinkConfig, mut from_sessions: mpsc::Receiver<ToLink>) {
    let shell = Rc::new(RefCell::new(Shell {
        relay: Relay::new(Instant::now(), config.max_queued_lines),
        sessions: HashMap::new(),
        submit_ready: Rc::new(Notify::new()),
        game_status: config.game_status.clone(),
    }));

    let intake_shell = shell.clone();
    tokio::task::spawn_local(async move {
        let mut batch = Vec::with_capacity(256);
        while from_sessions.recv_many(&mut batch, 256).await > 0 {
            let mut shell = intake_shell.borrow_mut();
            for message in batch.drain(..) {
                shell.apply(message);
            }
            shell.flush();
        }
    });

    let clock_shell = shell.clone();
    tokio::task::spawn_local(async move {
        let mut ticks = tokio::time::interval(Duration::from_millis(250));
        loop {
            ticks.tick().await;
            let mut shell = clock_shell.borrow_mut();
            shell.relay.tick(Instant::now());
            shell.flush();
        }
    });

    let mut backoff = BACKOFF_FIRST;
    let mut logged_waiting = false;
    loop {
        match UnixStream::connect(&config.socket).await {
            Ok(stream) => {
                logged_waiting = false;
                let connected = Instant::now();
                let outcome = run_connection(stream, &shell, &config).await;
                {
                    let mut shell = shell.borrow_mut();
                    shell.relay.detached(Instant::now());
                    shell.flush();
                }
                config
                    .link_up
                    .store(false, std::sync::atomic::Ordering::Relaxed);
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

async fn run_connection(
    stream: UnixStream,
    shell: &Rc<RefCell<Shell>>,
    config: &LinkConfig,
) -> Result<(), LinkError> {
    let (reader, writer) = stream.into_split();
    // Unbuffered, capnp-futures writes a message's segment table and its body in two
    // syscalls and reads them in two or more; the peer then wakes for the first half alone.
    let network = twoparty::VatNetwork::new(
        futures::io::BufReader::new(reader.compat()),
        futures::io::BufWriter::new(writer.compat_write()),
        Side::Client,
        Default::default(),
    );
    let mut rpc_system = RpcSystem::new(Box::new(network), None);
    let core: core::Client = rpc_system.bootstrap(Side::Server);
    let rpc_task = tokio::task::spawn_local(rpc_system);
    let _abort_rpc = AbortOnDrop(rpc_task.abort_handle());
    let mut rpc_done = rpc_task.fuse();

    let callback: proxy::Client = capnp_rpc::new_client(Callback {
        shell: shell.clone(),
    });

    let mut request = core.attach_request();
    {
        let mut params = request.get();
        let mut hello = params.reborrow().init_hello();
        hello.set_protocol_version(tether_protocol::PROTOCOL_VERSION);
        hello.set_proxy_id(config.proxy_id);
        hello.set_proxy_name(config.proxy_name.as_str());
        params.set_proxy(callback);
        let snapshots = shell.borrow().relay.snapshots();
        let mut list = params.init_sessions(snapshots.len() as u32);
        for (i, snapshot) in snapshots.iter().enumerate() {
            let mut entry = list.reborrow().get(i as u32);
            entry.set_session(snapshot.session);
            entry.set_acked_seq(snapshot.acked_seq);
            entry.set_state(&snapshot.state);
            write_client(entry.reborrow().init_client(), &snapshot.client);
            let mut info = entry.init_info();
            info.set_transport(snapshot.info.transport.as_str());
            info.set_remote_addr(snapshot.info.remote_addr.as_str());
        }
    }
    let started = Instant::now();
    let response = futures::select! {
        response = request.send().promise.fuse() => response,
        _ = rpc_done => return Err(LinkError::Broken("connection closed during attach".into())),
    };
    let response = response.map_err(|e| match e.kind {
        capnp::ErrorKind::Failed => LinkError::Refused(e.extra),
        _ => LinkError::Broken(e.to_string()),
    })?;
    let (link, core_name) = read_welcome(&response).map_err(LinkError::Refused)?;
    {
        let mut shell = shell.borrow_mut();
        let sessions = shell.relay.session_count();
        shell.relay.attached();
        shell.flush();
        config
            .link_up
            .store(true, std::sync::atomic::Ordering::Relaxed);
        info!(
            core = %core_name,
            sessions,
            attach_ms = started.elapsed().as_secs_f64() * 1000.0,
            "attached to the core"
        );
    }

    let submit_ready = shell.borrow().submit_ready.clone();
    loop {
        futures::select! {
            _ = submit_ready.notified().fuse() => {}
            _ = rpc_done => return Ok(()),
        }
        let batch = shell.borrow_mut().relay.take_submits();
        if batch.is_empty() {
            continue;
        }
        let mut request = link.submit_request();
        write_submits(request.get().init_events(batch.len() as u32), &batch);
        futures::select! {
            result = request.send().promise.fuse() => {
                if let Err(error) = result {
                    shell.borrow_mut().relay.not_delivered(&batch);
                    // A stopping core refuses input but still delivers what it finished:
                    // stay until it closes the link, so none of that output is lost.
                    futures::select! {
                        _ = rpc_done => {}
                        () = tokio::time::sleep(STOPPING_CORE_GRACE).fuse() => {}
                    }
                    return Err(LinkError::Broken(error.to_string()));
                }
            }
            _ = rpc_done => {
                shell.borrow_mut().relay.not_delivered(&batch);
                return Ok(());
            }
        }
    }
}

fn read_welcome(
    response: &capnp::capability::Response<core::attach_results::Owned>,
) -> Result<(link::Client, String), String> {
    let results = response.get().map_err(|e| e.to_string())?;
    let welcome = results.get_welcome().map_err(|e| e.to_string())?;
    tether_protocol::check_version("core", welcome.get_protocol_version())?;
    let core_name = welcome
        .get_core_name()
        .ok()
        .and_then(|name| name.to_str().ok())
        .unwrap_or("a core")
        .to_string();
    let link = results.get_link().map_err(|e| e.to_string())?;
    Ok((link, core_name))
}

fn write_submits(mut list: capnp::struct_list::Builder<proxy_event::Owned>, batch: &[Submit]) {
    for (i, submit) in batch.iter().enumerate() {
        let mut event = list.reborrow().get(i as u32);
        match submit {
            Submit::Opened { session, info } => {
                event.set_session(*session);
                let mut opened = event.init_opened();
                opened.set_transport(info.transport.as_str());
                opened.set_remote_addr(info.remote_addr.as_str());
            }
            Submit::Line { session, seq, text } => {
                event.set_session(*session);
                let mut line = event.init_line();
                line.set_seq(*seq);
                line.set_text(text.as_str());
            }
            Submit::Closed { session, reason } => {
                event.set_session(*session);
                event.set_closed(reason.as_str());
            }
            Submit::Client { session, client } => {
                event.set_session(*session);
                write_client(event.init_client(), client);
            }
        }
    }
}

/// The `Proxy` capability handed to the core: where its output arrives.
struct Callback {
    shell: Rc<RefCell<Shell>>,
}

impl proxy::Server for Callback {
    fn deliver(
        self: capnp::capability::Rc<Self>,
        params: proxy::DeliverParams,
        _results: proxy::DeliverResults,
    ) -> impl std::future::Future<Output = Result<(), capnp::Error>> + 'static {
        let outcome = (|| {
            let events = params.get()?.get_events()?;
            let mut shell = self.shell.borrow_mut();
            for event in events.iter() {
                if let Some(delivered) = read_core_event(event)? {
                    shell.relay.delivered(delivered);
                }
            }
            shell.flush();
            Ok(())
        })();
        std::future::ready(outcome)
    }

    fn game_status(
        self: capnp::capability::Rc<Self>,
        params: proxy::GameStatusParams,
        _results: proxy::GameStatusResults,
    ) -> impl std::future::Future<Output = Result<(), capnp::Error>> + 'static {
        std::future::ready(self.game_status_now(params))
    }
}

impl Callback {
    fn game_status_now(&self, params: proxy::GameStatusParams) -> Result<(), capnp::Error> {
        let mut vars = Vec::new();
        for var in params.get()?.get_mssp()?.iter() {
            vars.push((var.get_name()?.to_string()?, var.get_value()?.to_string()?));
        }
        *self
            .shell
            .borrow()
            .game_status
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = vars;
        Ok(())
    }
}

fn read_core_event(event: core_event::Reader) -> Result<Option<Delivered>, capnp::Error> {
    let session = event.get_session();
    let show = |message| Ok(Some(Delivered::Show { session, message }));
    match event.which() {
        Ok(core_event::Ack(seq)) => Ok(Some(Delivered::Ack { session, seq })),
        Ok(core_event::State(state)) => Ok(Some(Delivered::State {
            session,
            state: state?.to_vec(),
        })),
        Ok(core_event::Output(text)) => show(ToSession::Output(text?.to_string()?)),
        Ok(core_event::Prompt(text)) => show(ToSession::Prompt(text?.to_string()?)),
        Ok(core_event::HideInput(hide)) => show(ToSession::HideInput(hide)),
        Ok(core_event::Gmcp(message)) => {
            let message = message?;
            show(ToSession::Gmcp {
                package: message.get_package()?.to_string()?,
                json: message.get_json()?.to_string()?,
            })
        }
        Ok(core_event::Display(prefs)) => {
            let prefs = prefs?;
            let color = match prefs.get_color() {
                Ok(ColorChoice::Auto) | Err(_) => None,
                Ok(ColorChoice::None) => Some(ColorDepth::None),
                Ok(ColorChoice::Ansi16) => Some(ColorDepth::Ansi16),
                Ok(ColorChoice::Ansi256) => Some(ColorDepth::Ansi256),
                Ok(ColorChoice::TrueColor) => Some(ColorDepth::TrueColor),
            };
            show(ToSession::Display(DisplayPrefs {
                wrap: prefs.get_wrap(),
                color,
            }))
        }
        Ok(core_event::Disconnect(reason)) => show(ToSession::Disconnect(reason?.to_string()?)),
        Err(capnp::NotInSchema(which)) => {
            debug!(which, "ignoring a core event this proxy does not know");
            Ok(None)
        }
    }
}

fn write_client(mut builder: client_info::Builder, client: &ClientInfo) {
    builder.set_client_name(client.client_name.as_str());
    builder.set_client_version(client.client_version.as_str());
    builder.set_terminal_type(client.terminal_type.as_str());
    builder.set_mtts(client.mtts);
    builder.set_width(client.width);
    builder.set_height(client.height);
    builder.set_charset(client.charset.as_str());
    builder.set_screen_reader(client.screen_reader);
    builder.set_gmcp(client.gmcp);
}

struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
