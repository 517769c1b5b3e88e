//! The data directory's run-time files: a lock, the link socket and the control socket.
//!
//! The supervisor binds the link socket itself and keeps it for its whole life; each core
//! inherits the listener. That way the socket never disappears while a core restarts, and
//! a proxy that reconnects waits in the listen backlog for the next core instead of
//! getting "connection refused".

use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use thiserror::Error;

use crate::control::is_nobody_home;

const LOCK_FILE: &str = "tether.lock";
/// `sun_path` holds 107 bytes plus a NUL on Linux, and the socket is first bound under a
/// temporary name up to 16 bytes longer (see [`bind_private`]).
const MAX_SOCKET_PATH: usize = 107 - 16;

#[derive(Debug, Error)]
pub enum SocketsError {
    #[error("cannot create the data directory {}", path.display())]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "another tether supervisor is already running for {} (it answers on {})",
        data.display(),
        control.display()
    )]
    AlreadyRunning { data: PathBuf, control: PathBuf },
    #[error("another tether supervisor is starting for {} (it holds {})", data.display(), lock.display())]
    Locked { data: PathBuf, lock: PathBuf },
    #[error("cannot lock {}", path.display())]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the socket path {} is too long ({len} bytes, at most {MAX_SOCKET_PATH}); use a shorter --data directory",
        path.display()
    )]
    PathTooLong { path: PathBuf, len: usize },
    #[error("cannot check for a running supervisor at {}", path.display())]
    Probe {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create the socket {}", path.display())]
    Bind {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Owns the run-time files; dropping it removes the sockets.
#[derive(Debug)]
pub struct Sockets {
    pub link_path: PathBuf,
    pub control_path: PathBuf,
    pub link: UnixListener,
    pub control: UnixListener,
    _lock: Flock<File>,
}

impl Sockets {
    /// Creates `data` if needed, makes sure no other supervisor uses it, and binds both
    /// sockets.
    pub fn open(
        data: &Path,
        link_path: &Path,
        control_path: &Path,
    ) -> Result<Sockets, SocketsError> {
        tether_protocol::private::dir(data).map_err(|source| SocketsError::DataDir {
            path: data.to_path_buf(),
            source,
        })?;
        for path in [link_path, control_path] {
            let len = path.as_os_str().len();
            if len > MAX_SOCKET_PATH {
                return Err(SocketsError::PathTooLong {
                    path: path.to_path_buf(),
                    len,
                });
            }
        }

        // A running supervisor answers; one that was killed left a file nobody answers on.
        match UnixStream::connect(control_path) {
            Ok(_) => {
                return Err(SocketsError::AlreadyRunning {
                    data: data.to_path_buf(),
                    control: control_path.to_path_buf(),
                });
            }
            Err(err) if is_nobody_home(&err) => {}
            Err(source) => {
                return Err(SocketsError::Probe {
                    path: control_path.to_path_buf(),
                    source,
                });
            }
        }
        // Two supervisors started at the same moment would both find nobody answering;
        // the lock settles it before either touches the sockets.
        let lock_path = data.join(LOCK_FILE);
        let lock_error = |source| SocketsError::Lock {
            path: lock_path.clone(),
            source,
        };
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(lock_error)?;
        let lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => lock,
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                return Err(SocketsError::Locked {
                    data: data.to_path_buf(),
                    lock: lock_path,
                });
            }
            Err((_, errno)) => return Err(lock_error(errno.into())),
        };

        let control = bind_private(control_path)?;
        let link = bind_private(link_path)?;
        Ok(Sockets {
            link_path: link_path.to_path_buf(),
            control_path: control_path.to_path_buf(),
            link,
            control,
            _lock: lock,
        })
    }
}

impl Drop for Sockets {
    fn drop(&mut self) {
        // Safe to remove: the lock guarantees no other supervisor re-created them.
        let _ = std::fs::remove_file(&self.control_path);
        let _ = std::fs::remove_file(&self.link_path);
    }
}

/// Binds a socket only its owner can connect to: the control socket stops the game and
/// the link socket speaks for every player. It is bound under a temporary name and renamed
/// into place once private, so the real path is never connectable by others, and a stale
/// file from a killed supervisor is replaced in one step. (A umask would do too, but it is
/// process-wide and would race with other threads creating files.)
fn bind_private(path: &Path) -> Result<UnixListener, SocketsError> {
    let bind_error = |source| SocketsError::Bind {
        path: path.to_path_buf(),
        source,
    };
    let mut staging = path.as_os_str().to_os_string();
    staging.push(format!(".{}.new", std::process::id()));
    let staging = PathBuf::from(staging);
    match std::fs::remove_file(&staging) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(bind_error(err)),
    }
    let listener = UnixListener::bind(&staging).map_err(bind_error)?;
    let installed = std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(0o600))
        .and_then(|()| std::fs::rename(&staging, path));
    if let Err(err) = installed {
        let _ = std::fs::remove_file(&staging);
        return Err(bind_error(err));
    }
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileTypeExt;

    fn paths(data: &Path) -> (PathBuf, PathBuf) {
        (data.join("link.sock"), data.join("control.sock"))
    }

    #[test]
    fn sockets_are_private_and_removed_afterwards() {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("new").join("data");
        let (link, control) = paths(&data);
        let sockets = Sockets::open(&data, &link, &control).expect("open");
        for path in [&link, &control] {
            let meta = std::fs::metadata(path).expect("socket exists");
            assert!(meta.file_type().is_socket());
            assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        }
        drop(sockets);
        assert!(!link.exists() && !control.exists());
    }

    #[test]
    fn stale_sockets_are_replaced() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (link, control) = paths(dir.path());
        drop(UnixListener::bind(&link).expect("stale link"));
        drop(UnixListener::bind(&control).expect("stale control"));
        Sockets::open(dir.path(), &link, &control).expect("stale files are not a supervisor");
    }

    #[test]
    fn a_live_supervisor_is_not_displaced() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (link, control) = paths(dir.path());
        let first = Sockets::open(dir.path(), &link, &control).expect("first");
        let err = Sockets::open(dir.path(), &link, &control).expect_err("second");
        assert!(matches!(err, SocketsError::AlreadyRunning { .. }), "{err}");
        assert!(link.exists(), "the first one's link socket is untouched");
        drop(first);
    }

    #[test]
    fn the_lock_guards_a_supervisor_that_is_not_answering_yet() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (link, control) = paths(dir.path());
        let first = Sockets::open(dir.path(), &link, &control).expect("first");
        std::fs::remove_file(&control).expect("pretend it is not answering yet");
        let err = Sockets::open(dir.path(), &link, &control).expect_err("second");
        assert!(matches!(err, SocketsError::Locked { .. }), "{err}");
        drop(first);
    }

    #[test]
    fn overlong_paths_are_refused_clearly() {
        let long = PathBuf::from("/tmp").join("d".repeat(120));
        let err = Sockets::open(
            &std::env::temp_dir(),
            &long.join("link.sock"),
            &long.join("control.sock"),
        )
        .expect_err("too long");
        assert!(err.to_string().contains("too long"), "{err}");
    }
}
