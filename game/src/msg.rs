//! Every string the demo game shows, built in one place so that styling (colour markup,
//! wording) can change without touching the rules.
//!
//! Everything returned here is markup. Arguments that came from players (names, titles, what
//! they say) arrive as plain sanitized text and are escaped here, exactly once, by the
//! function that puts them into markup: nothing a player types can change colours or fake a
//! line. World text (room names, descriptions and details) is markup already.

use tether_engine::escape;
use tether_engine::world::Room;

use crate::vitals::Vitals;

pub(crate) const MAX_TITLE: usize = 60;

// ---- The palette ----
//
// Few colours, each with one meaning, so that players learn them: cyan places, green ways
// out, yellow people coming and going, bright yellow speech, magenta private words, red
// trouble.

const ROOM_NAME: &str = "{bold}{bright-cyan}";
const EXITS: &str = "{green}";
const PEOPLE: &str = "{yellow}";
const SPEECH: &str = "{bright-yellow}";
const TELL: &str = "{bright-magenta}";
const CHANNEL: &str = "{cyan}";
const TROUBLE: &str = "{red}";
const DONE: &str = "{bright-green}";
const HEADING: &str = "{bold}";

/// `markup` in `style`, then back to the default style. `markup` must not reset the style
/// itself, or the rest of it loses the colour.
fn paint(style: &str, markup: &str) -> String {
    format!("{style}{markup}{{/}}")
}

/// `Alice` or `Alice the Brave`, escaped.
pub(crate) fn with_title(name: &str, title: &str) -> String {
    if title.is_empty() {
        escape(name)
    } else {
        escape(&format!("{name} {title}"))
    }
}

/// `100/100hp 100/100mp > `, each number coloured by how full it is.
pub(crate) fn prompt(vitals: &Vitals) -> String {
    fn gauge(now: u32, max: u32, unit: &str) -> String {
        let style = match (now.saturating_mul(4), max) {
            (_, 0) => "{green}",
            (quarters, max) if quarters > max.saturating_mul(2) => "{green}",
            (quarters, max) if quarters > max => "{yellow}",
            _ => "{red}",
        };
        format!("{}/{max}{unit}", paint(style, &now.to_string()))
    }
    format!(
        "{} {} > ",
        gauge(vitals.hp, vitals.max_hp, "hp"),
        gauge(vitals.mp, vitals.max_mp, "mp")
    )
}

/// `others` are `(name, title)` of the other characters in the room.
pub(crate) fn room_view(room: &Room, others: &[(&str, &str)]) -> String {
    let mut text = format!(
        "{}\n{}\n",
        paint(ROOM_NAME, room.name()),
        room.description()
    );
    if room.exits().is_empty() {
        text.push_str(&paint(EXITS, "Exits: none."));
    } else {
        // Exit names are single lowercase words (the world checks), so no escaping needed.
        let names: Vec<&str> = room.exits().iter().map(|e| e.name()).collect();
        text.push_str(&paint(EXITS, &format!("Exits: {}.", names.join(", "))));
    }
    for (name, title) in others {
        text.push('\n');
        text.push_str(&paint(
            PEOPLE,
            &format!("{} is here.", with_title(name, title)),
        ));
    }
    text
}

pub(crate) fn look_at(name: &str, title: &str, is_self: bool) -> String {
    if is_self {
        format!("You see yourself: {}.", with_title(name, title))
    } else {
        format!("You see {}.", with_title(name, title))
    }
}

pub(crate) fn not_here(target: &str) -> String {
    format!("You don't see \"{}\" here.", escape(target))
}

pub(crate) fn say_what() -> &'static str {
    "Say what?"
}

pub(crate) fn you_say(text: &str) -> String {
    paint(SPEECH, &format!("You say, \"{}\"", escape(text)))
}

pub(crate) fn says(name: &str, text: &str) -> String {
    paint(
        SPEECH,
        &format!("{} says, \"{}\"", escape(name), escape(text)),
    )
}

pub(crate) fn emote_what() -> &'static str {
    "Emote what?"
}

pub(crate) fn emote(name: &str, text: &str) -> String {
    // Possessives and punctuation attach to the name: `:'s hat flies off` -> `Alice's hat ...`.
    if text.starts_with(['\'', ',', '.', '!', '?']) {
        escape(&format!("{name}{text}"))
    } else {
        escape(&format!("{name} {text}"))
    }
}

pub(crate) fn tell_what(name: &str) -> String {
    format!("Tell {} what?", escape(name))
}

pub(crate) fn not_online(name: &str) -> String {
    format!("No one called \"{}\" is online.", escape(name))
}

pub(crate) fn tell_self() -> &'static str {
    "You tell yourself a secret. It stays safe with you."
}

pub(crate) fn you_tell(name: &str, text: &str) -> String {
    paint(
        TELL,
        &format!("You tell {}, \"{}\"", escape(name), escape(text)),
    )
}

pub(crate) fn tells_you(name: &str, text: &str) -> String {
    paint(
        TELL,
        &format!("{} tells you, \"{}\"", escape(name), escape(text)),
    )
}

/// `online` are `(name, title)`, already sorted.
pub(crate) fn who(online: &[(&str, &str)]) -> String {
    let mut text = paint(HEADING, "Players online:");
    for (name, title) in online {
        text.push_str(&format!("\n  {}", with_title(name, title)));
    }
    match online.len() {
        1 => text.push_str("\n1 player online."),
        n => text.push_str(&format!("\n{n} players online.")),
    }
    text
}

pub(crate) fn go_where() -> &'static str {
    "Go where?"
}

pub(crate) fn no_exit() -> &'static str {
    "You can't go that way."
}

pub(crate) fn leaves(name: &str, exit: &str) -> String {
    paint(
        PEOPLE,
        &format!("{} leaves {}.", escape(name), escape(exit)),
    )
}

pub(crate) fn arrives(name: &str) -> String {
    paint(PEOPLE, &format!("{} arrives.", escape(name)))
}

pub(crate) fn title_too_long() -> String {
    format!("Titles can be at most {MAX_TITLE} characters long.")
}

pub(crate) fn title_set(name: &str, title: &str) -> String {
    format!("You are now known as {}.", with_title(name, title))
}

pub(crate) fn title_cleared() -> &'static str {
    "Your title has been cleared."
}

pub(crate) fn rested() -> &'static str {
    "You rest for a moment and feel fully refreshed."
}

pub(crate) fn ooc(name: &str, text: &str) -> String {
    paint(
        CHANNEL,
        &format!("[ooc] {}: {}", escape(name), escape(text)),
    )
}

pub(crate) fn move_not_saved() -> String {
    paint(
        TROUBLE,
        "Your move could not be saved, so you stay where you are. Please try again later.",
    )
}

pub(crate) fn too_tired() -> &'static str {
    "You are too tired to train. Rest, or wait a little."
}

pub(crate) fn trained() -> String {
    paint(DONE, "You train hard and feel it in your arms.")
}

pub(crate) fn ooc_topic() -> &'static str {
    "Channels:\n\
     \x20 say <text>    the room you are in hears it ('<text> for short)\n\
     \x20 tell <name>   one player, wherever they are\n\
     \x20 ooc <text>    everyone in the game (out of character)\n\
     Clients with GMCP get them as Comm.Channel.Text too, for a chat window."
}

pub(crate) fn movement_topic() -> &'static str {
    "Movement: type an exit's name (north, or n for short; up, down, and any other exit a room \
     lists), or \"go <exit>\". Moving is free; \"train\" tires you, and you get your strength \
     back over time or with \"rest\"."
}

#[cfg(test)]
mod tests {
    use tether_engine::testing::assert_well_formed_markup as assert_no_stray_braces;
    use tether_protocol::markup::plain;

    use super::*;

    #[test]
    fn own_markup_is_well_formed() {
        let vitals = Vitals {
            hp: 10,
            max_hp: 100,
            mp: 60,
            max_mp: 100,
        };
        for markup in [
            prompt(&vitals),
            prompt(&Vitals::default()),
            says("Alice", "hi"),
            tells_you("Alice", "hi"),
            who(&[("Alice", "the Brave")]),
            ooc("Alice", "hi"),
            trained(),
            move_not_saved(),
        ] {
            assert_no_stray_braces(&markup);
        }
    }

    #[test]
    fn prompt_colours_follow_the_gauge() {
        let mut vitals = Vitals::default();
        assert_eq!(plain(&prompt(&vitals)), "100/100hp 100/100mp > ");
        assert!(prompt(&vitals).starts_with("{green}100{/}/100hp"));
        vitals.hp = 40;
        assert!(prompt(&vitals).starts_with("{yellow}40{/}"));
        vitals.hp = 25;
        assert!(prompt(&vitals).starts_with("{red}25{/}"));
    }

    #[test]
    fn player_text_is_escaped_once() {
        assert_eq!(
            says("Alice", "{red}hi"),
            "{bright-yellow}Alice says, \"{{red}hi\"{/}"
        );
        assert_eq!(
            plain(&with_title("Alice", "{bold}the {{Bold}")),
            "Alice {bold}the {{Bold}"
        );
        assert_eq!(plain(&not_here("{/}x")), "You don't see \"{/}x\" here.");
        assert_eq!(plain(&emote("Bob", "'s {red}hat")), "Bob's {red}hat");
        assert_eq!(plain(&ooc("Bob", "{red}x")), "[ooc] Bob: {red}x");
    }
}
