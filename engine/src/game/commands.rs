//! Commands of players who are in the game.

use tether_protocol::SessionKey;

use super::{AdminRequest, Delivery, Game, Outbox, Vitals, chain, gmcp, msg, split_word};
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
        "rest" => rest_up(game, key, out),
        "config" => config(game, key, rest, out),
        "client" => out.text(key, msg::client_info(&game.client(key))),
        "help" => {
            let is_admin = game.is_admin(key);
            out.text(key, msg::game_help(is_admin));
        }
        "quit" => quit(game, key, out),
        "@reload" => admin(game, key, AdminRequest::Reload, out),
        "@upgrade-proxy" => admin(game, key, AdminRequest::UpgradeProxy, out),
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

/// Tells the player's client where they are now, and shows them.
pub(super) fn arrive(game: &Game, key: SessionKey, out: &mut Outbox) {
    let Some(player) = game.player(key) else {
        return;
    };
    if game.speaks_gmcp(key) {
        if let Some(room) = game.world.room(&player.room) {
            out.gmcp(key, gmcp::room_info(&game.world, room));
        }
        out.gmcp(key, gmcp::char_status(&game.world, player));
    }
    look_around(game, key, out);
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
        .players_in(&player.room)
        .into_iter()
        .filter(|(k, _)| *k != key)
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
        .players_in(&me.room)
        .into_iter()
        .find(|(_, p)| p.name.eq_ignore_ascii_case(&target));
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
    let mine = msg::you_say(&text);
    out.text(key, mine.as_str());
    if game.speaks_gmcp(key) {
        out.gmcp(key, gmcp::channel_text("say", &me.name, &mine));
    }
    let theirs = msg::says(&me.name, &text);
    for (other, _) in game.players_in(&me.room) {
        if other != key {
            out.text(other, theirs.as_str());
            if game.speaks_gmcp(other) {
                out.gmcp(other, gmcp::channel_text("say", &me.name, &theirs));
            }
        }
    }
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
        .present()
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
    let mine = msg::you_tell(&to.name, &text);
    out.text(key, mine.as_str());
    if game.speaks_gmcp(key) {
        out.gmcp(key, gmcp::channel_text("tell", &me.name, &mine));
    }
    let theirs = msg::tells_you(&me.name, &text);
    out.text(to_key, theirs.as_str());
    if game.speaks_gmcp(to_key) {
        out.gmcp(to_key, gmcp::channel_text("tell", &me.name, &theirs));
    }
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
        return out.text(key, game.not_saved(&error));
    }
    game.tell_room(&from, key, &msg::leaves(&name, &exit), out);
    game.move_player(key, &to);
    game.tell_room(&to, key, &msg::arrives(&name), out);
    arrive(game, key, out);
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
        return out.text(key, game.not_saved(&error));
    }
    let speaks_gmcp = game.speaks_gmcp(key);
    let Some(me) = game.player_mut(key) else {
        return;
    };
    me.title = title;
    if me.title.is_empty() {
        out.text(key, msg::title_cleared());
    } else {
        out.text(key, msg::title_set(&me.name, &me.title));
    }
    // The full name clients show includes the title.
    if speaks_gmcp {
        out.gmcp(key, gmcp::char_name(me));
    }
}

fn rest_up(game: &mut Game, key: SessionKey, out: &mut Outbox) {
    let speaks_gmcp = game.speaks_gmcp(key);
    let Some(me) = game.player_mut(key) else {
        return;
    };
    me.vitals = Vitals::full();
    out.text(key, msg::rested());
    if speaks_gmcp {
        out.gmcp(key, gmcp::char_vitals(me));
    }
}

fn config(game: &mut Game, key: SessionKey, rest: &str, out: &mut Outbox) {
    let Some(me) = game.player(key) else {
        return;
    };
    let (id, mut prefs) = (me.id, me.display);
    let (setting, value) = split_word(rest);
    let setting = setting.to_ascii_lowercase();
    let confirmation = match (setting.as_str(), value.to_ascii_lowercase().as_str()) {
        ("", _) => return out.text(key, msg::config(&prefs)),
        ("wrap", word @ ("on" | "off")) => {
            prefs.wrap = word == "on";
            msg::wrap_set(prefs.wrap)
        }
        ("color" | "colour", word) => match super::parse_color_word(word) {
            Some(color) => {
                prefs.color = color;
                msg::color_set(color)
            }
            None => return out.text(key, msg::config_usage()),
        },
        _ => return out.text(key, msg::config_usage()),
    };
    // Saved before it is confirmed or applied: a setting that would be gone after a restart
    // must not look as if it took.
    if let Err(error) = game
        .db
        .set_display(id, prefs.wrap, super::color_word(prefs.color))
    {
        tracing::error!(?key, error = %chain(&error), "cannot save display settings");
        return out.text(key, game.not_saved(&error));
    }
    if let Some(me) = game.player_mut(key) {
        me.display = prefs;
    }
    // Before the confirmation, so that the confirmation already shows the new settings.
    out.push(key, Delivery::Display(prefs));
    out.text(key, confirmation);
}

fn quit(game: &mut Game, key: SessionKey, out: &mut Outbox) {
    let Some(session) = game.sessions.get_mut(&key) else {
        return;
    };
    let name = session.player.as_ref().map(|p| p.name.as_str());
    out.text(key, msg::farewell(name));
    // The room hears about it when the connection actually closes (`session_closed`).
    game.disconnect(key, msg::goodbye(), out);
}

fn admin(game: &mut Game, key: SessionKey, request: AdminRequest, out: &mut Outbox) {
    if !game.is_admin(key) {
        return out.text(key, msg::huh());
    }
    let Some(me) = game.player(key) else {
        return out.text(key, msg::huh());
    };
    tracing::info!(name = %me.name, ?request, "admin request");
    out.requests.push((key, request));
    out.text(
        key,
        match request {
            AdminRequest::Reload => msg::reloading(),
            AdminRequest::UpgradeProxy => msg::upgrading_proxy(),
            AdminRequest::Shutdown => msg::shutting_down(),
        },
    );
}
