//! The data directory holds password hashes, the sockets that steer the game and the records
//! of running processes: only its owner may read it. The supervisor and a core run alone both
//! create it, so the rule is written once, here.

use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// The directory's mode: its owner only.
pub const DIR_MODE: u32 = 0o700;
/// A private file's mode: its owner may read and write it.
pub const FILE_MODE: u32 = 0o600;

/// What [`dir`] or [`file`] had to do to an existing path that others could read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tightened {
    /// The permission bits it had (`0o755`, ...).
    pub was: u32,
    /// The bits it has now.
    pub now: u32,
}

impl std::fmt::Display for Tightened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "was open to other users (mode {:o}); made it {:o}",
            self.was, self.now
        )
    }
}

/// Creates `path` (and missing parents) owner-only, or makes an existing one so. Returns what
/// it had to change on an existing directory, for the caller to log.
pub fn dir(path: &Path) -> io::Result<Option<Tightened>> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => restrict(path, meta.permissions().mode(), DIR_MODE),
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a directory", path.display()),
        )),
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            // Made owner-only from the start: no moment in which another user could open it.
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(DIR_MODE)
                .create(path)?;
            Ok(None)
        }
        Err(error) => Err(error),
    }
}

/// Makes an existing file owner-only; a missing one is left missing. Returns what it changed.
pub fn file(path: &Path) -> io::Result<Option<Tightened>> {
    match std::fs::metadata(path) {
        Ok(meta) => restrict(path, meta.permissions().mode(), FILE_MODE),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

/// Creates `path` empty and owner-only if it does not exist (then a program that opens it
/// next, such as SQLite, keeps the mode rather than choosing its own), else tightens it.
pub fn create_file(path: &Path) -> io::Result<Option<Tightened>> {
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
    {
        Ok(_) => Ok(None),
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => file(path),
        Err(error) => Err(error),
    }
}

/// The permission bits of `path` if users other than its owner may read or write it (a key
/// file that must not be shared); `None` if it is private.
pub fn shared(path: &Path) -> io::Result<Option<u32>> {
    let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
    Ok((mode & 0o077 != 0).then_some(mode))
}

/// Removes the group's and others' bits (what the owner may do is left as it was).
fn restrict(path: &Path, mode: u32, wanted: u32) -> io::Result<Option<Tightened>> {
    let was = mode & 0o7777;
    if was & 0o077 == 0 {
        return Ok(None);
    }
    let now = (was & 0o700) | (wanted & 0o077);
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(now))?;
    Ok(Some(Tightened { was, now }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o7777
    }

    #[test]
    fn a_new_directory_is_owner_only_and_an_open_one_is_tightened() {
        let root = tempfile::tempdir().expect("temp dir");
        let data = root.path().join("a/data");
        assert_eq!(dir(&data).expect("created"), None);
        assert_eq!(mode(&data), 0o700);

        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        assert_eq!(
            dir(&data).expect("tightened"),
            Some(Tightened {
                was: 0o755,
                now: 0o700
            })
        );
        assert_eq!(mode(&data), 0o700);
        assert_eq!(dir(&data).expect("already private"), None);
    }

    #[test]
    fn files_are_created_owner_only_and_readable_ones_tightened() {
        let root = tempfile::tempdir().expect("temp dir");
        let db = root.path().join("tether.db");
        assert_eq!(create_file(&db).expect("created"), None);
        assert_eq!(mode(&db), 0o600);

        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert_eq!(
            create_file(&db).expect("tightened"),
            Some(Tightened {
                was: 0o644,
                now: 0o600
            })
        );
        assert_eq!(
            file(&root.path().join("missing")).expect("missing is fine"),
            None
        );
        let regular = root.path().join("regular");
        std::fs::write(&regular, b"x").expect("write");
        assert_eq!(
            dir(&regular).expect_err("not a dir").kind(),
            io::ErrorKind::AlreadyExists
        );
    }
}
