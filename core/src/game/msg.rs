//! Every string a player can see, built in one place so that styling (colour markup, wording)
//! can change without touching the rules. Arguments that came from players must already be
//! sanitized; nothing here adds terminal escapes.

use crate::world::Room;

use super::login::NameError;

pub(super) const MIN_PASSWORD: usize = 6;
pub(super) const MAX_PASSWORD: usize = 128;
pub(super) const MAX_TITLE: usize = 60;

/// `Alice` or `Alice the Brave`.
pub(super) fn with_title(name: &str, title: &str) -> String {
    if title.is_empty() {
        name.to_owned()
    } else {
        format!("{name} {title}")
    }
}

// ---- Before login ----

pub(super) fn banner(world: &str) -> String {
    format!(
        "Welcome to {world}!\n\
         \n\
         To create a character:  create <name> <password>\n\
         To log in:              connect <name> <password>\n\
         Type \"help\" for more, or \"quit\" to leave."
    )
}

pub(super) fn guest_help() -> String {
    format!(
        "Commands before you log in:\n\
         \x20 create <name> <password>   make a new character\n\
         \x20 connect <name> <password>  log in to your character\n\
         \x20 help                       this text\n\
         \x20 quit                       leave\n\
         Names are 3 to 20 letters; passwords at least {MIN_PASSWORD} characters."
    )
}

pub(super) fn guest_hint() -> &'static str {
    "You are not logged in. Use \"connect <name> <password>\" or \"create <name> <password>\" \
     (\"help\" for more)."
}

pub(super) fn usage_create() -> &'static str {
    "Usage: create <name> <password>"
}

pub(super) fn usage_connect() -> &'static str {
    "Usage: connect <name> <password>"
}

pub(super) fn bad_name(error: NameError) -> &'static str {
    match error {
        NameError::NotLetters => "Names may contain only the letters A to Z.",
        NameError::TooShort => "Names must be at least 3 letters long.",
        NameError::TooLong => "Names can be at most 20 letters long.",
    }
}

pub(super) fn name_taken(name: &str) -> String {
    format!("The name {name} is already taken.")
}

pub(super) fn password_too_short() -> String {
    format!("Passwords must be at least {MIN_PASSWORD} characters long.")
}

pub(super) fn password_too_long() -> String {
    format!("Passwords can be at most {MAX_PASSWORD} characters long.")
}

pub(super) fn wrong_login() -> &'static str {
    "Wrong name or password."
}

pub(super) fn internal_error() -> &'static str {
    "Something went wrong on our side. Please try again."
}

pub(super) fn created(world: &str, name: &str, is_admin: bool) -> String {
    let mut text = format!("Welcome to {world}, {name}! Your character has been created.");
    if is_admin {
        text.push_str("\nAs the first player here, you are this world's administrator.");
    }
    text
}

pub(super) fn welcome_back(name: &str, took_over: bool) -> String {
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
    format!("{name} has entered the game.")
}

pub(super) fn left_game(name: &str) -> String {
    format!("{name} has left the game.")
}

pub(super) fn logged_in_elsewhere() -> &'static str {
    "Logged in from elsewhere."
}

pub(super) fn farewell(name: Option<&str>) -> String {
    match name {
        Some(name) => format!("Farewell, {name}. Come back soon!"),
        None => "Farewell!".to_owned(),
    }
}

pub(super) fn goodbye() -> &'static str {
    "Goodbye."
}

// ---- Looking ----

/// `others` are `(name, title)` of the other characters in the room.
pub(super) fn room_view(room: &Room, others: &[(&str, &str)]) -> String {
    let mut text = format!("{}\n{}\n", room.name(), room.description());
    if room.exits().is_empty() {
        text.push_str("Exits: none.");
    } else {
        let names: Vec<&str> = room.exits().iter().map(|e| e.name()).collect();
        text.push_str(&format!("Exits: {}.", names.join(", ")));
    }
    for (name, title) in others {
        text.push_str(&format!("\n{} is here.", with_title(name, title)));
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
    format!("You don't see \"{target}\" here.")
}

// ---- Talking ----

pub(super) fn say_what() -> &'static str {
    "Say what?"
}

pub(super) fn you_say(text: &str) -> String {
    format!("You say, \"{text}\"")
}

pub(super) fn says(name: &str, text: &str) -> String {
    format!("{name} says, \"{text}\"")
}

pub(super) fn emote_what() -> &'static str {
    "Emote what?"
}

pub(super) fn emote(name: &str, text: &str) -> String {
    // Possessives and punctuation attach to the name: `:'s hat flies off` -> `Alice's hat ...`.
    if text.starts_with(['\'', ',', '.', '!', '?']) {
        format!("{name}{text}")
    } else {
        format!("{name} {text}")
    }
}

pub(super) fn tell_usage() -> &'static str {
    "Usage: tell <name> <message>"
}

pub(super) fn tell_what(name: &str) -> String {
    format!("Tell {name} what?")
}

pub(super) fn not_online(name: &str) -> String {
    format!("No one called \"{name}\" is online.")
}

pub(super) fn tell_self() -> &'static str {
    "You tell yourself a secret. It stays safe with you."
}

pub(super) fn you_tell(name: &str, text: &str) -> String {
    format!("You tell {name}, \"{text}\"")
}

pub(super) fn tells_you(name: &str, text: &str) -> String {
    format!("{name} tells you, \"{text}\"")
}

/// `online` are `(name, title)`, already sorted.
pub(super) fn who(online: &[(&str, &str)]) -> String {
    let mut text = String::from("Players online:");
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
    format!("{name} leaves {exit}.")
}

pub(super) fn arrives(name: &str) -> String {
    format!("{name} arrives.")
}

/// A change could not be saved, so it was not made.
pub(super) fn not_saved() -> &'static str {
    "Something went wrong on our side and nothing was changed. Please try again."
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

// ---- Help and the rest ----

pub(super) fn game_help(is_admin: bool) -> String {
    let mut text = String::from(
        "Commands:\n\
         \x20 look [name]          look around, or at someone here (also: l)\n\
         \x20 say <text>           speak to the room (also: '<text>)\n\
         \x20 emote <text>         act, e.g. \"emote waves\" (also: :<text>)\n\
         \x20 tell <name> <text>   speak privately to someone online\n\
         \x20 who                  see who is online\n\
         \x20 <exit>, go <exit>    move; n, s, e, w, u, d, ne, nw, se, sw work too\n\
         \x20 title [text]         set your title, or clear it\n\
         \x20 quit                 leave the game",
    );
    if is_admin {
        text.push_str(
            "\nAdmin commands:\n\
             \x20 @reload              restart the game core; players stay connected\n\
             \x20 @shutdown            stop the server",
        );
    }
    text
}

pub(super) fn huh() -> &'static str {
    "Huh? Type \"help\" for commands."
}

pub(super) fn reloading() -> &'static str {
    "Reloading the game core..."
}

pub(super) fn shutting_down() -> &'static str {
    "Shutting down..."
}
