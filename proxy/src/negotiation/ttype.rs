//! TTYPE and MTTS: the client's names, then its capability bits, asked for one reply at a time
//! until the client repeats itself (RFC 1091; MTTS at tintin.mudhalla.net/protocols/mtts).

use super::{IS, Negotiation, SEND};
use crate::telnet::{self, option};
use serde::{Deserialize, Serialize};

/// MTTS bits the proxy reads.
pub(super) const MTTS_ANSI: u32 = 1;
pub(super) const MTTS_256_COLORS: u32 = 8;
pub(super) const MTTS_SCREEN_READER: u32 = 64;
pub(super) const MTTS_TRUECOLOR: u32 = 256;

/// TTYPE requests per cycle. MTTS needs three; the cap only matters for a client that never
/// repeats itself, which would otherwise be asked forever.
pub(super) const MAX_TTYPE_REQUESTS: usize = 4;

impl Negotiation {
    /// The client agreed to TTYPE: a renegotiated TTYPE starts a fresh cycle on the client too.
    pub(super) fn ttype_started(&mut self, out: &mut Vec<u8>) {
        self.ttype = TtypeCycle::default();
        self.send_ttype(out);
    }

    pub(super) fn ttype_stopped(&mut self) {
        self.ttype.awaiting = false;
        self.learn_ttype_names();
    }

    pub(super) fn send_ttype(&mut self, out: &mut Vec<u8>) {
        // Exactly `IAC SB TTYPE SEND IAC SE`: Mudlet answers nothing else.
        telnet::subnegotiation(option::TTYPE, &[SEND], out);
        self.ttype.awaiting = true;
    }

    pub(super) fn ttype_reply(&mut self, data: &[u8], out: &mut Vec<u8>) {
        let [IS, text @ ..] = data else {
            tracing::debug!(?data, "ignoring malformed TTYPE subnegotiation");
            return;
        };
        if !self.ttype.awaiting {
            tracing::debug!("ignoring unrequested TTYPE reply");
            return;
        }
        self.ttype.awaiting = false;
        let reply = String::from_utf8_lossy(text).trim().to_string();
        // A repeat marks the end of the client's list. Checking every earlier
        // reply, not just the last, also catches clients (Mudlet) that start
        // the cycle over instead of repeating the last entry.
        let repeat = reply.is_empty() || self.ttype.replies.contains(&reply);
        let mtts = if repeat { None } else { parse_mtts(&reply) };
        if !repeat {
            self.ttype.replies.push(reply);
        }
        if let Some(mtts) = mtts {
            self.set_mtts(mtts);
        }
        // MTTS is the last entry by definition: nothing more to learn after it.
        if repeat || mtts.is_some() || self.ttype.replies.len() >= MAX_TTYPE_REQUESTS {
            self.learn_ttype_names();
        } else {
            self.send_ttype(out);
        }
    }

    /// Takes the client's names from a finished TTYPE cycle. Not before it ends: an MTTS entry
    /// may still follow (a screen reader's, say), and a colour guess made from the names
    /// meanwhile would already have painted whatever the game sent.
    pub(super) fn learn_ttype_names(&mut self) {
        let mut names = self
            .ttype
            .replies
            .iter()
            .filter(|reply| parse_mtts(reply).is_none());
        let Some(first) = names.next() else {
            return;
        };
        // MTTS order: client name, then terminal type. Without a distinct second reply the
        // first is also the terminal type, which is right for clients that send $TERM every
        // time (telnetlib3).
        let terminal = names.next().unwrap_or(first);
        if !self.explicit_name {
            self.caps.client.client_name = Some(first.clone());
        }
        if !self.explicit_terminal {
            self.caps.client.terminal_type = Some(terminal.clone());
        }
    }

    pub(super) fn set_mtts(&mut self, mtts: u32) {
        self.caps.client.mtts = Some(mtts);
        self.caps.client.screen_reader = mtts & MTTS_SCREEN_READER != 0;
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct TtypeCycle {
    /// A SEND is out and its reply not in: only then is a reply expected.
    awaiting: bool,
    replies: Vec<String>,
}

/// `MTTS <n>` (the third TTYPE reply of an MTTS client).
pub(super) fn parse_mtts(reply: &str) -> Option<u32> {
    let rest = reply.strip_prefix("MTTS ")?;
    rest.trim().parse().ok()
}
