//! GMCP over telnet (option 201): subnegotiation framing around the rules every transport
//! shares (`crate::gmcp`).

use super::{ClientEvent, Negotiation};
use crate::gmcp::{self, Received};
use crate::telnet::{self, option};

impl Negotiation {
    /// Appends a GMCP message if the client agreed to GMCP and wants the package (or a parent
    /// of it; Core.* always goes). Returns whether it was written. `json` may be empty.
    pub fn gmcp_message(&self, package: &str, json: &str, out: &mut Vec<u8>) -> bool {
        if !self.local_enabled(option::GMCP) || !self.gmcp.wants(package) {
            return false;
        }
        let text = gmcp::message_text(package, json);
        telnet::subnegotiation(option::GMCP, text.as_bytes(), out);
        true
    }

    pub(super) fn gmcp_in(
        &mut self,
        data: &[u8],
        out: &mut Vec<u8>,
        events: &mut Vec<ClientEvent>,
    ) {
        match self.gmcp.receive_bytes(data, &mut self.caps.client) {
            Ok(Received::Hello { named }) => self.explicit_name |= named,
            Ok(Received::Supports) => {}
            // Clients measure latency with it; the answer carries no payload.
            Ok(Received::Ping) => telnet::subnegotiation(option::GMCP, b"Core.Ping", out),
            Ok(Received::ForGame { package, json }) => {
                events.push(ClientEvent::Gmcp { package, json });
            }
            Err(ignored) => tracing::debug!(%ignored, "ignoring a GMCP message from the client"),
        }
    }
}
