//! Hot deploy: notice that the core binary was rebuilt and ask for a reload.
//!
//! The directory is watched rather than the file, because cargo (and `install`, and a
//! rename into place) replaces the file: a watch on the old inode would never fire again.
//! A build touches the file several times in a row, so a reload is asked for only once
//! things have been quiet for a moment.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecursiveMode, Watcher as _};
use thiserror::Error;
use tokio::sync::mpsc;
use tracing::{debug, warn};

#[derive(Debug, Error)]
pub enum WatchError {
    #[error("cannot watch {}: it has no file name", path.display())]
    NoFileName { path: PathBuf },
    #[error("cannot watch the directory {}", dir.display())]
    Notify {
        dir: PathBuf,
        #[source]
        source: notify::Error,
    },
}

/// Keeps the watch alive; dropping it stops watching.
pub struct Watch {
    _watcher: notify::RecommendedWatcher,
    debouncer: tokio::task::JoinHandle<()>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.debouncer.abort();
    }
}

/// Sends `()` on `changed` each time `binary` was (re)written and then left alone for `quiet`.
/// Must be called inside the tokio runtime.
pub fn watch(
    binary: &Path,
    quiet: Duration,
    changed: mpsc::UnboundedSender<()>,
) -> Result<Watch, WatchError> {
    let name = binary
        .file_name()
        .ok_or_else(|| WatchError::NoFileName {
            path: binary.to_path_buf(),
        })?
        .to_os_string();
    let dir = match binary.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let (raw_tx, raw_rx) = mpsc::unbounded_channel();
    let filter_name = name.clone();
    let mut watcher =
        notify::recommended_watcher(move |result: notify::Result<notify::Event>| match result {
            Ok(event) if is_relevant(&event.kind, &event.paths, &filter_name) => {
                let _ = raw_tx.send(());
            }
            Ok(_) => {}
            Err(err) => warn!("watching the core binary: {err}"),
        })
        .map_err(|source| WatchError::Notify {
            dir: dir.clone(),
            source,
        })?;
    watcher
        .watch(&dir, RecursiveMode::NonRecursive)
        .map_err(|source| WatchError::Notify {
            dir: dir.clone(),
            source,
        })?;
    let debouncer = tokio::spawn(debounce(raw_rx, quiet, dir.join(&name), changed));
    Ok(Watch {
        _watcher: watcher,
        debouncer,
    })
}

/// Whether an event in the watched directory may mean a new core binary.
fn is_relevant(kind: &EventKind, paths: &[PathBuf], name: &OsString) -> bool {
    let kind_matters = matches!(
        kind,
        EventKind::Create(_)
            | EventKind::Modify(_)
            | EventKind::Any
            | EventKind::Access(AccessKind::Close(AccessMode::Write))
    );
    kind_matters
        && paths
            .iter()
            .any(|path| path.file_name() == Some(OsStr::new(name)))
}

async fn debounce(
    mut raw: mpsc::UnboundedReceiver<()>,
    quiet: Duration,
    binary: PathBuf,
    changed: mpsc::UnboundedSender<()>,
) {
    while raw.recv().await.is_some() {
        loop {
            match tokio::time::timeout(quiet, raw.recv()).await {
                Ok(Some(())) => continue,
                Ok(None) => return,
                Err(_quiet) => break,
            }
        }
        // A build that deleted the old file and failed leaves nothing to run.
        if !binary.exists() {
            debug!("{} changed but is gone; not reloading", binary.display());
            continue;
        }
        if changed.send(()).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, ModifyKind, RemoveKind, RenameMode};

    fn name() -> OsString {
        OsString::from("tether-core")
    }

    #[test]
    fn only_writes_to_the_binary_count() {
        let core = vec![PathBuf::from("/t/release/tether-core")];
        let other = vec![PathBuf::from("/t/release/tether-core.d")];
        let create = EventKind::Create(CreateKind::File);
        assert!(is_relevant(&create, &core, &name()));
        assert!(!is_relevant(&create, &other, &name()));
        assert!(is_relevant(
            &EventKind::Modify(ModifyKind::Name(RenameMode::To)),
            &core,
            &name()
        ));
        assert!(!is_relevant(
            &EventKind::Remove(RemoveKind::File),
            &core,
            &name()
        ));
        assert!(!is_relevant(
            &EventKind::Access(AccessKind::Open(AccessMode::Execute)),
            &core,
            &name()
        ));
    }

    #[test]
    fn a_rename_into_place_counts() {
        let both = vec![
            PathBuf::from("/t/core.new"),
            PathBuf::from("/t/tether-core"),
        ];
        assert!(is_relevant(
            &EventKind::Modify(ModifyKind::Name(RenameMode::Both)),
            &both,
            &name()
        ));
    }

    #[tokio::test]
    async fn a_burst_of_writes_asks_for_one_reload() {
        let dir = tempfile::tempdir().expect("temp dir");
        let binary = dir.path().join("tether-core");
        let (tx, mut rx) = mpsc::unbounded_channel();
        let _watch = watch(&binary, Duration::from_millis(150), tx).expect("watch");

        for round in 0..3 {
            let staging = dir.path().join("tether-core.tmp");
            std::fs::write(&staging, format!("build {round}")).expect("write");
            std::fs::rename(&staging, &binary).expect("rename");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("a reload is asked for")
            .expect("channel open");
        assert!(
            tokio::time::timeout(Duration::from_millis(400), rx.recv())
                .await
                .is_err(),
            "only one"
        );

        std::fs::write(dir.path().join("unrelated"), "x").expect("write");
        assert!(
            tokio::time::timeout(Duration::from_millis(400), rx.recv())
                .await
                .is_err(),
            "other files do not count"
        );
    }
}
