//! The demo game: a small town to walk around and talk in, written on tether-engine's game
//! API alone (see `tether_engine::Rules`), as a game of your own would be.
//!
//! - `commands`: what players type;
//! - `vitals`: health and energy, an attribute kept per character, spent by `train` and
//!   restored by a tick;
//! - `gmcp`: the messages clients with GMCP get (room info for mappers, vitals for gauges,
//!   channels for chat windows);
//! - `msg`: every string the game shows.
//!
//! `main.rs` hands [`rules`] to `tether_engine::main`. The tutorial (`docs/tutorial.md`)
//! adds a command and an attribute to this game.

mod commands;
mod gmcp;
mod msg;
mod vitals;

use std::time::Duration;

use tether_engine::world::expand_direction;
use tether_engine::{Args, Command, Event, Rules};

/// How often everyone below full health or energy gets some back.
pub const REGEN_EVERY: Duration = Duration::from_secs(10);

/// The demo game.
pub fn rules() -> Rules {
    let mut rules = Rules::new();
    // The compass words first, so that `s` is `south` before anything else it could start.
    for direction in commands::directions() {
        let short = ["n", "s", "e", "w", "u", "d", "ne", "nw", "se", "sw"]
            .into_iter()
            .find(|short| expand_direction(short) == Some(direction));
        let mut command =
            Command::new(direction).run(move |ctx, _: Args<'_>| commands::walk(ctx, direction));
        if let Some(short) = short {
            command = command.alias(short);
        }
        rules.command(command);
    }
    rules
        .command(
            Command::new("look")
                .alias("l")
                .usage("look [me | <name> | <thing>]")
                .summary("look around, at yourself, at someone or at something here")
                .run(commands::look),
        )
        .command(
            Command::new("say")
                .shortcut('\'')
                .usage("say <text>")
                .summary("speak to the room (also: '<text>)")
                .run(commands::say),
        )
        .command(
            Command::new("emote")
                .shortcut(':')
                .usage("emote <text>")
                .summary("act, e.g. \"emote waves\" (also: :<text>)")
                .run(commands::emote),
        )
        .command(
            Command::new("tell")
                .usage("tell <name> <text>")
                .summary("speak privately to someone online")
                .run(commands::tell),
        )
        .command(
            Command::new("ooc")
                .usage("ooc <text>")
                .summary("speak to everyone in the game, out of character")
                .run(commands::ooc),
        )
        .command(
            Command::new("who")
                .summary("see who is online")
                .run(commands::who),
        )
        .command(
            Command::new("go")
                .usage("go <exit>")
                .summary("move; typing the exit (north, n, up ...) works too")
                .run(commands::go),
        )
        .command(
            Command::new("title")
                .usage("title [text]")
                .summary("set your title, or clear it")
                .run(commands::title),
        )
        .command(
            Command::new("train")
                .abbreviate(3)
                .summary("train hard (costs energy)")
                .run(commands::train),
        )
        .command(
            Command::new("rest")
                .summary("catch your breath")
                .run(commands::rest),
        )
        .help_topic("channels", msg::ooc_topic())
        .help_topic("movement", msg::movement_topic())
        .fallback(commands::exit_word)
        .prompt(|ctx, me| msg::prompt(&ctx.get(me, &vitals::VITALS)))
        .every("regen", REGEN_EVERY, vitals::regenerate)
        .on_event(|ctx, event| {
            let Some(me) = ctx.me() else {
                return;
            };
            match event {
                Event::LoggedIn { .. } => {
                    let now = ctx.get(me, &vitals::VITALS);
                    gmcp::char_vitals(ctx, me, &now);
                }
                // Tells the client where the player is now, and shows them.
                Event::Entered { .. } => {
                    gmcp::room_info(ctx, me);
                    gmcp::char_status(ctx, me);
                    commands::look_around(ctx, me);
                }
                Event::Left { .. } | Event::Disconnected => {}
            }
        });
    rules
}

/// The tutorial (`docs/tutorial.md`), whose every code block runs as a doctest of this crate.
#[doc = include_str!("../../docs/tutorial.md")]
#[cfg(doctest)]
pub struct Tutorial;
