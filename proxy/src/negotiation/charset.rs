//! CHARSET (RFC 2066): UTF-8 if the client takes it, Latin-1 if it refuses, and the text
//! transcoding that follows from the choice.

use tether_protocol::message::Charset;

use super::{ClientEvent, Negotiation};
use crate::telnet::{self, IAC, option};

/// CHARSET subcommands.
const CHARSET_REQUEST: u8 = 0x01;
const CHARSET_ACCEPTED: u8 = 0x02;
const CHARSET_REJECTED: u8 = 0x03;

/// `REQUEST ";UTF-8"`: the byte after REQUEST is the list separator.
const CHARSET_UTF8_REQUEST: &[u8] = b"\x01;UTF-8";

impl Negotiation {
    pub(super) fn request_charset(&mut self, out: &mut Vec<u8>) {
        if !self.charset_requested {
            telnet::subnegotiation(option::CHARSET, CHARSET_UTF8_REQUEST, out);
            self.charset_requested = true;
        }
    }

    pub(super) fn charset(
        &mut self,
        data: &[u8],
        out: &mut Vec<u8>,
        events: &mut Vec<ClientEvent>,
    ) {
        match data.split_first() {
            Some((&CHARSET_REQUEST, list)) => self.charset_request(list, out, events),
            Some((&CHARSET_ACCEPTED, name)) if self.charset_requested => {
                self.charset_requested = false;
                self.charset_settled = true;
                if !is_utf8_name(name) {
                    tracing::debug!(?name, "client accepted a charset we did not offer");
                }
                // UTF-8 is all we offered, so it is what was agreed.
                self.decide_charset(Charset::Utf8, events);
            }
            Some((&CHARSET_REJECTED, _)) if self.charset_requested => {
                self.charset_requested = false;
                self.charset_settled = true;
                self.decide_charset(Charset::Latin1, events);
            }
            _ => tracing::debug!(?data, "ignoring unexpected CHARSET subnegotiation"),
        }
    }

    /// The client offers charsets itself.
    pub(super) fn charset_request(
        &mut self,
        list: &[u8],
        out: &mut Vec<u8>,
        events: &mut Vec<ClientEvent>,
    ) {
        if self.charset_requested {
            // Both requests crossed: RFC 2066 lets the server's win, so the
            // client answers ours and we ignore theirs.
            tracing::debug!("ignoring client CHARSET REQUEST crossing ours");
            return;
        }
        // "[TTABLE]" and a version byte may precede the list; we never use tables.
        let list = match list.strip_prefix(b"[TTABLE]") {
            Some(rest) => rest.get(1..).unwrap_or_default(),
            None => list,
        };
        let offered: Vec<&[u8]> = match list.split_first() {
            Some((&separator, names)) => names
                .split(|&b| b == separator)
                .filter(|name| !name.is_empty())
                .collect(),
            None => Vec::new(),
        };
        let choice = offered
            .iter()
            .find(|name| is_utf8_name(name))
            .map(|name| (*name, Charset::Utf8))
            .or_else(|| {
                offered
                    .iter()
                    .find(|name| is_latin1_name(name))
                    .map(|name| (*name, Charset::Latin1))
            });
        match choice {
            Some((name, charset)) => {
                let mut reply = vec![CHARSET_ACCEPTED];
                reply.extend_from_slice(name);
                telnet::subnegotiation(option::CHARSET, &reply, out);
                self.charset_settled = true;
                self.decide_charset(charset, events);
            }
            None => telnet::subnegotiation(option::CHARSET, &[CHARSET_REJECTED], out),
        }
    }

    pub(super) fn decide_charset(&mut self, charset: Charset, events: &mut Vec<ClientEvent>) {
        self.caps.client.charset = charset;
        events.push(ClientEvent::CharsetDecided(charset));
    }
}

/// Appends `text` ready for the wire, like [`telnet::encode_text`]: newlines become CRLF, lone
/// CRs are dropped and 0xFF is doubled (in Latin-1 that is a real character, ÿ). Characters
/// Latin-1 lacks become `?`.
pub fn encode_text(charset: Charset, text: &str, out: &mut Vec<u8>) {
    match charset {
        Charset::Utf8 => telnet::encode_text(text, out),
        Charset::Latin1 => {
            out.reserve(text.len());
            for c in text.chars() {
                match c {
                    '\n' => out.extend_from_slice(b"\r\n"),
                    '\r' => {}
                    _ => match u8::try_from(u32::from(c)) {
                        Ok(IAC) => out.extend_from_slice(&[IAC, IAC]),
                        Ok(byte) => out.push(byte),
                        Err(_) => out.push(b'?'),
                    },
                }
            }
        }
    }
}

pub(super) fn is_utf8_name(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"UTF-8") || name.eq_ignore_ascii_case(b"UTF8")
}

pub(super) fn is_latin1_name(name: &[u8]) -> bool {
    [
        &b"ISO-8859-1"[..],
        b"ISO_8859-1",
        b"ISO8859-1",
        b"LATIN1",
        b"LATIN-1",
    ]
    .iter()
    .any(|known| name.eq_ignore_ascii_case(known))
}
