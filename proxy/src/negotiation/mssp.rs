//! MSSP: the game's facts for crawlers, over telnet option 70 or as plain text.

use super::Negotiation;
use crate::telnet::{self, option};

/// MSSP field markers.
const MSSP_VAR: u8 = 0x01;
const MSSP_VAL: u8 = 0x02;

/// What a player types to get MSSP as text when their client has no telnet MSSP; answer with
/// [`Negotiation::mssp_plain`].
pub const MSSP_REQUEST: &str = "MSSP-REQUEST";

impl Negotiation {
    /// Appends the MSSP subnegotiation for `vars` (NAME, PLAYERS and UPTIME
    /// are required by MSSP). Bytes 01 and 02 are dropped from names and
    /// values because they would end the field.
    pub fn mssp_reply(vars: &[(String, String)], out: &mut Vec<u8>) {
        let mut payload = Vec::new();
        for (name, value) in vars {
            payload.push(MSSP_VAR);
            payload.extend(name.bytes().filter(|&b| b != MSSP_VAR && b != MSSP_VAL));
            payload.push(MSSP_VAL);
            payload.extend(value.bytes().filter(|&b| b != MSSP_VAR && b != MSSP_VAL));
        }
        telnet::subnegotiation(option::MSSP, &payload, out);
    }

    /// The plain-text MSSP answer to [`MSSP_REQUEST`], with `\n` line ends
    /// (send it through [`encode_text`], which makes them CRLF). Tabs and
    /// line breaks inside names and values become spaces, as they would
    /// split the field or the line.
    pub fn mssp_plain(vars: &[(String, String)]) -> String {
        fn clean(text: &str) -> String {
            text.replace(['\t', '\r', '\n'], " ")
        }
        let mut text = String::from("MSSP-REPLY-START\n");
        for (name, value) in vars {
            text.push_str(&clean(name));
            text.push('\t');
            text.push_str(&clean(value));
            text.push('\n');
        }
        text.push_str("MSSP-REPLY-END\n");
        text
    }
}
