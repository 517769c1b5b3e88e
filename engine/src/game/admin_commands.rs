//! The administrators' commands in the game: the `@` verbs over `moderation` and the
//! requests to the supervisor. Only administrators see or can use them.

use std::time::Duration;

use tether_protocol::markup::escape;

use super::moderation::{BanLength, ModerationError, parse_ban_target, parse_span};
use super::{AdminRequest, msg};
use crate::api::{Args, Command, CommandError, CommandResult, Ctx, Rules, Who};
use crate::db::AuditAction;

/// How many lines `@audit` shows unless asked for more, and at most.
const AUDIT_SHOWN: usize = 20;
const AUDIT_MAX: usize = 200;

pub(super) fn register(rules: &mut Rules) {
    for (name, summary, request, action, said) in [
        (
            "@reload",
            "restart the game core; players stay connected",
            AdminRequest::Reload,
            AuditAction::Reload,
            msg::reloading(),
        ),
        (
            "@upgrade-proxy",
            "start a new proxy that takes every connection over",
            AdminRequest::UpgradeProxy,
            AuditAction::UpgradeProxy,
            msg::upgrading_proxy(),
        ),
    ] {
        rules.command(
            Command::new(name)
                .summary(summary)
                .admin_only()
                .run(move |ctx, _| {
                    let (me, actor) = actor(ctx);
                    ctx.game.record(&actor, action, "server", "");
                    ctx.request(request);
                    ctx.send(me, said);
                    Ok(())
                }),
        );
    }
    rules
        .command(
            Command::new("@shutdown")
                .usage("@shutdown now|<minutes>|<time>|cancel [reason]")
                .summary("stop the server, now or after a countdown everyone hears")
                .help(
                    "A countdown warns everyone at 60, 30, 15, 10, 5, 2 and 1 minutes and at 30 \
                     and 10 seconds, and carries on through core reloads. A time is minutes, or \
                     has a unit: 90s, 15m, 2h. Without arguments: the countdown, if one runs.",
                )
                .admin_only()
                .run(shutdown),
        )
        .command(
            Command::new("@kick")
                .usage("@kick <name> [reason]")
                .summary("disconnect a player, telling them why")
                .admin_only()
                .run(|ctx, args| {
                    let (me, actor) = actor(ctx);
                    let (name, reason) = args.split_first();
                    if name.is_empty() {
                        return Err(CommandError::Usage);
                    }
                    let kicked = ctx
                        .game
                        .kick(&actor, name, reason.text(), ctx.out)
                        .map_err(refused)?;
                    ctx.send(me, msg::kick_done(&kicked));
                    Ok(())
                }),
        )
        .command(
            Command::new("@ban")
                .usage("@ban <name|address> [forever|<time>] [reason]")
                .summary("keep a character or an address out, for a time or until lifted")
                .help(
                    "A time has a unit: 30m, 12h, 7d, 2w. Without one the ban lasts until \
                     @unban. Whoever it covers is disconnected at once.",
                )
                .admin_only()
                .run(ban),
        )
        .command(
            Command::new("@unban")
                .usage("@unban <name|address>")
                .summary("lift a ban")
                .admin_only()
                .run(|ctx, args| {
                    let (me, actor) = actor(ctx);
                    let Some(word) = args.first() else {
                        return Err(CommandError::Usage);
                    };
                    let target = parse_ban_target(word).map_err(|e| refused(e.into()))?;
                    let lifted = ctx.game.unban(&actor, &target).map_err(refused)?;
                    ctx.send(me, msg::unbanned(&target, lifted));
                    Ok(())
                }),
        )
        .command(
            Command::new("@bans")
                .summary("every ban that holds, and until when")
                .admin_only()
                .run(|ctx, _| {
                    let (me, _) = actor(ctx);
                    let now = ctx.game.unix_ms;
                    let bans =
                        ctx.game.db.bans(now).map_err(|error| {
                            CommandError::NotSaved(ctx.game.not_saved_error(error))
                        })?;
                    ctx.send(me, msg::ban_list(&bans, now));
                    Ok(())
                }),
        )
        .command(
            Command::new("@wall")
                .usage("@wall <message>")
                .summary("say something to everyone connected")
                .admin_only()
                .run(|ctx, args| {
                    let (_, actor) = actor(ctx);
                    if args.is_empty() {
                        return Err(CommandError::Usage);
                    }
                    ctx.game.wall(&actor, args.text(), ctx.out);
                    Ok(())
                }),
        )
        .command(
            Command::new("@promote")
                .usage("@promote <name>")
                .summary("make a character an administrator")
                .admin_only()
                .run(|ctx, args| set_admin(ctx, args, true)),
        )
        .command(
            Command::new("@demote")
                .usage("@demote <name>")
                .summary("make an administrator an ordinary player")
                .admin_only()
                .run(|ctx, args| set_admin(ctx, args, false)),
        )
        .command(
            Command::new("@audit")
                .usage("@audit [how many]")
                .summary("the administrators' latest actions")
                .admin_only()
                .run(|ctx, args| {
                    let (me, _) = actor(ctx);
                    let shown = match args.first() {
                        None => AUDIT_SHOWN,
                        Some(word) => word
                            .parse::<usize>()
                            .ok()
                            .filter(|n| *n > 0)
                            .ok_or(CommandError::Usage)?
                            .min(AUDIT_MAX),
                    };
                    let trail =
                        ctx.game.db.audit_trail(shown).map_err(|error| {
                            CommandError::NotSaved(ctx.game.not_saved_error(error))
                        })?;
                    ctx.send(me, msg::audit_trail(&trail, ctx.game.unix_ms));
                    Ok(())
                }),
        );
}

/// The administrator running the command, and their name as the audit trail records it.
fn actor(ctx: &Ctx<'_>) -> (Who, String) {
    let me = ctx.me().expect("commands have a player");
    (me, ctx.name(me).to_owned())
}

fn refused(error: ModerationError) -> CommandError {
    match error {
        ModerationError::NotSaved(error) => CommandError::NotSaved(error),
        other => CommandError::Refused(escape(&other.to_string())),
    }
}

fn shutdown(ctx: &mut Ctx<'_>, args: Args<'_>) -> CommandResult {
    let (me, actor) = actor(ctx);
    let (when, reason) = args.split_first();
    let after = match when.to_ascii_lowercase().as_str() {
        "" => {
            let text = msg::shutdown_status(ctx.game.planned_shutdown(), ctx.game.unix_ms);
            ctx.send(me, text);
            return Ok(());
        }
        "cancel" => {
            let cancelled = ctx.game.cancel_shutdown(&actor, ctx.out).map_err(refused)?;
            if !cancelled {
                ctx.send(me, msg::shutdown_status(None, ctx.game.unix_ms));
            }
            return Ok(());
        }
        "now" => Duration::ZERO,
        _ => parse_span(when, Some(Duration::from_secs(60))).ok_or(CommandError::Usage)?,
    };
    ctx.game
        .shut_down(&actor, Some(me.session), after, reason.text(), ctx.out)
        .map_err(refused)
}

fn ban(ctx: &mut Ctx<'_>, args: Args<'_>) -> CommandResult {
    let (me, actor) = actor(ctx);
    let (word, rest) = args.split_first();
    if word.is_empty() {
        return Err(CommandError::Usage);
    }
    let target = parse_ban_target(word).map_err(|e| refused(e.into()))?;
    let (length, reason) = match rest.first().and_then(BanLength::parse) {
        Some(length) => (length, rest.split_first().1),
        None => (BanLength::Forever, rest),
    };
    let closed = ctx
        .game
        .ban(
            &actor,
            Some(me.session),
            target.clone(),
            length,
            reason.text(),
            ctx.out,
        )
        .map_err(refused)?;
    ctx.send(me, msg::ban_done(&target, length, closed));
    Ok(())
}

fn set_admin(ctx: &mut Ctx<'_>, args: Args<'_>, admin: bool) -> CommandResult {
    let (me, actor) = actor(ctx);
    let Some(name) = args.first() else {
        return Err(CommandError::Usage);
    };
    let (name, changed) = ctx.game.set_admin(&actor, name, admin).map_err(refused)?;
    ctx.send(me, msg::admin_set(&name, admin, changed));
    Ok(())
}
