//! A session's whole state as one typed value, and its compact encoding: what a successor
//! proxy needs to carry a live connection on as if nothing happened.
//!
//! It is made of the pieces' own state, not a copy kept in step with them: the speaker's
//! (for telnet: a command cut in half, every option's negotiation and what it taught us,
//! charset, GMCP packages, a partly typed line and the flood budget, unwritten output, MCCP2
//! on or off, display settings; for the web client: the same that applies to it), what the
//! link routed and the session has not handled yet, and the relay's record (who it is, the
//! core's blob, every unacknowledged line with its sequence number).
//!
//! The encoding is serde with postcard: compact, schema-less (both ends are this crate), and
//! prefixed with a version byte so a proxy refuses a state it does not understand instead of
//! misreading it.

use serde::{Deserialize, Serialize};

use crate::relay::{Slot, ToSession};
use crate::session::TelnetState;
use crate::web::WebSpeaker;

/// Bumped whenever the encoding of any piece changes.
pub const STATE_VERSION: u8 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionState {
    pub id: u64,
    pub speaker: SpeakerState,
    /// Messages the link routed to the session that it has not handled yet.
    pub queued: Vec<ToSession>,
    /// What the relay keeps; `None` once it has forgotten the session.
    pub relay: Option<Slot>,
}

/// The protocol the connection speaks (telnet over TCP or over WebSocket; the web client).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum SpeakerState {
    Telnet(Box<TelnetState>),
    Web(Box<WebSpeaker>),
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("an empty session state")]
    Empty,
    #[error("session state version {found}, this proxy reads version {STATE_VERSION}")]
    Version { found: u8 },
    #[error("unreadable session state: {0}")]
    Decode(#[from] postcard::Error),
}

impl SessionState {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = vec![STATE_VERSION];
        // Serializing plain data into a Vec cannot fail.
        bytes.extend(postcard::to_stdvec(self).unwrap_or_default());
        bytes
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<SessionState, StateError> {
        let (&version, rest) = bytes.split_first().ok_or(StateError::Empty)?;
        if version != STATE_VERSION {
            return Err(StateError::Version { found: version });
        }
        Ok(postcard::from_bytes(rest)?)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use tether_protocol::message::{
        ClientInfo, CoreEvent, Delivery, DisplayPrefs, SessionEvent, SessionInfo, Transport,
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
            relay.line(7, text.into()).expect("queued");
        }
        relay.delivered(CoreEvent {
            session: 7,
            delivery: Delivery::Ack(1),
        });
        relay.delivered(CoreEvent {
            session: 7,
            delivery: Delivery::State(b"blob".to_vec()),
        });
        (speaker, relay)
    }

    #[test]
    fn a_session_round_trips_through_bytes() {
        let (speaker, relay) = lived_in();
        let state = SessionState {
            id: 7,
            speaker: SpeakerState::Telnet(Box::new(speaker.state())),
            queued: vec![ToSession::Notice("The game is back.".into())],
            relay: relay.export(7),
        };
        let bytes = state.to_bytes();
        let read = SessionState::from_bytes(&bytes).expect("readable");
        assert_eq!(read.to_bytes(), bytes, "nothing lost or changed");
        assert_eq!(read.queued, state.queued);
        assert_eq!(read.relay, state.relay);
        // Small enough to hand over thousands at once.
        println!("a lived-in telnet session: {} bytes", bytes.len());
        assert!(bytes.len() < 1024, "{} bytes", bytes.len());
    }

    #[test]
    fn a_restored_session_carries_on_where_it_was() {
        let (speaker, relay) = lived_in();
        let bytes = SessionState {
            id: 7,
            speaker: SpeakerState::Telnet(Box::new(speaker.state())),
            queued: Vec::new(),
            relay: relay.export(7),
        }
        .to_bytes();
        let state = SessionState::from_bytes(&bytes).expect("readable");
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
        // Output that was not written is still there, in a new MCCP2 stream.
        let out = restored.take_output().concat();
        let marker = [IAC, SB, option::MCCP2, IAC, SE];
        assert!(out.windows(5).any(|window| window == marker), "{out:?}");

        let mut next = Relay::new(Instant::now(), 10);
        next.import(7, state.relay.expect("the relay's record"));
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
        let (speaker, _) = lived_in();
        let mut bytes = SessionState {
            id: 7,
            speaker: SpeakerState::Telnet(Box::new(speaker.state())),
            queued: Vec::new(),
            relay: None,
        }
        .to_bytes();
        bytes[0] = STATE_VERSION + 1;
        assert!(matches!(
            SessionState::from_bytes(&bytes),
            Err(StateError::Version { .. })
        ));
        assert!(matches!(
            SessionState::from_bytes(&[]),
            Err(StateError::Empty)
        ));
        assert!(SessionState::from_bytes(&[STATE_VERSION, 0xff]).is_err());
    }
}
