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
    /// The last thing written was a prompt with nothing to mark its end (no EOR or GA), so
    /// the client's cursor sits after it: text arriving now must start on a new line. Typing
    /// a line ends it (the client echoed the Enter).
    after_bare_prompt: bool,
}

impl Wire {
    /// Where raw telnet bytes (negotiation, subnegotiations) go.
    pub fn pending(&mut self) -> &mut Vec<u8> {
        &mut self.pending
    }

    /// Game text in markup, rendered for this client, plus a line end.
    pub fn text(&mut self, markup: &str, caps: &Capabilities, prefs: &DisplayPrefs) {
        self.leave_prompt();
        self.render(markup, caps, prefs);
        self.pending.extend_from_slice(b"\r\n");
    }

    /// A prompt: rendered, no line end, then EOR or GA as the client expects. Clients that
    /// get either end the prompt's line themselves when text follows; for the others, the
    /// next text starts with a line end ([`Wire::line_typed`] says when not to).
    pub fn prompt(&mut self, markup: &str, caps: &Capabilities, prefs: &DisplayPrefs, end: &[u8]) {
        self.leave_prompt();
        // Wrapping drops spaces at the end of a line; a prompt keeps its own, or what the
        // player types runs into it.
        let kept = &markup[markup.trim_end_matches(' ').len()..];
        self.render_keeping(markup, caps, prefs, kept);
        self.pending.extend_from_slice(end);
        self.after_bare_prompt = end.is_empty();
    }

    /// The player sent a line: their client echoed its Enter, so the cursor is on a fresh
    /// line.
    pub fn line_typed(&mut self) {
        self.after_bare_prompt = false;
    }

    /// Starts a new line if the cursor sits after a bare prompt.
    fn leave_prompt(&mut self) {
        if std::mem::take(&mut self.after_bare_prompt) {
            self.pending.extend_from_slice(b"\r\n");
        }
    }

    /// A line from tether itself: plain, marked, never coloured.
    pub fn notice(&mut self, text: &str, caps: &Capabilities) {
        self.leave_prompt();
        negotiation::encode_text(
            caps.client.charset,
            &format!("[tether] {text}\n"),
            &mut self.pending,
        );
    }

    fn render(&mut self, text: &str, caps: &Capabilities, prefs: &DisplayPrefs) {
        self.render_keeping(text, caps, prefs, "");
    }

    /// Renders `text`, wrapped if the player wants it, with `kept` put back after wrapping.
    fn render_keeping(
        &mut self,
        text: &str,
        caps: &Capabilities,
        prefs: &DisplayPrefs,
        kept: &str,
    ) {
        let depth = prefs.color.unwrap_or_else(|| caps.color_depth());
        let wrapped;
        let text = match caps.client.width {
            Some(width) if prefs.wrap && width > 0 => {
                let mut lines = markup::wrap(text, usize::from(width));
                if !lines.ends_with(kept) {
                    lines.push_str(kept);
                }
                wrapped = lines;
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
            // Not carried: after a hand-over, at worst one line shares the prompt's.
            after_bare_prompt: false,
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
            Some(compressor) => {
                let before = self.ready.len();
                compressor.compress(&self.pending, &mut self.ready);
                crate::metrics::global().compressed(self.pending.len(), self.ready.len() - before);
            }
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
    fn a_wrapped_prompt_keeps_its_trailing_space() {
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
        wire.prompt("{bold}login>{/} ", &caps, &prefs, &[255, 249]);
        assert_eq!(wire.take(), b"login> \xff\xf9");
        wire.prompt("100hp 100mp > ", &caps, &prefs, &[]);
        assert_eq!(wire.take(), b"100hp\r\n100mp > ");
    }

    #[test]
    fn text_after_a_bare_prompt_starts_on_a_new_line() {
        let caps = Capabilities::default();
        let prefs = DisplayPrefs {
            wrap: false,
            color: Some(ColorDepth::None),
        };
        let mut wire = Wire::default();
        wire.prompt("> ", &caps, &prefs, &[]);
        wire.text("Bob says hi", &caps, &prefs);
        wire.prompt("> ", &caps, &prefs, &[]);
        wire.notice("The game is back.", &caps);
        assert_eq!(
            wire.take(),
            b"> \r\nBob says hi\r\n> \r\n[tether] The game is back.\r\n"
        );
        // The player's Enter already moved the cursor: no empty line before the answer.
        wire.prompt("> ", &caps, &prefs, &[]);
        wire.line_typed();
        wire.text("You say hi", &caps, &prefs);
        // A client told where the prompt ends (GA or EOR) breaks the line itself.
        wire.prompt("> ", &caps, &prefs, &[255, 249]);
        wire.text("Bob waves", &caps, &prefs);
        assert_eq!(wire.take(), b"> You say hi\r\n> \xff\xf9Bob waves\r\n");
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
