//! Every string a player can see, built in one place so that styling (colour markup, wording)
//! can change without touching the rules.
//!
//! Everything returned here is markup ([`tether_protocol::markup`]). Arguments that came from
//! players (names, titles, what they say, what they typed wrong, what their client calls
//! itself) arrive as plain sanitized text and are escaped here, exactly once, by the function
//! that puts them into markup: nothing a player types can change colours or fake a line.
//! World text (room names and descriptions, the world's name) is markup already.

use tether_protocol::markup::escape;

use super::names::NameError;
use tether_protocol::markup::ColorDepth;

use std::time::Duration;

use super::moderation::BanLength;
use super::{ClientInfo, DisplayPrefs};
use crate::db::{AuditEntry, Ban, BanTarget, PlannedShutdown};

/// More than 4, so that `quit` at a password prompt can never be a real password.
pub(super) use crate::password::{MAX_LEN as MAX_PASSWORD, MIN_LEN as MIN_PASSWORD};

// ---- The palette ----
//
// Few colours, each with one meaning, so that players learn them: cyan places, green ways
// out, yellow people coming and going, bright yellow speech, magenta private words, red
// trouble.

const PEOPLE: &str = "{yellow}";
const TROUBLE: &str = "{red}";
const DONE: &str = "{bright-green}";
const HEADING: &str = "{bold}";

/// `markup` in `style`, then back to the default style. `markup` must not reset the style
/// itself, or the rest of it loses the colour.
fn paint(style: &str, markup: &str) -> String {
    format!("{style}{markup}{{/}}")
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

// ---- Looking ----

// ---- Talking ----

// ---- Moving ----

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

// ---- Vitals ----

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

/// The prompt of a game that has none of its own.
pub(super) fn default_prompt() -> String {
    "> ".to_owned()
}

/// After a command's arguments did not fit.
pub(super) fn usage(usage: &str) -> String {
    format!("Usage: {}", escape(usage))
}

/// `help`'s list: `(usage, summary)` of every command the player may use, then the topics.
pub(super) fn help_index(
    commands: &[(&str, &str)],
    admin: &[(&str, &str)],
    topics: &[&str],
) -> String {
    let list = |heading: &str, entries: &[(&str, &str)]| {
        let width = entries
            .iter()
            .map(|(u, _)| u.chars().count())
            .max()
            .unwrap_or(0);
        let mut text = paint(HEADING, heading);
        for (usage, summary) in entries {
            text.push_str(&format!(
                "\n  {:<width$}  {}",
                escape(usage),
                escape(summary)
            ));
        }
        text
    };
    let mut text = list("Commands:", commands);
    if !admin.is_empty() {
        text.push('\n');
        text.push_str(&list("Admin commands:", admin));
    }
    if !topics.is_empty() {
        text.push('\n');
        text.push_str(&format!(
            "{} {}",
            paint(HEADING, "Topics:"),
            escape(&topics.join(", "))
        ));
    }
    text.push_str("\nType \"help <command>\" for more about one.");
    text
}

/// `help <command>`: its usage, other names, summary and longer help (markup already).
pub(super) fn help_page(usage: &str, aliases: &[String], summary: &str, help: &str) -> String {
    let mut text = paint(HEADING, &format!("Usage: {}", escape(usage)));
    if !aliases.is_empty() {
        text.push_str(&format!("\nAlso: {}", escape(&aliases.join(", "))));
    }
    if !summary.is_empty() {
        text.push('\n');
        text.push_str(&escape(summary));
    }
    if !help.is_empty() {
        text.push('\n');
        text.push_str(help);
    }
    text
}

pub(super) fn no_help(word: &str) -> String {
    format!("There is no help on \"{}\".", escape(word))
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

// ---- Moderation ----

/// A span of time the way people say it, rounded to its largest unit: `2 hours`, `1 minute`,
/// `45 seconds` (under a second counts as one).
pub(super) fn span(span: Duration) -> String {
    // Rounded up to whole seconds, so that an hour less a few milliseconds is "1 hour".
    let seconds = u64::try_from(span.as_millis().div_ceil(1000))
        .unwrap_or(u64::MAX)
        .max(1);
    let (count, unit) = [
        (7 * 86_400, "week"),
        (86_400, "day"),
        (3_600, "hour"),
        (60, "minute"),
    ]
    .into_iter()
    .find(|(size, _)| seconds >= *size)
    .map_or((seconds, "second"), |(size, unit)| (seconds / size, unit));
    let plural = if count == 1 { "" } else { "s" };
    format!("{count} {unit}{plural}")
}

fn span_between(from_ms: i64, to_ms: i64) -> String {
    span(Duration::from_millis(
        u64::try_from(to_ms.saturating_sub(from_ms)).unwrap_or(0),
    ))
}

/// ` Reason: ...` for a reason given, nothing otherwise.
fn because(reason: &str) -> String {
    if reason.is_empty() {
        String::new()
    } else {
        format!(" Reason: {}", escape(reason))
    }
}

/// Last words ([`Delivery::Disconnect`](tether_protocol::message::Delivery)) are plain text,
/// not markup: these two are not painted or escaped.
pub(super) fn kicked(reason: &str) -> String {
    format!(
        "An administrator has disconnected you.{}",
        plain_because(reason)
    )
}

fn plain_because(reason: &str) -> String {
    if reason.is_empty() {
        String::new()
    } else {
        format!(" Reason: {reason}")
    }
}

pub(super) fn kick_done(name: &str) -> String {
    format!("{} has been disconnected.", escape(name))
}

/// The last words (plain text, see [`kicked`]) to a connection a ban keeps out, or closes.
pub(super) fn banned(ban: &Ban, now_ms: i64) -> String {
    let who = match &ban.target {
        BanTarget::Name(_) => "This character is",
        BanTarget::Address(_) => "Connections from your address are",
    };
    let until = match ban.expires_ms {
        None => " until further notice".to_owned(),
        Some(at) => format!(" for {}", span_between(now_ms, at)),
    };
    format!("{who} banned{until}.{}", plain_because(&ban.reason))
}

pub(super) fn name_banned(name: &str) -> String {
    paint(
        TROUBLE,
        &format!("The name {} cannot be used.", escape(name)),
    )
}

pub(super) fn ban_done(target: &BanTarget, length: BanLength, closed: usize) -> String {
    let how_long = match length {
        BanLength::Forever => "until lifted".to_owned(),
        BanLength::For(length) => format!("for {}", span(length)),
    };
    let closed = match closed {
        0 => String::new(),
        1 => " 1 connection was closed.".to_owned(),
        n => format!(" {n} connections were closed."),
    };
    format!(
        "{} is banned {how_long}.{closed}",
        escape(&target.to_string())
    )
}

pub(super) fn unbanned(target: &BanTarget, lifted: bool) -> String {
    let target = escape(&target.to_string());
    if lifted {
        format!("The ban on {target} is lifted.")
    } else {
        format!("{target} is not banned.")
    }
}

pub(super) fn ban_list(bans: &[Ban], now_ms: i64) -> String {
    if bans.is_empty() {
        return "Nobody is banned.".to_owned();
    }
    let mut text = paint(HEADING, "Bans");
    for ban in bans {
        let until = match ban.expires_ms {
            None => "until lifted".to_owned(),
            Some(at) => format!("{} left", span_between(now_ms, at)),
        };
        text.push_str(&format!(
            "\n  {:<24} {until}, by {}",
            escape(&ban.target.to_string()),
            escape(&ban.by),
        ));
        if !ban.reason.is_empty() {
            text.push_str(&format!(": {}", escape(&ban.reason)));
        }
    }
    text
}

pub(super) fn wall(actor: &str, text: &str) -> String {
    format!(
        "{} {}",
        paint("{bold}{bright-magenta}", &format!("[{}]", escape(actor))),
        escape(text)
    )
}

pub(super) fn admin_set(name: &str, admin: bool, changed: bool) -> String {
    let name = escape(name);
    match (admin, changed) {
        (true, true) => format!("{name} is now an administrator."),
        (true, false) => format!("{name} was already an administrator."),
        (false, true) => format!("{name} is no longer an administrator."),
        (false, false) => format!("{name} was not an administrator."),
    }
}

pub(super) fn shutdown_in(left: Duration, reason: &str) -> String {
    paint(
        TROUBLE,
        &format!(
            "The server shuts down in {}.{}",
            span(left),
            because(reason)
        ),
    )
}

pub(super) fn shutdown_now(reason: &str) -> String {
    paint(
        TROUBLE,
        &format!("The server is shutting down now.{}", because(reason)),
    )
}

pub(super) fn shutdown_cancelled() -> &'static str {
    "{bright-green}The shutdown is called off.{/}"
}

pub(super) fn shutdown_status(plan: Option<&PlannedShutdown>, now_ms: i64) -> String {
    match plan {
        None => "No shutdown is planned. Usage: @shutdown now|<minutes>|<time>|cancel [reason]"
            .to_owned(),
        Some(plan) => format!(
            "The server shuts down in {}, as {} planned.{}",
            span_between(now_ms, plan.at_ms),
            escape(&plan.by),
            because(&plan.reason)
        ),
    }
}

pub(super) fn audit_trail(trail: &[AuditEntry], now_ms: i64) -> String {
    if trail.is_empty() {
        return "No administrator has done anything yet.".to_owned();
    }
    let mut text = paint(HEADING, "Administrators' actions, latest last");
    for entry in trail {
        text.push_str(&format!(
            "\n  {:>12} ago  {} {} {}",
            span_between(entry.at_ms, now_ms),
            escape(&entry.actor),
            escape(&entry.action),
            escape(&entry.target),
        ));
        if !entry.detail.is_empty() {
            text.push_str(&format!(" ({})", escape(&entry.detail)));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use tether_protocol::markup::plain;

    use crate::testing::assert_well_formed_markup as assert_no_stray_braces;

    use super::*;

    #[test]
    fn own_markup_is_well_formed() {
        let info = ClientInfo {
            client_name: Some("Mudlet".into()),
            width: Some(80),
            ..ClientInfo::default()
        };
        for markup in [
            login_prompt(),
            banner("World"),
            guest_help(),
            bad_name(NameError::TooShort),
            wrong_login(),
            created("World", "Alice"),
            entered_game("Alice"),
            config(&DisplayPrefs::default()),
            wrap_set(false),
            color_set(Some(ColorDepth::TrueColor)),
            client_info(&info),
            help_index(
                &[("look", "look around")],
                &[("@reload", "reload")],
                &["rules"],
            ),
            help_page(
                "tell <name> <text>",
                &["t".to_owned()],
                "speak privately",
                "",
            ),
            not_saved(),
        ] {
            assert_no_stray_braces(&markup);
        }
        let ban = Ban {
            target: BanTarget::Name("Mallory".into()),
            reason: "spam".into(),
            by: "Root".into(),
            created_ms: 0,
            expires_ms: Some(60_000),
        };
        let entry = AuditEntry {
            at_ms: 0,
            actor: "Root".into(),
            action: "ban".into(),
            target: "Mallory".into(),
            detail: "spam".into(),
        };
        let plan = PlannedShutdown {
            at_ms: 60_000,
            reason: "upgrade".into(),
            by: "Root".into(),
        };
        for markup in [
            name_banned("Mallory"),
            ban_done(&ban.target, BanLength::Forever, 1),
            ban_list(std::slice::from_ref(&ban), 0),
            wall("Root", "hello"),
            shutdown_in(Duration::from_secs(60), "upgrade"),
            shutdown_now(""),
            shutdown_cancelled().to_owned(),
            shutdown_status(Some(&plan), 0),
            audit_trail(&[entry], 1_000),
        ] {
            assert_no_stray_braces(&markup);
        }
    }

    #[test]
    fn spans_read_as_people_say_them() {
        assert_eq!(span(Duration::from_millis(300)), "1 second");
        assert_eq!(span(Duration::from_secs(45)), "45 seconds");
        assert_eq!(span(Duration::from_secs(60)), "1 minute");
        assert_eq!(span(Duration::from_secs(600)), "10 minutes");
        assert_eq!(span(Duration::from_secs(7200)), "2 hours");
        assert_eq!(span(Duration::from_secs(3 * 86_400)), "3 days");
        assert_eq!(span(Duration::from_secs(14 * 86_400)), "2 weeks");
    }

    #[test]
    fn an_administrators_words_are_escaped() {
        assert_eq!(plain(&wall("Root", "{red}hi")), "[Root] {red}hi");
        assert_eq!(
            kicked("{blink}bye"),
            "An administrator has disconnected you. Reason: {blink}bye",
            "last words are plain text"
        );
        assert_eq!(span(Duration::from_millis(3_599_999)), "1 hour");
    }

    #[test]
    fn player_text_is_escaped_once() {
        assert_eq!(plain(&no_help("{/}x")), "There is no help on \"{/}x\".");
        assert_eq!(
            plain(&farewell(Some("{red}A"))),
            "Farewell, {red}A. Come back soon!"
        );
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
