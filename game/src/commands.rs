//! The demo's commands, each a function from what was typed to what happens.

use tether_engine::world::COMPASS;
use tether_engine::{Args, CommandError, CommandResult, Ctx, Who, sanitize_player_text};

use crate::vitals::{self, VITALS, Vitals};
use crate::{gmcp, msg};

/// What `train` costs.
pub(crate) const TRAINING_COST: u32 = 25;

fn me(ctx: &Ctx<'_>) -> Who {
    ctx.me().expect("commands are typed by players in the game")
}

/// `look`, `look me`, `look <name>`, `look <thing>` (`look at ...` too).
pub(crate) fn look(ctx: &mut Ctx<'_>, args: Args<'_>) -> CommandResult {
    let me = me(ctx);
    let target = sanitize_player_text(args.strip_word("at").text());
    if target.is_empty() {
        look_around(ctx, me);
        return Ok(());
    }
    let room = ctx.room_of(me).to_owned();
    let someone = if ["me", "self", "myself"].contains(&target.to_lowercase().as_str()) {
        Some(me)
    } else {
        ctx.players_in(&room)
            .into_iter()
            .find(|who| ctx.name(*who).eq_ignore_ascii_case(&target))
    };
    let text = if let Some(who) = someone {
        msg::look_at(ctx.name(who), ctx.title(who), who == me)
    } else if let Some(detail) = ctx.world().room(&room).and_then(|r| r.detail(&target)) {
        detail.to_owned()
    } else {
        msg::not_here(&target)
    };
    ctx.send(me, text);
    Ok(())
}

/// Shows `who` their room the way `look` does.
pub(crate) fn look_around(ctx: &mut Ctx<'_>, who: Who) {
    let room = ctx.room_of(who).to_owned();
    let others: Vec<(&str, &str)> = ctx
        .players_in(&room)
        .into_iter()
        .filter(|other| *other != who)
        .map(|other| (ctx.name(other), ctx.title(other)))
        .collect();
    let Some(room) = ctx.world().room(&room) else {
        return;
    };
    let text = msg::room_view(room, &others);
    ctx.send(who, text);
}

pub(crate) fn say(ctx: &mut Ctx<'_>, args: Args<'_>) -> CommandResult {
    let me = me(ctx);
    let text = sanitize_player_text(args.text());
    if text.is_empty() {
        return Err(CommandError::Refused(msg::say_what().into()));
    }
    let name = ctx.name(me).to_owned();
    let mine = msg::you_say(&text);
    ctx.send(me, mine.as_str());
    gmcp::channel_text(ctx, me, "say", &name, &mine);
    let theirs = msg::says(&name, &text);
    let room = ctx.room_of(me).to_owned();
    for other in ctx.players_in(&room) {
        if other != me {
            ctx.send(other, theirs.as_str());
            gmcp::channel_text(ctx, other, "say", &name, &theirs);
        }
    }
    Ok(())
}

pub(crate) fn emote(ctx: &mut Ctx<'_>, args: Args<'_>) -> CommandResult {
    let me = me(ctx);
    let text = sanitize_player_text(args.text());
    if text.is_empty() {
        return Err(CommandError::Refused(msg::emote_what().into()));
    }
    let line = msg::emote(ctx.name(me), &text);
    let room = ctx.room_of(me).to_owned();
    ctx.tell_room(&room, None, &line);
    Ok(())
}

/// `ooc <text>`: the public channel, to everyone in the game.
pub(crate) fn ooc(ctx: &mut Ctx<'_>, args: Args<'_>) -> CommandResult {
    let me = me(ctx);
    let text = sanitize_player_text(args.text());
    if text.is_empty() {
        return Err(CommandError::Usage);
    }
    let name = ctx.name(me).to_owned();
    let line = msg::ooc(&name, &text);
    for who in ctx.players_online() {
        ctx.send(who, line.as_str());
        gmcp::channel_text(ctx, who, "ooc", &name, &line);
    }
    Ok(())
}

pub(crate) fn who(ctx: &mut Ctx<'_>, _: Args<'_>) -> CommandResult {
    let me = me(ctx);
    let online: Vec<(&str, &str)> = ctx
        .players_online()
        .into_iter()
        .map(|who| (ctx.name(who), ctx.title(who)))
        .collect();
    let text = msg::who(&online);
    ctx.send(me, text);
    Ok(())
}

pub(crate) fn tell(ctx: &mut Ctx<'_>, args: Args<'_>) -> CommandResult {
    let me = me(ctx);
    let (target, text) = args.split_first();
    let target = sanitize_player_text(target);
    let text = sanitize_player_text(text.text());
    if target.is_empty() {
        return Err(CommandError::Usage);
    }
    let Some(to) = ctx.find_player(&target) else {
        return Err(CommandError::Refused(msg::not_online(&target)));
    };
    let to_name = ctx.name(to).to_owned();
    if text.is_empty() {
        return Err(CommandError::Refused(msg::tell_what(&to_name)));
    }
    if to == me {
        return Err(CommandError::Refused(msg::tell_self().into()));
    }
    let name = ctx.name(me).to_owned();
    let mine = msg::you_tell(&to_name, &text);
    ctx.send(me, mine.as_str());
    gmcp::channel_text(ctx, me, "tell", &name, &mine);
    let theirs = msg::tells_you(&name, &text);
    ctx.send(to, theirs.as_str());
    gmcp::channel_text(ctx, to, "tell", &name, &theirs);
    Ok(())
}

/// `go <exit>`.
pub(crate) fn go(ctx: &mut Ctx<'_>, args: Args<'_>) -> CommandResult {
    match args.first() {
        None => Err(CommandError::Refused(msg::go_where().into())),
        Some(word) => walk(ctx, word),
    }
}

/// Moves the player through the exit `word` names (in full, or a compass abbreviation).
pub(crate) fn walk(ctx: &mut Ctx<'_>, word: &str) -> CommandResult {
    let me = me(ctx);
    let from = ctx.room_of(me).to_owned();
    let exit = ctx
        .world()
        .room(&from)
        .and_then(|room| room.exit(word))
        .map(|exit| (exit.name().to_owned(), exit.to().to_owned()));
    let Some((exit, to)) = exit else {
        return Err(CommandError::Refused(msg::no_exit().into()));
    };
    let name = ctx.name(me).to_owned();
    // Saved first: if it cannot be, nobody hears of a move that did not happen.
    ctx.move_to(me, &to)?;
    ctx.tell_room(&from, Some(me), &msg::leaves(&name, &exit));
    ctx.tell_room(&to, Some(me), &msg::arrives(&name));
    Ok(())
}

/// A room's own exit words (`enter`, `climb`), which are not commands of their own.
pub(crate) fn exit_word(ctx: &mut Ctx<'_>, word: &str, args: Args<'_>) -> bool {
    let Some(me) = ctx.me() else {
        return false;
    };
    let is_exit = args.is_empty()
        && ctx
            .world()
            .room(ctx.room_of(me))
            .is_some_and(|room| room.exit(word).is_some());
    if is_exit && let Err(CommandError::NotSaved(error)) = walk(ctx, word) {
        tracing::error!(%error, "a move was not saved");
        ctx.send(me, msg::move_not_saved());
    }
    is_exit
}

/// The compass words are commands of their own, so that one with no exit here says so.
pub(crate) fn directions() -> impl Iterator<Item = &'static str> {
    COMPASS.into_iter()
}

pub(crate) fn title(ctx: &mut Ctx<'_>, args: Args<'_>) -> CommandResult {
    let me = me(ctx);
    let title = sanitize_player_text(args.text());
    if title.chars().count() > msg::MAX_TITLE {
        return Err(CommandError::Refused(msg::title_too_long()));
    }
    ctx.set_title(me, &title)?;
    let text = if title.is_empty() {
        msg::title_cleared().to_owned()
    } else {
        msg::title_set(ctx.name(me), &title)
    };
    ctx.send(me, text);
    Ok(())
}

pub(crate) fn rest(ctx: &mut Ctx<'_>, _: Args<'_>) -> CommandResult {
    let me = me(ctx);
    vitals::set(ctx, me, Vitals::default())?;
    ctx.send(me, msg::rested());
    Ok(())
}

/// `train`: spends energy, which time (or `rest`) gives back.
pub(crate) fn train(ctx: &mut Ctx<'_>, _: Args<'_>) -> CommandResult {
    let me = me(ctx);
    let mut now = ctx.get(me, &VITALS);
    if now.mp < TRAINING_COST {
        return Err(CommandError::Refused(msg::too_tired().into()));
    }
    now.mp -= TRAINING_COST;
    vitals::set(ctx, me, now)?;
    ctx.send(me, msg::trained());
    Ok(())
}
