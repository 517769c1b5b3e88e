//! NEW-ENVIRON (RFC 1572) and MNES: the client's name, version, terminal type, MTTS bits and
//! charset hint, as variables.

use tether_protocol::message::Charset;

use super::charset::is_latin1_name;
use super::{ClientEvent, INFO, IS, Negotiation, SEND};
use crate::telnet::{self, option};

/// NEW-ENVIRON field markers.
const ENV_VAR: u8 = 0x00;
const ENV_VAL: u8 = 0x01;
const ENV_ESC: u8 = 0x02;
const ENV_USERVAR: u8 = 0x03;

impl Negotiation {
    /// The client agreed to NEW-ENVIRON: ask for every well-known variable (SEND VAR with no
    /// name). The bare SEND that RFC 1572 also allows gets no answer from TinTin++ 2.02.20.
    pub(super) fn environ_started(&mut self, out: &mut Vec<u8>) {
        telnet::subnegotiation(option::NEW_ENVIRON, &[SEND, ENV_VAR], out);
    }

    pub(super) fn environ(&mut self, data: &[u8], events: &mut Vec<ClientEvent>) {
        // INFO carries later changes (MNES), IS the answer to our SEND.
        let Some((&(IS | INFO), fields)) = data.split_first() else {
            tracing::debug!(
                ?data,
                "ignoring NEW-ENVIRON subnegotiation that is not IS/INFO"
            );
            return;
        };
        for (name, value) in parse_environ(fields) {
            // A VAR without VAL is undefined on the client: nothing to learn.
            let Some(value) = value else { continue };
            let value = value.trim().to_string();
            match name.to_ascii_uppercase().as_str() {
                "CLIENT_NAME" if !value.is_empty() => {
                    self.caps.client.client_name = Some(value);
                    self.explicit_name = true;
                }
                "CLIENT_VERSION" if !value.is_empty() => {
                    self.caps.client.client_version = Some(value)
                }
                "TERMINAL_TYPE" if !value.is_empty() => {
                    self.caps.client.terminal_type = Some(value);
                    self.explicit_terminal = true;
                }
                "MTTS" => match value.parse() {
                    Ok(mtts) => self.set_mtts(mtts),
                    Err(_) => tracing::debug!(%value, "ignoring malformed MNES MTTS"),
                },
                // Weaker than a CHARSET exchange, which overrides it.
                "CHARSET"
                    if !self.charset_settled
                        && is_latin1_name(value.as_bytes())
                        && self.caps.client.charset != Charset::Latin1 =>
                {
                    self.decide_charset(Charset::Latin1, events);
                }
                // IPADDRESS is the client's claim; the proxy knows the real peer.
                _ => {}
            }
        }
    }
}

/// Splits NEW-ENVIRON IS/INFO fields into (name, value) pairs; `None` for a
/// variable sent without VAL. ESC makes the next byte literal, so names and
/// values may contain the marker bytes.
pub(super) fn parse_environ(fields: &[u8]) -> Vec<(String, Option<String>)> {
    let mut vars: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
    let mut bytes = fields.iter();
    while let Some(&byte) = bytes.next() {
        let literal = match byte {
            ENV_VAR | ENV_USERVAR => {
                vars.push((Vec::new(), None));
                continue;
            }
            ENV_VAL => {
                if let Some((_, value)) = vars.last_mut() {
                    *value = Some(Vec::new());
                }
                continue;
            }
            ENV_ESC => match bytes.next() {
                Some(&escaped) => escaped,
                None => break,
            },
            other => other,
        };
        // Bytes before the first VAR belong to no variable: dropped.
        if let Some((name, value)) = vars.last_mut() {
            match value {
                Some(value) => value.push(literal),
                None => name.push(literal),
            }
        }
    }
    vars.into_iter()
        .map(|(name, value)| {
            (
                String::from_utf8_lossy(&name).into_owned(),
                value.map(|v| String::from_utf8_lossy(&v).into_owned()),
            )
        })
        .collect()
}
