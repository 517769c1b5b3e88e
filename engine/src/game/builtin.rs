//! The engine's own commands, in every game's [`Rules`] from the start: help, display
//! settings, the client, quitting, and the administrators' commands (`admin_commands`). They
//! are registered like a game's, so a game can replace any of them.

use tether_protocol::message::Delivery;

use super::msg;
use crate::api::{Access, Args, Command, CommandError, CommandResult, Ctx, Rules};

pub(crate) fn register(rules: &mut Rules) {
    rules
        .command(
            Command::new("help")
                .usage("help [command or topic]")
                .summary("this list, or more about one command or topic")
                .run(help),
        )
        .command(
            Command::new("config")
                .usage("config [wrap on|off | color auto|none|16|256|truecolor]")
                .summary("show or change your display settings")
                .run(config),
        )
        .command(
            Command::new("client")
                .summary("what the server knows about your client")
                .run(|ctx, _| {
                    let me = ctx.me().expect("commands have a player");
                    let text = msg::client_info(&ctx.client(me));
                    ctx.send(me, text);
                    Ok(())
                }),
        )
        .command(
            Command::new("quit")
                .summary("leave the game")
                .run(|ctx, _| {
                    let me = ctx.me().expect("commands have a player");
                    let farewell = msg::farewell(Some(ctx.name(me)));
                    // One goodbye: it is the disconnect's last words. The room hears about it when
                    // the connection actually closes.
                    ctx.disconnect(me, &farewell);
                    Ok(())
                }),
        );
    super::admin_commands::register(rules);
}

/// `help`: every command the player may use, or one command's or topic's page.
fn help(ctx: &mut Ctx<'_>, args: Args<'_>) -> CommandResult {
    let me = ctx.me().expect("commands have a player");
    let is_admin = ctx.is_admin(me);
    let rules = ctx.game.rules.clone();
    let may_use = |access: Access| access == Access::Everyone || is_admin;
    let text = match args.first() {
        None => {
            let listed = |access: Access| {
                rules
                    .commands
                    .iter()
                    .filter(move |c| c.access == access && !c.summary.is_empty())
                    .map(|c| (c.usage.as_str(), c.summary.as_str()))
                    .collect::<Vec<_>>()
            };
            let admin = if is_admin {
                listed(Access::Admin)
            } else {
                Vec::new()
            };
            let topics: Vec<&str> = rules.topics.keys().map(String::as_str).collect();
            msg::help_index(&listed(Access::Everyone), &admin, &topics)
        }
        Some(word) => {
            let word = word.to_lowercase();
            match rules.command_for(&word).filter(|c| may_use(c.access)) {
                Some(command) => msg::help_page(
                    &command.usage,
                    &command.aliases,
                    &command.summary,
                    &command.help,
                ),
                None => match rules.topics.get(&word) {
                    Some(page) => page.clone(),
                    None => msg::no_help(&word),
                },
            }
        }
    };
    ctx.send(me, text);
    Ok(())
}

/// `config`: shows or changes how the proxy renders this player's text.
fn config(ctx: &mut Ctx<'_>, args: Args<'_>) -> CommandResult {
    let me = ctx.me().expect("commands have a player");
    let Some(player) = ctx.game.player_of(me) else {
        return Ok(());
    };
    let mut prefs = player.display;
    let (setting, value) = args.split_first();
    let confirmation = match (
        setting.to_ascii_lowercase().as_str(),
        value.text().to_ascii_lowercase().as_str(),
    ) {
        ("", _) => {
            ctx.send(me, msg::config(&prefs));
            return Ok(());
        }
        ("wrap", word @ ("on" | "off")) => {
            prefs.wrap = word == "on";
            msg::wrap_set(prefs.wrap)
        }
        ("color" | "colour", word) => match super::parse_color_word(word) {
            Some(color) => {
                prefs.color = color;
                msg::color_set(color)
            }
            None => return Err(CommandError::Usage),
        },
        _ => return Err(CommandError::Usage),
    };
    // Saved before it is confirmed or applied: a setting that would be gone after a restart
    // must not look as if it took.
    let saved = ctx
        .game
        .db
        .set_display(me.character, prefs.wrap, super::color_word(prefs.color));
    if let Err(error) = saved {
        return Err(ctx.game.not_saved_error(error).into());
    }
    if let Some(player) = ctx.game.player_of_mut(me) {
        player.display = prefs;
    }
    // Before the confirmation, so that the confirmation already shows the new settings.
    ctx.out.push(me.session, Delivery::Display(prefs));
    ctx.send(me, confirmation);
    Ok(())
}
