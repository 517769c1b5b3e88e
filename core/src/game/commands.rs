//! Commands of players who are in the game.

use tether_protocol::SessionKey;

use super::{AdminRequest, Game, Outbox, Outgoing, chain, msg, split_word};
use crate::text::sanitize_player_text;

pub(super) fn play(game: &mut Game, key: SessionKey, line: &str, out: &mut Outbox) {
    let line = line.trim();
    let (verb, rest) = if let Some(rest) = line.strip_prefix('\'') {
        ("say", rest)
    } else if let Some(rest) = line.strip_prefix(':') {
        ("emote", rest)
    } else {
        split_word(line)
    };
    match verb.to_ascii_lowercase().as_str() {
        "" => {}
        "look" | "l" => look(game, key, rest, out),
        "say" => say(game, key, rest, out),
        "emote" => emote(game, key, rest, out),
        "who" => who(game, key, out),
        "tell" => tell(game, key, rest, out),
        "go" if rest.is_empty() => out.text(key, msg::go_where()),
        "go" => go(game, key, rest, out),
        "title" => title(game, key, rest, out),
        "help" => {
            let is_admin = game.player(key).is_some_and(|p| p.is_admin);
            out.text(key, msg::game_help(is_admin));
        }
        "quit" => quit(game, key, out),
        "@reload" => admin(game, key, AdminRequest::Reload, out),
        "@shutdown" => admin(game, key, AdminRequest::Shutdown, out),
        word if rest.is_empty() && has_exit(game, key, word) => go(game, key, word, out),
        _ => out.text(key, msg::huh()),
    }
}

fn has_exit(game: &Game, key: SessionKey, word: &str) -> bool {
    game.player(key)
        .and_then(|p| game.world.room(&p.room))
        .is_some_and(|room| room.exit(word).is_some())
}

/// Shows the player's room the way `look` does.
pub(super) fn look_around(game: &Game, key: SessionKey, out: &mut Outbox) {
    let Some(player) = game.player(key) else {
        return;
    };
    let Some(room) = game.world.room(&player.room) else {
        return;
    };
    let others: Vec<(&str, &str)> = game
        .active_players()
        .into_iter()
        .filter(|(k, p)| *k != key && p.room == player.room)
        .map(|(_, p)| (p.name.as_str(), p.title.as_str()))
        .collect();
    out.text(key, msg::room_view(room, &others));
}

fn look(game: &Game, key: SessionKey, rest: &str, out: &mut Outbox) {
    let target = sanitize_player_text(rest.strip_prefix("at ").unwrap_or(rest));
    if target.is_empty() {
        return look_around(game, key, out);
    }
    let Some(me) = game.player(key) else {
        return;
    };
    let found = game
        .active_players()
        .into_iter()
        .find(|(_, p)| p.room == me.room && p.name.eq_ignore_ascii_case(&target));
    match found {
        Some((k, p)) => out.text(key, msg::look_at(&p.name, &p.title, k == key)),
        None => out.text(key, msg::not_here(&target)),
    }
}

fn say(game: &Game, key: SessionKey, rest: &str, out: &mut Outbox) {
    let text = sanitize_player_text(rest);
    let Some(me) = game.player(key) else {
        return;
    };
    if text.is_empty() {
        return out.text(key, msg::say_what());
    }
    out.text(key, msg::you_say(&text));
    game.tell_room(&me.room, key, &msg::says(&me.name, &text), out);
}

fn emote(game: &Game, key: SessionKey, rest: &str, out: &mut Outbox) {
    let text = sanitize_player_text(rest);
    let Some(me) = game.player(key) else {
        return;
    };
    if text.is_empty() {
        return out.text(key, msg::emote_what());
    }
    let line = msg::emote(&me.name, &text);
    out.text(key, line.as_str());
    game.tell_room(&me.room, key, &line, out);
}

fn who(game: &Game, key: SessionKey, out: &mut Outbox) {
    let online: Vec<(&str, &str)> = game
        .active_players()
        .into_iter()
        .map(|(_, p)| (p.name.as_str(), p.title.as_str()))
        .collect();
    out.text(key, msg::who(&online));
}

fn tell(game: &Game, key: SessionKey, rest: &str, out: &mut Outbox) {
    let (target, text) = split_word(rest);
    let target = sanitize_player_text(target);
    let text = sanitize_player_text(text);
    let Some(me) = game.player(key) else {
        return;
    };
    if target.is_empty() {
        return out.text(key, msg::tell_usage());
    }
    let found = game
        .active_players()
        .into_iter()
        .find(|(_, p)| p.name.eq_ignore_ascii_case(&target));
    let Some((to_key, to)) = found else {
        return out.text(key, msg::not_online(&target));
    };
    if text.is_empty() {
        return out.text(key, msg::tell_what(&to.name));
    }
    if to_key == key {
        return out.text(key, msg::tell_self());
    }
    out.text(key, msg::you_tell(&to.name, &text));
    out.text(to_key, msg::tells_you(&me.name, &text));
}

fn go(game: &mut Game, key: SessionKey, word: &str, out: &mut Outbox) {
    let Some(me) = game.player(key) else {
        return;
    };
    let exit = game
        .world
        .room(&me.room)
        .and_then(|room| room.exit(word))
        .map(|exit| (exit.name().to_owned(), exit.to().to_owned()));
    let Some((exit, to)) = exit else {
        return out.text(key, msg::no_exit());
    };
    let (id, name, from) = (me.id, me.name.clone(), me.room.clone());
    if let Err(error) = game.db.set_room(id, &to) {
        tracing::error!(?key, error = %chain(&error), "cannot save a move");
        return out.text(key, msg::not_saved());
    }
    game.tell_room(&from, key, &msg::leaves(&name, &exit), out);
    if let Some(me) = game.player_mut(key) {
        me.room = to.clone();
    }
    game.tell_room(&to, key, &msg::arrives(&name), out);
    look_around(game, key, out);
}

fn title(game: &mut Game, key: SessionKey, rest: &str, out: &mut Outbox) {
    let title = sanitize_player_text(rest);
    if title.chars().count() > msg::MAX_TITLE {
        return out.text(key, msg::title_too_long());
    }
    let Some(me) = game.player(key) else {
        return;
    };
    if let Err(error) = game.db.set_title(me.id, &title) {
        tracing::error!(?key, error = %chain(&error), "cannot save a title");
        return out.text(key, msg::not_saved());
    }
    let Some(me) = game.player_mut(key) else {
        return;
    };
    me.title = title;
    if me.title.is_empty() {
        out.text(key, msg::title_cleared());
    } else {
        out.text(key, msg::title_set(&me.name, &me.title));
    }
}

fn quit(game: &mut Game, key: SessionKey, out: &mut Outbox) {
    let Some(session) = game.sessions.get_mut(&key) else {
        return;
    };
    let name = session.player.as_ref().map(|p| p.name.as_str());
    out.text(key, msg::farewell(name));
    out.push(key, Outgoing::Disconnect(msg::goodbye().to_owned()));
    // The room hears about it when the connection actually closes (`session_closed`).
    session.closing = true;
}

fn admin(game: &mut Game, key: SessionKey, request: AdminRequest, out: &mut Outbox) {
    let Some(me) = game.player(key).filter(|p| p.is_admin) else {
        return out.text(key, msg::huh());
    };
    tracing::info!(name = %me.name, ?request, "admin request");
    out.requests.push((key, request));
    out.text(
        key,
        match request {
            AdminRequest::Reload => msg::reloading(),
            AdminRequest::Shutdown => msg::shutting_down(),
        },
    );
}
