//! What a supervisor leaves behind for the next one: the processes it runs, so that a
//! supervisor started after one that died (or one that re-executes itself to upgrade) takes
//! them on instead of starting a second set beside them.
//!
//! The record is a small text file in the data directory, rewritten (atomically) whenever a
//! child starts or ends: one line per process, `<role> <pid> <start time> <serving|other>`.
//! The start time (from `/proc`) is what makes a pid safe to trust later: a pid can be
//! reused, a pid with the same start time cannot.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use tracing::warn;

use crate::child::{Role, start_time};

const FILE: &str = "children";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub role: Role,
    pub pid: u32,
    pub start_time: u64,
    /// The proxy or core serving the game; otherwise one that was starting or stopping.
    pub serving: bool,
}

impl Record {
    fn line(&self) -> String {
        let state = if self.serving { "serving" } else { "other" };
        format!("{} {} {} {state}\n", self.role, self.pid, self.start_time)
    }

    fn parse(line: &str) -> Option<Record> {
        let mut words = line.split_whitespace();
        let role = match words.next()? {
            "proxy" => Role::Proxy,
            "core" => Role::Core,
            _ => return None,
        };
        let pid = words.next()?.parse().ok()?;
        let start_time = words.next()?.parse().ok()?;
        let serving = match words.next()? {
            "serving" => true,
            "other" => false,
            _ => return None,
        };
        Some(Record {
            role,
            pid,
            start_time,
            serving,
        })
    }

    /// The process is still the one recorded.
    pub fn is_alive(&self) -> bool {
        start_time(self.pid).is_ok_and(|start| start == self.start_time)
    }
}

fn path(data: &Path) -> PathBuf {
    data.join(FILE)
}

/// What the last supervisor recorded; nothing if it left no record (or stopped cleanly).
pub fn read(data: &Path) -> Vec<Record> {
    let path = path(data);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(err) => {
            warn!("cannot read {}: {err}; adopting nothing", path.display());
            return Vec::new();
        }
    };
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .filter_map(|line| {
            let record = Record::parse(line);
            if record.is_none() {
                warn!("{}: ignoring the line {line:?}", path.display());
            }
            record
        })
        .collect()
}

/// Replaces the record with `records`, atomically: a supervisor killed half way leaves the
/// old record or the new one, never half of one.
pub fn write(data: &Path, records: &[Record]) -> std::io::Result<()> {
    let path = path(data);
    let staged = data.join(format!(".{FILE}.{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&staged)?;
    let text: String = records.iter().map(Record::line).collect();
    file.write_all(text.as_bytes())?;
    std::fs::rename(&staged, &path)
}

/// After a clean stop there is nothing to adopt.
pub fn remove(data: &Path) {
    let path = path(data);
    if let Err(err) = std::fs::remove_file(&path)
        && err.kind() != std::io::ErrorKind::NotFound
    {
        warn!("cannot remove {}: {err}", path.display());
    }
}

/// A proxy an earlier supervisor started is still serving (it holds the players' ports).
pub fn proxy_survives(data: &Path) -> bool {
    read(data)
        .iter()
        .any(|record| record.serving && record.role == Role::Proxy && record.is_alive())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_read_back_and_nonsense_is_skipped() {
        let dir = tempfile::tempdir().expect("dir");
        let records = vec![
            Record {
                role: Role::Proxy,
                pid: 12,
                start_time: 345,
                serving: true,
            },
            Record {
                role: Role::Core,
                pid: 67,
                start_time: 89,
                serving: false,
            },
        ];
        write(dir.path(), &records).expect("write");
        assert_eq!(read(dir.path()), records);
        std::fs::write(
            path(dir.path()),
            "core 1 2 serving\nbanana 1 2 serving\ncore x\n",
        )
        .expect("write");
        assert_eq!(read(dir.path()).len(), 1);
        remove(dir.path());
        assert!(read(dir.path()).is_empty());
    }

    #[test]
    fn only_the_very_process_recorded_is_alive() {
        let me = std::process::id();
        let start = start_time(me).expect("own start time");
        let record = |start_time| Record {
            role: Role::Core,
            pid: me,
            start_time,
            serving: true,
        };
        assert!(record(start).is_alive());
        // The same pid with another start time is another process.
        assert!(!record(start + 1).is_alive());
    }
}
