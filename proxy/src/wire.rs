//! The way out to one telnet client, sans-IO: markup rendered for that client, encoded in its
//! charset, gathered, compressed if MCCP2 is on, and handed over as one write.
//!
//! Everything telnet (negotiation answers, text, GMCP) goes through `pending`, so that once
//! compression starts nothing can slip past the zlib stream, and the MCCP2 start sequence is
//! always written whole in one write (split start sequences broke Mudlet).

use serde::{Deserialize, Serialize};
use tether_protocol::markup;

use crate::mccp::Compressor;
use tether_protocol::message::DisplayPrefs;

use crate::negotiation::{self, Capabilities};

/// A [`Wire`]'s state, as [`Wire::hand_over`] or [`Wire::at_rest`] take it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireState {
    pending: Vec<u8>,
    ready: Vec<u8>,
    compressing: Compression,
}

/// MCCP2 in a carried wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Compression {
    Off,
    /// The stream was ended cleanly: start a new one.
    Restart,
    /// The client is inflating a stream nobody can end: carry it on
    /// ([`Compressor::resume`]).
    Continue,
}

#[derive(Default)]
pub struct Wire {
    /// Telnet bytes not yet sealed into `ready`.
    pending: Vec<u8>,
    /// Bytes ready for the socket (compressed if MCCP2 was on when they were sealed).
    ready: Vec<u8>,
    compressor: Option<Compressor>,
}

impl Wire {
    /// Where raw telnet bytes (negotiation, subnegotiations) go.
    pub fn pending(&mut self) -> &mut Vec<u8> {
        &mut self.pending
    }

    /// Game text in markup, rendered for this client, plus a line end.
    pub fn text(&mut self, markup: &str, caps: &Capabilities, prefs: &DisplayPrefs) {
        self.render(markup, caps, prefs);
        self.pending.extend_from_slice(b"\r\n");
    }

    /// A prompt: rendered, no line end, then EOR or GA as the client expects.
    pub fn prompt(&mut self, markup: &str, caps: &Capabilities, prefs: &DisplayPrefs, end: &[u8]) {
        self.render(markup, caps, prefs);
        self.pending.extend_from_slice(end);
    }

    /// A line from tether itself: plain, marked, never coloured.
    pub fn notice(&mut self, text: &str, caps: &Capabilities) {
        negotiation::encode_text(
            caps.client.charset,
            &format!("[tether] {text}\n"),
            &mut self.pending,
        );
    }

    fn render(&mut self, text: &str, caps: &Capabilities, prefs: &DisplayPrefs) {
        let depth = prefs.color.unwrap_or_else(|| caps.color_depth());
        let wrapped;
        let text = match caps.client.width {
            Some(width) if prefs.wrap && width > 0 => {
                wrapped = markup::wrap(text, usize::from(width));
                wrapped.as_str()
            }
            _ => text,
        };
        negotiation::encode_text(
            caps.client.charset,
            &markup::render_ansi(text, depth),
            &mut self.pending,
        );
    }

    pub fn start_compression(&mut self) {
        self.seal();
        if self.compressor.is_none() {
            // Without a stream (out of memory) the client is simply not compressed to.
            self.compressor = Compressor::start(&mut self.ready);
        }
    }

    /// Ends the zlib stream cleanly (the client asked, or the connection is closing). A
    /// resumed stream cannot be ended; what was sealed is flushed, and it is let go.
    pub fn stop_compression(&mut self) {
        self.seal();
        if let Some(compressor) = self.compressor.take()
            && !compressor.is_resumed()
        {
            compressor.finish(&mut self.ready);
        }
    }

    /// What this wire holds, to be carried to another process: unwritten bytes and whether
    /// MCCP2 is on. A zlib stream cannot be carried, so it is ended here (its last bytes join
    /// the unwritten ones) and a restored wire starts a new one: the MCCP2 spec lets a server
    /// end a stream and start another at any time, and the client's inflater never sees a
    /// stream cut short. The wire is left empty and uncompressed.
    pub fn hand_over(&mut self) -> WireState {
        let compressing = match &self.compressor {
            None => Compression::Off,
            // Unendable: the next proxy carries it on as this one did.
            Some(compressor) if compressor.is_resumed() => Compression::Continue,
            Some(_) => Compression::Restart,
        };
        if compressing == Compression::Continue {
            self.seal();
            self.compressor = None;
        } else {
            self.stop_compression();
        }
        WireState {
            pending: std::mem::take(&mut self.pending),
            ready: std::mem::take(&mut self.ready),
            compressing,
        }
    }

    /// What a proxy that dies now leaves the client with, for the keeper: nothing unwritten
    /// (a crash loses it), and the stream the client inflates, which the next proxy carries
    /// on. Every write is sync-flushed, so between writes the stream is at a block boundary.
    pub fn at_rest(&self) -> WireState {
        WireState {
            pending: Vec::new(),
            ready: Vec::new(),
            compressing: match self.compressor {
                Some(_) => Compression::Continue,
                None => Compression::Off,
            },
        }
    }

    pub fn restore(state: WireState) -> Wire {
        let mut wire = Wire {
            pending: Vec::new(),
            ready: state.ready,
            compressor: None,
        };
        match state.compressing {
            Compression::Off => {}
            Compression::Restart => wire.start_compression(),
            Compression::Continue => wire.compressor = Compressor::resume(),
        }
        wire.pending = state.pending;
        wire
    }

    /// Everything to write now, in order.
    ///
    /// Both buffers leave empty, without capacity: what was written is freed after the write.
    /// Keeping capacity for reuse pinned each session's largest burst (the room's arrivals
    /// while it logged in, say) for as long as it stayed connected, idle or not.
    pub fn take(&mut self) -> Vec<u8> {
        self.seal();
        self.pending = Vec::new();
        std::mem::take(&mut self.ready)
    }

    fn seal(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        match &mut self.compressor {
            Some(compressor) => compressor.compress(&self.pending, &mut self.ready),
            // Nothing sealed yet: hand the bytes over instead of copying them.
            None if self.ready.is_empty() => std::mem::swap(&mut self.ready, &mut self.pending),
            None => self.ready.extend_from_slice(&self.pending),
        }
        self.pending.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use tether_protocol::markup::ColorDepth;
    use tether_protocol::message::{Charset, ClientInfo};

    fn inflate(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut decoder = flate2::read::ZlibDecoder::new(bytes);
        decoder
            .read_to_end(&mut out)
            .expect("a complete zlib stream");
        out
    }

    #[test]
    fn text_is_rendered_for_the_client_and_ends_with_crlf() {
        let mut wire = Wire::default();
        let caps = Capabilities {
            client: ClientInfo {
                mtts: Some(1 | 8),
                ..ClientInfo::default()
            },
            ..Capabilities::default()
        };
        wire.text("{red}hi{/}", &caps, &DisplayPrefs::default());
        assert_eq!(wire.take(), b"\x1b[31mhi\x1b[0m\r\n");
    }

    #[test]
    fn a_screen_reader_gets_plain_text_and_a_player_choice_wins_over_the_client() {
        let caps = Capabilities {
            client: ClientInfo {
                mtts: Some(1 | 64),
                ..ClientInfo::default()
            },
            ..Capabilities::default()
        };
        let mut wire = Wire::default();
        wire.text("{red}hi", &caps, &DisplayPrefs::default());
        assert_eq!(wire.take(), b"hi\r\n");
        let prefs = DisplayPrefs {
            wrap: false,
            color: Some(ColorDepth::Ansi16),
        };
        wire.text("{red}hi", &caps, &prefs);
        assert!(wire.take().starts_with(b"\x1b[31m"));
    }

    #[test]
    fn text_wraps_to_the_window_when_the_player_wants_it() {
        let caps = Capabilities {
            client: ClientInfo {
                width: Some(10),
                ..ClientInfo::default()
            },
            ..Capabilities::default()
        };
        let prefs = DisplayPrefs {
            wrap: true,
            color: Some(ColorDepth::None),
        };
        let mut wire = Wire::default();
        wire.text("aaaa bbbb cccc", &caps, &prefs);
        assert_eq!(wire.take(), b"aaaa bbbb\r\ncccc\r\n");
    }

    #[test]
    fn compression_starts_whole_and_finishes_cleanly() {
        let caps = Capabilities::default();
        let prefs = DisplayPrefs {
            wrap: false,
            color: Some(ColorDepth::None),
        };
        let mut wire = Wire::default();
        wire.pending().extend_from_slice(&[255, 251, 86]);
        wire.start_compression();
        wire.text("one", &caps, &prefs);
        let first = wire.take();
        assert!(first.starts_with(&[255, 251, 86, 255, 250, 86, 255, 240]));
        wire.text("two", &caps, &prefs);
        let second = wire.take();
        wire.stop_compression();
        let last = wire.take();
        wire.text("plain again", &caps, &prefs);
        let after = wire.take();

        let mut stream = first[8..].to_vec();
        stream.extend_from_slice(&second);
        stream.extend_from_slice(&last);
        assert_eq!(inflate(&stream), b"one\r\ntwo\r\n");
        assert_eq!(after, b"plain again\r\n");
    }

    #[test]
    fn latin1_clients_get_latin1_bytes() {
        let caps = Capabilities {
            client: ClientInfo {
                charset: Charset::Latin1,
                ..ClientInfo::default()
            },
            ..Capabilities::default()
        };
        let prefs = DisplayPrefs {
            wrap: false,
            color: Some(ColorDepth::None),
        };
        let mut wire = Wire::default();
        wire.text("café ☃", &caps, &prefs);
        assert_eq!(wire.take(), b"caf\xe9 ?\r\n");
    }
}
