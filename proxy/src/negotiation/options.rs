//! RFC 1143's Q method for both sides of every option: never answer a request for the state
//! an option is already in, never re-send a request in flight (queue the reversal instead),
//! and allow any option to be renegotiated. That is what keeps two implementations from
//! bouncing WILL/DO at each other forever. Also which options we agree to at all.

use super::Negotiation;
use crate::telnet::{self, DO, DONT, WILL, WONT, option};
use serde::{Deserialize, Serialize};

impl Negotiation {
    /// Whether we perform `opt` (the client answered our WILL with DO).
    pub fn local_enabled(&self, opt: u8) -> bool {
        self.state(Side::Us, opt).q == Q::Yes
    }

    /// Whether the client performs `opt` (it answered our DO with WILL).
    pub fn remote_enabled(&self, opt: u8) -> bool {
        self.state(Side::Him, opt).q == Q::Yes
    }

    pub(super) fn state(&self, side: Side, opt: u8) -> OptionState {
        self.options
            .iter()
            .find(|(s, o, _)| (*s, *o) == (side, opt))
            .map_or_else(OptionState::default, |(_, _, state)| *state)
    }

    /// Read-modify-write access to an option's state. `f` is handed a copy, and only a state
    /// that differs from the default is stored, so options the client merely mentions (and we
    /// refuse) cost nothing.
    pub(super) fn update_state<R>(
        &mut self,
        side: Side,
        opt: u8,
        f: impl FnOnce(&mut OptionState) -> R,
    ) -> R {
        let index = self
            .options
            .iter()
            .position(|(s, o, _)| (*s, *o) == (side, opt));
        let mut state = index.map_or_else(OptionState::default, |i| self.options[i].2);
        let result = f(&mut state);
        match index {
            Some(i) => self.options[i].2 = state,
            None if !state.is_default() => self.options.push((side, opt, state)),
            None => {}
        }
        result
    }

    /// Whether we agree when the client asks to enable `opt` on `side`.
    pub(super) fn accepts(&self, side: Side, opt: u8) -> bool {
        match side {
            Side::Us => match opt {
                option::EOR
                | option::GMCP
                | option::MSSP
                | option::MCCP2
                | option::SGA
                | option::CHARSET => true,
                // Only while a password prompt is up: a WILL ECHO left on
                // makes Mudlet mask every line for the rest of the session.
                option::ECHO => self.echo_wanted,
                _ => false,
            },
            Side::Him => matches!(
                opt,
                option::TTYPE | option::NAWS | option::NEW_ENVIRON | option::CHARSET | option::SGA
            ),
        }
    }

    /// RFC 1143: the client sent WILL/WONT (`Him`) or DO/DONT (`Us`).
    pub(super) fn received(
        &mut self,
        side: Side,
        opt: u8,
        enable: bool,
        out: &mut Vec<u8>,
    ) -> Change {
        let accept = enable && self.accepts(side, opt);
        let (yes, no) = side.verbs();
        let (was_yes, is_yes, send) = self.update_state(side, opt, |state| {
            let (change, send) = match (enable, state.q, state.opposite) {
                (true, Q::No, _) if accept => (Some((Q::Yes, false)), Some(yes)),
                (true, Q::No, _) => (None, Some(no)),
                (true, Q::Yes, _) => (None, None),
                // The client's enable crossed our disable: the disable wins.
                (true, Q::WantNo, false) => (Some((Q::No, false)), None),
                (true, Q::WantNo, true) => (Some((Q::Yes, false)), None),
                (true, Q::WantYes, false) => (Some((Q::Yes, false)), None),
                (true, Q::WantYes, true) => (Some((Q::WantNo, false)), Some(no)),
                (false, Q::No, _) => (None, None),
                (false, Q::Yes, _) => (Some((Q::No, false)), Some(no)),
                (false, Q::WantNo, false) => (Some((Q::No, false)), None),
                (false, Q::WantNo, true) => (Some((Q::WantYes, false)), Some(yes)),
                (false, Q::WantYes, _) => (Some((Q::No, false)), None),
            };
            let was_yes = state.q == Q::Yes;
            if let Some((q, opposite)) = change {
                state.q = q;
                state.opposite = opposite;
            }
            (was_yes, state.q == Q::Yes, send)
        });
        if let Some(verb) = send {
            out.extend_from_slice(&telnet::negotiation(verb, opt));
        }
        match (was_yes, is_yes) {
            (false, true) => Change::Enabled,
            (true, false) => Change::Disabled,
            _ => Change::None,
        }
    }

    /// RFC 1143: we want `opt` on `side` enabled or disabled.
    pub(super) fn request(&mut self, side: Side, opt: u8, enable: bool, out: &mut Vec<u8>) {
        let (yes, no) = side.verbs();
        let send = self.update_state(side, opt, |state| match (enable, state.q, state.opposite) {
            (true, Q::No, _) => {
                state.q = Q::WantYes;
                Some(yes)
            }
            (true, Q::WantNo, false) | (false, Q::WantYes, false) => {
                // Sending now would race the request in flight: queue it.
                state.opposite = true;
                None
            }
            (true, Q::WantYes, true) | (false, Q::WantNo, true) => {
                // Back to what is in flight: drop the queued reversal.
                state.opposite = false;
                None
            }
            (false, Q::Yes, _) => {
                state.q = Q::WantNo;
                Some(no)
            }
            // Already there, or already on its way there.
            _ => None,
        });
        if let Some(verb) = send {
            out.extend_from_slice(&telnet::negotiation(verb, opt));
        }
    }
}

/// RFC 1143 state of one side of one option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub(super) enum Q {
    #[default]
    No,
    Yes,
    WantNo,
    WantYes,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub(super) struct OptionState {
    q: Q,
    /// The "opposite" queue bit: once the request in flight is answered,
    /// ask for the other state.
    opposite: bool,
}

impl OptionState {
    fn is_default(&self) -> bool {
        self.q == Q::No && !self.opposite
    }
}

/// `Us`: options we perform (we send WILL/WONT). `Him`: options the client
/// performs (we send DO/DONT).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum Side {
    Us,
    Him,
}

impl Side {
    /// (enable, disable) verbs we send for this side.
    fn verbs(self) -> (u8, u8) {
        match self {
            Side::Us => (WILL, WONT),
            Side::Him => (DO, DONT),
        }
    }
}

/// What an incoming negotiation did to an option, for side effects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Change {
    None,
    Enabled,
    Disabled,
}
