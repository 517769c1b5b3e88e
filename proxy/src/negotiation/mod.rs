//! Per-session telnet option negotiation, sans-IO: telnet events in, bytes
//! for the client and [`ClientEvent`]s for the session out.
//!
//! One [`Negotiation`] lives as long as the player's connection, in the
//! proxy, so what the client agreed to survives game-core restarts.
//!
//! Both sides of every option follow the RFC 1143 Q method (`options`). Each sub-protocol
//! has its own file: `ttype` (TTYPE/MTTS), `naws`, `environ` (NEW-ENVIRON/MNES), `charset`,
//! `gmcp`, `mssp`; `color` is the colour policy that follows from what the client said.

mod charset;
mod color;
mod environ;
mod gmcp;
mod mssp;
mod naws;
mod options;
#[cfg(test)]
mod tests;
mod ttype;

pub use charset::encode_text;
pub use mssp::MSSP_REQUEST;

use serde::{Deserialize, Serialize};
use tether_protocol::message::{Charset, ClientInfo};

use crate::gmcp::Gmcp;
use crate::telnet::{self, IAC, TelnetEvent, option};
use options::{Change, OptionState, Side};
use ttype::TtypeCycle;

/// TTYPE and NEW-ENVIRON subcommands.
const IS: u8 = 0x00;
const SEND: u8 = 0x01;
const INFO: u8 = 0x02;

/// Something the session has to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// [`Negotiation::capabilities`] changed (at most once per `handle` call,
    /// after that call's other events).
    CapabilitiesChanged,
    /// A GMCP message for the game. `json` is valid JSON when present.
    Gmcp {
        package: String,
        json: Option<String>,
    },
    /// The client agreed to MCCP2. Write this call's `out` first (it may hold
    /// our WILL), then the start sequence from
    /// [`crate::mccp::Compressor::start`] in one write, never split, and
    /// compress everything after.
    StartCompression,
    /// The client asked to stop MCCP2. Finish the stream first, then write
    /// this call's `out` uncompressed.
    StopCompression,
    /// The client sent DO MSSP: answer with [`Negotiation::mssp_reply`].
    MsspRequested,
    /// The encoding for text both ways from now on.
    CharsetDecided(Charset),
}

/// What we learned about the client. Read-only for the session: only the
/// negotiation writes it, so it cannot drift from what was agreed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Capabilities {
    /// What the core hears about the client too.
    pub client: ClientInfo,
    /// The client agreed to EOR: prompts end with IAC EOR.
    pub eor: bool,
}

/// Option negotiation and client capabilities for one session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Negotiation {
    /// RFC 1143 state of the options that ever left the default (`No`), which are only those
    /// we request or accept: a dozen at most, where two full tables took 1 KiB per session.
    options: Vec<(Side, u8, OptionState)>,
    caps: Capabilities,
    /// What the client sends over GMCP and which packages it wants.
    gmcp: Gmcp,
    /// The session wants input hidden (between hide_input(true) and (false)).
    echo_wanted: bool,
    ttype: TtypeCycle,
    /// Our CHARSET REQUEST is unanswered.
    charset_requested: bool,
    /// A CHARSET exchange settled the encoding; weaker hints no longer apply.
    charset_settled: bool,
    /// The name came from NEW-ENVIRON or Core.Hello, which beat TTYPE's guess.
    explicit_name: bool,
    /// The terminal type came from NEW-ENVIRON TERMINAL_TYPE.
    explicit_terminal: bool,
}

impl Default for Negotiation {
    fn default() -> Self {
        Self::new()
    }
}

impl Negotiation {
    pub fn new() -> Self {
        Self {
            options: Vec::new(),
            caps: Capabilities::default(),
            gmcp: Gmcp::listed(),
            echo_wanted: false,
            ttype: TtypeCycle::default(),
            charset_requested: false,
            charset_settled: false,
            explicit_name: false,
            explicit_terminal: false,
        }
    }

    /// Appends the opening offers. ECHO and SGA are not offered: input is
    /// visible until a password prompt, and recent Mudlet refuses SGA. MCCP
    /// v1 (85) is never offered: its start sequence is malformed telnet.
    /// Calling it again sends nothing (the requests are already in flight).
    pub fn start(&mut self, out: &mut Vec<u8>) {
        for opt in [option::EOR, option::GMCP, option::MSSP, option::MCCP2] {
            self.request(Side::Us, opt, true, out);
        }
        for opt in [
            option::TTYPE,
            option::NAWS,
            option::NEW_ENVIRON,
            option::CHARSET,
        ] {
            self.request(Side::Him, opt, true, out);
        }
    }

    pub fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    /// Handles one telnet event from the client. Data events are ignored:
    /// they belong to the line assembler.
    pub fn handle(
        &mut self,
        event: &TelnetEvent,
        out: &mut Vec<u8>,
        events: &mut Vec<ClientEvent>,
    ) {
        let before = self.caps.clone();
        match event {
            TelnetEvent::Will(opt) => {
                let change = self.received(Side::Him, *opt, true, out);
                self.remote_changed(*opt, change, out);
            }
            TelnetEvent::Wont(opt) => {
                let change = self.received(Side::Him, *opt, false, out);
                self.remote_changed(*opt, change, out);
            }
            TelnetEvent::Do(opt) => {
                let change = self.received(Side::Us, *opt, true, out);
                self.local_changed(*opt, change, out, events);
            }
            TelnetEvent::Dont(opt) => {
                let change = self.received(Side::Us, *opt, false, out);
                self.local_changed(*opt, change, out, events);
            }
            TelnetEvent::Subnegotiation { option, data } => {
                self.subnegotiation(*option, data, out, events);
            }
            TelnetEvent::Data(_) | TelnetEvent::Command(_) => {}
        }
        self.caps.client.gmcp = self.local_enabled(option::GMCP);
        self.caps.eor = self.local_enabled(option::EOR);
        if self.caps != before {
            events.push(ClientEvent::CapabilitiesChanged);
        }
    }

    /// What ends a prompt (text without a newline) so the client shows it
    /// instead of holding it back. Append it to every prompt, login prompts
    /// included (once Mudlet has seen one GA it waits for it every time),
    /// and never right after a CRLF (Mudlet then shows a blank line).
    pub fn prompt_end(&self) -> &'static [u8] {
        if self.local_enabled(option::EOR) {
            &[IAC, telnet::EOR]
        } else if self.local_enabled(option::SGA) {
            // With SGA agreed the client does not expect GA; some print it.
            &[]
        } else {
            &[IAC, telnet::GA]
        }
    }

    /// Asks the client to stop (true) or resume (false) local echo, for
    /// password prompts: we claim WILL ECHO and then do not echo. Repeated
    /// calls with the same value send nothing, and a change of mind before
    /// the client answered is queued (RFC 1143) rather than sent at once,
    /// since rapid toggling breaks Mudlet's input masking.
    pub fn hide_input(&mut self, hide: bool, out: &mut Vec<u8>) {
        if hide == self.echo_wanted {
            return;
        }
        self.echo_wanted = hide;
        self.request(Side::Us, option::ECHO, hide, out);
    }

    fn remote_changed(&mut self, opt: u8, change: Change, out: &mut Vec<u8>) {
        match (opt, change) {
            (option::TTYPE, Change::Enabled) => self.ttype_started(out),
            (option::TTYPE, Change::Disabled) => self.ttype_stopped(),
            (option::NEW_ENVIRON, Change::Enabled) => self.environ_started(out),
            (option::CHARSET, Change::Enabled) => self.request_charset(out),
            (option::CHARSET, Change::Disabled) if !self.local_enabled(option::CHARSET) => {
                self.charset_requested = false;
            }
            _ => {}
        }
    }

    fn local_changed(
        &mut self,
        opt: u8,
        change: Change,
        out: &mut Vec<u8>,
        events: &mut Vec<ClientEvent>,
    ) {
        match (opt, change) {
            (option::MCCP2, Change::Enabled) => events.push(ClientEvent::StartCompression),
            (option::MCCP2, Change::Disabled) => events.push(ClientEvent::StopCompression),
            (option::MSSP, Change::Enabled) => events.push(ClientEvent::MsspRequested),
            // A (re)started GMCP session announces its packages afresh.
            (option::GMCP, Change::Enabled) => self.gmcp.restart(),
            (option::CHARSET, Change::Enabled) => self.request_charset(out),
            (option::CHARSET, Change::Disabled) if !self.remote_enabled(option::CHARSET) => {
                self.charset_requested = false;
            }
            _ => {}
        }
    }

    fn subnegotiation(
        &mut self,
        opt: u8,
        data: &[u8],
        out: &mut Vec<u8>,
        events: &mut Vec<ClientEvent>,
    ) {
        // Subnegotiation is only valid for an agreed option (RFC 855); acting
        // on others would let a client skip our policy.
        match opt {
            option::TTYPE if self.remote_enabled(opt) => self.ttype_reply(data, out),
            option::NAWS if self.remote_enabled(opt) => self.naws(data),
            option::NEW_ENVIRON if self.remote_enabled(opt) => self.environ(data, events),
            option::CHARSET if self.remote_enabled(opt) || self.local_enabled(opt) => {
                self.charset(data, out, events);
            }
            option::GMCP if self.local_enabled(opt) => self.gmcp_in(data, out, events),
            _ => tracing::debug!(
                option = opt,
                "ignoring subnegotiation for an option not agreed"
            ),
        }
    }
}
