//! Password hashing, kept off the game thread.
//!
//! Argon2 is deliberately slow (tens of milliseconds with the default parameters), which would
//! stall every player if the game thread did it. So the game hands out a [`PasswordJob`], the
//! shell runs [`PasswordJob::run`] on a blocking thread and gives the [`PasswordDone`] back to
//! the game. Neither type can print the password: their `Debug` output leaves it out.

use std::fmt;

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use tether_protocol::SessionKey;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("cannot hash password")]
    Hash(#[source] argon2::password_hash::Error),
    #[error("stored password hash is unreadable")]
    BadStoredHash(#[source] argon2::password_hash::Error),
}

/// A password in clear, only ever moved between the line handler and a job.
pub struct Password(String);

impl Password {
    pub fn new(clear: &str) -> Password {
        Password(clear.to_owned())
    }

    /// Length in characters, as players count them.
    pub fn len(&self) -> usize {
        self.0.chars().count()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<hidden>)")
    }
}

impl Drop for Password {
    // Best effort: shortens how long the clear text lingers in freed memory.
    fn drop(&mut self) {
        let mut bytes = std::mem::take(&mut self.0).into_bytes();
        bytes.fill(0);
        std::hint::black_box(&bytes);
    }
}

/// Hashes with a fresh random salt into a PHC string (`$argon2id$v=19$...`).
pub fn hash_password(password: &Password) -> Result<String, PasswordError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.0.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(PasswordError::Hash)
}

/// Checks a password against a PHC string made by [`hash_password`].
pub fn verify_password(password: &Password, stored: &str) -> Result<bool, PasswordError> {
    let parsed = PasswordHash::new(stored).map_err(PasswordError::BadStoredHash)?;
    match Argon2::default().verify_password(password.0.as_bytes(), &parsed) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::Password) => Ok(false),
        Err(e) => Err(PasswordError::BadStoredHash(e)),
    }
}

/// Slow password work the game asked for; run it anywhere, then give the result to
/// `Game::password_done`.
pub struct PasswordJob {
    pub(crate) key: SessionKey,
    pub(crate) ticket: u64,
    pub(crate) work: Work,
}

pub(crate) enum Work {
    Hash(Password),
    /// `None` stands for an unknown account: the job still burns the time of a real check so
    /// that response times do not reveal which names exist.
    Verify(Password, Option<String>),
}

/// The result of a [`PasswordJob`].
pub struct PasswordDone {
    pub(crate) key: SessionKey,
    pub(crate) ticket: u64,
    pub(crate) outcome: Outcome,
}

pub(crate) enum Outcome {
    Hashed(Result<String, PasswordError>),
    Verified(Result<bool, PasswordError>),
}

impl PasswordJob {
    /// The session that is waiting for this job.
    pub fn session(&self) -> SessionKey {
        self.key
    }

    pub fn run(self) -> PasswordDone {
        let outcome = match &self.work {
            Work::Hash(password) => Outcome::Hashed(hash_password(password)),
            Work::Verify(password, Some(stored)) => {
                Outcome::Verified(verify_password(password, stored))
            }
            Work::Verify(password, None) => {
                let _ = hash_password(password);
                Outcome::Verified(Ok(false))
            }
        };
        PasswordDone {
            key: self.key,
            ticket: self.ticket,
            outcome,
        }
    }
}

impl PasswordDone {
    /// The session that is waiting for this result.
    pub fn session(&self) -> SessionKey {
        self.key
    }
}

impl fmt::Debug for PasswordJob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.work {
            Work::Hash(_) => "hash",
            Work::Verify(..) => "verify",
        };
        f.debug_struct("PasswordJob")
            .field("session", &self.key)
            .field("ticket", &self.ticket)
            .field("kind", &kind)
            .finish()
    }
}

impl fmt::Debug for PasswordDone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let outcome = match &self.outcome {
            Outcome::Hashed(Ok(_)) => "hashed",
            Outcome::Hashed(Err(_)) => "hash failed",
            Outcome::Verified(Ok(true)) => "verified: match",
            Outcome::Verified(Ok(false)) => "verified: no match",
            Outcome::Verified(Err(_)) => "verify failed",
        };
        f.debug_struct("PasswordDone")
            .field("session", &self.key)
            .field("ticket", &self.ticket)
            .field("outcome", &outcome)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_then_verify() {
        let hash = hash_password(&Password::new("correct horse")).unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(!hash.contains("correct horse"));
        assert!(verify_password(&Password::new("correct horse"), &hash).unwrap());
        assert!(!verify_password(&Password::new("wrong horse"), &hash).unwrap());
        assert!(verify_password(&Password::new("x"), "not a hash").is_err());
    }

    #[test]
    fn debug_output_hides_the_password() {
        let key = SessionKey {
            proxy: 1,
            session: 2,
        };
        let job = PasswordJob {
            key,
            ticket: 7,
            work: Work::Verify(Password::new("hunter22"), Some("$argon2id$x".into())),
        };
        let text = format!("{job:?} {:?}", Password::new("hunter22"));
        assert!(
            !text.contains("hunter22") && !text.contains("argon2id"),
            "{text}"
        );
    }
}
