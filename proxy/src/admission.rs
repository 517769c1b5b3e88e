//! What a player's typing must pass before it becomes a line for the core, the same on every
//! transport: the line assembler (line ends, the length cap, UTF-8, control characters) and
//! the flood guard, with the same words for every refusal. (The third bound, lines waiting for
//! a core, is the relay's, which every transport shares too.)

use std::time::Instant;

use serde::{Deserialize, Serialize};
use tether_protocol::message::Charset;

use crate::close::{CloseReason, FLOOD_NOTICE};
use crate::flood::{FloodGuard, FloodLimits, Verdict};
use crate::line::{self, LineAssembler, LineEvent, MAX_LINE_BYTES};
use crate::metrics::{self, Refusal};

/// Lines that passed, and what the player must be told, from one piece of input.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Admitted {
    pub lines: Vec<String>,
    pub notices: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Admission {
    lines: LineAssembler,
    flood: FloodGuard,
}

impl Admission {
    pub fn new(now: Instant) -> Admission {
        Admission {
            lines: LineAssembler::new(MAX_LINE_BYTES),
            flood: FloodGuard::new(FloodLimits::default(), now),
        }
    }

    /// The same rules for a session that carries on after a crash: nothing half typed (it
    /// may have been finished and sent since), a full flood budget.
    pub fn at_rest(&self) -> Admission {
        let mut rested = Admission::new(Instant::now());
        rested.lines.set_latin1(self.lines.is_latin1());
        rested
    }

    /// The encoding typed lines arrive in (after CHARSET negotiation).
    pub fn set_charset(&mut self, charset: Charset) {
        self.lines.set_latin1(charset == Charset::Latin1);
    }

    /// Typed bytes from a stream: lines come out as their ends arrive.
    pub fn typed(
        &mut self,
        bytes: &[u8],
        now: Instant,
        admitted: &mut Admitted,
    ) -> Result<(), CloseReason> {
        self.take(bytes, false, now, admitted)
    }

    /// Typed bytes that are one whole line (a WebSocket frame), with or without its end.
    pub fn typed_line(
        &mut self,
        bytes: &[u8],
        now: Instant,
        admitted: &mut Admitted,
    ) -> Result<(), CloseReason> {
        self.take(bytes, true, now, admitted)
    }

    fn take(
        &mut self,
        bytes: &[u8],
        whole_line: bool,
        now: Instant,
        admitted: &mut Admitted,
    ) -> Result<(), CloseReason> {
        let mut events = Vec::new();
        self.lines.push(bytes, &mut events);
        if whole_line && !bytes.ends_with(b"\n") {
            self.lines.push(b"\n", &mut events);
        }
        self.admit(events, now, admitted)
    }

    /// A message that is not a line (GMCP from the client) spends from the same budget:
    /// `Ok(true)` take it, `Ok(false)` it was refused.
    pub fn message(
        &mut self,
        now: Instant,
        notices: &mut Vec<String>,
    ) -> Result<bool, CloseReason> {
        match self.flood.check(now) {
            Verdict::Accept => Ok(true),
            Verdict::Refuse { first } => {
                metrics::global().refused(Refusal::too_fast);
                if first {
                    notices.push(self.too_fast());
                }
                Ok(false)
            }
            Verdict::Disconnect => {
                notices.push(FLOOD_NOTICE.to_string());
                Err(CloseReason::Flood)
            }
        }
    }

    fn admit(
        &mut self,
        events: Vec<LineEvent>,
        now: Instant,
        admitted: &mut Admitted,
    ) -> Result<(), CloseReason> {
        for event in events {
            match event {
                LineEvent::Overlong { limit } => {
                    metrics::global().refused(Refusal::overlong);
                    admitted.notices.push(line::overlong_notice(limit));
                }
                LineEvent::Line(line) => {
                    if line.had_invalid_utf8 {
                        metrics::global().refused(Refusal::invalid_utf8);
                        admitted.notices.push(line::INVALID_UTF8_NOTICE.to_string());
                    }
                    if self.message(now, &mut admitted.notices)? {
                        admitted.lines.push(line.text);
                    }
                }
            }
        }
        Ok(())
    }

    fn too_fast(&self) -> String {
        let wait = self.flood.wait_hint().as_millis();
        format!(
            "You are sending too fast; lines are refused until you slow down (try again in \
             {wait} ms)."
        )
    }
}
