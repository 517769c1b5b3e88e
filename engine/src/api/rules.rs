//! [`Rules`]: everything a game registers with the engine.

use std::collections::BTreeMap;
use std::time::Duration;

use super::command::{Command, Commands};
use super::{Args, Ctx, Migration, MigrationError, Who};

pub(crate) type EventHook = Box<dyn Fn(&mut Ctx<'_>, &Event)>;
pub(crate) type TickHook = Box<dyn Fn(&mut Ctx<'_>)>;
pub(crate) type TimerHook = Box<dyn Fn(&mut Ctx<'_>, &serde_json::Value)>;
pub(crate) type PromptHook = Box<dyn Fn(&Ctx<'_>, Who) -> String>;
pub(crate) type FallbackHook = Box<dyn Fn(&mut Ctx<'_>, &str, Args<'_>) -> bool>;
pub(crate) type MigrationStep = Box<dyn Fn(&mut Migration<'_>) -> Result<(), MigrationError>>;

/// Something that happened to a player, for the hooks of [`Rules::on_event`]. The player is
/// [`Ctx::me`].
///
/// ```
/// use tether_engine::{Event, Rules};
///
/// let mut rules = Rules::new();
/// rules.on_event(|ctx, event| {
///     let Some(me) = ctx.me() else { return };
///     match event {
///         Event::LoggedIn { new: true } => ctx.send(me, "Welcome, newcomer!"),
///         Event::Entered { room, .. } if room == "tavern" => {
///             ctx.send(me, "The barkeep nods at you.")
///         }
///         _ => {}
///     }
/// });
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// They logged in: `new` for a character just created. Not sent when a core restart
    /// restores a session (to the player nothing happened).
    LoggedIn { new: bool },
    /// They are now in `room`: after logging in (`from` is `None`) or moving
    /// ([`Ctx::move_to`]).
    Entered { room: String, from: Option<String> },
    /// They left `room` for `to` ([`Ctx::move_to`]).
    Left { room: String, to: String },
    /// Their connection closed, or they quit, and they are about to leave the game; they can
    /// no longer be sent anything.
    Disconnected,
}

/// Something that runs every `period`, for as long as the game runs: across core reloads and
/// crashes its rhythm carries on (the time it last ran is saved), so a tick every minute
/// still comes every minute for a developer who reloads every thirty seconds.
pub(crate) struct Tick {
    pub(crate) name: String,
    pub(crate) period: Duration,
    pub(crate) hook: TickHook,
}

/// A game: its commands, hooks, ticks, timers and data migrations, handed to
/// [`main`](crate::main) (or to [`TestGame`](crate::testing::TestGame) in tests).
///
/// [`Rules::new`] already has the engine's own commands: `help`, `config`, `client`, `quit`
/// and the administrators' `@reload`, `@upgrade-proxy` and `@shutdown`. A game adds its own,
/// and may replace any of those by registering a command of the same name.
///
/// ```no_run
/// use std::time::Duration;
/// use tether_engine::{Command, Event, Rules};
///
/// fn rules() -> Rules {
///     let mut rules = Rules::new();
///     rules.command(Command::new("wave").summary("wave to the room").run(|ctx, _| {
///         let me = ctx.me().expect("typed by a player");
///         let line = format!("{} waves.", tether_engine::escape(ctx.name(me)));
///         let room = ctx.room_of(me).to_owned();
///         ctx.tell_room(&room, None, &line);
///         Ok(())
///     }));
///     rules.on_event(|ctx, event| {
///         if let (Some(me), Event::LoggedIn { new: true }) = (ctx.me(), event) {
///             ctx.send(me, "Welcome! Try \"wave\".");
///         }
///     });
///     rules.every("weather", Duration::from_secs(300), |ctx| {
///         for who in ctx.players_online() {
///             ctx.send(who, "A breeze picks up.");
///         }
///     });
///     rules
/// }
///
/// fn main() -> std::process::ExitCode {
///     tether_engine::main(rules())
/// }
/// ```
#[derive(Default)]
pub struct Rules {
    pub(crate) commands: Commands,
    pub(crate) events: Vec<EventHook>,
    pub(crate) ticks: Vec<Tick>,
    pub(crate) timers: BTreeMap<String, TimerHook>,
    pub(crate) prompt: Option<PromptHook>,
    pub(crate) fallback: Option<FallbackHook>,
    pub(crate) topics: BTreeMap<String, String>,
    pub(crate) migrations: BTreeMap<u32, (String, MigrationStep)>,
}

impl Rules {
    /// The engine's own commands and nothing else: a game where players can talk to nobody.
    pub fn new() -> Rules {
        let mut rules = Rules::default();
        crate::game::builtin::register(&mut rules);
        rules
    }

    /// Adds a command (see [`Command`]), or replaces the one of the same name. Earlier
    /// commands win when an abbreviation could mean several.
    pub fn command(&mut self, command: Command) -> &mut Rules {
        self.commands.add(command);
        self
    }

    /// Runs `hook` for every [`Event`]. Hooks run in the order they were added, isolated
    /// like commands (a panic is logged, the game goes on).
    pub fn on_event(&mut self, hook: impl Fn(&mut Ctx<'_>, &Event) + 'static) -> &mut Rules {
        self.events.push(Box::new(hook));
        self
    }

    /// Runs `hook` every `period` (at a resolution of a tenth of a second), named so that its
    /// rhythm survives restarts; see [`Ctx::me`]: there is no player.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # let mut rules = tether_engine::Rules::new();
    /// rules.every("chime", Duration::from_secs(3600), |ctx| {
    ///     for who in ctx.players_online() {
    ///         ctx.send(who, "A distant bell tolls the hour.");
    ///     }
    /// });
    /// ```
    pub fn every(
        &mut self,
        name: &str,
        period: Duration,
        hook: impl Fn(&mut Ctx<'_>) + 'static,
    ) -> &mut Rules {
        self.ticks.push(Tick {
            name: name.to_owned(),
            period: period.max(Duration::from_millis(100)),
            hook: Box::new(hook),
        });
        self
    }

    /// What runs when a timer called `name` is due (started with [`Ctx::after`]). Timers
    /// are saved, so one started before a reload or a crash still fires after it, with the
    /// data it was given.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # let mut rules = tether_engine::Rules::new();
    /// rules.timer("tea-ready", |ctx, data| {
    ///     if let Some(me) = ctx.me() {
    ///         let kind = data.as_str().unwrap_or("tea");
    ///         ctx.send(me, format!("Your {kind} is ready."));
    ///     }
    /// });
    /// rules.command(tether_engine::Command::new("brew").run(|ctx, args| {
    ///     let kind = if args.is_empty() { "tea" } else { args.text() };
    ///     ctx.after(Duration::from_secs(180), "tea-ready", &kind)?;
    ///     ctx.send(ctx.me().unwrap(), "You put the kettle on.");
    ///     Ok(())
    /// }));
    /// ```
    pub fn timer(
        &mut self,
        name: &str,
        hook: impl Fn(&mut Ctx<'_>, &serde_json::Value) + 'static,
    ) -> &mut Rules {
        self.timers.insert(name.to_owned(), Box::new(hook));
        self
    }

    /// The prompt a player in the game sees after each command (markup; end it with a space).
    /// Without one it is `> `.
    ///
    /// ```
    /// # let mut rules = tether_engine::Rules::new();
    /// const GOLD: tether_engine::Attribute<u32> = tether_engine::Attribute::new("gold");
    /// rules.prompt(|ctx, me| format!("{}g > ", ctx.get(me, &GOLD)));
    /// ```
    pub fn prompt(&mut self, hook: impl Fn(&Ctx<'_>, Who) -> String + 'static) -> &mut Rules {
        self.prompt = Some(Box::new(hook));
        self
    }

    /// What runs for a line no command matched, with its first word (lowercase) and the rest:
    /// `true` if it handled the line, `false` for the engine's "Huh?". For words that depend
    /// on where the player is, such as a room's own exits.
    pub fn fallback(
        &mut self,
        hook: impl Fn(&mut Ctx<'_>, &str, Args<'_>) -> bool + 'static,
    ) -> &mut Rules {
        self.fallback = Some(Box::new(hook));
        self
    }

    /// A help page that is not a command's (`help <topic>`), such as the game's rules.
    pub fn help_topic(&mut self, topic: &str, text: &str) -> &mut Rules {
        self.topics
            .insert(topic.to_ascii_lowercase(), text.to_owned());
        self
    }

    /// A change to the shape of the game's data (see [`Migration`]), run once per database,
    /// in order of `version`.
    pub fn migration(
        &mut self,
        version: u32,
        description: &str,
        step: impl Fn(&mut Migration<'_>) -> Result<(), MigrationError> + 'static,
    ) -> &mut Rules {
        if self
            .migrations
            .insert(version, (description.to_owned(), Box::new(step)))
            .is_some()
        {
            panic!("two game migrations have version {version}");
        }
        self
    }

    /// The command a player would run by typing `word` (name, alias or abbreviation).
    pub fn command_for(&self, word: &str) -> Option<&Command> {
        self.commands.lookup(word)
    }
}
