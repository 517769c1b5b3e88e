//! A game's own persistent data: typed attributes on characters and rooms, and the
//! migrations that change their shape between versions of a game.

use std::fmt;
use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::db::DbError;

/// A value a game keeps per character or per room, saved in the database as JSON under
/// `name`; no SQL to write and no schema to change.
///
/// A character or room that never had it reads as `T::default()`. Declare attributes as
/// constants where the game's code can share them:
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use tether_engine::Attribute;
///
/// /// Coins a character carries.
/// const GOLD: Attribute<u32> = Attribute::new("gold");
///
/// #[derive(Serialize, Deserialize, Default)]
/// struct Reputation {
///     kills: u32,
///     #[serde(default)] // added later: characters saved before read 0
///     rescues: u32,
/// }
/// const REPUTATION: Attribute<Reputation> = Attribute::new("reputation");
/// ```
///
/// Reading ([`Ctx::get`](super::Ctx::get)) costs no database access: a character's
/// attributes are loaded when they log in and rooms' when the core starts. Writing
/// ([`Ctx::set`](super::Ctx::set)) is saved before it returns, so a change the player is told
/// about survives any restart. Adding a field with `#[serde(default)]` needs no migration; a
/// rename or a change of meaning does (see [`Migration`]).
pub struct Attribute<T> {
    name: &'static str,
    _type: PhantomData<fn() -> T>,
}

impl<T> Attribute<T> {
    pub const fn new(name: &'static str) -> Attribute<T> {
        Attribute {
            name,
            _type: PhantomData,
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }
}

impl<T: Serialize + DeserializeOwned + Default> Attribute<T> {
    /// The value stored as `json`; the default if there is none, or if it no longer reads as
    /// a `T` (logged: a migration is missing).
    pub(crate) fn decode(&self, json: Option<&str>) -> T {
        let Some(json) = json else {
            return T::default();
        };
        serde_json::from_str(json).unwrap_or_else(|error| {
            tracing::error!(
                attribute = self.name,
                %error,
                "a stored value no longer reads as its attribute's type; using the default \
                 (does the game need a migration?)"
            );
            T::default()
        })
    }

    pub(crate) fn encode(&self, value: &T) -> Result<String, NotSaved> {
        serde_json::to_string(value).map_err(|error| NotSaved::encoding(self.name, error))
    }
}

impl<T> Clone for Attribute<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Attribute<T> {}

impl<T> fmt::Debug for Attribute<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Attribute({})", self.name)
    }
}

/// A change that was not saved, and so not made. Returned by everything that writes; as a
/// [`CommandError`](super::CommandError) the engine tells the player their change was not
/// kept.
#[derive(Debug, Clone, thiserror::Error)]
#[error("not saved: {why}")]
pub struct NotSaved {
    why: String,
    /// The database file went away under the core (see `db`): the supervisor is told too.
    pub(crate) lost: bool,
}

impl NotSaved {
    pub(crate) fn no_such_room(room: &str) -> NotSaved {
        NotSaved {
            why: format!("there is no room {room:?} in the world"),
            lost: false,
        }
    }

    pub(crate) fn encoding(what: &str, error: serde_json::Error) -> NotSaved {
        NotSaved {
            why: format!("cannot encode {what}: {error}"),
            lost: false,
        }
    }
}

impl From<DbError> for NotSaved {
    fn from(error: DbError) -> Self {
        NotSaved {
            lost: matches!(error, DbError::Lost { .. }),
            why: crate::game::chain(&error),
        }
    }
}

/// One step in the shape of a game's data, run once per database by the first core that
/// has it, before that core takes any player's input.
///
/// Register them with [`Rules::migration`](super::Rules::migration) under increasing
/// version numbers; never change or remove one that has run anywhere, only add. The database
/// records which versions ran, so each runs exactly once however many cores start, and a
/// step that fails leaves nothing half done (each runs in one transaction, and the core
/// refuses to start, saying why: the running core goes on serving).
///
/// ```
/// use tether_engine::{Migration, Rules};
///
/// let mut rules = Rules::new();
/// // Version 1 kept "gold"; version 2 calls it "coins" and counts in copper (x100).
/// rules.migration(1, "gold becomes coins, in copper", |m: &mut Migration| {
///     m.rename_character_attribute("gold", "coins")?;
///     for (character, gold) in m.character_values::<u32>("coins")? {
///         m.set_character_value(character, "coins", &(gold * 100))?;
///     }
///     Ok(())
/// });
/// ```
pub struct Migration<'a> {
    pub(crate) tx: &'a rusqlite::Transaction<'a>,
}

/// Why a migration failed; the core does not start.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct MigrationError(String);

impl MigrationError {
    /// A migration's own reason to stop: `Err(MigrationError::new("..."))`.
    pub fn new(why: impl Into<String>) -> MigrationError {
        MigrationError(why.into())
    }
}

impl From<rusqlite::Error> for MigrationError {
    fn from(error: rusqlite::Error) -> Self {
        MigrationError(error.to_string())
    }
}

impl From<serde_json::Error> for MigrationError {
    fn from(error: serde_json::Error) -> Self {
        MigrationError(error.to_string())
    }
}

impl Migration<'_> {
    /// Every character's value of `attribute`, by character id.
    pub fn character_values<T: DeserializeOwned>(
        &self,
        attribute: &str,
    ) -> Result<Vec<(i64, T)>, MigrationError> {
        self.values("character_data", "character", attribute)
    }

    /// Every room's value of `attribute`, by room key.
    pub fn room_values<T: DeserializeOwned>(
        &self,
        attribute: &str,
    ) -> Result<Vec<(String, T)>, MigrationError> {
        self.values("room_data", "room", attribute)
    }

    pub fn set_character_value(
        &self,
        character: i64,
        attribute: &str,
        value: &impl Serialize,
    ) -> Result<(), MigrationError> {
        self.tx.execute(
            "INSERT INTO character_data (character, key, value) VALUES (?1, ?2, ?3)
             ON CONFLICT (character, key) DO UPDATE SET value = excluded.value",
            rusqlite::params![character, attribute, serde_json::to_string(value)?],
        )?;
        Ok(())
    }

    pub fn set_room_value(
        &self,
        room: &str,
        attribute: &str,
        value: &impl Serialize,
    ) -> Result<(), MigrationError> {
        self.tx.execute(
            "INSERT INTO room_data (room, key, value) VALUES (?1, ?2, ?3)
             ON CONFLICT (room, key) DO UPDATE SET value = excluded.value",
            rusqlite::params![room, attribute, serde_json::to_string(value)?],
        )?;
        Ok(())
    }

    /// Renames an attribute on every character that has it.
    pub fn rename_character_attribute(&self, from: &str, to: &str) -> Result<(), MigrationError> {
        self.tx.execute(
            "UPDATE OR REPLACE character_data SET key = ?2 WHERE key = ?1",
            rusqlite::params![from, to],
        )?;
        Ok(())
    }

    pub fn rename_room_attribute(&self, from: &str, to: &str) -> Result<(), MigrationError> {
        self.tx.execute(
            "UPDATE OR REPLACE room_data SET key = ?2 WHERE key = ?1",
            rusqlite::params![from, to],
        )?;
        Ok(())
    }

    /// Forgets an attribute on every character.
    pub fn drop_character_attribute(&self, attribute: &str) -> Result<(), MigrationError> {
        self.tx.execute(
            "DELETE FROM character_data WHERE key = ?1",
            rusqlite::params![attribute],
        )?;
        Ok(())
    }

    pub fn drop_room_attribute(&self, attribute: &str) -> Result<(), MigrationError> {
        self.tx.execute(
            "DELETE FROM room_data WHERE key = ?1",
            rusqlite::params![attribute],
        )?;
        Ok(())
    }

    fn values<K: rusqlite::types::FromSql, T: DeserializeOwned>(
        &self,
        table: &str,
        owner: &str,
        attribute: &str,
    ) -> Result<Vec<(K, T)>, MigrationError> {
        let mut statement = self.tx.prepare(&format!(
            "SELECT {owner}, value FROM {table} WHERE key = ?1 ORDER BY {owner}"
        ))?;
        let rows = statement.query_map(rusqlite::params![attribute], |row| {
            Ok((row.get::<_, K>(0)?, row.get::<_, String>(1)?))
        })?;
        let mut values = Vec::new();
        for row in rows {
            let (owner, json) = row?;
            values.push((owner, serde_json::from_str(&json)?));
        }
        Ok(values)
    }
}
