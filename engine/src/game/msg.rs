//! Every string a player can see, built in one place so that styling (colour markup, wording)
//! can change without touching the rules.
//!
//! Everything returned here is markup ([`tether_protocol::markup`]). Arguments that came from
//! players (names, titles, what they say, what they typed wrong, what their client calls
//! itself) arrive as plain sanitized text and are escaped here, exactly once, by the function
//! that puts them into markup: nothing a player types can change colours or fake a line.
//! World text (room names and descriptions, the world's name) is markup already.

use tether_protocol::markup::escape;

use crate::world::Room;

use super::names::NameError;
use tether_protocol::markup::ColorDepth;

use super::{ClientInfo, DisplayPrefs, Vitals};

/// More than 4, so that `quit` at a password prompt can never be a real password.
pub(super) use crate::password::{MAX_LEN as MAX_PASSWORD, MIN_LEN as MIN_PASSWORD};
pub(super) const MAX_TITLE: usize = 60;

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
const TROUBLE: &str = "{red}";
const DONE: &str = "{bright-green}";
const HEADING: &str = "{bold}";

/// `markup` in `style`, then back to the default style. `markup` must not reset the style
/// itself, or the rest of it loses the colour.
fn paint(style: &str, markup: &str) -> String {
    format!("{style}{markup}{{/}}")
}

/// `Alice` or `Alice the Brave`, escaped.
pub(super) fn with_title(name: &str, title: &str) -> String {
    if title.is_empty() {
        escape(name)
    } else {
        escape(&format!("{name} {title}"))
    }
}

// ---- Prompts ----

pub(super) fn login_prompt() -> String {
    paint(HEADING, "login>") + " "
}

pub(super) fn password_prompt() -> String {
    "Password: ".to_owned()
}

pub(super) fn new_password_prompt() -> String {
    "Choose a password: ".to_owned()
}

/// `100/100hp 100/100mp > `, each number coloured by how full it is.
pub(super) fn prompt(vitals: &Vitals) -> String {
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

// ---- Before login ----

pub(super) fn banner(world: &str) -> String {
    format!(
        "Welcome to {}!\n\
         \n\
         To create a character:  create <name>\n\
         To log in:              connect <name>\n\
         Type \"help\" for more, or \"quit\" to leave.",
        paint("{bold}{bright-yellow}", world)
    )
}

pub(super) fn guest_help() -> String {
    format!(
        "{}\n\
         \x20 create <name>              make a new character; you are asked for a password\n\
         \x20 connect <name>             log in to your character; you are asked for your password\n\
         \x20 create <name> <password>   the same, all on one line\n\
         \x20 connect <name> <password>  (handy for scripts; your client may show the password)\n\
         \x20 client                     what the server knows about your client\n\
         \x20 help                       this text\n\
         \x20 quit                       leave\n\
         Names are 3 to 20 letters; passwords at least {MIN_PASSWORD} characters.\n\
         At a password prompt, an empty line cancels and \"quit\" leaves.",
        paint(HEADING, "Commands before you log in:")
    )
}

pub(super) fn guest_hint() -> &'static str {
    "You are not logged in. Use \"connect <name>\" or \"create <name>\" (\"help\" for more)."
}

pub(super) fn usage_create() -> &'static str {
    "Usage: create <name> [password]"
}

pub(super) fn usage_connect() -> &'static str {
    "Usage: connect <name> [password]"
}

pub(super) fn bad_name(error: NameError) -> String {
    paint(TROUBLE, &error.to_string())
}

pub(super) fn name_taken(name: &str) -> String {
    paint(
        TROUBLE,
        &format!("The name {} is already taken.", escape(name)),
    )
}

pub(super) fn password_too_short() -> String {
    paint(
        TROUBLE,
        &format!("Passwords must be at least {MIN_PASSWORD} characters long."),
    )
}

pub(super) fn password_too_long() -> String {
    paint(
        TROUBLE,
        &format!("Passwords can be at most {MAX_PASSWORD} characters long."),
    )
}

pub(super) fn login_cancelled() -> &'static str {
    "No password given; nothing happened."
}

pub(super) fn wrong_login() -> String {
    paint(TROUBLE, "Wrong name or password.")
}

pub(super) fn login_throttled(subject: &super::throttle::Subject, seconds: i64) -> String {
    let whose = match subject {
        super::throttle::Subject::Address(_) => "from your address",
        super::throttle::Subject::Account(_) => "for this character",
    };
    let unit = if seconds == 1 { "second" } else { "seconds" };
    paint(
        TROUBLE,
        &format!("Too many failed logins {whose}. Please try again in {seconds} {unit}."),
    )
}

pub(super) fn login_took_too_long() -> &'static str {
    "You took too long to log in."
}

pub(super) fn login_idle() -> &'static str {
    "Nothing typed for too long while logging in."
}

pub(super) fn too_many_failed_logins() -> &'static str {
    "Too many failed logins."
}

pub(super) fn internal_error() -> String {
    paint(
        TROUBLE,
        "Something went wrong on our side. Please try again.",
    )
}

pub(super) fn created(world: &str, name: &str) -> String {
    paint(
        DONE,
        &format!(
            "Welcome to {world}, {}! Your character has been created.",
            escape(name)
        ),
    )
}

pub(super) fn welcome_back(name: &str, took_over: bool) -> String {
    let name = escape(name);
    if took_over {
        format!("Welcome back, {name}. Your other connection has been closed.")
    } else {
        format!("Welcome back, {name}.")
    }
}

pub(super) fn too_much_input() -> &'static str {
    "Too much input while logging in."
}

// ---- Arriving and leaving ----

pub(super) fn entered_game(name: &str) -> String {
    paint(PEOPLE, &format!("{} has entered the game.", escape(name)))
}

pub(super) fn left_game(name: &str) -> String {
    paint(PEOPLE, &format!("{} has left the game.", escape(name)))
}

pub(super) fn logged_in_elsewhere() -> &'static str {
    "Logged in from elsewhere."
}

pub(super) fn farewell(name: Option<&str>) -> String {
    match name {
        Some(name) => format!("Farewell, {}. Come back soon!", escape(name)),
        None => "Farewell!".to_owned(),
    }
}

pub(super) fn goodbye() -> &'static str {
    "Goodbye."
}

// ---- Looking ----

/// `others` are `(name, title)` of the other characters in the room.
pub(super) fn room_view(room: &Room, others: &[(&str, &str)]) -> String {
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

pub(super) fn look_at(name: &str, title: &str, is_self: bool) -> String {
    if is_self {
        format!("You see yourself: {}.", with_title(name, title))
    } else {
        format!("You see {}.", with_title(name, title))
    }
}

pub(super) fn not_here(target: &str) -> String {
    format!("You don't see \"{}\" here.", escape(target))
}

// ---- Talking ----

pub(super) fn say_what() -> &'static str {
    "Say what?"
}

pub(super) fn you_say(text: &str) -> String {
    paint(SPEECH, &format!("You say, \"{}\"", escape(text)))
}

pub(super) fn says(name: &str, text: &str) -> String {
    paint(
        SPEECH,
        &format!("{} says, \"{}\"", escape(name), escape(text)),
    )
}

pub(super) fn emote_what() -> &'static str {
    "Emote what?"
}

pub(super) fn emote(name: &str, text: &str) -> String {
    // Possessives and punctuation attach to the name: `:'s hat flies off` -> `Alice's hat ...`.
    if text.starts_with(['\'', ',', '.', '!', '?']) {
        escape(&format!("{name}{text}"))
    } else {
        escape(&format!("{name} {text}"))
    }
}

pub(super) fn tell_usage() -> &'static str {
    "Usage: tell <name> <message>"
}

pub(super) fn tell_what(name: &str) -> String {
    format!("Tell {} what?", escape(name))
}

pub(super) fn not_online(name: &str) -> String {
    format!("No one called \"{}\" is online.", escape(name))
}

pub(super) fn tell_self() -> &'static str {
    "You tell yourself a secret. It stays safe with you."
}

pub(super) fn you_tell(name: &str, text: &str) -> String {
    paint(
        TELL,
        &format!("You tell {}, \"{}\"", escape(name), escape(text)),
    )
}

pub(super) fn tells_you(name: &str, text: &str) -> String {
    paint(
        TELL,
        &format!("{} tells you, \"{}\"", escape(name), escape(text)),
    )
}

/// `online` are `(name, title)`, already sorted.
pub(super) fn who(online: &[(&str, &str)]) -> String {
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

// ---- Moving ----

pub(super) fn go_where() -> &'static str {
    "Go where?"
}

pub(super) fn no_exit() -> &'static str {
    "You can't go that way."
}

pub(super) fn leaves(name: &str, exit: &str) -> String {
    paint(
        PEOPLE,
        &format!("{} leaves {}.", escape(name), escape(exit)),
    )
}

pub(super) fn arrives(name: &str) -> String {
    paint(PEOPLE, &format!("{} arrives.", escape(name)))
}

/// A change could not be saved, so it was not made.
pub(super) fn not_saved() -> String {
    paint(
        TROUBLE,
        "Something went wrong on our side and nothing was changed. Please try again.",
    )
}

/// The database file went away under the game: nothing can be saved.
pub(super) fn database_lost() -> String {
    paint(
        TROUBLE,
        "[tether] The game cannot save anything right now (its database is missing), so \
         nothing was changed. The operators have been told; please try again later.",
    )
}

// ---- Titles ----

pub(super) fn title_too_long() -> String {
    format!("Titles can be at most {MAX_TITLE} characters long.")
}

pub(super) fn title_set(name: &str, title: &str) -> String {
    format!("You are now known as {}.", with_title(name, title))
}

pub(super) fn title_cleared() -> &'static str {
    "Your title has been cleared."
}

// ---- Vitals ----

pub(super) fn rested() -> &'static str {
    "You rest for a moment and feel fully refreshed."
}

// ---- Settings and the client ----

pub(super) fn config(prefs: &DisplayPrefs) -> String {
    format!(
        "{}\n\
         \x20 wrap   {:<9}  wrap long lines to your window (config wrap on|off)\n\
         \x20 color  {:<9}  colours (config color auto|none|16|256|truecolor)\n\
         \"auto\" uses what your client says it can show.",
        paint(HEADING, "Your display settings:"),
        on_off(prefs.wrap),
        super::color_word(prefs.color),
    )
}

pub(super) fn config_usage() -> &'static str {
    "Usage: config, config wrap on|off, config color auto|none|16|256|truecolor"
}

pub(super) fn wrap_set(wrap: bool) -> String {
    paint(DONE, &format!("Line wrapping is now {}.", on_off(wrap)))
}

pub(super) fn color_set(color: Option<ColorDepth>) -> String {
    let text = match color {
        None => "Colours now follow what your client says it can show.",
        Some(ColorDepth::None) => "Colours are now off.",
        Some(ColorDepth::Ansi16) => "Colours now use the 16 basic colours.",
        Some(ColorDepth::Ansi256) => "Colours now use the 256-colour palette.",
        Some(ColorDepth::TrueColor) => "Colours now use full 24-bit colour.",
    };
    paint(DONE, text)
}

fn on_off(value: bool) -> &'static str {
    if value { "on" } else { "off" }
}

/// `Client: TINTIN++ 2.02, terminal tmux-256color, 120x40, UTF-8, MTTS 271, GMCP on`.
/// Every field came from the client, so every one of them is escaped.
pub(super) fn client_info(info: &ClientInfo) -> String {
    let clean = |text: &str| escape(&crate::text::sanitize_player_text(text));
    let mut parts = Vec::new();
    let name = info.client_name.as_deref().map(clean).unwrap_or_default();
    let version = info
        .client_version
        .as_deref()
        .map(clean)
        .unwrap_or_default();
    parts.push(match (name.is_empty(), version.is_empty()) {
        (false, false) => format!("{name} {version}"),
        (false, true) => name,
        (true, _) => "unknown".to_owned(),
    });
    if let Some(terminal) = info.terminal_type.as_deref().map(clean)
        && !terminal.is_empty()
    {
        parts.push(format!("terminal {terminal}"));
    }
    match (info.width, info.height) {
        (Some(width), Some(height)) => parts.push(format!("{width}x{height}")),
        (Some(width), None) => parts.push(format!("{width} columns")),
        (None, Some(height)) => parts.push(format!("{height} rows")),
        (None, None) => {}
    }
    parts.push(info.charset.name().to_owned());
    if let Some(mtts) = info.mtts {
        parts.push(format!("MTTS {mtts}"));
    }
    if info.screen_reader {
        parts.push("screen reader".to_owned());
    }
    parts.push(format!("GMCP {}", on_off(info.gmcp)));
    format!("{} {}", paint(HEADING, "Client:"), parts.join(", "))
}

// ---- Help and the rest ----

pub(super) fn game_help(is_admin: bool) -> String {
    let mut text = paint(HEADING, "Commands:");
    text.push_str(
        "\n\
         \x20 look [name]          look around, or at someone here (also: l)\n\
         \x20 say <text>           speak to the room (also: '<text>)\n\
         \x20 emote <text>         act, e.g. \"emote waves\" (also: :<text>)\n\
         \x20 tell <name> <text>   speak privately to someone online\n\
         \x20 who                  see who is online\n\
         \x20 <exit>, go <exit>    move; n, s, e, w, u, d, ne, nw, se, sw work too\n\
         \x20 title [text]         set your title, or clear it\n\
         \x20 rest                 catch your breath\n\
         \x20 config               show your display settings:\n\
         \x20   config wrap on|off                          wrap long lines\n\
         \x20   config color auto|none|16|256|truecolor     colours\n\
         \x20 client               what the server knows about your client\n\
         \x20 quit                 leave the game",
    );
    if is_admin {
        text.push('\n');
        text.push_str(&paint(HEADING, "Admin commands:"));
        text.push_str(
            "\n\
             \x20 @reload              restart the game core; players stay connected\n\
             \x20 @upgrade-proxy       start a new proxy that takes every connection over\n\
             \x20 @shutdown            stop the server",
        );
    }
    text
}

/// A command panicked: the game caught it and carries on.
pub(super) fn command_failed() -> String {
    paint(
        TROUBLE,
        "[tether] That command failed because of an error in the game, so it may not have \
         done everything. The game carries on; the error has been logged.",
    )
}

/// A line that two cores died handling in a row, so it is not run again. `line` is `None`
/// for a login line, which is never repeated back.
pub(super) fn quarantined(line: Option<&str>) -> String {
    let what = line.map_or_else(
        || "Your last login line".to_string(),
        |line| format!("Your command \"{}\"", escape(line)),
    );
    paint(
        TROUBLE,
        &format!(
            "[tether] {what} stopped the game twice, so it was not run again. Everything \
             after it goes on as normal."
        ),
    )
}

pub(super) fn huh() -> &'static str {
    "Huh? Type \"help\" for commands."
}

pub(super) fn reloading() -> &'static str {
    "Reloading the game core..."
}

pub(super) fn upgrading_proxy() -> &'static str {
    "Upgrading the proxy; nobody will be disconnected..."
}

pub(super) fn shutting_down() -> &'static str {
    "Shutting down..."
}

#[cfg(test)]
mod tests {
    use tether_protocol::markup::{Token, plain, tokens};

    use super::*;

    /// Catches misspelt tags, which the renderer would show as text.
    fn assert_no_stray_braces(markup: &str) {
        for token in tokens(markup) {
            if let Token::Text(text) = token {
                assert!(!text.contains(['{', '}']), "{markup:?}");
            }
        }
    }

    #[test]
    fn own_markup_is_well_formed() {
        let vitals = Vitals {
            hp: 10,
            max_hp: 100,
            mp: 60,
            max_mp: 100,
        };
        let info = ClientInfo {
            client_name: Some("Mudlet".into()),
            width: Some(80),
            ..ClientInfo::default()
        };
        for markup in [
            login_prompt(),
            prompt(&vitals),
            prompt(&Vitals::full()),
            banner("World"),
            guest_help(),
            bad_name(NameError::TooShort),
            wrong_login(),
            created("World", "Alice"),
            entered_game("Alice"),
            says("Alice", "hi"),
            tells_you("Alice", "hi"),
            who(&[("Alice", "the Brave")]),
            config(&DisplayPrefs::default()),
            wrap_set(false),
            color_set(Some(ColorDepth::TrueColor)),
            client_info(&info),
            game_help(true),
            not_saved(),
        ] {
            assert_no_stray_braces(&markup);
        }
    }

    #[test]
    fn prompt_colours_follow_the_gauge() {
        let mut vitals = Vitals::full();
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
    }

    #[test]
    fn client_info_line() {
        let info = ClientInfo {
            client_name: Some("TINTIN++".into()),
            client_version: Some("2.02".into()),
            terminal_type: Some("tmux-256color".into()),
            mtts: Some(271),
            width: Some(120),
            height: Some(40),
            charset: tether_protocol::message::Charset::Utf8,
            screen_reader: false,
            gmcp: true,
        };
        assert_eq!(
            plain(&client_info(&info)),
            "Client: TINTIN++ 2.02, terminal tmux-256color, 120x40, UTF-8, MTTS 271, GMCP on"
        );
        let sneaky = ClientInfo {
            client_name: Some("{red}Evil\x1b[2J\nclient".into()),
            screen_reader: true,
            ..ClientInfo::default()
        };
        assert_eq!(
            plain(&client_info(&sneaky)),
            "Client: {red}Evil client, UTF-8, screen reader, GMCP off"
        );
        assert_eq!(
            plain(&client_info(&ClientInfo::default())),
            "Client: unknown, UTF-8, GMCP off"
        );
    }
}
