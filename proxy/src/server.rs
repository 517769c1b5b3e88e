//! Accepting connections and running the proxy until it is told to stop, or until a
//! successor takes everything over (`handover`).
//!
//! A proxy serves in generations: `Proxy` is everything it needs at rest (listeners, the
//! link's config, and, when it carries on from a predecessor or from a hand-over that did not
//! happen, the link's state and every live session); `serve` brings it to life. A hand-over
//! freezes the generation back into a `Frozen` proxy, the same shape a successor receives, so
//! a successor and a giver that carries on after a failed hand-over resume by the same path.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use tether_protocol::message::Transport;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::gate::{self, Door, Gate, Permit};
use crate::handover::{self, Channel, Frozen};
use crate::keeper::{self, Keeper, Recovered};
use crate::link::{self, FrozenLink, LinkConfig, LinkHandle, LinkState};
use crate::mailbox;
use crate::proxy_protocol;
use crate::relay::KeptSlot;
use crate::relay::ToSession;
use crate::session::{self, TelnetSpeaker, Transport as _};
use crate::shutdown::{self, ShutdownTrigger, Stop};
use crate::state::{self, Checkpoint, KeptProxy, ProxyState, SessionState, SpeakerState};
use crate::tls::{Certificates, TlsDoor};
use crate::web;
use crate::websocket::{self, TelnetFrames, WsTransport};

/// How long sessions get to say goodbye when the proxy stops.
const GOODBYE_GRACE: Duration = Duration::from_secs(5);

pub struct Proxy {
    pub telnet: TcpListener,
    /// The web front door, if enabled.
    pub http: Option<TcpListener>,
    /// Telnet over TLS, if enabled (its certificates are `tls`).
    pub telnets: Option<TcpListener>,
    /// The web front door over TLS (HTTPS and WSS), if enabled.
    pub https: Option<TcpListener>,
    pub link: LinkConfig,
    /// Read what the supervisor says about the core from stdin (`CoreNews`).
    pub core_news_on_stdin: bool,
    /// Where to listen for a successor (`handover`); `None`: this proxy cannot be replaced
    /// without disconnecting everyone.
    pub handover: Option<PathBuf>,
    /// What a predecessor (or this proxy, before a hand-over that failed) left running.
    carried: Option<Carried>,
    /// READY was printed already (a successor prints it once it has taken over).
    ready_said: bool,
    /// Where copies of the connections and their checkpoints go (the supervisor), so that
    /// if this proxy dies the next carries on with them.
    pub keeper: Keeper,
    /// Who may connect (per-address limits, the descriptor reserve).
    pub gate: Arc<Gate>,
    /// The listeners on which connections start with a PROXY protocol header.
    pub proxy_protocol: ProxyProtocolOn,
    /// The TLS certificates, read from the files the operator named (never carried over:
    /// each proxy reads them itself).
    pub tls: Option<Arc<Certificates>>,
    /// The admin token's file, for `/metrics` (see `tether_protocol::admin_token`).
    pub admin_token: Option<PathBuf>,
}

/// Which listeners take the PROXY protocol (see `proxy_protocol`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyProtocolOn {
    pub telnet: bool,
    pub http: bool,
}

/// What a player whose proxy died hears from the one that carries the connection on.
const RECOVERED_NOTICE: &str = "The server recovered from a fault. If something you just typed got no answer, please type it again.";

/// The live part of a frozen proxy, ready to go on.
struct Carried {
    started: u64,
    next_session_id: u64,
    link: LinkState,
    link_connection: Option<(std::os::unix::net::UnixStream, Vec<u8>)>,
    sessions: Vec<(SessionState, OwnedFd)>,
    /// Who the sessions play (see `ProxyState::players`).
    players: Vec<(u64, String)>,
}

impl Proxy {
    pub async fn bind(
        telnet: SocketAddr,
        http: Option<SocketAddr>,
        telnets: Option<SocketAddr>,
        https: Option<SocketAddr>,
        link: LinkConfig,
    ) -> anyhow::Result<Proxy> {
        let telnet = TcpListener::bind(telnet)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen for telnet on {telnet}: {e}"))?;
        let http = match http {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot listen for HTTP on {addr}: {e}"))?,
            ),
            None => None,
        };
        let telnets = match telnets {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot listen for TLS telnet on {addr}: {e}"))?,
            ),
            None => None,
        };
        let https = match https {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot listen for HTTPS on {addr}: {e}"))?,
            ),
            None => None,
        };
        Ok(Proxy {
            telnet,
            http,
            telnets,
            https,
            link,
            core_news_on_stdin: false,
            handover: None,
            carried: None,
            ready_said: false,
            keeper: Keeper::off(),
            gate: Gate::new(gate::Limits::default()),
            proxy_protocol: ProxyProtocolOn::default(),
            tls: None,
            admin_token: None,
        })
    }

    /// Carries on after a proxy that died: with the listeners and connections the keeper
    /// kept (read from `socket`, the keeper socket), each session restored from its
    /// checkpoint. The core forgot them when the dead proxy's link closed; the link attaches
    /// again as the same proxy and restores them, so nobody logs in again.
    pub async fn recover(socket: OwnedFd, link: LinkConfig) -> anyhow::Result<Proxy> {
        let recovered = tokio::task::spawn_blocking(move || keeper::recover(&socket))
            .await
            .context("the recovery thread failed")?
            .context("cannot read what the keeper kept")?;
        Proxy::from_recovered(recovered, link)
    }

    fn from_recovered(recovered: Recovered, mut link: LinkConfig) -> anyhow::Result<Proxy> {
        let (record, listeners) = recovered
            .proxy
            .context("the keeper kept no listening sockets")?;
        let kept: KeptProxy = state::decode(&record).context("the keeper's proxy record")?;
        let mut listeners = listeners.into_iter();
        let telnet = listener(listeners.next().context("no telnet listener was kept")?)
            .context("the kept telnet listener")?;
        let http = match kept.http {
            true => Some(
                listener(listeners.next().context("no HTTP listener was kept")?)
                    .context("the kept HTTP listener")?,
            ),
            false => None,
        };
        let telnets = match kept.telnets {
            true => Some(
                listener(
                    listeners
                        .next()
                        .context("no TLS telnet listener was kept")?,
                )
                .context("the kept TLS telnet listener")?,
            ),
            false => None,
        };
        let https = match kept.https {
            true => Some(
                listener(listeners.next().context("no HTTPS listener was kept")?)
                    .context("the kept HTTPS listener")?,
            ),
            false => None,
        };
        let mut next_session_id = kept.next_session_id;
        let mut sessions = Vec::with_capacity(recovered.sessions.len());
        let mut slots = Vec::with_capacity(recovered.sessions.len());
        for session in recovered.sessions {
            let id = session.id;
            let checkpoint: Checkpoint = match state::decode(&session.checkpoint) {
                Ok(checkpoint) => checkpoint,
                Err(error) => {
                    // Its connection closes once the keeper hears the new set without it.
                    warn!(session = id, %error, "cannot carry on a kept session");
                    continue;
                }
            };
            let slot = match state::decode::<KeptSlot>(&session.link) {
                Ok(slot) => slot,
                // The link had said nothing yet: a session the core may not know.
                Err(_) => KeptSlot {
                    info: tether_protocol::message::SessionInfo {
                        transport: checkpoint.transport,
                        remote_addr: peer_of(&session.socket),
                    },
                    client: Default::default(),
                    state: Vec::new(),
                    announced: false,
                },
            };
            next_session_id = next_session_id.max(id + 1);
            slots.push((id, slot));
            sessions.push((
                SessionState {
                    id,
                    transport: checkpoint.transport,
                    speaker: checkpoint.speaker,
                    queued: vec![ToSession::Notice(RECOVERED_NOTICE.into())],
                    unread: Vec::new(),
                    unwritten: Vec::new(),
                },
                session.socket,
            ));
        }
        link.proxy_id = kept.proxy_id;
        info!(
            sessions = sessions.len(),
            "carrying on with the connections the keeper kept"
        );
        Ok(Proxy {
            telnet,
            http,
            telnets,
            https,
            link,
            core_news_on_stdin: false,
            handover: None,
            ready_said: false,
            keeper: Keeper::off(),
            gate: Gate::new(gate::Limits::default()),
            proxy_protocol: ProxyProtocolOn::default(),
            tls: None,
            admin_token: None,
            carried: Some(Carried {
                started: kept.started,
                next_session_id,
                link: LinkState::recovered(slots),
                link_connection: None,
                sessions,
                // The attach this proxy makes has the core say who plays.
                players: Vec::new(),
            }),
        })
    }

    /// Takes everything over from the proxy listening at `path`: its listeners, its link to
    /// the core and every player's connection. On `Err` the running proxy carries on as if
    /// nothing happened; on `Ok` it has let go and this one must serve.
    pub async fn take_over(path: PathBuf, link: LinkConfig) -> anyhow::Result<Proxy> {
        let taken = tokio::task::spawn_blocking(move || -> anyhow::Result<Proxy> {
            let channel = Channel::connect(&path)
                .with_context(|| format!("cannot reach the running proxy at {}", path.display()))?;
            let asked = std::time::Instant::now();
            let frozen = channel
                .take()
                .context("the running proxy's state did not arrive")?;
            let sessions = frozen.state.sessions.len();
            let received_ms = asked.elapsed().as_secs_f64() * 1000.0;
            match Proxy::from_frozen(frozen, link) {
                Ok(mut proxy) => {
                    channel
                        .taken()
                        .context("the running proxy did not let go")?;
                    let took_ms = asked.elapsed().as_secs_f64() * 1000.0;
                    info!(
                        sessions,
                        received_ms, took_ms, "took over from the running proxy"
                    );
                    crate::fault::late_ready_after_take_over();
                    let mut stdout = std::io::stdout();
                    let _ = writeln!(stdout, "{}", tether_protocol::process::READY_LINE)
                        .and_then(|()| stdout.flush());
                    proxy.ready_said = true;
                    Ok(proxy)
                }
                Err(error) => {
                    channel.refuse(&format!("{error:#}"));
                    Err(error)
                }
            }
        });
        taken.await.context("the hand-over thread failed")?
    }

    /// A proxy at rest again, from what a freeze or a predecessor left. Registers the
    /// listeners with this runtime but does not touch any connection yet.
    fn from_frozen(frozen: Frozen, mut link: LinkConfig) -> anyhow::Result<Proxy> {
        let Frozen { state, sockets } = frozen;
        let ProxyState {
            proxy_id,
            started,
            next_session_id,
            game_status,
            cannot_start,
            http,
            telnets,
            https,
            link: link_state,
            link_unread,
            sessions,
            players,
        } = state;
        let expected = 1
            + usize::from(http)
            + usize::from(telnets)
            + usize::from(https)
            + usize::from(link_unread.is_some())
            + sessions.len();
        if sockets.len() != expected {
            anyhow::bail!(
                "{} sockets arrived for a state that lists {expected}",
                sockets.len()
            );
        }
        let mut sockets = sockets.into_iter();
        let mut next_socket = || sockets.next().context("a socket is missing");
        let telnet = listener(next_socket()?).context("the telnet listener")?;
        let http = match http {
            true => Some(listener(next_socket()?).context("the HTTP listener")?),
            false => None,
        };
        let telnets = match telnets {
            true => Some(listener(next_socket()?).context("the TLS telnet listener")?),
            false => None,
        };
        let https = match https {
            true => Some(listener(next_socket()?).context("the HTTPS listener")?),
            false => None,
        };
        let link_connection = match link_unread {
            Some(unread) => Some((std::os::unix::net::UnixStream::from(next_socket()?), unread)),
            None => None,
        };
        let mut carried_sessions = Vec::with_capacity(sessions.len());
        for session in sessions {
            carried_sessions.push((session, next_socket()?));
        }
        // The successor is the same proxy to the core, with the same facts for MSSP.
        link.proxy_id = proxy_id;
        *link
            .game_status
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = game_status;
        if let Some(reason) = cannot_start {
            link::core_news(
                &link.cannot_start,
                tether_protocol::process::CoreNews::CannotStart(reason),
            );
        }
        Ok(Proxy {
            telnet,
            http,
            telnets,
            https,
            link,
            core_news_on_stdin: false,
            handover: None,
            ready_said: false,
            keeper: Keeper::off(),
            gate: Gate::new(gate::Limits::default()),
            proxy_protocol: ProxyProtocolOn::default(),
            tls: None,
            admin_token: None,
            carried: Some(Carried {
                started,
                next_session_id,
                link: link_state,
                link_connection,
                sessions: carried_sessions,
                players,
            }),
        })
    }

    /// Serves until `stop` resolves, then tells every player goodbye and returns; or until a
    /// successor took everything over, then returns without a word to anyone.
    pub async fn run(mut self, stop: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
        let mut successors = match &self.handover {
            Some(path) => Some(listen_for_successors(path.clone())?),
            None => None,
        };
        let announced = Arc::new(AtomicBool::new(self.ready_said));
        if self.core_news_on_stdin {
            read_core_news(self.link.cannot_start.clone());
        }
        let handover = self.handover.clone();
        let keeper = self.keeper.clone();
        let gate = self.gate.clone();
        let proxy_protocol = self.proxy_protocol;
        let tls = self.tls.clone();
        if (self.telnets.is_some() || self.https.is_some()) && tls.is_none() {
            anyhow::bail!("a TLS listener, but no certificate to serve it with");
        }
        let mut stop = std::pin::pin!(stop);
        loop {
            let serving = self.serve(&announced);
            let channel = tokio::select! {
                () = &mut stop => {
                    serving.goodbye().await;
                    return Ok(());
                }
                Some(channel) = next_successor(&mut successors) => channel,
            };
            let link_config = serving.link_config.clone();
            let asked = std::time::Instant::now();
            let frozen = serving.freeze().await?;
            let sessions = frozen.state.sessions.len();
            let freeze_ms = asked.elapsed().as_secs_f64() * 1000.0;
            info!(sessions, freeze_ms, "handing everything to the new proxy");
            let given = tokio::task::spawn_blocking(move || {
                let given = channel.give(&frozen);
                (given, frozen)
            })
            .await
            .context("the hand-over thread failed")?;
            match given {
                (Ok(()), _) => {
                    let total_ms = asked.elapsed().as_secs_f64() * 1000.0;
                    info!(
                        sessions,
                        total_ms, "the new proxy took over; this one leaves"
                    );
                    return Ok(());
                }
                (Err(error), frozen) => {
                    warn!(%error, "the hand-over did not happen; this proxy carries on");
                    self = Proxy::from_frozen(frozen, link_config)?;
                    self.handover = handover.clone();
                    self.keeper = keeper.clone();
                    self.gate = gate.clone();
                    self.proxy_protocol = proxy_protocol;
                    self.tls = tls.clone();
                }
            }
        }
    }

    /// Brings this proxy to life: the link, the listeners and any carried sessions.
    fn serve(self, announced: &Arc<AtomicBool>) -> Serving {
        let Proxy {
            telnet,
            http,
            telnets,
            https,
            link: link_config,
            carried,
            keeper,
            gate,
            proxy_protocol,
            tls,
            admin_token,
            ..
        } = self;
        let admin_token: Option<Arc<std::path::Path>> = admin_token.map(Arc::from);
        let game_status = link_config.game_status.clone();
        let (link, carried) = match carried {
            Some(carried) => {
                let frozen = FrozenLink {
                    connection: carried.link_connection,
                };
                let mut handles = HashMap::new();
                let mut sessions = Vec::with_capacity(carried.sessions.len());
                for (state, socket) in carried.sessions {
                    let (handle, messages) = session::carried_mailbox();
                    handles.insert(state.id, handle);
                    sessions.push((state, socket, messages));
                }
                let link = link::resume(
                    link_config.clone(),
                    carried.link,
                    frozen,
                    handles,
                    carried.players,
                );
                (
                    link,
                    Some((carried.started, carried.next_session_id, sessions)),
                )
            }
            None => (link::start(link_config.clone()), None),
        };
        print_ready_once(link.clone(), announced.clone());
        let (trigger, shutdown) = shutdown::channel();
        let sessions = TaskTracker::new();
        let (started, next_id, carried_sessions) = carried.unwrap_or_else(|| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.as_secs());
            (now, 1, Vec::new())
        });
        let context = session::Context {
            link,
            shutdown,
            game_status,
            started,
            ids: Arc::new(AtomicU64::new(next_id)),
            keeper,
            gate,
            proxy_protocol,
            tls_port: telnets
                .as_ref()
                .and_then(|listener| listener.local_addr().ok())
                .map(|addr| addr.port()),
        };
        // The keeper hears the whole set again: this proxy, then every session it carries
        // on; what it kept and this set does not name is let go.
        context.keeper.begin();
        if context.keeper.is_on() {
            let kept = KeptProxy {
                proxy_id: link_config.proxy_id,
                started,
                next_session_id: next_id,
                http: http.is_some(),
                telnets: telnets.is_some(),
                https: https.is_some(),
            };
            let listeners = std::iter::once(copy(&telnet))
                .chain(http.as_ref().map(copy))
                .chain(telnets.as_ref().map(copy))
                .chain(https.as_ref().map(copy))
                .collect::<std::io::Result<Vec<_>>>();
            match listeners {
                Ok(listeners) => context.keeper.proxy(state::encode(&kept), listeners),
                Err(error) => warn!(%error, "cannot copy the listeners for the keeper"),
            }
        }
        for (state, socket, messages) in carried_sessions {
            resume_session(state, socket, messages, &context, &sessions);
        }
        context.link.keep_all();
        context.keeper.synced();
        if let Ok(addr) = telnet.local_addr() {
            info!(%addr, "listening for telnet");
        }
        let http = http.map(|http| {
            if let Ok(addr) = http.local_addr() {
                info!(%addr, "listening for HTTP and WebSocket");
            }
            let web = web::Web {
                context: context.clone(),
                sessions: sessions.clone(),
                admin_token: admin_token.clone(),
            };
            tokio::spawn(web::serve(http, web, None))
        });
        let door = match tls.map(TlsDoor::new) {
            Some(Ok(door)) => Some(door),
            Some(Err(error)) => {
                warn!(error = %format!("{:#}", anyhow::Error::new(error)), "TLS is off");
                None
            }
            None => None,
        };
        let telnets = telnets.and_then(|listener| {
            if let Ok(addr) = listener.local_addr() {
                info!(%addr, "listening for telnet over TLS");
            }
            Some(tokio::spawn(accept_tls_loop(
                listener,
                door.clone()?,
                context.clone(),
                sessions.clone(),
            )))
        });
        let https = https.and_then(|listener| {
            if let Ok(addr) = listener.local_addr() {
                info!(%addr, "listening for HTTPS and secure WebSocket");
            }
            let web = web::Web {
                context: context.clone(),
                sessions: sessions.clone(),
                admin_token: admin_token.clone(),
            };
            Some(tokio::spawn(web::serve(listener, web, Some(door.clone()?))))
        });
        let telnet = tokio::spawn(accept_loop(telnet, context.clone(), sessions.clone()));
        Serving {
            context,
            trigger,
            sessions,
            telnet,
            http,
            telnets,
            https,
            link_config,
        }
    }
}

/// A proxy at work.
struct Serving {
    context: session::Context,
    trigger: ShutdownTrigger,
    sessions: TaskTracker,
    /// The accept loop; it hands its listener back when it stops.
    telnet: JoinHandle<TcpListener>,
    /// The HTTP accept loop, likewise.
    http: Option<JoinHandle<TcpListener>>,
    /// The TLS telnet accept loop, likewise.
    telnets: Option<JoinHandle<TcpListener>>,
    /// The HTTPS accept loop, likewise.
    https: Option<JoinHandle<TcpListener>>,
    link_config: LinkConfig,
}

impl Serving {
    async fn goodbye(self) {
        info!(
            sessions = self.sessions.len(),
            "shutting down: telling players goodbye"
        );
        self.trigger.trigger(Stop::Goodbye);
        self.sessions.close();
        if tokio::time::timeout(GOODBYE_GRACE, self.sessions.wait())
            .await
            .is_err()
        {
            warn!("some sessions did not close in time");
        }
    }

    /// Stops everything at a point where nothing is half done, and gathers it: first the
    /// link (so nothing more is routed to sessions), then the listeners (new players wait in
    /// the listen backlog), then every session hands over its socket and state.
    async fn freeze(self) -> anyhow::Result<Frozen> {
        let frozen_link = self.context.link.freeze().await;
        let (carry, mut carried) = mpsc::unbounded_channel();
        self.trigger.trigger(Stop::HandOver(carry));
        let telnet = self.telnet.await.context("the telnet accept loop failed")?;
        let http = match self.http {
            Some(http) => Some(http.await.context("the HTTP accept loop failed")?),
            None => None,
        };
        let telnets = match self.telnets {
            Some(telnets) => Some(telnets.await.context("the TLS telnet accept loop failed")?),
            None => None,
        };
        let https = match self.https {
            Some(https) => Some(https.await.context("the HTTPS accept loop failed")?),
            None => None,
        };
        self.sessions.close();
        self.sessions.wait().await;
        let mut sessions = Vec::new();
        while let Ok(session) = carried.try_recv() {
            sessions.push(session);
        }

        let mut sockets: Vec<OwnedFd> = vec![
            telnet
                .into_std()
                .context("taking the telnet listener off the runtime")?
                .into(),
        ];
        let has_http = http.is_some();
        if let Some(http) = http {
            sockets.push(
                http.into_std()
                    .context("taking the HTTP listener off the runtime")?
                    .into(),
            );
        }
        let has_telnets = telnets.is_some();
        if let Some(telnets) = telnets {
            sockets.push(
                telnets
                    .into_std()
                    .context("taking the TLS telnet listener off the runtime")?
                    .into(),
            );
        }
        let has_https = https.is_some();
        if let Some(https) = https {
            sockets.push(
                https
                    .into_std()
                    .context("taking the HTTPS listener off the runtime")?
                    .into(),
            );
        }
        let link_unread = match frozen_link.connection {
            Some((stream, unread)) => {
                sockets.push(stream.into());
                Some(unread)
            }
            None => None,
        };
        let mut states = Vec::with_capacity(sessions.len());
        for session in sessions {
            sockets.push(session.socket);
            states.push(session.state);
        }
        let game_status = self
            .context
            .game_status
            .read()
            .map(|vars| vars.clone())
            .unwrap_or_default();
        let state = ProxyState {
            proxy_id: self.link_config.proxy_id,
            started: self.context.started,
            next_session_id: self.context.ids.load(Ordering::Relaxed),
            game_status,
            cannot_start: self.context.link.core_cannot_start(),
            http: has_http,
            telnets: has_telnets,
            https: has_https,
            link: self.context.link.export(),
            link_unread,
            sessions: states,
            players: self.context.link.players(),
        };
        Ok(Frozen { state, sockets })
    }
}

/// A copy of a listener, for the keeper.
fn copy(listener: &TcpListener) -> std::io::Result<OwnedFd> {
    use std::os::fd::AsFd;
    listener.as_fd().try_clone_to_owned()
}

/// The address at the other end of a kept connection, for the log and the core.
fn peer_of(socket: &OwnedFd) -> String {
    nix::sys::socket::getpeername::<nix::sys::socket::SockaddrStorage>(
        std::os::fd::AsRawFd::as_raw_fd(socket),
    )
    .map_or_else(|_| "?".to_string(), |address| address.to_string())
}

/// A listening socket carried from another process, on this runtime.
fn listener(socket: OwnedFd) -> std::io::Result<TcpListener> {
    let listener = std::net::TcpListener::from(socket);
    listener.set_nonblocking(true)?;
    TcpListener::from_std(listener)
}

fn resume_session(
    state: SessionState,
    socket: OwnedFd,
    messages: mailbox::Receiver<ToSession>,
    context: &session::Context,
    sessions: &TaskTracker,
) {
    let SessionState {
        id,
        transport,
        speaker,
        queued,
        unread,
        unwritten,
    } = state;
    let lost = |why: String| {
        warn!(session = id, %transport, "cannot carry on a session: {why}");
        context.link.send(link::ToLink::Closed {
            session: id,
            reason: format!("could not be carried over: {why}"),
        });
    };
    let stream = match websocket::adopt(socket) {
        Ok(stream) => stream,
        Err(error) => return lost(error.to_string()),
    };
    let peer_addr = stream.peer_addr().ok();
    let permit = context.gate.carry(peer_addr.map(|peer| peer.ip()));
    let peer = peer_addr.map_or_else(|| "?".to_string(), |peer| peer.to_string());
    match (transport, speaker) {
        (Transport::Telnet, SpeakerState::Telnet(telnet)) => {
            let speaker = Box::new(TelnetSpeaker::restore(id, context.clone(), *telnet));
            let transport = session::TcpTransport::resume(stream, unwritten);
            session::keep(
                &context.keeper,
                id,
                Transport::Telnet,
                &*speaker,
                transport.socket_copy(),
            );
            sessions.spawn(holding(
                permit,
                session::resume(
                    speaker,
                    transport,
                    id,
                    Transport::Telnet,
                    messages,
                    queued,
                    peer,
                    context.clone(),
                ),
            ));
        }
        (Transport::WebSocketTelnet, SpeakerState::Telnet(telnet)) => {
            let speaker = Box::new(TelnetSpeaker::restore(id, context.clone(), *telnet));
            let transport = TelnetFrames(WsTransport::resume(stream, unread, unwritten));
            session::keep(
                &context.keeper,
                id,
                Transport::WebSocketTelnet,
                &*speaker,
                transport.socket_copy(),
            );
            sessions.spawn(holding(
                permit,
                session::resume(
                    speaker,
                    transport,
                    id,
                    Transport::WebSocketTelnet,
                    messages,
                    queued,
                    peer,
                    context.clone(),
                ),
            ));
        }
        (Transport::WebSocket, SpeakerState::Web(web)) => {
            let transport = WsTransport::resume(stream, unread, unwritten);
            session::keep(
                &context.keeper,
                id,
                Transport::WebSocket,
                &*web,
                transport.socket_copy(),
            );
            sessions.spawn(holding(
                permit,
                session::resume(
                    web,
                    transport,
                    id,
                    Transport::WebSocket,
                    messages,
                    queued,
                    peer,
                    context.clone(),
                ),
            ));
        }
        (_, _) => lost("its speaker does not fit its transport".into()),
    }
}

/// Prints READY (for the supervisor, and through it systemd) once per process: when players
/// can connect and a core is there to answer them.
fn print_ready_once(link: LinkHandle, announced: Arc<AtomicBool>) {
    if announced.load(Ordering::Relaxed) {
        return;
    }
    tokio::spawn(async move {
        link.wait_attached().await;
        if announced.swap(true, Ordering::Relaxed) {
            return;
        }
        let mut stdout = std::io::stdout();
        let _ = writeln!(stdout, "{}", tether_protocol::process::READY_LINE)
            .and_then(|()| stdout.flush());
    });
}

/// Listens for successors on a thread of its own (the exchange is blocking) and hands each
/// one that said HELLO to the serving loop.
fn listen_for_successors(path: PathBuf) -> anyhow::Result<mpsc::Receiver<Channel>> {
    let listener = handover::Listener::bind(&path)
        .with_context(|| format!("cannot listen for a successor at {}", path.display()))?;
    let (successors, receiver) = mpsc::channel(1);
    std::thread::Builder::new()
        .name("hand-over".into())
        .spawn(move || {
            loop {
                match listener.accept() {
                    Ok(channel) => {
                        if successors.blocking_send(channel).is_err() {
                            return;
                        }
                    }
                    Err(error) => {
                        warn!(%error, "a would-be successor was turned away");
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            }
        })
        .context("cannot start the hand-over thread")?;
    Ok(receiver)
}

async fn next_successor(successors: &mut Option<mpsc::Receiver<Channel>>) -> Option<Channel> {
    match successors {
        Some(receiver) => receiver.recv().await,
        None => std::future::pending().await,
    }
}

/// Hands the supervisor's news about the core to the link, until stdin closes. A thread of
/// its own, not tokio's stdin: that reads on the blocking pool, and a runtime waits for its
/// blocking reads to end before the process may exit, which they never do while the
/// supervisor holds the pipe open.
fn read_core_news(cannot_start: link::CannotStart) {
    use std::io::BufRead;
    let spawned = std::thread::Builder::new()
        .name("core news".into())
        .spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                match tether_protocol::process::CoreNews::parse(&line) {
                    Some(news) => link::core_news(&cannot_start, news),
                    None => warn!(%line, "unknown news from the supervisor"),
                }
            }
        });
    if let Err(error) = spawned {
        warn!(%error, "cannot read the supervisor's news; /health will not say why a core is down");
    }
}

/// Accepts telnet players over TLS until the proxy stops; hands the listener back.
async fn accept_tls_loop(
    listener: TcpListener,
    door: TlsDoor,
    context: session::Context,
    sessions: TaskTracker,
) -> TcpListener {
    let mut shutdown = context.shutdown.clone();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait() => return listener,
        };
        match accepted {
            Ok((stream, peer)) => {
                // A renewed certificate counts from the next connection on.
                door.certificates.refresh();
                match context.gate.admit(peer.ip(), Door::Telnet) {
                    Ok(permit) => {
                        let session = context.next_session_id();
                        let served = session::serve_tls(
                            stream,
                            peer,
                            session,
                            door.config.clone(),
                            context.clone(),
                        );
                        sessions.spawn(holding(permit, served));
                    }
                    // Before the handshake there is no way to say why: just closed.
                    Err(_) => drop(stream),
                }
            }
            Err(error) => {
                warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// A telnet player at the gate: a session if let in, else told why and closed.
fn admit_telnet(
    stream: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
    context: &session::Context,
    sessions: &TaskTracker,
) {
    match context.gate.admit(peer.ip(), Door::Telnet) {
        Ok(permit) => {
            let session = context.next_session_id();
            let served = session::serve_tcp(stream, peer, session, context.clone());
            sessions.spawn(holding(permit, served));
        }
        Err(refusal) => {
            tokio::spawn(turn_away(stream, format!("{refusal}\r\n").into_bytes()));
        }
    }
}

/// Runs a session holding its place at the gate, given back when it ends.
///
/// Not an `async fn`: one that awaits a future passed to it keeps that future twice in its
/// state (the argument, and the awaited copy), which doubled every idle session's task, from
/// 1 KiB to 2 KiB (measured by `a_session_stays_small`). `map` holds it once.
pub(crate) fn holding(
    permit: Permit,
    session: impl std::future::Future<Output = ()>,
) -> impl std::future::Future<Output = ()> {
    use futures::FutureExt;
    session.map(move |()| drop(permit))
}

/// Tells a connection the gate refused why, briefly (a client that does not read is not
/// waited for), and closes it.
pub(crate) async fn turn_away(mut stream: tokio::net::TcpStream, said: Vec<u8>) {
    use tokio::io::AsyncWriteExt;
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        stream.write_all(&said).await?;
        stream.shutdown().await
    })
    .await;
}

/// Accepts telnet players until the proxy stops; hands the listener back for a successor.
async fn accept_loop(
    listener: TcpListener,
    context: session::Context,
    sessions: TaskTracker,
) -> TcpListener {
    let mut shutdown = context.shutdown.clone();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait() => return listener,
        };
        match accepted {
            Ok((mut stream, peer)) if context.proxy_protocol.telnet => {
                let (context, sessions) = (context.clone(), sessions.clone());
                // Off the accept loop: the header may be slow to come.
                tokio::spawn(async move {
                    let mut shutdown = context.shutdown.clone();
                    if let Some(player) =
                        proxy_protocol::player_address(&mut stream, peer, &mut shutdown).await
                    {
                        admit_telnet(stream, player, &context, &sessions);
                    }
                });
            }
            Ok((stream, peer)) => admit_telnet(stream, peer, &context, &sessions),
            Err(error) => {
                // Typically out of file descriptors: back off instead of spinning.
                warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
