//! The tether game core: the world, its rules and its persistence.
//!
//! The game logic is sans-IO: [`game::Game`] takes events (sessions opening, lines of input,
//! finished password jobs) and answers with an [`game::Outbox`]; the shell around it owns the
//! link to the proxies, the threads and the clock. Everything durable is in the [`db::Db`] or
//! in the state blob each proxy keeps per session, so the core can be restarted at any time.
//!
//! [`admin`] is what `tether admin` does to the accounts on the server's host.
//!
//! Each line runs isolated: a panic in a command is caught and the game carries on; what
//! cannot be caught is survived by the supervisor, which learns from the core's witness page
//! (`tether_protocol::witness`) which line was being handled. [`fault`] injects such bugs for
//! the tests, in debug builds only.

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
pub use game::{Game, LoginLimits, panic_is_isolated};
pub use link::{RemoteDoor, serve};
pub use outbound::{HIGH_WATER, MAX_BATCH};
pub use run::main;
pub use tether_protocol::markup::escape;
pub use tether_protocol::message::ClientInfo;
pub use world::{DEFAULT_WORLD, World};
pub use world::{Exit, Room};
