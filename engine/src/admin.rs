//! What `tether admin` does to the accounts, on the server's host: make an administrator on
//! purpose (the game itself never makes one, so a fresh server open to the internet is not
//! owned by whoever connects first), list the accounts, promote, demote, reset a password,
//! ban and lift bans, read the audit trail. Each change is recorded in the audit trail under
//! the name of whoever made it (`host:<user>`).
//!
//! Whoever can run it can already read and write the data directory, so it asks for nothing
//! more. It works on the database directly, beside a running game or without one; the game
//! asks the database whether a player is an administrator at each use, so a change counts at
//! once, for players online too.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::db::{AccountSummary, AuditAction, Db, DbError};
pub use crate::db::{AuditEntry, Ban, BanTarget};
pub use crate::game::moderation::{BanLength, parse_ban_target, parse_span};
pub use crate::game::names::NameError;
use crate::game::names::normalize_name;
use crate::password::{self, Password, PasswordError};

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    BadName(#[from] NameError),
    #[error("there is no account named {0}")]
    NoSuchAccount(String),
    #[error("passwords must be {min} to {max} characters long", min = password::MIN_LEN, max = password::MAX_LEN)]
    BadPasswordLength,
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error("cannot use the data directory {}", path.display())]
    DataDir {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Whether a promote or demote changed anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Made,
    AlreadySo,
}

/// The accounts of one data directory, changed by `actor`.
pub struct Accounts {
    db: Db,
    actor: String,
}

impl Accounts {
    /// Opens (creating if need be, owner-only) the database in `data`; `actor` is who the
    /// audit trail says made the changes.
    pub fn open(data: &Path, actor: &str) -> Result<Accounts, AdminError> {
        tether_protocol::private::dir(data).map_err(|source| AdminError::DataDir {
            path: data.to_owned(),
            source,
        })?;
        Ok(Accounts {
            db: Db::open(&Db::path_in(data))?,
            actor: actor.to_owned(),
        })
    }

    fn record(&self, action: AuditAction, target: &str, detail: &str) -> Result<(), AdminError> {
        Ok(self
            .db
            .audit(now_ms(), &self.actor, action, target, detail)?)
    }

    pub fn list(&self) -> Result<Vec<AccountSummary>, AdminError> {
        Ok(self.db.accounts()?)
    }

    /// Whether any account is an administrator.
    pub fn any_admin(&self) -> Result<bool, AdminError> {
        Ok(self.db.admin_count()? > 0)
    }

    /// Creates a character that is an administrator (`admin`) or a player; returns its name
    /// as stored. It starts in the world's start room at its first login.
    pub fn create(&mut self, name: &str, clear: &str, admin: bool) -> Result<String, AdminError> {
        let name = normalize_name(name)?;
        let hash = hash(clear)?;
        self.db.create_account(&name, &hash, "", admin)?;
        let role = if admin { "administrator" } else { "player" };
        self.record(AuditAction::CreateAccount, &name, role)?;
        Ok(name)
    }

    /// Makes the named account an administrator (`admin`) or a player again.
    pub fn set_admin(&self, name: &str, admin: bool) -> Result<Change, AdminError> {
        let name = normalize_name(name)?;
        match self.db.set_admin(&name, admin)? {
            None => Err(AdminError::NoSuchAccount(name)),
            Some(was) if was == admin => Ok(Change::AlreadySo),
            Some(_) => {
                let action = if admin {
                    AuditAction::Promote
                } else {
                    AuditAction::Demote
                };
                self.record(action, &name, "")?;
                Ok(Change::Made)
            }
        }
    }

    /// Gives the named account a new password; returns its name as stored.
    pub fn reset_password(&self, name: &str, clear: &str) -> Result<String, AdminError> {
        let name = normalize_name(name)?;
        let hash = hash(clear)?;
        if self.db.set_password_hash(&name, &hash)? {
            self.record(AuditAction::ResetPassword, &name, "")?;
            Ok(name)
        } else {
            Err(AdminError::NoSuchAccount(name))
        }
    }
}

impl Accounts {
    /// Bans `target` for `length`. It holds at the next login or connection; who it covers
    /// and is in the game now stays until kicked (`tether admin kick`, or `@ban` in the game,
    /// which does both).
    pub fn ban(
        &self,
        target: &BanTarget,
        length: BanLength,
        reason: &str,
    ) -> Result<Ban, AdminError> {
        let now = now_ms();
        let ban = Ban {
            target: target.clone(),
            reason: reason.to_owned(),
            by: self.actor.clone(),
            created_ms: now,
            expires_ms: length.expires_ms(now),
        };
        self.db.add_ban(&ban)?;
        let detail = crate::game::moderation::ban_detail(length, reason);
        self.record(AuditAction::Ban, &target.to_string(), &detail)?;
        Ok(ban)
    }

    /// Lifts the ban on `target`; whether there was one.
    pub fn unban(&self, target: &BanTarget) -> Result<bool, AdminError> {
        let lifted = self.db.remove_ban(target)?;
        if lifted {
            self.record(AuditAction::Unban, &target.to_string(), "")?;
        }
        Ok(lifted)
    }

    /// Every ban that holds now.
    pub fn bans(&self) -> Result<Vec<Ban>, AdminError> {
        Ok(self.db.bans(now_ms())?)
    }

    /// The last `limit` lines of the audit trail, oldest first.
    pub fn audit_trail(&self, limit: usize) -> Result<Vec<AuditEntry>, AdminError> {
        Ok(self.db.audit_trail(limit)?)
    }
}

/// Milliseconds since the Unix epoch, as the game keeps time in the database.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
        })
}

fn hash(clear: &str) -> Result<String, AdminError> {
    let password = Password::new(clear);
    if !(password::MIN_LEN..=password::MAX_LEN).contains(&password.len()) {
        return Err(AdminError::BadPasswordLength);
    }
    Ok(password::hash_password(&password)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_administrator_is_made_listed_demoted_and_given_a_new_password() {
        let root = tempfile::tempdir().expect("temp dir");
        let data = root.path().join("data");
        let mut accounts = Accounts::open(&data, "host:test").expect("open");
        assert!(!accounts.any_admin().expect("any"));
        assert_eq!(
            accounts.create("root", "rootpass", true).expect("create"),
            "Root"
        );
        assert_eq!(
            accounts.create("pleb", "plebpass", false).expect("create"),
            "Pleb"
        );
        assert!(matches!(
            accounts.create("ROOT", "another1", false),
            Err(AdminError::Db(DbError::NameTaken(_)))
        ));
        assert!(matches!(
            accounts.create("r00t", "another1", false),
            Err(AdminError::BadName(NameError::NotLetters))
        ));
        assert!(matches!(
            accounts.create("short", "abc", false),
            Err(AdminError::BadPasswordLength)
        ));
        assert!(accounts.any_admin().expect("any"));
        assert_eq!(
            accounts.set_admin("pleb", true).expect("promote"),
            Change::Made
        );
        assert_eq!(
            accounts.set_admin("Pleb", true).expect("again"),
            Change::AlreadySo
        );
        assert_eq!(
            accounts.set_admin("root", false).expect("demote"),
            Change::Made
        );
        assert!(matches!(
            accounts.set_admin("nobody", true),
            Err(AdminError::NoSuchAccount(name)) if name == "Nobody"
        ));
        let listed: Vec<(String, bool)> = accounts
            .list()
            .expect("list")
            .into_iter()
            .map(|a| (a.name, a.is_admin))
            .collect();
        assert_eq!(listed, [("Pleb".into(), true), ("Root".into(), false)]);

        let before = accounts.db.credentials("pleb").expect("db").expect("found");
        accounts.reset_password("PLEB", "newpass1").expect("reset");
        let after = accounts.db.credentials("pleb").expect("db").expect("found");
        assert_ne!(before.password_hash, after.password_hash);
        assert!(
            password::verify_password(&Password::new("newpass1"), &after.password_hash)
                .expect("verify")
        );
        assert!(matches!(
            accounts.reset_password("nobody", "newpass1"),
            Err(AdminError::NoSuchAccount(_))
        ));
    }

    #[test]
    fn bans_made_on_the_host_hold_and_everything_is_on_record() {
        let root = tempfile::tempdir().expect("temp dir");
        let accounts = Accounts::open(root.path(), "host:ops").expect("open");
        let target = parse_ban_target("mallory").expect("name");
        let ban = accounts
            .ban(&target, BanLength::Forever, "spam")
            .expect("ban");
        assert_eq!((ban.by.as_str(), ban.expires_ms), ("host:ops", None));
        assert_eq!(accounts.bans().expect("bans"), [ban]);
        assert!(accounts.unban(&target).expect("unban"));
        assert!(!accounts.unban(&target).expect("again"));
        let trail: Vec<(String, String, String)> = accounts
            .audit_trail(10)
            .expect("trail")
            .into_iter()
            .map(|e| (e.actor, e.action, e.target))
            .collect();
        assert_eq!(
            trail,
            [
                ("host:ops".into(), "ban".into(), "Mallory".into()),
                ("host:ops".into(), "unban".into(), "Mallory".into())
            ]
        );
    }
}
