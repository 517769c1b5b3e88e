//! The admin token: what a scraper (`/metrics`) or an admin's browser presents to the proxy
//! instead of a password. `tether admin token` makes one, in a file only the game's user can
//! read (`DATA/admin-token`), which Prometheus can name as its `credentials_file`; the proxy
//! reads the same file at every check, so a new token (`--rotate`) counts at once and the old
//! one stops counting.

use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use ring::rand::SecureRandom;

/// Where the token is kept, in the data directory.
pub const FILE_IN_DATA: &str = "admin-token";

/// Random bytes in a token (written as hex: 64 characters).
const BYTES: usize = 32;

/// What a presented token is, checked against the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    Valid,
    /// Missing, or not the one in the file.
    Invalid,
    /// There is no token to check against: nobody is let in until an operator makes one.
    NoneSet,
}

/// A new random token.
pub fn generate() -> io::Result<String> {
    let mut bytes = [0u8; BYTES];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| io::Error::other("the system's random source failed"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes `token` to `path`, owner-only from the moment it exists, replacing any token
/// there (through a rename, so a reader never sees half a token).
pub fn write(path: &Path, token: &str) -> io::Result<()> {
    let staging = path.with_extension("new");
    let _ = std::fs::remove_file(&staging);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(crate::private::FILE_MODE)
        .open(&staging)?;
    writeln!(file, "{token}")?;
    file.sync_all()?;
    std::fs::rename(&staging, path)
}

/// The token kept at `path`, if there is one.
pub fn read(path: &Path) -> io::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let token = text.trim();
            Ok((!token.is_empty()).then(|| token.to_owned()))
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

/// Checks `presented` against the token at `path`. The two are compared by their SHA-256
/// digests, so the time the comparison takes says nothing about the token.
pub fn check(path: &Path, presented: Option<&str>) -> Check {
    let kept = match read(path) {
        Ok(Some(kept)) => kept,
        Ok(None) => return Check::NoneSet,
        Err(_) => return Check::NoneSet,
    };
    let Some(presented) = presented else {
        return Check::Invalid;
    };
    let digest = |text: &str| ring::digest::digest(&ring::digest::SHA256, text.trim().as_bytes());
    if digest(&kept).as_ref() == digest(presented).as_ref() {
        Check::Valid
    } else {
        Check::Invalid
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_token_is_checked_against_the_file_and_a_new_one_replaces_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(FILE_IN_DATA);
        assert_eq!(check(&path, Some("anything")), Check::NoneSet);

        let first = generate().expect("token");
        assert_eq!(first.len(), 2 * BYTES);
        write(&path, &first).expect("write");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, crate::private::FILE_MODE);
        assert_eq!(check(&path, Some(&first)), Check::Valid);
        assert_eq!(check(&path, Some("wrong")), Check::Invalid);
        assert_eq!(check(&path, None), Check::Invalid);

        let second = generate().expect("token");
        assert_ne!(first, second);
        write(&path, &second).expect("rotate");
        assert_eq!(check(&path, Some(&first)), Check::Invalid);
        assert_eq!(check(&path, Some(&second)), Check::Valid);
    }
}
