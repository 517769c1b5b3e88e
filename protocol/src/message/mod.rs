//! The link's messages as Rust values: one definition, used by the proxy, the core and the
//! tests, so that a field added to the schema is added here once and read and written in one
//! place (`wire.rs`).
//!
//! Each type mirrors a struct of `schema/link.capnp` (the contract, and its documentation);
//! where the schema carries text for something with a fixed set of values (a charset, a
//! transport, a colour choice), the type here is an enum and the text is made and checked at
//! the wire. Messages are plain data: what to do with them is each side's business.
//!
//! One lifetime, on the busiest field only: a line's text is borrowed from the received
//! bytes when it is decoded ([`SessionEvent::Line`]), so a core reading a batch of commands
//! copies none of them; everything else is owned.

mod wire;

#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};
use std::borrow::Cow;

pub use crate::markup::ColorDepth;
pub use wire::{DecodeError, encode_deliver, encode_submit};

/// Everything a proxy sends: one `Attach`, then `Submit`s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyMessage<'a> {
    Attach(Attach),
    Submit(Vec<ProxyEvent<'a>>),
    /// Handing the sessions to a successor with the same proxy id: see the schema's `detach`.
    Detach,
}

/// A proxy's opening: who it is and every live session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attach {
    pub hello: Hello,
    pub sessions: Vec<SessionSnapshot>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    pub protocol_version: u32,
    /// Random per proxy process: tells a reconnect from a new proxy.
    pub proxy_id: u64,
    /// For logs.
    pub proxy_name: String,
}

/// One live session as the proxy knows it, handed to a (new) core at attach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSnapshot {
    pub session: u64,
    pub info: SessionInfo,
    /// The last blob the core asked to keep ([`Delivery::State`]); empty if none.
    pub state: Vec<u8>,
    /// The last line a core acknowledged; lines after it will be submitted again.
    pub acked_seq: u64,
    pub client: ClientInfo,
}

/// How a player is connected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    pub transport: Transport,
    pub remote_addr: String,
}

/// The connection a session arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Transport {
    Telnet,
    /// The browser client: text frames of markup and GMCP.
    WebSocket,
    /// A telnet byte stream carried in WebSocket binary frames (web MUD clients).
    WebSocketTelnet,
}

impl Transport {
    /// Its name on the wire and in logs.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Telnet => "telnet",
            Transport::WebSocket => "websocket",
            Transport::WebSocketTelnet => "websocket-telnet",
        }
    }

    /// Every transport, in the order they were added.
    pub const ALL: [Transport; 3] = [
        Transport::Telnet,
        Transport::WebSocket,
        Transport::WebSocketTelnet,
    ];

    pub fn from_name(name: &str) -> Option<Transport> {
        Transport::ALL
            .into_iter()
            .find(|transport| transport.name() == name)
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What the proxy learned about a player's client (TTYPE/MTTS, NAWS, CHARSET, NEW-ENVIRON,
/// GMCP). Every field came from the client, so none of it is trusted or shown unescaped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientInfo {
    /// From NEW-ENVIRON CLIENT_NAME or GMCP Core.Hello, else the first TTYPE reply.
    pub client_name: Option<String>,
    pub client_version: Option<String>,
    pub terminal_type: Option<String>,
    /// The MTTS capability bits, as the client announced them.
    pub mtts: Option<u32>,
    /// From NAWS; `None` until reported, or reported as 0 (unknown).
    pub width: Option<u16>,
    pub height: Option<u16>,
    pub charset: Charset,
    /// The player uses a screen reader (MTTS bit 64): no colour or decoration.
    pub screen_reader: bool,
    /// The client speaks GMCP.
    pub gmcp: bool,
}

/// The encoding of a session's text (GMCP is always UTF-8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash, Serialize, Deserialize)]
pub enum Charset {
    /// The default, kept when a client refuses CHARSET altogether: a client that cannot
    /// negotiate today is far more likely UTF-8 (the default of current terminals and MUD
    /// clients) or plain ASCII (a subset) than Latin-1, and a Latin-1 client that knows
    /// CHARSET answers REJECTED. A wrong guess costs little: Latin-1 accents in input become
    /// U+FFFD.
    #[default]
    Utf8,
    /// ISO-8859-1, for clients that rejected UTF-8.
    Latin1,
}

impl Charset {
    /// Its IANA name, as CHARSET negotiates it and the link carries it.
    pub fn name(self) -> &'static str {
        match self {
            Charset::Utf8 => "UTF-8",
            Charset::Latin1 => "ISO-8859-1",
        }
    }

    pub fn from_name(name: &str) -> Option<Charset> {
        [Charset::Utf8, Charset::Latin1]
            .into_iter()
            .find(|charset| charset.name().eq_ignore_ascii_case(name))
    }
}

/// Something that happened to one session, for the core. (Serde: a batch in flight is part
/// of the state a proxy hands to its successor.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyEvent<'a> {
    pub session: u64,
    pub event: SessionEvent<'a>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SessionEvent<'a> {
    /// A player connected.
    Opened(SessionInfo),
    /// A player sent a line: `seq` counts from 1 per session, without gaps; the text is one
    /// line, decoded to UTF-8, control characters removed.
    Line { seq: u64, text: Cow<'a, str> },
    /// The connection ended; why.
    Closed(String),
    /// Negotiation learned something new about the client. (Boxed: it is rare and large, and
    /// every line in a batch would otherwise be as large as it.)
    Client(Box<ClientInfo>),
    /// An operator's order, not a session's (its session is 0); the core answers with
    /// [`Delivery::OrderDone`]. Boxed for the same reason as `Client`.
    Order(Box<Order>),
}

/// What an operator asks of the game from outside it: the dashboard, `tether admin`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// The proxy's, echoed in the answer.
    pub id: u64,
    /// Who asked, as the audit trail records it.
    pub actor: String,
    pub action: OrderAction,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderAction {
    Kick {
        name: String,
        reason: String,
    },
    /// `seconds` 0: until lifted. `target` is a name or an IP address.
    Ban {
        target: String,
        seconds: u64,
        reason: String,
    },
    Unban {
        target: String,
    },
    Wall {
        text: String,
    },
    /// `seconds` 0: now.
    Shutdown {
        seconds: u32,
        reason: String,
    },
    CancelShutdown,
    Reload,
    UpgradeProxy,
}

impl ProxyEvent<'_> {
    /// The same event, owning its text (to keep it past the bytes it was read from).
    pub fn into_owned(self) -> ProxyEvent<'static> {
        ProxyEvent {
            session: self.session,
            event: match self.event {
                SessionEvent::Opened(info) => SessionEvent::Opened(info),
                SessionEvent::Line { seq, text } => SessionEvent::Line {
                    seq,
                    text: Cow::Owned(text.into_owned()),
                },
                SessionEvent::Closed(reason) => SessionEvent::Closed(reason),
                SessionEvent::Client(client) => SessionEvent::Client(client),
                SessionEvent::Order(order) => SessionEvent::Order(order),
            },
        }
    }
}

/// Everything a core sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoreMessage {
    /// The attach is accepted: submit away.
    Welcome(Welcome),
    /// The attach is refused for good (versions differ); the reason, for the operator's log.
    Refused(String),
    /// The batch in flight was taken.
    Accepted,
    /// The batch in flight (or the attach) was not taken and will not be: this core is
    /// stopping, or a newer attach replaced this connection.
    Declined(String),
    /// What the core wants done, in order.
    Deliver(Vec<CoreEvent>),
    /// Live facts about the game for MSSP.
    GameStatus(Vec<MsspVariable>),
    /// The answer to `Detach`: nothing more follows on this connection.
    Detached,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    pub protocol_version: u32,
    /// For logs, e.g. "tether-core 0.1.0 (pid 1234)".
    pub core_name: String,
    /// The core kept this proxy's sessions since its `Detach`: see the schema.
    pub resumed: bool,
}

/// Something the core wants done for one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreEvent {
    pub session: u64,
    pub delivery: Delivery,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Delivery {
    /// Colour markup ([`crate::markup`]) for the player; lines are separated by `\n`, the
    /// last one has no line end.
    Output(String),
    /// Every line up to and including this sequence number is handled and its output sent.
    Ack(u64),
    /// An opaque blob for the proxy to keep and hand back with the session at attach.
    State(Vec<u8>),
    /// Close the connection after showing this reason (plain text, no markup).
    Disconnect(String),
    /// Markup shown without a line end, where the player's typing goes; the proxy ends it the
    /// way the client understands (IAC EOR or GA).
    Prompt(String),
    /// `true`: the client should stop echoing what the player types (a password follows);
    /// `false`: echo again.
    HideInput(bool),
    /// A GMCP message, sent only to clients that asked for its package (case-sensitive).
    Gmcp { package: String, json: String },
    /// How the player wants text shown; the proxy keeps it.
    Display(DisplayPrefs),
    /// The session plays this character: at login (`fresh`), and to each proxy that attaches
    /// (not `fresh`). For the operator's view only.
    Playing { character: String, fresh: bool },
    /// A wrong password was given on this session. For the operator's counters only.
    LoginFailed,
    /// The answer to the [`Order`] `id` (its session is 0): whether it was done, and what
    /// happened, in plain text for the operator.
    OrderDone { id: u64, ok: bool, said: String },
}

/// A player's display settings, chosen in game and kept by the proxy for the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DisplayPrefs {
    /// Word-wrap output to the client's width (NAWS).
    pub wrap: bool,
    /// `None`: as many colours as the client announced.
    pub color: Option<ColorDepth>,
}

impl Default for DisplayPrefs {
    /// What a session has before a character chooses, and what a new character starts with:
    /// wrapped to the window, colours as the client announced.
    fn default() -> Self {
        DisplayPrefs {
            wrap: true,
            color: None,
        }
    }
}

/// One MSSP fact (NAME, PLAYERS, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MsspVariable {
    pub name: String,
    pub value: String,
}
