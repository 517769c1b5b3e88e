//! A session's whole state as one typed value, and its compact encoding: what a successor
//! proxy needs to carry a live connection on as if nothing happened.
//!
//! It is made of the pieces' own state, not a copy kept in step with them: the speaker's
//! (for telnet: a command cut in half, every option's negotiation and what it taught us,
//! charset, GMCP packages, a partly typed line and the flood budget, unwritten output, MCCP2
//! on or off, display settings; for the web client: the same that applies to it) and what the
//! link routed and the session has not handled yet. What the relay keeps for it (who it is,
//! the core's blob, every unacknowledged line with its sequence number) travels with the
//! link's state (`link::LinkState`), which also holds sessions that closed with lines still
//! waiting for a core.
//!
//! The encoding is serde with postcard: compact, schema-less (both ends are this crate), and
//! prefixed with a version byte so a proxy refuses a state it does not understand instead of
//! misreading it.

use std::os::fd::OwnedFd;

use serde::{Deserialize, Serialize};

use tether_protocol::message::Transport;

use crate::link::LinkState;
use crate::relay::ToSession;
use crate::session::TelnetState;
use crate::web::WebSpeaker;

/// Bumped whenever the encoding of any piece changes.
pub const STATE_VERSION: u8 = 4;

/// Version 3 differs only in [`ProxyState`], which had no `players`.
const VERSION_WITHOUT_PLAYERS: u8 = 3;

/// Version 2 differs only in [`ProxyState`] and [`KeptProxy`], which had no `telnets` and
/// `https`: a proxy from before TLS hands over (or leaves with its keeper) what this one
/// still reads.
const VERSION_WITHOUT_TLS: u8 = 2;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionState {
    pub id: u64,
    /// How the connection reaches us (which transport to carry on with).
    pub transport: Transport,
    pub speaker: SpeakerState,
    /// Messages the link routed to the session that it has not handled yet.
    pub queued: Vec<ToSession>,
    /// Bytes read from the connection that its transport had not made sense of yet.
    pub unread: Vec<u8>,
    /// Output for the client not written yet.
    pub unwritten: Vec<u8>,
}

/// A session at rest, as the keeper holds it: what a proxy needs to carry the connection on
/// if this one dies without warning (see `keeper`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checkpoint {
    pub transport: Transport,
    pub speaker: SpeakerState,
}

/// The proxy itself, as the keeper holds it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeptProxy {
    pub proxy_id: u64,
    pub started: u64,
    /// Session ids go on from at least here.
    pub next_session_id: u64,
    /// Whether the HTTP listener follows the telnet one.
    pub http: bool,
    /// Whether the TLS telnet listener follows those.
    pub telnets: bool,
    /// Whether the HTTPS listener follows those.
    pub https: bool,
}

/// [`KeptProxy`] as version 2 wrote it.
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct KeptProxyV2 {
    proxy_id: u64,
    started: u64,
    next_session_id: u64,
    http: bool,
}

/// A live connection on its way to another proxy: its socket and its state.
#[derive(Debug)]
pub struct CarriedSession {
    pub state: SessionState,
    pub socket: OwnedFd,
}

/// The protocol the connection speaks (telnet over TCP or over WebSocket; the web client).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum SpeakerState {
    Telnet(Box<TelnetState>),
    Web(Box<WebSpeaker>),
}

/// Everything a proxy hands to its successor besides the sockets, which travel beside it (as
/// SCM_RIGHTS, see `handover`) in this order: the telnet listener, the HTTP listener if
/// `http`, the TLS telnet listener if `telnets`, the HTTPS listener if `https`, the connection
/// to the core if `link_unread` is set, then one per session, in the order of `sessions`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProxyState {
    /// Who the core knows this proxy as; the successor goes on as the same proxy.
    pub proxy_id: u64,
    /// When the first proxy of the line started (unix seconds): MSSP's uptime goes on.
    pub started: u64,
    /// Session ids go on from here, never reused.
    pub next_session_id: u64,
    pub game_status: Vec<(String, String)>,
    pub cannot_start: Option<String>,
    pub http: bool,
    pub telnets: bool,
    pub https: bool,
    pub link: LinkState,
    /// What was read from the core's connection and not handled, when it travels.
    pub link_unread: Option<Vec<u8>>,
    pub sessions: Vec<SessionState>,
    /// Who each logged-in session plays, as the core said (for the operator's view; the
    /// link to the core travels as it is, so the core has no reason to say it again).
    pub players: Vec<(u64, String)>,
}

/// [`ProxyState`] as version 3 wrote it.
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct ProxyStateV3 {
    proxy_id: u64,
    started: u64,
    next_session_id: u64,
    game_status: Vec<(String, String)>,
    cannot_start: Option<String>,
    http: bool,
    telnets: bool,
    https: bool,
    link: LinkState,
    link_unread: Option<Vec<u8>>,
    sessions: Vec<SessionState>,
}

/// [`ProxyState`] as version 2 wrote it.
#[derive(Deserialize)]
struct ProxyStateV2 {
    proxy_id: u64,
    started: u64,
    next_session_id: u64,
    game_status: Vec<(String, String)>,
    cannot_start: Option<String>,
    http: bool,
    link: LinkState,
    link_unread: Option<Vec<u8>>,
    sessions: Vec<SessionState>,
}

/// A piece of state that [`decode`] reads, in this version's encoding or an older one.
pub trait Decode: serde::de::DeserializeOwned {
    /// From a version 2 encoding: the same as now, unless the type says otherwise.
    fn from_v2(bytes: &[u8]) -> Result<Self, postcard::Error> {
        postcard::from_bytes(bytes)
    }

    /// From a version 3 encoding: the same as now, unless the type says otherwise.
    fn from_v3(bytes: &[u8]) -> Result<Self, postcard::Error> {
        postcard::from_bytes(bytes)
    }
}

impl Decode for SessionState {}
impl Decode for Checkpoint {}
impl Decode for crate::relay::KeptSlot {}

impl Decode for KeptProxy {
    fn from_v2(bytes: &[u8]) -> Result<Self, postcard::Error> {
        let old: KeptProxyV2 = postcard::from_bytes(bytes)?;
        Ok(KeptProxy {
            proxy_id: old.proxy_id,
            started: old.started,
            next_session_id: old.next_session_id,
            http: old.http,
            telnets: false,
            https: false,
        })
    }
}

impl Decode for ProxyState {
    fn from_v2(bytes: &[u8]) -> Result<Self, postcard::Error> {
        let old: ProxyStateV2 = postcard::from_bytes(bytes)?;
        Ok(ProxyState {
            proxy_id: old.proxy_id,
            started: old.started,
            next_session_id: old.next_session_id,
            game_status: old.game_status,
            cannot_start: old.cannot_start,
            http: old.http,
            telnets: false,
            https: false,
            link: old.link,
            link_unread: old.link_unread,
            sessions: old.sessions,
            players: Vec::new(),
        })
    }

    fn from_v3(bytes: &[u8]) -> Result<Self, postcard::Error> {
        let old: ProxyStateV3 = postcard::from_bytes(bytes)?;
        Ok(ProxyState {
            proxy_id: old.proxy_id,
            started: old.started,
            next_session_id: old.next_session_id,
            game_status: old.game_status,
            cannot_start: old.cannot_start,
            http: old.http,
            telnets: old.telnets,
            https: old.https,
            link: old.link,
            link_unread: old.link_unread,
            sessions: old.sessions,
            players: Vec::new(),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("an empty state")]
    Empty,
    #[error(
        "state version {found}, this proxy reads versions {VERSION_WITHOUT_TLS} to {STATE_VERSION}"
    )]
    Version { found: u8 },
    #[error("unreadable state: {0}")]
    Decode(#[from] postcard::Error),
}

/// `value` as bytes: the version, then postcard.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut bytes = vec![STATE_VERSION];
    // Serializing plain data into a Vec cannot fail.
    bytes.extend(postcard::to_stdvec(value).unwrap_or_default());
    bytes
}

/// What [`encode`] made, if this proxy reads its version.
pub fn decode<T: Decode>(bytes: &[u8]) -> Result<T, StateError> {
    let (&version, rest) = bytes.split_first().ok_or(StateError::Empty)?;
    match version {
        STATE_VERSION => Ok(postcard::from_bytes(rest)?),
        VERSION_WITHOUT_PLAYERS => Ok(T::from_v3(rest)?),
        VERSION_WITHOUT_TLS => Ok(T::from_v2(rest)?),
        found => Err(StateError::Version { found }),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use tether_protocol::message::{
        ClientInfo, CoreEvent, Delivery, DisplayPrefs, SessionEvent, SessionInfo,
    };

    use super::*;
    use crate::relay::Relay;
    use crate::session::{Context, Speaker, TelnetSpeaker};
    use crate::telnet::{DO, IAC, SB, SE, WILL, option};

    fn sb(option: u8, data: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::new();
        crate::telnet::subnegotiation(option, data, &mut bytes);
        bytes
    }

    /// A telnet session well into its life: negotiated, named, sized, compressing, with a
    /// half-typed line, output not yet written and lines the core has not acknowledged.
    fn lived_in() -> (TelnetSpeaker, Relay) {
        let mut speaker = TelnetSpeaker::new(7, Context::unlinked());
        speaker.greet();
        let client = [
            vec![
                IAC,
                DO,
                option::GMCP,
                IAC,
                DO,
                option::EOR,
                IAC,
                WILL,
                option::NAWS,
            ],
            sb(option::NAWS, &[0, 120, 0, 40]),
            vec![IAC, WILL, option::TTYPE],
            sb(option::TTYPE, b"\x00MUDLET"),
            sb(option::TTYPE, b"\x00XTERM-256COLOR"),
            sb(option::TTYPE, b"\x00MTTS 2825"),
            sb(option::GMCP, br#"Core.Supports.Set ["Room 1"]"#),
            vec![IAC, DO, option::MCCP2],
            // Half a line, and half a telnet command.
            b"say hel".to_vec(),
            vec![IAC],
        ]
        .concat();
        assert!(speaker.input(client).expect("accepted").is_empty());
        speaker
            .message(ToSession::Core(Delivery::Display(DisplayPrefs {
                wrap: false,
                color: None,
            })))
            .expect("handled");
        speaker
            .message(ToSession::Core(Delivery::Output("unwritten".into())))
            .expect("handled");

        let mut relay = Relay::new(Instant::now(), 10);
        relay.attached();
        relay.opened(
            7,
            SessionInfo {
                transport: Transport::Telnet,
                remote_addr: "[::1]:5000".into(),
            },
        );
        for text in ["look", "north", "say hi"] {
            relay.line(7, text.into(), Instant::now()).expect("queued");
        }
        relay.delivered(
            CoreEvent {
                session: 7,
                delivery: Delivery::Ack(1),
            },
            Instant::now(),
        );
        relay.delivered(
            CoreEvent {
                session: 7,
                delivery: Delivery::State(b"blob".to_vec()),
            },
            Instant::now(),
        );
        (speaker, relay)
    }

    #[test]
    fn a_session_round_trips_through_bytes() {
        let (mut speaker, relay) = lived_in();
        let state = SessionState {
            id: 7,
            transport: Transport::Telnet,
            speaker: speaker.hand_over(),
            queued: vec![ToSession::Notice("The game is back.".into())],
            unread: Vec::new(),
            unwritten: Vec::new(),
        };
        let bytes = encode(&state);
        let read: SessionState = decode(&bytes).expect("readable");
        assert_eq!(encode(&read), bytes, "nothing lost or changed");
        assert_eq!(read.queued, state.queued);
        // Small enough to hand over thousands at once.
        println!("a lived-in telnet session: {} bytes", bytes.len());
        assert!(bytes.len() < 1024, "{} bytes", bytes.len());
        let relay = encode(&relay.export(Instant::now()));
        println!("the relay's record of it: {} bytes", relay.len());
        assert!(relay.len() < 256, "{} bytes", relay.len());
    }

    #[test]
    fn a_restored_session_carries_on_where_it_was() {
        let (mut speaker, relay) = lived_in();
        let bytes = encode(&SessionState {
            id: 7,
            transport: Transport::Telnet,
            speaker: speaker.hand_over(),
            queued: Vec::new(),
            unread: Vec::new(),
            unwritten: Vec::new(),
        });
        // What the old speaker still has to write: the end of its zlib stream.
        let ended = speaker.take_output().concat();
        assert!(ended.is_empty(), "everything went into the state");
        let state: SessionState = decode(&bytes).expect("readable");
        let SpeakerState::Telnet(telnet) = state.speaker else {
            panic!("a telnet session");
        };
        let mut restored = TelnetSpeaker::restore(7, Context::unlinked(), *telnet);
        // The command and the line that were cut in half are finished by the next bytes.
        let lines = restored
            .input([&[crate::telnet::NOP][..], b"lo\r\n"].concat())
            .expect("accepted");
        assert_eq!(lines, ["say hello"]);
        let client: &ClientInfo = restored.client();
        assert_eq!(client.width, Some(120));
        assert_eq!(client.client_name.as_deref(), Some("MUDLET"));
        assert!(restored.wants_gmcp("Room.Info"));
        assert!(!restored.wants_gmcp("Char.Vitals"));
        // The old zlib stream ends whole (with "unwritten" in it), then a new one starts.
        let out = restored.take_output().concat();
        let marker = [IAC, SB, option::MCCP2, IAC, SE];
        let first = out
            .windows(5)
            .position(|window| window == marker)
            .expect("the first stream");
        let second = out[first + 5..]
            .windows(5)
            .position(|window| window == marker)
            .expect("a second stream")
            + first
            + 5;
        let mut inflater = flate2::Decompress::new(true);
        let mut text = Vec::with_capacity(4096);
        let status = inflater
            .decompress_vec(
                &out[first + 5..second],
                &mut text,
                flate2::FlushDecompress::None,
            )
            .expect("valid zlib");
        assert_eq!(
            status,
            flate2::Status::StreamEnd,
            "the first stream ends cleanly"
        );
        assert!(
            String::from_utf8_lossy(&text).contains("unwritten"),
            "{text:?}"
        );

        let mut next = Relay::import(relay.export(Instant::now()), Instant::now(), 10);
        next.detached(Instant::now());
        next.attached();
        let resent: Vec<_> = next
            .take_submits()
            .into_iter()
            .filter_map(|event| match event.event {
                SessionEvent::Line { seq, text } => Some((seq, text.into_owned())),
                _ => None,
            })
            .collect();
        assert_eq!(resent, [(2, "north".into()), (3, "say hi".into())]);
        assert_eq!(next.snapshots()[0].state, b"blob");
    }

    #[test]
    fn a_state_from_another_version_is_refused() {
        let (mut speaker, _) = lived_in();
        let mut bytes = encode(&SessionState {
            id: 7,
            transport: Transport::Telnet,
            speaker: speaker.hand_over(),
            queued: Vec::new(),
            unread: Vec::new(),
            unwritten: Vec::new(),
        });
        bytes[0] = STATE_VERSION + 1;
        assert!(matches!(
            decode::<SessionState>(&bytes),
            Err(StateError::Version { .. })
        ));
        assert!(matches!(
            decode::<SessionState>(&[]),
            Err(StateError::Empty)
        ));
        assert!(decode::<SessionState>(&[STATE_VERSION, 0xff]).is_err());
    }

    #[test]
    fn a_version_2_proxy_record_is_still_read() {
        let mut bytes = vec![VERSION_WITHOUT_TLS];
        bytes.extend(
            postcard::to_stdvec(&KeptProxyV2 {
                proxy_id: 7,
                started: 100,
                next_session_id: 12,
                http: true,
            })
            .expect("encode"),
        );
        let kept: KeptProxy = decode(&bytes).expect("readable");
        assert_eq!(
            (kept.proxy_id, kept.next_session_id, kept.http, kept.telnets),
            (7, 12, true, false)
        );
        let error = decode::<KeptProxy>(&[1, 0]).expect_err("too old");
        assert!(error.to_string().contains("versions 2 to 4"), "{error}");
    }

    #[test]
    fn a_version_3_proxy_state_is_read_without_players() {
        let mut bytes = vec![VERSION_WITHOUT_PLAYERS];
        bytes.extend(
            postcard::to_stdvec(&ProxyStateV3 {
                proxy_id: 7,
                started: 100,
                next_session_id: 12,
                game_status: vec![("NAME".into(), "tether".into())],
                cannot_start: None,
                http: true,
                telnets: true,
                https: false,
                link: LinkState::default(),
                link_unread: None,
                sessions: Vec::new(),
            })
            .expect("encode"),
        );
        let state: ProxyState = decode(&bytes).expect("readable");
        assert_eq!((state.proxy_id, state.telnets), (7, true));
        assert!(state.players.is_empty());
    }
}
