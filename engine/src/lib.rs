//! tether's game engine: everything a game core needs except its rules, and the API a game is
//! written against.
//!
//! **Writing a game.** A game is a [`Rules`]: [`Command`]s, hooks on [`Event`]s, ticks and
//! timers, typed [`Attribute`]s per character and room, [`Migration`]s and the prompt. Every
//! handler gets a [`Ctx`]. The game's binary is one call, [`main`]`(rules)`; its tests drive
//! the real engine through [`testing::TestGame`]. The demo game (`game/`, crate `tether-core`)
//! is written this way, and `docs/tutorial.md` walks through adding to it.
//!
//! **Inside.** The rules run inside `Game`, a sans-IO state machine: events go in (sessions
//! opening, lines of input, finished password jobs, time passing) and an outbox of deliveries
//! comes out; the shell around it (`link`) owns the link to the proxies, the threads and the
//! clock. Everything durable is in the [`Db`] or in the state blob each proxy keeps per
//! session, so the core can be restarted at any time: that is what makes a hot deploy
//! invisible to players.
//!
//! [`admin`] is what `tether admin` does to the accounts on the server's host.
//!
//! Each line runs isolated: a panic in a command, hook, tick or timer is caught and the game
//! carries on; what cannot be caught is survived by the supervisor, which learns from the
//! core's witness page (`tether_protocol::witness`) which line was being handled. [`fault`]
//! injects such bugs for the tests, in debug builds only.

pub mod admin;
mod api;
mod db;
pub mod fault;
mod game;
mod gather;
mod link;
mod outbound;
mod password;
mod run;
pub mod testing;
mod text;
pub use text::sanitize_player_text;
pub mod world;

pub use api::{
    Access, AdminRequest, Args, Attribute, Command, CommandError, CommandResult, Ctx, Event,
    Migration, MigrationError, NotSaved, Rules, Who,
};
pub use db::{Db, GameMigrationError};
pub use game::{Game, LoginLimits, Outbox, RestoredSession, panic_is_isolated};
pub use link::{RemoteDoor, serve};
pub use outbound::{HIGH_WATER, MAX_BATCH};
pub use run::main;
pub use tether_protocol::markup::escape;
pub use tether_protocol::message::ClientInfo;
pub use world::{DEFAULT_WORLD, World};
pub use world::{Exit, Room};
