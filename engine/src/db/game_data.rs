//! The tables that hold a game's own data (see `api`): attributes per character and per
//! room, the last run of each tick, pending timers, and which of the game's migrations ran.
//! Values are JSON text; the engine never looks inside them.

use std::collections::HashMap;

use rusqlite::{OptionalExtension, TransactionBehavior, params};

use super::{Context, Db, DbError};
use crate::api::{Migration, MigrationError, Rules};

/// A timer that has not fired yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerRow {
    pub id: i64,
    /// Milliseconds since the Unix epoch.
    pub due_ms: i64,
    pub name: String,
    pub character: Option<i64>,
    pub data: String,
}

/// Why the game's migrations did not all run.
#[derive(Debug, thiserror::Error)]
pub enum GameMigrationError {
    #[error("the game's migration {version} ({description}) failed: {source}")]
    Step {
        version: u32,
        description: String,
        #[source]
        source: MigrationError,
    },
    #[error(transparent)]
    Db(#[from] DbError),
}

impl Db {
    /// Every attribute `character` has, as (name, JSON).
    pub fn character_data(&self, character: i64) -> Result<Vec<(String, String)>, DbError> {
        let mut statement = self
            .conn
            .prepare_cached("SELECT key, value FROM character_data WHERE character = ?1")
            .context("loading a character's data")?;
        let rows = statement
            .query_map([character], |row| Ok((row.get(0)?, row.get(1)?)))
            .context("loading a character's data")?;
        rows.collect::<Result<_, _>>()
            .context("loading a character's data")
    }

    /// Every attribute of each character of `ids`, in one query (see [`Db::characters`]).
    pub fn characters_data(
        &self,
        ids: &[i64],
    ) -> Result<HashMap<i64, Vec<(String, String)>>, DbError> {
        let mut statement = self
            .conn
            .prepare_cached(
                "SELECT character, key, value FROM character_data
                 WHERE character IN (SELECT value FROM json_each(?1))",
            )
            .context("loading characters' data")?;
        let mut rows = statement
            .query([super::json_ids(ids)])
            .context("loading characters' data")?;
        let mut data: HashMap<i64, Vec<(String, String)>> = HashMap::new();
        while let Some(row) = rows.next().context("loading characters' data")? {
            let character: i64 = row.get(0).context("loading characters' data")?;
            let key: String = row.get(1).context("loading characters' data")?;
            let value: String = row.get(2).context("loading characters' data")?;
            data.entry(character).or_default().push((key, value));
        }
        Ok(data)
    }

    pub fn set_character_data(
        &self,
        character: i64,
        key: &str,
        value: &str,
    ) -> Result<(), DbError> {
        self.conn
            .prepare_cached(
                "INSERT INTO character_data (character, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (character, key) DO UPDATE SET value = excluded.value",
            )
            .and_then(|mut statement| statement.execute(params![character, key, value]))
            .context("saving a character's data")?;
        self.check_file()
    }

    /// Every room's attributes, as (room, name, JSON).
    pub fn room_data(&self) -> Result<Vec<(String, String, String)>, DbError> {
        let mut statement = self
            .conn
            .prepare("SELECT room, key, value FROM room_data")
            .context("loading the rooms' data")?;
        let rows = statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .context("loading the rooms' data")?;
        rows.collect::<Result<_, _>>()
            .context("loading the rooms' data")
    }

    pub fn set_room_data(&self, room: &str, key: &str, value: &str) -> Result<(), DbError> {
        self.conn
            .prepare_cached(
                "INSERT INTO room_data (room, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (room, key) DO UPDATE SET value = excluded.value",
            )
            .and_then(|mut statement| statement.execute(params![room, key, value]))
            .context("saving a room's data")?;
        self.check_file()
    }

    /// When the tick `name` last ran, in milliseconds since the Unix epoch.
    pub fn tick_last_run(&self, name: &str) -> Result<Option<i64>, DbError> {
        self.conn
            .query_row(
                "SELECT last_ms FROM game_ticks WHERE name = ?1",
                [name],
                |row| row.get(0),
            )
            .optional()
            .context("loading a tick's last run")
    }

    pub fn set_tick_last_run(&self, name: &str, last_ms: i64) -> Result<(), DbError> {
        self.conn
            .prepare_cached(
                "INSERT INTO game_ticks (name, last_ms) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET last_ms = excluded.last_ms",
            )
            .and_then(|mut statement| statement.execute(params![name, last_ms]))
            .context("saving a tick's last run")?;
        self.check_file()
    }

    pub fn timers(&self) -> Result<Vec<TimerRow>, DbError> {
        let mut statement = self
            .conn
            .prepare("SELECT id, due_ms, name, character, data FROM game_timers")
            .context("loading the timers")?;
        let rows = statement
            .query_map([], |row| {
                Ok(TimerRow {
                    id: row.get(0)?,
                    due_ms: row.get(1)?,
                    name: row.get(2)?,
                    character: row.get(3)?,
                    data: row.get(4)?,
                })
            })
            .context("loading the timers")?;
        rows.collect::<Result<_, _>>().context("loading the timers")
    }

    /// Saves a new timer; its id comes back.
    pub fn add_timer(
        &self,
        due_ms: i64,
        name: &str,
        character: Option<i64>,
        data: &str,
    ) -> Result<i64, DbError> {
        self.conn
            .prepare_cached(
                "INSERT INTO game_timers (due_ms, name, character, data) VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut statement| statement.execute(params![due_ms, name, character, data]))
            .context("saving a timer")?;
        self.check_file()?;
        Ok(self.conn.last_insert_rowid())
    }

    pub fn delete_timer(&self, id: i64) -> Result<(), DbError> {
        self.conn
            .prepare_cached("DELETE FROM game_timers WHERE id = ?1")
            .and_then(|mut statement| statement.execute([id]))
            .context("removing a fired timer")?;
        self.check_file()
    }

    /// Runs the game's migrations this database has not seen, each in its own transaction
    /// with the record that it ran; the versions run come back.
    pub fn run_game_migrations(&mut self, rules: &Rules) -> Result<Vec<u32>, GameMigrationError> {
        let mut ran = Vec::new();
        for (version, (description, step)) in &rules.migrations {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .context("starting a game migration")?;
            let done: bool = tx
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM game_migrations WHERE version = ?1)",
                    [version],
                    |row| row.get(0),
                )
                .context("reading which game migrations ran")?;
            if done {
                continue;
            }
            step(&mut Migration { tx: &tx }).map_err(|source| GameMigrationError::Step {
                version: *version,
                description: description.clone(),
                source,
            })?;
            tx.execute(
                "INSERT INTO game_migrations (version, description, applied_at)
                 VALUES (?1, ?2, strftime('%s', 'now'))",
                params![version, description],
            )
            .context("recording a game migration")?;
            tx.commit().context("committing a game migration")?;
            tracing::info!(version, description, "the game's data migrated");
            ran.push(*version);
        }
        self.check_file()?;
        Ok(ran)
    }
}
