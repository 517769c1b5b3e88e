//! Password hashing, kept off the game thread.
//!
//! Argon2 is deliberately slow (tens of milliseconds with the default parameters), which would
//! stall every player if the game thread did it. So the game hands out a [`PasswordJob`], the
//! shell runs [`PasswordJob::run`] on a blocking thread and gives the [`PasswordDone`] back to
//! the game. Neither type can print the password: their `Debug` output leaves it out.

use std::fmt;
use std::sync::{Mutex, PoisonError};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, PasswordHash, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tether_protocol::SessionKey;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("cannot hash password")]
    Hash(#[source] argon2::password_hash::Error),
    #[error("stored password hash is unreadable")]
    BadStoredHash(#[source] argon2::password_hash::Error),
}

/// The shortest password accepted, in characters.
pub const MIN_LEN: usize = 6;
/// The longest, in characters: argon2 takes any length, but nobody types more.
pub const MAX_LEN: usize = 128;

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
    let argon2 = Argon2::default();
    let params = argon2.params().clone();
    let output_len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    let output =
        hash_into(&argon2, password, salt.as_salt(), output_len).map_err(PasswordError::Hash)?;
    // The same PHC string `PasswordHasher::hash_password` builds; only the memory differs.
    let hash = PasswordHash {
        algorithm: Algorithm::default().ident(),
        version: Some(Version::default().into()),
        params: ParamsString::try_from(&params).map_err(PasswordError::Hash)?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(hash.to_string())
}

/// Checks a password against a PHC string made by [`hash_password`] (or any argon2 PHC
/// string: the algorithm, version and parameters are the stored ones).
pub fn verify_password(password: &Password, stored: &str) -> Result<bool, PasswordError> {
    let parsed = PasswordHash::new(stored).map_err(PasswordError::BadStoredHash)?;
    // A PHC string without salt or hash can match nothing, as `PasswordVerifier` has it.
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return Ok(false);
    };
    let algorithm = Algorithm::try_from(parsed.algorithm).map_err(PasswordError::BadStoredHash)?;
    let version = match parsed.version {
        Some(version) => {
            Version::try_from(version).map_err(|e| PasswordError::BadStoredHash(e.into()))?
        }
        None => Version::default(),
    };
    let params = Params::try_from(&parsed).map_err(PasswordError::BadStoredHash)?;
    let argon2 = Argon2::new(algorithm, version, params);
    let computed =
        hash_into(&argon2, password, salt, expected.len()).map_err(PasswordError::BadStoredHash)?;
    // `Output`'s equality is constant-time.
    Ok(computed == expected)
}

/// Runs argon2 in working memory borrowed from [`SPARE_MEMORY`].
fn hash_into(
    argon2: &Argon2<'_>,
    password: &Password,
    salt: Salt<'_>,
    output_len: usize,
) -> Result<Output, argon2::password_hash::Error> {
    let mut salt_buffer = [0u8; Salt::MAX_LENGTH];
    let salt = salt.decode_b64(&mut salt_buffer)?;
    let mut memory = WorkingMemory::take(argon2.params().block_count());
    Output::init_with(output_len, |out| {
        argon2
            .hash_password_into_with_memory(password.0.as_bytes(), salt, out, &mut memory.0[..])
            .map_err(Into::into)
    })
}

/// Argon2 working memory (19 MiB with the default parameters) that is kept for the next hash
/// instead of being freed.
///
/// Why not allocate it per hash: glibc raises its mmap threshold after the first such block is
/// freed, so later ones come from per-thread arenas that are never given back; a burst of
/// logins left the core holding hundreds of MiB for good. Kept here, the memory is bounded by
/// the most hashes ever run at once, which the shell limits (`link::MAX_HASHERS`).
static SPARE_MEMORY: Mutex<Vec<Vec<Block>>> = Mutex::new(Vec::new());

/// A block of working memory on loan from [`SPARE_MEMORY`]; going out of scope returns it.
struct WorkingMemory(Vec<Block>);

impl WorkingMemory {
    fn take(blocks: usize) -> WorkingMemory {
        let spare = SPARE_MEMORY
            .lock()
            // The pool is only ever pushed to and popped from: a panic elsewhere cannot
            // have left it half-changed.
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let mut memory = spare.unwrap_or_default();
        if memory.len() < blocks {
            // Only stored hashes with a higher memory cost than ours ever need more.
            memory.resize(blocks, Block::default());
        }
        WorkingMemory(memory)
    }
}

impl Drop for WorkingMemory {
    fn drop(&mut self) {
        let memory = std::mem::take(&mut self.0);
        SPARE_MEMORY
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(memory);
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
    fn hashes_stay_compatible_with_the_argon2_crate() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        // Hashes stored before the working memory was pooled were made by the crate itself.
        let salt = SaltString::generate(&mut OsRng);
        let stored = Argon2::default()
            .hash_password(b"correct horse", &salt)
            .unwrap()
            .to_string();
        assert!(verify_password(&Password::new("correct horse"), &stored).unwrap());
        assert!(!verify_password(&Password::new("wrong horse"), &stored).unwrap());
        // And the crate accepts what we make, in the same format.
        let ours = hash_password(&Password::new("correct horse")).unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"correct horse", &parsed)
                .is_ok()
        );
        let prefix = |hash: &str| hash.rsplitn(3, '$').nth(2).unwrap().to_owned();
        assert_eq!(
            prefix(&ours),
            prefix(&stored),
            "same algorithm, version and params"
        );
    }

    #[test]
    fn other_parameters_in_a_stored_hash_are_honoured() {
        use argon2::password_hash::PasswordHasher;
        // A bigger memory cost than the pooled blocks have: they must grow, not fail.
        let params = Params::new(Params::DEFAULT_M_COST * 2, 1, 2, Some(16)).unwrap();
        let salt = SaltString::generate(&mut OsRng);
        let stored = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(b"pw", &salt)
            .unwrap()
            .to_string();
        assert!(verify_password(&Password::new("pw"), &stored).unwrap());
        assert!(!verify_password(&Password::new("pv"), &stored).unwrap());
        assert!(hash_password(&Password::new("pw")).is_ok());
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
