//! Persistence of accounts and characters in SQLite.
//!
//! Every write is its own committed transaction and the game only confirms a change to the
//! player after the write returns, so a core that is killed at any moment never leaves a
//! player believing in a change that was lost. `synchronous=FULL` makes "committed" mean
//! "on disk" in WAL mode as well.
//!
//! **Watched.** SQLite keeps writing to a database file that was deleted or replaced under
//! it: every change would be confirmed and then gone at the next start. So before each write
//! the file at the database's path is checked to still be the one that was opened (device and
//! inode); if it is not, that write and every later one fail with [`DbError::Lost`], which
//! the game tells players and the operator. And a data directory that ever had a database
//! (a marker file beside it records that) never gets a new, empty one by itself: a missing
//! database is an error to fix, not a fresh world.

use std::cell::Cell;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

/// Schema steps in order; `PRAGMA user_version` counts how many have been applied. Steps are
/// never edited once released, only added: a database is brought up to date by running the
/// ones it has not seen.
const MIGRATIONS: &[&str] = &[
    // 1: accounts and their characters.
    r#"
    CREATE TABLE accounts (
        id            INTEGER PRIMARY KEY,
        name          TEXT    NOT NULL,
        name_key      TEXT    NOT NULL UNIQUE,
        password_hash TEXT    NOT NULL,
        is_admin      INTEGER NOT NULL DEFAULT 0,
        created_at    INTEGER NOT NULL
    );
    CREATE TABLE characters (
        id         INTEGER PRIMARY KEY,
        account_id INTEGER NOT NULL UNIQUE REFERENCES accounts(id) ON DELETE CASCADE,
        name       TEXT    NOT NULL,
        room       TEXT    NOT NULL,
        title      TEXT    NOT NULL DEFAULT ''
    );
"#,
    // 2: display settings. The defaults are what every character had before: wrapped text,
    // colours as the client allows. `color` holds `game::color_word`.
    r#"
    ALTER TABLE characters ADD COLUMN wrap  INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE characters ADD COLUMN color TEXT    NOT NULL DEFAULT 'auto';
"#,
    // 3: failed logins, per account and per address (`game::throttle`), kept here so that
    // a reload or a crash does not give a password guesser a fresh start.
    r#"
    CREATE TABLE login_failures (
        subject  TEXT    PRIMARY KEY,
        failures INTEGER NOT NULL,
        last_at  INTEGER NOT NULL
    );
"#,
    // 4: a game's own data (`api`, kept by `game_data`): attributes per character and per
    // room as JSON, when each tick last ran, pending timers, and the game's own migrations.
    r#"
    CREATE TABLE character_data (
        character INTEGER NOT NULL REFERENCES characters(id) ON DELETE CASCADE,
        key       TEXT    NOT NULL,
        value     TEXT    NOT NULL,
        PRIMARY KEY (character, key)
    ) WITHOUT ROWID;
    CREATE TABLE room_data (
        room  TEXT NOT NULL,
        key   TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (room, key)
    ) WITHOUT ROWID;
    CREATE TABLE game_ticks (
        name    TEXT    PRIMARY KEY,
        last_ms INTEGER NOT NULL
    );
    CREATE TABLE game_timers (
        id        INTEGER PRIMARY KEY,
        due_ms    INTEGER NOT NULL,
        name      TEXT    NOT NULL,
        character INTEGER,
        data      TEXT    NOT NULL
    );
    CREATE TABLE game_migrations (
        version     INTEGER PRIMARY KEY,
        description TEXT    NOT NULL,
        applied_at  INTEGER NOT NULL
    );
"#,
    // 5: moderation (`moderation`): bans by character name or by address, with an expiry
    // (NULL: until lifted); every administrator's action, for the record; and a shutdown
    // announced for later, so that its countdown outlives a core reload.
    r#"
    CREATE TABLE bans (
        kind       TEXT    NOT NULL,
        target     TEXT    NOT NULL,
        reason     TEXT    NOT NULL,
        by_whom    TEXT    NOT NULL,
        created_ms INTEGER NOT NULL,
        expires_ms INTEGER,
        PRIMARY KEY (kind, target)
    ) WITHOUT ROWID;
    CREATE TABLE admin_audit (
        id     INTEGER PRIMARY KEY,
        at_ms  INTEGER NOT NULL,
        actor  TEXT    NOT NULL,
        action TEXT    NOT NULL,
        target TEXT    NOT NULL,
        detail TEXT    NOT NULL
    );
    CREATE TABLE scheduled_shutdown (
        only    INTEGER PRIMARY KEY CHECK (only = 1),
        at_ms   INTEGER NOT NULL,
        reason  TEXT    NOT NULL,
        by_whom TEXT    NOT NULL
    );
"#,
];

mod game_data;
mod moderation;
pub use game_data::{GameMigrationError, TimerRow};
pub use moderation::{AuditAction, AuditEntry, Ban, BanTarget, PlannedShutdown};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot open database {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "the database has schema version {found}, but this core only knows up to {supported}; \
         run a newer core"
    )]
    TooNew { found: i64, supported: usize },
    #[error("the name {0} is already taken")]
    NameTaken(String),
    #[error(
        "the database {} is missing, but this data directory had one (see {}); restore it \
         from a backup, or delete {} to start an empty world",
        path.display(), marker.display(), marker.display()
    )]
    Missing { path: PathBuf, marker: PathBuf },
    #[error("the database file {} was {what} while the game ran; no change is saved until \
             it is restored and the core restarted", path.display())]
    Lost { path: PathBuf, what: Loss },
    #[error("cannot use {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("database error while {context}")]
    Sqlite {
        context: &'static str,
        #[source]
        source: rusqlite::Error,
    },
}

/// What happened to a database file under a running core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loss {
    Deleted,
    Replaced,
}

impl std::fmt::Display for Loss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Loss::Deleted => "deleted",
            Loss::Replaced => "replaced by another file",
        })
    }
}

/// The file a database was opened from, to notice it going away.
#[derive(Debug)]
struct Watched {
    path: PathBuf,
    dev: u64,
    ino: u64,
    /// Set at the first write that found the file gone; stays set.
    lost: Cell<Option<Loss>>,
}

impl Watched {
    fn check(&self) -> Result<(), DbError> {
        if self.lost.get().is_none() {
            let loss = match std::fs::metadata(&self.path) {
                Ok(meta) if meta.dev() == self.dev && meta.ino() == self.ino => return Ok(()),
                Ok(_) => Loss::Replaced,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => Loss::Deleted,
                // Cannot tell (a permission change?): the write itself will say if it fails.
                Err(_) => return Ok(()),
            };
            tracing::error!(
                path = %self.path.display(),
                "the database file was {loss} while the game ran: no change is saved from now \
                 on; restore it and restart the core"
            );
            self.lost.set(Some(loss));
        }
        match self.lost.get() {
            Some(what) => Err(DbError::Lost {
                path: self.path.clone(),
                what,
            }),
            None => Ok(()),
        }
    }
}

/// The marker beside a database that says this data directory has had one.
pub fn marker_for(path: &Path) -> PathBuf {
    sidecar(path, ".created")
}

/// A file beside the database whose name is the database's with `suffix` added.
fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

trait Context<T> {
    fn context(self, context: &'static str) -> Result<T, DbError>;
}

impl<T> Context<T> for rusqlite::Result<T> {
    fn context(self, context: &'static str) -> Result<T, DbError> {
        self.map_err(|source| DbError::Sqlite { context, source })
    }
}

/// A character with what the game needs of its account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CharacterRecord {
    pub id: i64,
    pub account_id: i64,
    pub name: String,
    pub room: String,
    pub title: String,
    /// Whether the proxy wraps this player's text.
    pub wrap: bool,
    /// The player's colour setting, as the game spells it.
    pub color: String,
}

/// `ids` as a JSON array, for `json_each`: one parameter however many there are.
fn json_ids(ids: &[i64]) -> String {
    let listed: Vec<String> = ids.iter().map(i64::to_string).collect();
    format!("[{}]", listed.join(","))
}

fn character_record(row: &rusqlite::Row<'_>) -> rusqlite::Result<CharacterRecord> {
    Ok(CharacterRecord {
        id: row.get(0)?,
        account_id: row.get(1)?,
        name: row.get(2)?,
        room: row.get(3)?,
        title: row.get(4)?,
        wrap: row.get(5)?,
        color: row.get(6)?,
    })
}

/// An account as `tether admin list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountSummary {
    pub name: String,
    pub is_admin: bool,
    /// Seconds since the Unix epoch.
    pub created_at: i64,
}

/// What a login needs to check a password.
#[derive(Clone)]
pub struct Credentials {
    pub character_id: i64,
    pub name: String,
    pub password_hash: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("character_id", &self.character_id)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

pub struct Db {
    conn: Connection,
    /// `None` in memory.
    file: Option<Watched>,
}

impl Db {
    /// Opens the database at `path`, creating it only if this data directory never had one.
    /// Where the database lives in a data directory.
    pub fn path_in(data: &Path) -> PathBuf {
        data.join("tether.db")
    }

    pub fn open(path: &Path) -> Result<Db, DbError> {
        let open_error = |source| DbError::Open {
            path: path.to_owned(),
            source,
        };
        let marker = marker_for(path);
        if !path.exists() && marker.exists() {
            return Err(DbError::Missing {
                path: path.to_owned(),
                marker,
            });
        }
        // Password hashes live in it: created owner-only (SQLite gives its -wal and -shm
        // files the database's mode), and files an older tether left readable tightened.
        for file in [
            path.to_owned(),
            sidecar(path, "-wal"),
            sidecar(path, "-shm"),
        ] {
            let tightened = if file == path {
                tether_protocol::private::create_file(&file)
            } else {
                tether_protocol::private::file(&file)
            }
            .map_err(|source| DbError::Io {
                path: file.clone(),
                source,
            })?;
            if let Some(change) = tightened {
                tracing::warn!(path = %file.display(), "a database file {change}");
            }
        }
        let conn = Connection::open(path).map_err(open_error)?;
        // A core that is being replaced may still hold the write lock for a moment.
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(open_error)?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(open_error)?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(path = %path.display(), mode, "database did not switch to WAL mode");
        }
        let conn = Db::prepare(conn)?;
        if !marker.exists() {
            std::fs::write(
                &marker,
                "tether's database lives beside this file; while it exists, a missing database \
                 is an error, not a new world\n",
            )
            .map_err(|source| DbError::Io {
                path: marker.clone(),
                source,
            })?;
        }
        let meta = std::fs::metadata(path).map_err(|source| DbError::Io {
            path: path.to_owned(),
            source,
        })?;
        Ok(Db {
            conn,
            file: Some(Watched {
                path: path.to_owned(),
                dev: meta.dev(),
                ino: meta.ino(),
                lost: Cell::new(None),
            }),
        })
    }

    pub fn open_in_memory() -> Result<Db, DbError> {
        let conn = Connection::open_in_memory().context("opening an in-memory database")?;
        Ok(Db {
            conn: Db::prepare(conn)?,
            file: None,
        })
    }

    /// Whether the file was found deleted or replaced (see the module doc).
    pub fn lost(&self) -> Option<Loss> {
        self.file.as_ref().and_then(|file| file.lost.get())
    }

    /// After a write, before the game confirms it: the file is still the one we opened, so
    /// the write landed where the next core will find it.
    fn check_file(&self) -> Result<(), DbError> {
        self.file.as_ref().map_or(Ok(()), Watched::check)
    }

    fn prepare(mut conn: Connection) -> Result<Connection, DbError> {
        conn.pragma_update(None, "synchronous", "FULL")
            .context("setting synchronous=FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .context("enabling foreign keys")?;
        migrate(&mut conn)?;
        Ok(conn)
    }

    /// Looks an account up by name, case-insensitively.
    pub fn credentials(&self, name: &str) -> Result<Option<Credentials>, DbError> {
        self.conn
            .query_row(
                "SELECT c.id, a.name, a.password_hash
                 FROM accounts a JOIN characters c ON c.account_id = a.id
                 WHERE a.name_key = ?1",
                [name.to_ascii_lowercase()],
                |row| {
                    Ok(Credentials {
                        character_id: row.get(0)?,
                        name: row.get(1)?,
                        password_hash: row.get(2)?,
                    })
                },
            )
            .optional()
            .context("looking up an account")
    }

    pub fn name_taken(&self, name: &str) -> Result<bool, DbError> {
        self.conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM accounts WHERE name_key = ?1)",
                [name.to_ascii_lowercase()],
                |row| row.get(0),
            )
            .context("checking a name")
    }

    /// Creates an account and its character in `room` (empty: placed at the world's start on
    /// its first login). Only `tether admin` makes administrators: on a server open to the
    /// internet, whoever connects first must not own the game.
    pub fn create_account(
        &mut self,
        name: &str,
        password_hash: &str,
        room: &str,
        is_admin: bool,
    ) -> Result<CharacterRecord, DbError> {
        // IMMEDIATE takes the write lock up front, so the "is it the first?" and "is the name
        // free?" answers still hold when the rows are inserted, even with another process.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .context("starting to create an account")?;
        let name_key = name.to_ascii_lowercase();
        let taken: bool = tx
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM accounts WHERE name_key = ?1)",
                [&name_key],
                |row| row.get(0),
            )
            .context("checking a new account")?;
        if taken {
            return Err(DbError::NameTaken(name.to_owned()));
        }
        tx.execute(
            "INSERT INTO accounts (name, name_key, password_hash, is_admin, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![name, name_key, password_hash, is_admin, unix_now()],
        )
        .context("inserting an account")?;
        let account_id = tx.last_insert_rowid();
        tx.execute(
            "INSERT INTO characters (account_id, name, room) VALUES (?1, ?2, ?3)",
            params![account_id, name, room],
        )
        .context("inserting a character")?;
        let id = tx.last_insert_rowid();
        tx.commit().context("committing a new account")?;
        self.check_file()?;
        Ok(CharacterRecord {
            id,
            account_id,
            name: name.to_owned(),
            room: room.to_owned(),
            title: String::new(),
            wrap: true,
            color: "auto".to_owned(),
        })
    }

    /// Failed logins recorded for `subject` (see `game::throttle`): how many, and the unix
    /// time of the last.
    pub fn login_failures(&self, subject: &str) -> Result<Option<(u32, i64)>, DbError> {
        self.conn
            .query_row(
                "SELECT failures, last_at FROM login_failures WHERE subject = ?1",
                [subject],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
            .context("reading failed logins")
    }

    /// Counts one more failed login for `subject` at `now`, starting over if the last was
    /// `forget_after` seconds ago or more; returns the count.
    pub fn record_login_failure(
        &self,
        subject: &str,
        now: i64,
        forget_after: i64,
    ) -> Result<u32, DbError> {
        let failures = self
            .conn
            .query_row(
                "INSERT INTO login_failures (subject, failures, last_at) VALUES (?1, 1, ?2)
                 ON CONFLICT (subject) DO UPDATE SET
                     failures = CASE WHEN ?2 - last_at >= ?3 THEN 1 ELSE failures + 1 END,
                     last_at = ?2
                 RETURNING failures",
                params![subject, now, forget_after],
                |row| row.get(0),
            )
            .context("recording a failed login")?;
        self.check_file()?;
        Ok(failures)
    }

    /// Forgets the failed logins of `subject` (after a successful one).
    pub fn clear_login_failures(&self, subject: &str) -> Result<(), DbError> {
        self.conn
            .execute("DELETE FROM login_failures WHERE subject = ?1", [subject])
            .context("clearing failed logins")?;
        self.check_file()
    }

    /// Whether the character's account is an administrator now: asked at each use, so that
    /// `tether admin promote` and `demote` count at once, even for a player online.
    pub fn is_admin(&self, character_id: i64) -> Result<bool, DbError> {
        self.conn
            .query_row(
                "SELECT a.is_admin FROM accounts a JOIN characters c ON c.account_id = a.id
                 WHERE c.id = ?1",
                [character_id],
                |row| row.get(0),
            )
            .optional()
            .map(|found| found.unwrap_or(false))
            .context("checking an administrator")
    }

    /// How many accounts are administrators.
    pub fn admin_count(&self) -> Result<i64, DbError> {
        self.conn
            .query_row("SELECT COUNT(*) FROM accounts WHERE is_admin", [], |row| {
                row.get(0)
            })
            .context("counting administrators")
    }

    /// Every account, by name.
    pub fn accounts(&self) -> Result<Vec<AccountSummary>, DbError> {
        let mut statement = self
            .conn
            .prepare("SELECT name, is_admin, created_at FROM accounts ORDER BY name_key")
            .context("listing accounts")?;
        let rows = statement
            .query_map([], |row| {
                Ok(AccountSummary {
                    name: row.get(0)?,
                    is_admin: row.get(1)?,
                    created_at: row.get(2)?,
                })
            })
            .context("listing accounts")?;
        rows.collect::<Result<_, _>>().context("listing accounts")
    }

    /// Makes the named account an administrator or not. `Ok(None)`: no such account;
    /// `Ok(Some(was))`: what it was before.
    pub fn set_admin(&self, name: &str, is_admin: bool) -> Result<Option<bool>, DbError> {
        let was: Option<bool> = self
            .conn
            .query_row(
                "SELECT is_admin FROM accounts WHERE name_key = ?1",
                [name.to_ascii_lowercase()],
                |row| row.get(0),
            )
            .optional()
            .context("looking up an account")?;
        if was.is_some() {
            self.conn
                .execute(
                    "UPDATE accounts SET is_admin = ?2 WHERE name_key = ?1",
                    params![name.to_ascii_lowercase(), is_admin],
                )
                .context("changing an administrator")?;
            self.check_file()?;
        }
        Ok(was)
    }

    /// Replaces the named account's password hash; false if there is no such account.
    pub fn set_password_hash(&self, name: &str, password_hash: &str) -> Result<bool, DbError> {
        let changed = self
            .conn
            .execute(
                "UPDATE accounts SET password_hash = ?2 WHERE name_key = ?1",
                params![name.to_ascii_lowercase(), password_hash],
            )
            .context("changing a password")?;
        self.check_file()?;
        Ok(changed > 0)
    }

    pub fn character(&self, id: i64) -> Result<Option<CharacterRecord>, DbError> {
        self.conn
            .prepare_cached(
                "SELECT id, account_id, name, room, title, wrap, color
                 FROM characters WHERE id = ?1",
            )
            .and_then(|mut statement| statement.query_row([id], character_record).optional())
            .context("loading a character")
    }

    /// The characters of `ids` that exist, in one query: a core taking over a proxy's
    /// sessions loads them all at once (see `Game::sessions_restored`).
    pub fn characters(&self, ids: &[i64]) -> Result<Vec<CharacterRecord>, DbError> {
        let mut statement = self
            .conn
            .prepare_cached(
                "SELECT id, account_id, name, room, title, wrap, color
                 FROM characters WHERE id IN (SELECT value FROM json_each(?1))",
            )
            .context("loading characters")?;
        let rows = statement
            .query_map([json_ids(ids)], character_record)
            .context("loading characters")?;
        rows.collect::<Result<_, _>>().context("loading characters")
    }

    pub fn set_room(&self, character_id: i64, room: &str) -> Result<(), DbError> {
        self.conn
            .execute(
                "UPDATE characters SET room = ?2 WHERE id = ?1",
                params![character_id, room],
            )
            .context("saving a character's room")?;
        self.check_file()
    }

    pub fn set_title(&self, character_id: i64, title: &str) -> Result<(), DbError> {
        self.conn
            .execute(
                "UPDATE characters SET title = ?2 WHERE id = ?1",
                params![character_id, title],
            )
            .context("saving a character's title")?;
        self.check_file()
    }

    pub fn set_display(&self, character_id: i64, wrap: bool, color: &str) -> Result<(), DbError> {
        self.conn
            .execute(
                "UPDATE characters SET wrap = ?2, color = ?3 WHERE id = ?1",
                params![character_id, wrap, color],
            )
            .context("saving a character's display settings")?;
        self.check_file()
    }
}

fn migrate(conn: &mut Connection) -> Result<(), DbError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .context("starting the schema migration")?;
    let version: i64 = tx
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .context("reading the schema version")?;
    let applied = usize::try_from(version).unwrap_or(usize::MAX);
    if applied > MIGRATIONS.len() {
        return Err(DbError::TooNew {
            found: version,
            supported: MIGRATIONS.len(),
        });
    }
    for step in &MIGRATIONS[applied..] {
        tx.execute_batch(step).context("migrating the schema")?;
    }
    if applied < MIGRATIONS.len() {
        tx.pragma_update(None, "user_version", MIGRATIONS.len() as i64)
            .context("writing the schema version")?;
        tracing::info!(
            from = applied,
            to = MIGRATIONS.len(),
            "database schema migrated"
        );
    }
    tx.commit().context("committing the schema migration")
}

pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_characters_and_updates() {
        let mut db = Db::open_in_memory().unwrap();
        let alice = db
            .create_account("Alice", "hash-a", "square", false)
            .unwrap();
        let bob = db.create_account("Bob", "hash-b", "square", false).unwrap();
        // Nobody is an administrator by being first.
        assert!(!db.is_admin(alice.id).unwrap());
        assert_eq!(db.set_admin("ALICE", true).unwrap(), Some(false));
        assert!(db.is_admin(alice.id).unwrap());
        assert!(!db.is_admin(bob.id).unwrap());
        assert_eq!(db.set_admin("carol", true).unwrap(), None);
        let listed: Vec<(String, bool)> = db
            .accounts()
            .unwrap()
            .into_iter()
            .map(|a| (a.name, a.is_admin))
            .collect();
        assert_eq!(
            listed,
            [("Alice".to_string(), true), ("Bob".to_string(), false)]
        );
        assert!(db.set_password_hash("bob", "hash-b2").unwrap());
        assert_eq!(
            db.credentials("Bob").unwrap().unwrap().password_hash,
            "hash-b2"
        );
        assert!(!db.set_password_hash("carol", "x").unwrap());
        assert!(matches!(
            db.create_account("ALICE", "h", "square", false),
            Err(DbError::NameTaken(_))
        ));
        assert!(db.name_taken("bOb").unwrap());
        let creds = db.credentials("alice").unwrap().unwrap();
        assert_eq!(
            (creds.character_id, creds.name.as_str()),
            (alice.id, "Alice")
        );
        assert!(!format!("{creds:?}").contains("hash-a"));
        assert!(db.credentials("carol").unwrap().is_none());

        assert_eq!(db.character(bob.id).unwrap().unwrap(), bob);
        db.set_room(bob.id, "tavern").unwrap();
        db.set_title(bob.id, "the Bold").unwrap();
        db.set_display(bob.id, false, "256").unwrap();
        let loaded = db.character(bob.id).unwrap().unwrap();
        assert_eq!(
            (loaded.room.as_str(), loaded.title.as_str()),
            ("tavern", "the Bold")
        );
        assert_eq!((loaded.wrap, loaded.color.as_str()), (false, "256"));
        assert!(db.character(999).unwrap().is_none());
    }

    #[test]
    fn a_deleted_or_replaced_file_refuses_every_later_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tether.db");
        let mut db = Db::open(&path).unwrap();
        let alice = db.create_account("Alice", "hash", "square", false).unwrap();
        db.set_title(alice.id, "the First").unwrap();

        std::fs::remove_file(&path).unwrap();
        assert!(matches!(
            db.set_title(alice.id, "the Lost"),
            Err(DbError::Lost {
                what: Loss::Deleted,
                ..
            })
        ));
        assert_eq!(db.lost(), Some(Loss::Deleted));
        // A file put back is not ours: still refused.
        std::fs::write(&path, b"").unwrap();
        assert!(matches!(
            db.create_account("Bob", "hash", "square", false),
            Err(DbError::Lost { .. })
        ));

        let other = tempfile::tempdir().unwrap();
        let path = other.path().join("tether.db");
        let db = Db::open(&path).unwrap();
        std::fs::rename(&path, other.path().join("aside.db")).unwrap();
        std::fs::write(&path, b"").unwrap();
        assert!(matches!(
            db.set_room(1, "square"),
            Err(DbError::Lost {
                what: Loss::Replaced,
                ..
            })
        ));
    }

    #[test]
    fn a_missing_database_is_not_replaced_by_an_empty_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tether.db");
        drop(Db::open(&path).unwrap());
        assert!(marker_for(&path).exists());
        std::fs::remove_file(&path).unwrap();
        let error = Db::open(&path).err().expect("refused");
        assert!(matches!(error, DbError::Missing { .. }));
        assert!(
            error.to_string().contains("restore it from a backup"),
            "{error}"
        );
        assert!(!path.exists(), "no empty database was made");

        // The operator decides to start over.
        std::fs::remove_file(marker_for(&path)).unwrap();
        assert!(Db::open(&path).is_ok());
    }

    #[test]
    fn a_corrupt_database_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tether.db");
        std::fs::write(&path, vec![0x5a; 8192]).unwrap();
        let error = Db::open(&path).err().expect("refused");
        let mut chain = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            chain.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        assert!(chain.contains("not a database"), "{chain}");
    }

    #[test]
    fn version_1_database_is_migrated_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("game.db");
        {
            // What a core from before display settings left behind.
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.execute_batch(
                "INSERT INTO accounts (name, name_key, password_hash, is_admin, created_at)
                 VALUES ('Alice', 'alice', 'h', 1, 0);
                 INSERT INTO characters (account_id, name, room, title)
                 VALUES (1, 'Alice', 'tavern', 'the Old');",
            )
            .unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
        }
        let db = Db::open(&path).unwrap();
        let alice = db.character(1).unwrap().unwrap();
        assert_eq!(
            (alice.room.as_str(), alice.title.as_str()),
            ("tavern", "the Old")
        );
        assert!(db.is_admin(1).unwrap());
        assert_eq!((alice.wrap, alice.color.as_str()), (true, "auto"));
        db.set_display(1, false, "none").unwrap();
        drop(db);

        let conn = Connection::open(&path).unwrap();
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64);
        drop(conn);
        // Opening again runs nothing twice and keeps the setting.
        let db = Db::open(&path).unwrap();
        assert!(!db.character(1).unwrap().unwrap().wrap);
    }

    #[test]
    fn file_database_persists_and_refuses_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("game.db");
        let id = {
            let mut db = Db::open(&path).unwrap();
            db.create_account("Alice", "h", "square", false).unwrap().id
        };
        let db = Db::open(&path).unwrap();
        assert_eq!(db.character(id).unwrap().unwrap().name, "Alice");
        drop(db);

        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        assert!(matches!(
            Db::open(&path),
            Err(DbError::TooNew { found: 99, .. })
        ));
    }
}
