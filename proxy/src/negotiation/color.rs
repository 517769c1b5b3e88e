//! Colour policy: how many colours a client gets when the player has not chosen. MTTS is the
//! client's own declaration; terminal and client names are only guesses.

use tether_protocol::markup::ColorDepth;

use super::Capabilities;
use super::ttype::{MTTS_256_COLORS, MTTS_ANSI, MTTS_SCREEN_READER, MTTS_TRUECOLOR};

impl Capabilities {
    pub fn color_depth(&self) -> ColorDepth {
        let mtts = self.client.mtts.unwrap_or(0);
        if self.client.screen_reader || mtts & MTTS_SCREEN_READER != 0 {
            return ColorDepth::None;
        }
        // MTTS is the client's own declaration; names are only guesses.
        if self.client.mtts.is_some() {
            return if mtts & MTTS_TRUECOLOR != 0 {
                ColorDepth::TrueColor
            } else if mtts & MTTS_256_COLORS != 0 {
                ColorDepth::Ansi256
            } else if mtts & MTTS_ANSI != 0 {
                ColorDepth::Ansi16
            } else {
                ColorDepth::None
            };
        }
        let names = [&self.client.terminal_type, &self.client.client_name];
        if names.iter().all(|name| name.is_none()) {
            // Nothing answered TTYPE: more likely a bot or netcat than a
            // terminal, and escape codes would be noise there.
            return ColorDepth::None;
        }
        names
            .iter()
            .filter_map(|name| name.as_deref().and_then(name_color_hint))
            .max()
            // Anything that answers TTYPE with a name we do not know is
            // still a terminal, and those all do basic ANSI.
            .unwrap_or(ColorDepth::Ansi16)
    }
}

/// Colour depth implied by a terminal type or client name, if it implies one.
pub(super) fn name_color_hint(name: &str) -> Option<ColorDepth> {
    let name = name.to_ascii_lowercase();
    let hint = if matches!(name.as_str(), "mudlet" | "tintin++" | "blightmud")
        || name.contains("truecolor")
        || name.contains("24bit")
        || name.ends_with("-direct")
    {
        ColorDepth::TrueColor
    } else if name.contains("256") || matches!(name.as_str(), "mushclient" | "cmud") {
        ColorDepth::Ansi256
    } else if name == "dumb" {
        ColorDepth::None
    } else if [
        "ansi", "xterm", "color", "linux", "screen", "tmux", "rxvt", "vt100",
    ]
    .iter()
    .any(|known| name.contains(known))
    {
        ColorDepth::Ansi16
    } else {
        return None;
    };
    Some(hint)
}
