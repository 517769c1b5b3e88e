//! [`Ctx`]: what a command, hook, tick or timer may see and do.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tether_protocol::SessionKey;
use tether_protocol::message::ClientInfo;

use super::{AdminRequest, Attribute, Event, NotSaved};
use crate::game::{Game, Outbox};
use crate::world::World;

/// A player in the game: the connection they play on and their character. Cheap to copy;
/// ask [`Ctx`] for their name, room or attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Who {
    pub(crate) session: SessionKey,
    pub(crate) character: i64,
}

impl Who {
    /// The character's id in the database: stable for as long as the character exists.
    pub fn character_id(&self) -> i64 {
        self.character
    }
}

/// The game as a command, hook, tick or timer sees it: who is where, the world, the game's
/// data, and the ways to change them and to talk to players.
///
/// Everything said to players goes out once the handler returns, in order. Everything
/// changed is saved before the method that changes it returns (and a method that could not
/// save says so with [`NotSaved`], having changed nothing).
///
/// ```
/// use tether_engine::{Args, CommandResult, Ctx};
///
/// /// `poke <name>`: pokes someone in the same room.
/// fn poke(ctx: &mut Ctx, args: Args) -> CommandResult {
///     let me = ctx.me().expect("typed by a player");
///     let room = ctx.room_of(me).to_owned();
///     let Some(target) = ctx
///         .players_in(&room)
///         .into_iter()
///         .find(|who| ctx.name(*who).eq_ignore_ascii_case(args.text()))
///     else {
///         return Err(tether_engine::CommandError::Refused("Poke whom?".into()));
///     };
///     let (mine, theirs) = (
///         format!("You poke {}.", tether_engine::escape(ctx.name(target))),
///         format!("{} pokes you.", tether_engine::escape(ctx.name(me))),
///     );
///     ctx.send(me, mine);
///     ctx.send(target, theirs);
///     Ok(())
/// }
/// ```
pub struct Ctx<'a> {
    pub(crate) game: &'a mut Game,
    pub(crate) out: &'a mut Outbox,
    pub(crate) me: Option<Who>,
}

impl<'a> Ctx<'a> {
    pub(crate) fn new(game: &'a mut Game, out: &'a mut Outbox, me: Option<Who>) -> Ctx<'a> {
        Ctx { game, out, me }
    }

    /// The player this is about: who typed the command, whom the event happened to, whose
    /// timer fired (if they are online). `None` in ticks.
    pub fn me(&self) -> Option<Who> {
        self.me
    }

    pub fn world(&self) -> &World {
        &self.game.world
    }

    /// The character's name (`""` once they have left the game).
    pub fn name(&self, who: Who) -> &str {
        self.game.player_of(who).map_or("", |p| &p.name)
    }

    /// The character's title (`""` if none): "Alice *the Brave*".
    pub fn title(&self, who: Who) -> &str {
        self.game.player_of(who).map_or("", |p| &p.title)
    }

    /// The key of the room the character is in (see [`World::room`]).
    pub fn room_of(&self, who: Who) -> &str {
        self.game.player_of(who).map_or("", |p| &p.room)
    }

    /// Whether `who` is still in the game (not quit, not disconnected).
    pub fn is_online(&self, who: Who) -> bool {
        self.game.player_of(who).is_some()
    }

    /// Everyone in `room`, sorted by name. Costs the size of the room, not of the game.
    pub fn players_in(&self, room: &str) -> Vec<Who> {
        self.game.players_in(room)
    }

    /// Everyone in the game, sorted by name.
    pub fn players_online(&self) -> Vec<Who> {
        self.game.online()
    }

    /// The player in the game called `name` (any case).
    pub fn find_player(&self, name: &str) -> Option<Who> {
        self.game.find_online(name)
    }

    /// Whether `who` plays an administrator (asked of the database, so `tether admin
    /// promote` counts at once).
    pub fn is_admin(&self, who: Who) -> bool {
        self.game.is_admin(who.session)
    }

    /// What the proxy knows of `who`'s client: its name, screen size, colours, protocols.
    pub fn client(&self, who: Who) -> ClientInfo {
        self.game.client(who.session)
    }

    /// Sends `who` some text (markup: escape what players typed with
    /// [`escape`](crate::escape)).
    pub fn send(&mut self, who: Who, text: impl Into<String>) {
        self.out.text(who.session, text);
    }

    /// Sends everyone in `room` but `except` the same text.
    pub fn tell_room(&mut self, room: &str, except: Option<Who>, text: &str) {
        for who in self.game.players_in(room) {
            if Some(who) != except {
                self.out.text(who.session, text);
            }
        }
    }

    /// Whether `who`'s client takes GMCP. [`Ctx::gmcp`] asks it too; ask it first to avoid
    /// building a message nobody reads.
    pub fn speaks_gmcp(&self, who: Who) -> bool {
        self.game.speaks_gmcp(who.session)
    }

    /// Sends `who` a GMCP message (`package` such as `Char.Vitals`, the body as JSON), if
    /// their client takes GMCP; the proxy passes it on if the client asked for the package.
    pub fn gmcp(&mut self, who: Who, package: &str, body: &impl Serialize) {
        if self.speaks_gmcp(who) {
            self.out
                .gmcp(who.session, crate::game::gmcp::message(package, body));
        }
    }

    /// Moves `who` to `room`, saving it: [`Event::Left`] runs for the room they leave, then
    /// [`Event::Entered`] for the new one. Nobody else is told; that is the game's to say.
    pub fn move_to(&mut self, who: Who, room: &str) -> Result<(), NotSaved> {
        if self.game.world.room(room).is_none() {
            return Err(NotSaved::no_such_room(room));
        }
        let from = self.room_of(who).to_owned();
        self.game.save_room(who, room)?;
        self.fire_for(
            who,
            &Event::Left {
                room: from.clone(),
                to: room.to_owned(),
            },
        );
        self.game.move_player(who.session, room);
        self.fire_for(
            who,
            &Event::Entered {
                room: room.to_owned(),
                from: Some(from),
            },
        );
        Ok(())
    }

    /// Sets `who`'s title (`""` for none), shown after their name by `who` and `look`.
    pub fn set_title(&mut self, who: Who, title: &str) -> Result<(), NotSaved> {
        self.game.set_title(who, title, self.out)
    }

    /// Closes `who`'s connection with a last message; they leave the game.
    pub fn disconnect(&mut self, who: Who, reason: &str) {
        self.game.disconnect(who.session, reason, self.out);
    }

    /// `who`'s value of `attribute` (its default if they never had one).
    pub fn get<T: Serialize + DeserializeOwned + Default>(
        &self,
        who: Who,
        attribute: &Attribute<T>,
    ) -> T {
        attribute.decode(
            self.game
                .player_of(who)
                .and_then(|p| p.data.get(attribute.name()))
                .map(String::as_str),
        )
    }

    /// Sets `who`'s value of `attribute`, saved before this returns.
    pub fn set<T: Serialize + DeserializeOwned + Default>(
        &mut self,
        who: Who,
        attribute: &Attribute<T>,
        value: &T,
    ) -> Result<(), NotSaved> {
        let json = attribute.encode(value)?;
        self.game.set_character_data(who, attribute.name(), json)
    }

    /// `room`'s value of `attribute` (its default if it never had one).
    pub fn room_get<T: Serialize + DeserializeOwned + Default>(
        &self,
        room: &str,
        attribute: &Attribute<T>,
    ) -> T {
        attribute.decode(self.game.room_data(room, attribute.name()))
    }

    /// Sets `room`'s value of `attribute`, saved before this returns.
    pub fn room_set<T: Serialize + DeserializeOwned + Default>(
        &mut self,
        room: &str,
        attribute: &Attribute<T>,
        value: &T,
    ) -> Result<(), NotSaved> {
        let json = attribute.encode(value)?;
        self.game.set_room_data(room, attribute.name(), json)
    }

    /// Runs the timer `name` (see [`Rules::timer`](super::Rules::timer)) after `delay`, with
    /// `data`, for [`Ctx::me`] (or for nobody, in a tick). Saved: it fires even if the core
    /// restarts in between (at most once: a core that dies while it runs does not run it
    /// again).
    pub fn after(
        &mut self,
        delay: Duration,
        name: &str,
        data: &impl Serialize,
    ) -> Result<(), NotSaved> {
        let data = serde_json::to_string(data).map_err(|error| NotSaved::encoding(name, error))?;
        let character = self.me.map(|who| who.character);
        self.game.start_timer(delay, name, character, data)
    }

    /// Asks the supervisor for something only it can do; `me` is told how it went.
    pub fn request(&mut self, request: AdminRequest) {
        if let Some(me) = self.me {
            self.out.requests.push((Some(me.session), request));
        }
    }

    /// Runs the event hooks for `who`, as [`Ctx::me`].
    pub(crate) fn fire_for(&mut self, who: Who, event: &Event) {
        let rules = self.game.rules.clone();
        let outer = self.me.replace(who);
        for hook in &rules.events {
            crate::game::isolated("an event hook", || hook(self, event));
        }
        self.me = outer;
    }
}
