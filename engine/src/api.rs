//! The game API: what a game written on tether registers, and what its code may do.
//!
//! A game is a [`Rules`]: [`Command`]s players type, hooks on [`Event`]s (logging in, moving,
//! leaving), ticks that run every so often and timers that run once, typed [`Attribute`]s
//! kept per character and per room, [`Migration`]s that change their shape, and the prompt.
//! Everything it runs gets a [`Ctx`]: who is where, the world, the game's data, and the ways
//! to change them and to talk to players.
//!
//! The engine does the rest: the link to the proxies, sessions, accounts and logins,
//! persistence, the world file, and restarts. Each of those costs a game nothing to get
//! right: a command's changes are saved before the player hears of them, a handler that
//! panics costs only its own line, and a reload of the core (to deploy a new build of the
//! game) keeps every player connected, their attributes, the rhythm of every tick and every
//! pending timer.
//!
//! The demo game in `game/` (the `tether-core` crate) is written on this API alone; the
//! tutorial in `docs/tutorial.md` adds a command and an attribute to it.

mod command;
mod ctx;
mod data;
mod rules;

pub use crate::game::AdminRequest;
pub use command::{Access, Args, Command, CommandError, CommandResult};
pub use ctx::{Ctx, Who};
pub use data::{Attribute, Migration, MigrationError, NotSaved};
pub use rules::{Event, Rules};
