//! The web front door: an HTTP listener (axum) that serves the browser client (`/`), its
//! WebSocket (`/ws`), a readiness answer (`/health`) and, for an admin token's holder, the
//! Prometheus metrics (`/metrics`).
//!
//! WebSocket sessions are sessions like any other: same lifecycle (`session::run`), same
//! queueing across core reloads, same markup, same GMCP. Two subprotocols from
//! mudstandards.org are spoken:
//! - `gmcp.mudstandards.org` (the default when a client offers none): binary frames carry game
//!   text, rendered from markup to HTML-safe fragments so the browser needs no ANSI parser;
//!   text frames carry `Package.Name <json>` GMCP. Tether's own messages (prompt, notices,
//!   password masking) travel as `Tether.*` GMCP packages.
//! - `telnet.mudstandards.org`: the raw telnet stream in binary frames, spoken by exactly the
//!   same `TelnetSpeaker` as a TCP connection, for existing telnet-over-WebSocket clients.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use serde::{Deserialize, Serialize};
use tether_protocol::markup;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::task::TaskTracker;

use tether_protocol::message::{self, Charset, ClientInfo, Delivery, OrderAction, SessionInfo};

use crate::admission::{Admission, Admitted};
use crate::close::CloseReason;
use crate::conn::Conn;
use crate::gate::{Door, Permit};
use crate::gmcp::{self, Gmcp, Received};
use crate::link::OrderError;
use crate::proxy_protocol;
use crate::relay::{CoreHealth, ToSession};
use crate::session::{self, Context, Speaker, TelnetSpeaker};
use crate::state::SpeakerState;
use crate::tls::{TlsDoor, TlsWire};
use crate::websocket::{self, TelnetFrames, WsTransport};
use tokio_rustls::server::TlsStream;

/// The browser client, shipped inside the binary: no build step, nothing to install.
const INDEX_HTML: &str = include_str!("../web/index.html");

pub const GMCP_PROTOCOL: &str = "gmcp.mudstandards.org";
pub const TELNET_PROTOCOL: &str = "telnet.mudstandards.org";
/// The largest frame or message a client may send: a line is at most 8 KiB anyway.
pub const MAX_MESSAGE: usize = 64 * 1024;

#[derive(Clone)]
pub struct Web {
    pub context: Context,
    /// Web sessions are tracked with the telnet ones, so shutdown waits for their goodbyes.
    pub sessions: TaskTracker,
    /// The admin token's file (see `tether_protocol::admin_token`); `None`: nobody may see
    /// what is behind it.
    pub admin_token: Option<Arc<std::path::Path>>,
}

pub fn router(web: Web) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/admin", get(dashboard_page))
        .route("/admin/live", get(dashboard_live))
        .route("/admin/summary", get(summary))
        .route("/admin/orders", axum::routing::post(order))
        .route("/ws", get(websocket))
        .with_state(web)
}

/// The dashboard's page: nothing on it until the admin token opens `/admin/live`.
async fn dashboard_page() -> Response {
    (
        // The page runs only its own script and talks only to this origin.
        [(
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; \
             connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
        )],
        Html(DASHBOARD_HTML),
    )
        .into_response()
}

const DASHBOARD_HTML: &str = include_str!("dashboard.html");

/// How long an opened `/admin/live` may take to present the token.
const TOKEN_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// `/admin/live`: the dashboard's feed. A browser cannot put the token in a WebSocket's
/// headers, so the first message must be it; anything else closes the socket with a reason
/// (policy violation) and nothing shown.
async fn dashboard_live(
    State(web): State<Web>,
    upgrade: axum::extract::ws::WebSocketUpgrade,
) -> Response {
    crate::dashboard::start_ticker(web.context.link.clone());
    upgrade.on_upgrade(move |socket| dashboard_feed(web, socket))
}

async fn dashboard_feed(web: Web, mut socket: axum::extract::ws::WebSocket) {
    use axum::extract::ws::{CloseFrame, Message, close_code};
    use tether_protocol::admin_token::{self, Check};
    let presented = match tokio::time::timeout(TOKEN_WAIT, socket.recv()).await {
        Ok(Some(Ok(Message::Text(text)))) => Some(text.trim().to_owned()),
        _ => None,
    };
    let check = match (&web.admin_token, &presented) {
        (Some(path), Some(token)) => admin_token::check(path, Some(token)),
        (Some(_), None) => Check::Invalid,
        (None, _) => Check::NoneSet,
    };
    let refusal = match check {
        Check::Valid => None,
        Check::Invalid => Some("wrong admin token"),
        Check::NoneSet => Some("no admin token is set: run `tether admin token` on the host"),
    };
    if let Some(reason) = refusal {
        let _ = socket
            .send(Message::Close(Some(CloseFrame {
                code: close_code::POLICY,
                reason: reason.into(),
            })))
            .await;
        return;
    }
    let hub = crate::dashboard::hub();
    let (mut feed, history) = hub.subscribe();
    let hello = serde_json::json!({
        "type": "hello",
        "core": web.context.link.core_summary(),
        "sessions": web.context.link.overview(500),
    });
    if socket
        .send(Message::Text(hello.to_string().into()))
        .await
        .is_err()
    {
        return;
    }
    for moment in history {
        if socket
            .send(Message::Text(moment.to_string().into()))
            .await
            .is_err()
        {
            return;
        }
    }
    let mut shutdown = web.context.shutdown.clone();
    loop {
        tokio::select! {
            pushed = feed.recv() => match pushed {
                Ok(json) => {
                    if socket.send(Message::Text(json.to_string().into())).await.is_err() {
                        return;
                    }
                }
                // Too slow to keep up: the next tick brings it up to date.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
            received = socket.recv() => match received {
                // The page says nothing after the token; orders go through /admin/orders.
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
            _ = shutdown.wait() => {
                let _ = socket
                    .send(Message::Close(Some(CloseFrame {
                        code: close_code::AWAY,
                        reason: "this proxy is stopping or being replaced".into(),
                    })))
                    .await;
                return;
            }
        }
    }
}

async fn index() -> Html<&'static str> {
    Html(INDEX_HTML)
}

async fn health(State(web): State<Web>) -> Response {
    match web.context.link.core_health() {
        CoreHealth::Answering => {
            (StatusCode::OK, "ok: the game core is attached\n").into_response()
        }
        CoreHealth::NotAnswering(waited) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "not answering: the game core has not answered for {:.1} s; players are kept \
                 and their input queued\n",
                waited.as_secs_f64()
            ),
        )
            .into_response(),
        CoreHealth::Detached(_) if let Some(reason) = web.context.link.core_cannot_start() => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "down: the game core cannot start: {reason}; players are kept and their input \
                 queued until an operator fixes it and runs `tether reload`\n"
            ),
        )
            .into_response(),
        CoreHealth::Detached(for_how_long) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "waiting: no game core has been attached for {:.1} s; players are kept and \
                 their input queued (`tether status` says why)\n",
                for_how_long.as_secs_f64()
            ),
        )
            .into_response(),
    }
}

/// The Prometheus metrics, for whoever presents the admin token (`Authorization: Bearer`).
/// On a public listener too: without the token it says nothing but how to get in.
async fn metrics(State(web): State<Web>, headers: HeaderMap) -> Response {
    if let Some(refusal) = refusal(&web, &headers) {
        return refusal;
    }
    let census = web.context.link.census();
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        crate::metrics::render(&census),
    )
        .into_response()
}

/// `GET /admin/summary`: the game as this proxy sees it, for `tether status` (JSON, behind
/// the admin token): the core (name, version, pid, how it answers), sessions and players by
/// transport, this proxy's uptime.
async fn summary(State(web): State<Web>, headers: HeaderMap) -> Response {
    if let Some(refusal) = refusal(&web, &headers) {
        return refusal;
    }
    let census = web.context.link.census();
    let by_transport = |counts: &[(&'static str, i64)]| {
        counts
            .iter()
            .map(|(transport, count)| ((*transport).to_owned(), serde_json::json!(count)))
            .collect::<serde_json::Map<_, _>>()
    };
    let body = serde_json::json!({
        "core": web.context.link.core_summary(),
        "sessions": by_transport(&census.sessions),
        "players": by_transport(&census.players_by_transport),
        "proxy_uptime_s": crate::metrics::uptime().as_secs(),
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// An operator's order as `POST /admin/orders` takes it (JSON), e.g.
/// `{"order": "kick", "name": "Bob", "reason": "spam", "actor": "host:ops"}`.
#[derive(Debug, Deserialize)]
struct OrderRequest {
    /// Who asks, for the audit trail: only letters, digits and `:._@-`, at most 40 of them;
    /// anything else is recorded as `operator`.
    #[serde(default)]
    actor: String,
    #[serde(flatten)]
    order: OrderBody,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "order", rename_all = "kebab-case")]
enum OrderBody {
    Kick {
        name: String,
        #[serde(default)]
        reason: String,
    },
    Ban {
        target: String,
        /// 0 or absent: until lifted.
        #[serde(default)]
        seconds: u64,
        #[serde(default)]
        reason: String,
    },
    Unban {
        target: String,
    },
    Wall {
        text: String,
    },
    Shutdown {
        /// 0 or absent: now.
        #[serde(default)]
        seconds: u32,
        #[serde(default)]
        reason: String,
    },
    CancelShutdown,
    Reload,
    UpgradeProxy,
}

impl From<OrderBody> for OrderAction {
    fn from(body: OrderBody) -> OrderAction {
        match body {
            OrderBody::Kick { name, reason } => OrderAction::Kick { name, reason },
            OrderBody::Ban {
                target,
                seconds,
                reason,
            } => OrderAction::Ban {
                target,
                seconds,
                reason,
            },
            OrderBody::Unban { target } => OrderAction::Unban { target },
            OrderBody::Wall { text } => OrderAction::Wall { text },
            OrderBody::Shutdown { seconds, reason } => OrderAction::Shutdown { seconds, reason },
            OrderBody::CancelShutdown => OrderAction::CancelShutdown,
            OrderBody::Reload => OrderAction::Reload,
            OrderBody::UpgradeProxy => OrderAction::UpgradeProxy,
        }
    }
}

/// An order's name, as the API spells it.
fn order_name(action: &OrderAction) -> &'static str {
    match action {
        OrderAction::Kick { .. } => "kick",
        OrderAction::Ban { .. } => "ban",
        OrderAction::Unban { .. } => "unban",
        OrderAction::Wall { .. } => "wall",
        OrderAction::Shutdown { .. } => "shutdown",
        OrderAction::CancelShutdown => "cancel-shutdown",
        OrderAction::Reload => "reload",
        OrderAction::UpgradeProxy => "upgrade-proxy",
    }
}

/// Who the audit trail says gave an order: what the operator's tool said, if it is a plain
/// name, else `operator` (the token is the credential; this is only a label).
fn actor_label(said: &str) -> String {
    let plain = !said.is_empty()
        && said.len() <= 40
        && said
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ":._@-".contains(c));
    if plain {
        said.to_owned()
    } else {
        "operator".to_owned()
    }
}

/// `POST /admin/orders`: an operator's order for the game (kick, ban, unban, wall, shutdown,
/// cancel-shutdown, reload, upgrade-proxy), behind the admin token. The answer is JSON,
/// `{"ok": bool, "said": text}`: 200 done, 422 refused by the game (not online, bad name),
/// 400 not an order, 503 no core attached, 504 no answer.
async fn order(State(web): State<Web>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    if let Some(refusal) = refusal(&web, &headers) {
        return refusal;
    }
    let answer = |status: StatusCode, ok: bool, said: String| {
        (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::json!({ "ok": ok, "said": said }).to_string(),
        )
            .into_response()
    };
    let request: OrderRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => {
            return answer(
                StatusCode::BAD_REQUEST,
                false,
                format!("not an order: {error}"),
            );
        }
    };
    let actor = actor_label(&request.actor);
    let action: OrderAction = request.order.into();
    let what = order_name(&action);
    let done = web.context.link.order(actor.clone(), action).await;
    if let Ok(done) = &done {
        crate::dashboard::hub().moment(&format!("{actor}: {what}: {}", done.said));
    }
    match done {
        Ok(done) if done.ok => answer(StatusCode::OK, true, done.said),
        Ok(done) => answer(StatusCode::UNPROCESSABLE_ENTITY, false, done.said),
        Err(error @ OrderError::NoCore(_)) => {
            answer(StatusCode::SERVICE_UNAVAILABLE, false, error.to_string())
        }
        Err(error @ OrderError::NoAnswer) => {
            answer(StatusCode::GATEWAY_TIMEOUT, false, error.to_string())
        }
    }
}

/// `None` if the request carries the admin token; else the answer to give instead.
fn refusal(web: &Web, headers: &HeaderMap) -> Option<Response> {
    use tether_protocol::admin_token::{self, Check};
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    let check = match &web.admin_token {
        Some(path) => admin_token::check(path, presented),
        None => Check::NoneSet,
    };
    match check {
        Check::Valid => None,
        Check::Invalid => Some(
            (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "unauthorised: present the admin token (`Authorization: Bearer <token>`; \
             `tether admin token` shows it)\n",
            )
                .into_response(),
        ),
        Check::NoneSet => Some(
            (
                StatusCode::FORBIDDEN,
                "forbidden: no admin token is set on this host; `tether admin token` makes one\n",
            )
                .into_response(),
        ),
    }
}

impl crate::session::Measured for Frame {
    fn byte_len(&self) -> usize {
        match self {
            Frame::Text(text) => text.len(),
            Frame::Binary(bytes) => bytes.len(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Subprotocol {
    Gmcp,
    Telnet,
}

/// Picks the subprotocol: the client's first offer we speak; GMCP when it offers none;
/// `None` when it offers only ones we do not speak.
fn choose(offered: &[String]) -> Option<Subprotocol> {
    if offered.is_empty() {
        return Some(Subprotocol::Gmcp);
    }
    offered.iter().find_map(|name| match name.as_str() {
        GMCP_PROTOCOL => Some(Subprotocol::Gmcp),
        TELNET_PROTOCOL => Some(Subprotocol::Telnet),
        _ => None,
    })
}

async fn websocket(
    headers: HeaderMap,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    State(web): State<Web>,
    mut request: Request,
) -> Response {
    let offered: Vec<String> = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .collect();
    let Some(protocol) = choose(&offered) else {
        return (
            StatusCode::BAD_REQUEST,
            format!(
                "unsupported WebSocket subprotocol ({}); this server speaks {GMCP_PROTOCOL} \
                 and {TELNET_PROTOCOL}\n",
                offered.join(", ")
            ),
        )
            .into_response();
    };
    let accept = match websocket::accept_key(&headers) {
        Ok(accept) => accept,
        Err(why) => return (StatusCode::BAD_REQUEST, format!("{why}\n")).into_response(),
    };
    let upgraded = hyper::upgrade::on(&mut request);
    // The session keeps the connection's place at the gate for as long as it lives.
    let permit = request
        .extensions()
        .get::<PermitSlot>()
        .and_then(PermitSlot::take);
    // Tracked from now, so a hand-over waits for the session this becomes.
    web.sessions.spawn(async move {
        let _permit = permit;
        let upgraded = match upgraded.await {
            Ok(upgraded) => upgraded,
            Err(error) => return tracing::debug!(%error, "a WebSocket upgrade did not finish"),
        };
        // The very socket the request came on (see `serve`), or the TLS connection over it,
        // and what the browser sent after the request.
        let (conn, unparsed) = match upgraded.downcast::<TokioIo<TcpStream>>() {
            Ok(parts) => (
                Conn::plain(parts.io.into_inner(), Vec::new()),
                parts.read_buf.to_vec(),
            ),
            Err(upgraded) => match upgraded.downcast::<TokioIo<TlsStream<TcpStream>>>() {
                Ok(parts) => {
                    let (stream, tls) = parts.io.into_inner().into_inner();
                    let wire = TlsWire::from_parts(stream, tls);
                    (Conn::Tls(Box::new(wire)), parts.read_buf.to_vec())
                }
                Err(_) => {
                    return tracing::error!("a WebSocket upgrade on an unexpected connection type");
                }
            },
        };
        let transport = WsTransport::new(conn, unparsed);
        let context = web.context.clone();
        let session = context.next_session_id();
        match protocol {
            Subprotocol::Gmcp => {
                let info = SessionInfo {
                    transport: message::Transport::WebSocket,
                    remote_addr: peer.to_string(),
                };
                let speaker = Box::new(WebSpeaker::new());
                session::run(speaker, transport, session, info, context).await;
            }
            Subprotocol::Telnet => {
                let info = SessionInfo {
                    transport: message::Transport::WebSocketTelnet,
                    remote_addr: peer.to_string(),
                };
                let speaker = Box::new(TelnetSpeaker::new(session, context.clone()));
                session::run(speaker, TelnetFrames(transport), session, info, context).await;
            }
        }
    });
    let mut response = Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, "websocket")
        .header(header::SEC_WEBSOCKET_ACCEPT, accept);
    if !offered.is_empty() {
        // Answer only with a protocol the client offered.
        response = response.header(
            header::SEC_WEBSOCKET_PROTOCOL,
            match protocol {
                Subprotocol::Gmcp => GMCP_PROTOCOL,
                Subprotocol::Telnet => TELNET_PROTOCOL,
            },
        );
    }
    response
        .body(axum::body::Body::empty())
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// How long a client has to finish the TLS handshake on the HTTPS listener.
const HANDSHAKE_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

/// An HTTP connection's place at the gate, shared by the connection's task and the request
/// that may upgrade it: a WebSocket session takes it for its whole life.
#[derive(Clone)]
struct PermitSlot(Arc<Mutex<Option<Permit>>>);

impl PermitSlot {
    fn holding(permit: Permit) -> PermitSlot {
        PermitSlot(Arc::new(Mutex::new(Some(permit))))
    }

    fn take(&self) -> Option<Permit> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

/// Serves HTTP on `listener` until the proxy stops; hands the listener back for a successor.
///
/// Its own accept loop and hyper's HTTP/1 connection, not `axum::serve`: a WebSocket
/// upgrade must give back the plain TCP socket (to carry it to the next proxy), which only
/// the connection type given to hyper here allows, and the listener must come back. With
/// `tls` it serves HTTPS and secure WebSockets (the handshake within [`HANDSHAKE_WITHIN`]).
pub async fn serve(listener: TcpListener, web: Web, tls: Option<TlsDoor>) -> TcpListener {
    let mut shutdown = web.context.shutdown.clone();
    let gate = web.context.gate.clone();
    // The PROXY protocol is for the plain listener (a balancer that ends TLS itself).
    let proxy_protocol = web.context.proxy_protocol.http && tls.is_none();
    let context = web.context.clone();
    let app = router(web);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait() => return listener,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Typically out of file descriptors: back off instead of spinning.
                tracing::warn!(%error, "HTTP accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let (gate, app, mut shutdown) = (gate.clone(), app.clone(), context.shutdown.clone());
        let tls = tls.clone();
        if let Some(tls) = &tls {
            // A renewed certificate counts from the next connection on.
            tls.certificates.refresh();
        }
        tokio::spawn(async move {
            let mut stream = stream;
            let peer = if proxy_protocol {
                match proxy_protocol::player_address(&mut stream, peer, &mut shutdown).await {
                    Some(player) => player,
                    None => return,
                }
            } else {
                peer
            };
            let permit = match gate.admit(peer.ip(), Door::Http) {
                Ok(permit) => PermitSlot::holding(permit),
                Err(refusal) => {
                    let body = format!("{refusal}\n");
                    let said = format!(
                        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\n\
                         content-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    return crate::server::turn_away(stream, said.into_bytes()).await;
                }
            };
            let service = TowerToHyperService::new(
                app.layer(Extension(ConnectInfo(peer)))
                    .layer(Extension(permit.clone())),
            );
            // The connection's place at the gate, unless a WebSocket session took it.
            let _permit = permit;
            let http = hyper::server::conn::http1::Builder::new();
            let served = match tls {
                None => {
                    http.serve_connection(TokioIo::new(stream), service)
                        .with_upgrades()
                        .await
                }
                Some(tls) => {
                    let acceptor = tokio_rustls::TlsAcceptor::from(tls.config);
                    let stream =
                        match tokio::time::timeout(HANDSHAKE_WITHIN, acceptor.accept(stream)).await
                        {
                            Ok(Ok(stream)) => stream,
                            Ok(Err(error)) => {
                                return tracing::debug!(%error, %peer, "a TLS handshake failed");
                            }
                            Err(_) => {
                                return tracing::debug!(%peer, "a TLS handshake took too long");
                            }
                        };
                    http.serve_connection(TokioIo::new(stream), service)
                        .with_upgrades()
                        .await
                }
            };
            if let Err(error) = served {
                tracing::debug!(%error, %peer, "an HTTP connection ended with an error");
            }
        });
    }
}

/// A frame as the web speaker sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Frame {
    /// GMCP: `Package.Name <json>`.
    Text(String),
    /// Game text (HTML from us, a typed line from the client).
    Binary(Vec<u8>),
}

/// `gmcp.mudstandards.org` for tether's browser client, sans-IO. All of it is the session's
/// state: it serializes as itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebSpeaker {
    admission: Admission,
    out: Vec<Frame>,
    /// The browser client takes every package until it lists some.
    gmcp: Gmcp,
    client: ClientInfo,
    client_changed: bool,
    /// GMCP from the client may have changed what a checkpoint holds.
    #[serde(skip)]
    unchecked: bool,
}

impl Default for WebSpeaker {
    fn default() -> Self {
        WebSpeaker::new()
    }
}

impl WebSpeaker {
    pub fn new() -> WebSpeaker {
        WebSpeaker {
            admission: Admission::new(Instant::now()),
            out: Vec::new(),
            gmcp: Gmcp::everything(),
            client: ClientInfo {
                client_name: Some("tether web".into()),
                terminal_type: Some("html".into()),
                // ANSI, UTF-8, 256 colours, truecolor: HTML shows them all.
                mtts: Some(1 | 4 | 8 | 256),
                charset: Charset::Utf8,
                gmcp: true,
                ..ClientInfo::default()
            },
            client_changed: true,
            unchecked: true,
        }
    }

    fn tether_gmcp(&mut self, package: &str, json: &serde_json::Value) {
        self.out
            .push(Frame::Text(gmcp::message_text(package, &json.to_string())));
    }

    /// A binary frame: one typed line.
    fn typed(&mut self, bytes: &[u8]) -> Result<Vec<String>, CloseReason> {
        let mut admitted = Admitted::default();
        let closing = self
            .admission
            .typed_line(bytes, Instant::now(), &mut admitted);
        for notice in &admitted.notices {
            self.notice(notice);
        }
        closing.map(|()| admitted.lines)
    }

    /// A text frame: GMCP from the client.
    fn client_gmcp(&mut self, text: &str) -> Result<(), CloseReason> {
        let mut notices = Vec::new();
        let admitted = self.admission.message(Instant::now(), &mut notices);
        for notice in &notices {
            self.notice(notice);
        }
        if !admitted? {
            return Ok(());
        }
        match self.gmcp.receive(text, &mut self.client) {
            Ok(Received::Hello { .. }) => self.client_changed = true,
            Ok(Received::Supports) => {}
            Ok(Received::Ping) => self.out.push(Frame::Text("Core.Ping".into())),
            Ok(Received::ForGame { package, .. }) => {
                tracing::debug!(package, "GMCP from a web client is not used yet");
            }
            Err(ignored) => tracing::debug!(%ignored, "ignoring a GMCP message from a web client"),
        }
        Ok(())
    }
}

impl Speaker for WebSpeaker {
    type In = Frame;
    type Out = Frame;

    fn greet(&mut self) {}

    fn input(&mut self, input: Frame) -> Result<Vec<String>, CloseReason> {
        match input {
            Frame::Binary(bytes) => self.typed(&bytes),
            Frame::Text(text) => {
                self.unchecked = true;
                self.client_gmcp(&text).map(|()| Vec::new())
            }
        }
    }

    fn message(&mut self, message: ToSession) -> Result<(), CloseReason> {
        match message {
            ToSession::Core(Delivery::Output(text)) => {
                let mut html = markup::render_html(&text);
                html.push('\n');
                self.out.push(Frame::Binary(html.into_bytes()));
            }
            ToSession::Core(Delivery::Prompt(text)) => {
                let html = markup::render_html(&text);
                self.tether_gmcp("Tether.Prompt", &serde_json::json!({ "html": html }));
            }
            ToSession::Notice(text) => self.notice(&text),
            ToSession::Core(Delivery::HideInput(hidden)) => {
                self.tether_gmcp("Tether.Input", &serde_json::json!({ "hidden": hidden }));
            }
            ToSession::Core(Delivery::Gmcp { package, json }) => {
                if self.gmcp.wants(&package) {
                    self.out
                        .push(Frame::Text(gmcp::message_text(&package, &json)));
                }
            }
            // Browsers wrap and colour by themselves.
            ToSession::Core(Delivery::Display(_)) => {}
            ToSession::Core(Delivery::Disconnect(reason)) => {
                self.tether_gmcp("Tether.Input", &serde_json::json!({ "hidden": false }));
                self.notice(&reason);
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

    fn notice(&mut self, text: &str) {
        self.tether_gmcp("Tether.Notice", &serde_json::json!({ "text": text }));
    }

    fn closing(&mut self) {}

    fn take_output(&mut self) -> Vec<Frame> {
        std::mem::take(&mut self.out)
    }

    fn hand_over(&mut self) -> SpeakerState {
        SpeakerState::Web(Box::new(self.clone()))
    }

    fn at_rest(&self) -> SpeakerState {
        SpeakerState::Web(Box::new(WebSpeaker {
            admission: self.admission.at_rest(),
            out: Vec::new(),
            gmcp: self.gmcp.clone(),
            client: self.client.clone(),
            client_changed: false,
            unchecked: false,
        }))
    }

    fn checkpoint_due(&mut self) -> bool {
        std::mem::take(&mut self.unchecked)
    }

    fn client_changed(&mut self) -> Option<ClientInfo> {
        std::mem::take(&mut self.client_changed).then(|| self.client.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(frames: &[Frame]) -> Vec<&str> {
        frames
            .iter()
            .filter_map(|frame| match frame {
                Frame::Text(text) => Some(text.as_str()),
                Frame::Binary(_) => None,
            })
            .collect()
    }

    #[test]
    fn subprotocol_choice_follows_the_client_and_defaults_to_gmcp() {
        assert_eq!(choose(&[]), Some(Subprotocol::Gmcp));
        let offered = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        assert_eq!(
            choose(&offered(&[
                "telnet.mudstandards.org",
                "gmcp.mudstandards.org"
            ])),
            Some(Subprotocol::Telnet)
        );
        assert_eq!(
            choose(&offered(&["chat", "gmcp.mudstandards.org"])),
            Some(Subprotocol::Gmcp)
        );
        assert_eq!(choose(&offered(&["chat"])), None);
    }

    #[test]
    fn game_text_becomes_escaped_html_in_binary_frames() {
        let mut speaker = WebSpeaker::new();
        speaker
            .message(ToSession::Core(Delivery::Output(
                "{red}<b>hi</b>{/}".into(),
            )))
            .unwrap();
        let frames = speaker.take_output();
        let Frame::Binary(html) = &frames[0] else {
            panic!("game text is binary: {frames:?}");
        };
        let html = String::from_utf8_lossy(html);
        assert!(html.contains("&lt;b&gt;hi&lt;/b&gt;"), "{html}");
        assert!(html.contains("fg-red"), "{html}");
        assert!(!html.contains('\u{1b}'));
    }

    #[test]
    fn a_frame_is_a_line_and_frames_flood_like_lines() {
        let mut speaker = WebSpeaker::new();
        assert_eq!(
            speaker.input(Frame::Binary(b"say hi".to_vec())),
            Ok(vec!["say hi".to_string()])
        );
        assert_eq!(
            speaker.input(Frame::Binary(b"look\r\nnorth\n".to_vec())),
            Ok(vec!["look".to_string(), "north".to_string()])
        );
        let mut closed = None;
        for _ in 0..1000 {
            if let Err(reason) = speaker.input(Frame::Binary(b"x".to_vec())) {
                closed = Some(reason);
                break;
            }
        }
        assert_eq!(closed, Some(CloseReason::Flood));
    }

    #[test]
    fn gmcp_is_filtered_by_what_the_client_supports() {
        let mut speaker = WebSpeaker::new();
        let room = || {
            ToSession::Core(Delivery::Gmcp {
                package: "Room.Info".into(),
                json: "{}".into(),
            })
        };
        speaker.message(room()).unwrap();
        assert_eq!(texts(&speaker.take_output()), ["Room.Info {}"]);
        speaker
            .input(Frame::Text(r#"Core.Supports.Set ["Char 1"]"#.into()))
            .unwrap();
        speaker.message(room()).unwrap();
        assert!(speaker.take_output().is_empty());
        speaker
            .input(Frame::Text(r#"core.supports.add ["room 1"]"#.into()))
            .unwrap();
        speaker.message(room()).unwrap();
        assert_eq!(texts(&speaker.take_output()), ["Room.Info {}"]);
        speaker
            .input(Frame::Text("not json at all {".into()))
            .unwrap();
    }

    #[test]
    fn prompts_notices_and_password_masking_are_tether_packages() {
        let mut speaker = WebSpeaker::new();
        speaker
            .message(ToSession::Core(Delivery::Prompt("{bold}>{/} ".into())))
            .unwrap();
        speaker
            .message(ToSession::Core(Delivery::HideInput(true)))
            .unwrap();
        speaker
            .message(ToSession::Notice("The game is back.".into()))
            .unwrap();
        let frames = speaker.take_output();
        let shown = texts(&frames);
        assert!(
            shown[0].starts_with("Tether.Prompt {\"html\":"),
            "{shown:?}"
        );
        assert_eq!(shown[1], r#"Tether.Input {"hidden":true}"#);
        assert_eq!(shown[2], r#"Tether.Notice {"text":"The game is back."}"#);
        let closing = speaker.message(ToSession::Core(Delivery::Disconnect("Goodbye.".into())));
        assert_eq!(closing, Err(CloseReason::Game("Goodbye.".into())));
        assert_eq!(
            texts(&speaker.take_output())[0],
            r#"Tether.Input {"hidden":false}"#
        );
    }
}
