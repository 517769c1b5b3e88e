//! What `tether admin` does to the accounts, on the server's host: make an administrator on
//! purpose (the game itself never makes one, so a fresh server open to the internet is not
//! owned by whoever connects first), list the accounts, promote, demote, reset a password.
//!
//! Whoever can run it can already read and write the data directory, so it asks for nothing
//! more. It works on the database directly, beside a running game or without one; the game
//! asks the database whether a player is an administrator at each use, so a change counts at
//! once, for players online too.

use std::path::Path;

use crate::db::{AccountSummary, Db, DbError};
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

/// The accounts of one data directory.
pub struct Accounts {
    db: Db,
}

impl Accounts {
    /// Opens (creating if need be, owner-only) the database in `data`.
    pub fn open(data: &Path) -> Result<Accounts, AdminError> {
        tether_protocol::private::dir(data).map_err(|source| AdminError::DataDir {
            path: data.to_owned(),
            source,
        })?;
        Ok(Accounts {
            db: Db::open(&Db::path_in(data))?,
        })
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
        Ok(name)
    }

    /// Makes the named account an administrator (`admin`) or a player again.
    pub fn set_admin(&self, name: &str, admin: bool) -> Result<Change, AdminError> {
        let name = normalize_name(name)?;
        match self.db.set_admin(&name, admin)? {
            None => Err(AdminError::NoSuchAccount(name)),
            Some(was) if was == admin => Ok(Change::AlreadySo),
            Some(_) => Ok(Change::Made),
        }
    }

    /// Gives the named account a new password; returns its name as stored.
    pub fn reset_password(&self, name: &str, clear: &str) -> Result<String, AdminError> {
        let name = normalize_name(name)?;
        let hash = hash(clear)?;
        if self.db.set_password_hash(&name, &hash)? {
            Ok(name)
        } else {
            Err(AdminError::NoSuchAccount(name))
        }
    }
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
        let mut accounts = Accounts::open(&data).expect("open");
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
}
