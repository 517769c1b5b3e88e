//! NAWS (RFC 1073): the client's window size.

use super::Negotiation;

impl Negotiation {
    pub(super) fn naws(&mut self, data: &[u8]) {
        let &[w0, w1, h0, h1] = data else {
            tracing::debug!(?data, "ignoring malformed NAWS subnegotiation");
            return;
        };
        // 0 means "unknown" (RFC 1073).
        let size = |hi, lo| Some(u16::from_be_bytes([hi, lo])).filter(|&v| v > 0);
        self.caps.client.width = size(w0, w1);
        self.caps.client.height = size(h0, h1);
    }
}
