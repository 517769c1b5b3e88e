//! The witness: a page of memory the supervisor shares with each core it starts, through which
//! the core shows that it is making progress and which line it is handling, in a form that
//! survives the core's death.
//!
//! A core that loops forever, deadlocks or is stopped cannot say so, and one that aborts,
//! overflows its stack or is killed for running out of memory cannot say why. So the core
//! says it all the time instead, as plain stores into shared memory (no system call, nothing
//! that can block): a progress counter it bumps whenever its loop turns or it handles a line,
//! and a record of the line in its hands. The supervisor reads the counter to tell a hung core
//! from a busy one, and reads the record after a death to know which line was being handled.
//!
//! The page is a `memfd` the supervisor creates and hands over as
//! [`WITNESS_FD`] (announced in [`WITNESS_FD_VAR`]); each core gets a fresh one, so an old
//! core draining beside a new one never writes over the new one's record.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::SessionKey;

/// The descriptor number a core finds its witness on.
pub const WITNESS_FD: RawFd = 4;
/// The environment variable that tells a core its witness is on [`WITNESS_FD`].
pub const WITNESS_FD_VAR: &str = "TETHER_WITNESS_FD";

const PAGE: usize = 4096;
const MAGIC: u64 = u64::from_le_bytes(*b"TWITNES1");
const MAX_NAME: usize = 32;
/// Enough of a line to recognise it in a log; the rest is cut.
pub const MAX_TEXT: usize = 240;

// Layout: eight-byte words first, then the name and the text.
const W_MAGIC: usize = 0;
const W_PROGRESS: usize = 1;
/// Odd while the record is being written: a record read in that state was torn by a death.
const W_WRITING: usize = 2;
const W_HANDLING: usize = 3;
const W_PROXY: usize = 4;
const W_SESSION: usize = 5;
const W_SEQ: usize = 6;
const W_LENGTHS: usize = 7;
/// Characters in the game, for the supervisor's status (and systemd's).
const W_PLAYERS: usize = 8;
/// Set once the core found its database file deleted or replaced (it refuses changes).
const W_DATABASE_LOST: usize = 9;
const NAME_AT: usize = 128;
const _: () = assert!(W_DATABASE_LOST * 8 < NAME_AT);
const TEXT_AT: usize = NAME_AT + MAX_NAME;
const _: () = assert!(TEXT_AT + MAX_TEXT <= PAGE);

/// One line of one session: what the link's sequence numbers name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LineId {
    pub key: SessionKey,
    pub seq: u64,
}

impl std::fmt::Display for LineId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.key, self.seq)
    }
}

impl std::str::FromStr for LineId {
    type Err = String;

    /// `proxy:session:seq`, as [`LineId`]'s `Display` writes it.
    fn from_str(text: &str) -> Result<LineId, String> {
        let mut parts = text.split(':').map(str::parse::<u64>);
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(Ok(proxy)), Some(Ok(session)), Some(Ok(seq)), None) => Ok(LineId {
                key: SessionKey { proxy, session },
                seq,
            }),
            _ => Err(format!("not a line id (proxy:session:seq): {text:?}")),
        }
    }
}

/// The line a core was handling, as its witness recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handling {
    pub line: LineId,
    /// The character whose line it is; empty before login.
    pub character: String,
    /// The line as typed (cut to [`MAX_TEXT`]), or a placeholder for a login line, which
    /// may hold a password and is never recorded.
    pub text: String,
    /// The core died while writing the record: `line` may be wrong.
    pub torn: bool,
}

impl std::fmt::Display for Handling {
    /// `line 3 of session 77:12 (Bob): "say hi"`, for the operator's log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let character = if self.character.is_empty() {
            "not logged in"
        } else {
            &self.character
        };
        write!(
            f,
            "line {} of session {}:{} ({character}): {:?}",
            self.line.seq, self.line.key.proxy, self.line.key.session, self.text
        )
    }
}

/// A mapping of a witness page. Cheap to clone; both processes write and read it only through
/// atomics and raw byte copies, never through references to the shared bytes.
#[derive(Clone)]
pub struct Witness {
    inner: Arc<Mapping>,
}

struct Mapping {
    base: NonNull<u8>,
    file: File,
}

// SAFETY: the mapping is only accessed through atomics (words) and raw byte copies, and
// within one process only the owning thread writes the record.
unsafe impl Send for Mapping {}
unsafe impl Sync for Mapping {}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `base` is the start of a PAGE-long mapping made in `map`, unmapped once.
        let _ = unsafe { nix::sys::mman::munmap(self.base.cast(), PAGE) };
    }
}

impl std::fmt::Debug for Witness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Witness")
            .field("fd", &self.inner.file.as_raw_fd())
            .field("progress", &self.progress())
            .finish()
    }
}

impl AsFd for Witness {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.file.as_fd()
    }
}

impl Witness {
    /// A fresh page for a core about to be started (the supervisor's side).
    pub fn create() -> std::io::Result<Witness> {
        let fd = nix::sys::memfd::memfd_create(
            c"tether-witness",
            nix::sys::memfd::MFdFlags::MFD_CLOEXEC,
        )?;
        let file = File::from(fd);
        file.set_len(PAGE as u64)?;
        let witness = Witness::map(file)?;
        witness.word(W_MAGIC).store(MAGIC, Ordering::Release);
        Ok(witness)
    }

    /// The page the supervisor handed over, if it did (the core's side). Run alone, a core
    /// has none and the calls that record progress do nothing.
    pub fn inherited() -> std::io::Result<Option<Witness>> {
        let Ok(value) = std::env::var(WITNESS_FD_VAR) else {
            return Ok(None);
        };
        let fd: RawFd = value.parse().map_err(|_| {
            std::io::Error::other(format!("{WITNESS_FD_VAR} is not a number: {value:?}"))
        })?;
        // SAFETY: the supervisor passes this descriptor for us alone; nothing else in this
        // process owns it.
        let file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        // Mapped bytes past the end of a shorter file would fault (SIGBUS) when touched.
        if file.metadata()?.len() < PAGE as u64 {
            return Err(std::io::Error::other(format!(
                "{WITNESS_FD_VAR}={fd} is not a witness page (too short)"
            )));
        }
        let witness = Witness::map(file)?;
        if witness.word(W_MAGIC).load(Ordering::Acquire) != MAGIC {
            return Err(std::io::Error::other(format!(
                "{WITNESS_FD_VAR}={fd} is not a witness page"
            )));
        }
        Ok(Some(witness))
    }

    fn map(file: File) -> std::io::Result<Witness> {
        use nix::sys::mman::{MapFlags, ProtFlags, mmap};
        let length = std::num::NonZeroUsize::new(PAGE).expect("a page is not empty");
        // SAFETY: a fresh shared mapping of a file we hold; it is unmapped only on drop.
        let base = unsafe {
            mmap(
                None,
                length,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
                &file,
                0,
            )
        }?;
        Ok(Witness {
            inner: Arc::new(Mapping {
                base: base.cast(),
                file,
            }),
        })
    }

    fn word(&self, index: usize) -> &AtomicU64 {
        // SAFETY: the page is mapped for the life of `inner`, page-aligned, and every word
        // index is below NAME_AT / 8, so the pointer is aligned and in bounds. Words are only
        // ever accessed atomically, by either process.
        unsafe { &*self.inner.base.as_ptr().cast::<AtomicU64>().add(index) }
    }

    /// The loop turned or a line was handled.
    pub fn progressed(&self) {
        self.word(W_PROGRESS).fetch_add(1, Ordering::Relaxed);
    }

    /// How much progress the core has reported; only changes matter.
    pub fn progress(&self) -> u64 {
        self.word(W_PROGRESS).load(Ordering::Relaxed)
    }

    /// How many characters are in the game.
    pub fn set_players(&self, players: usize) {
        self.word(W_PLAYERS)
            .store(players as u64, Ordering::Relaxed);
    }

    pub fn players(&self) -> u64 {
        self.word(W_PLAYERS).load(Ordering::Relaxed)
    }

    /// The core's database file was deleted or replaced under it: it confirms no changes.
    pub fn set_database_lost(&self) {
        self.word(W_DATABASE_LOST).store(1, Ordering::Relaxed);
    }

    pub fn database_lost(&self) -> bool {
        self.word(W_DATABASE_LOST).load(Ordering::Relaxed) != 0
    }

    /// The core starts on `line`. `text` is `None` for a line that must not be recorded (it
    /// may be a password).
    pub fn begin(&self, line: LineId, character: &str, text: Option<&str>) {
        let writing = self.word(W_WRITING);
        writing.fetch_add(1, Ordering::AcqRel);
        self.word(W_PROXY).store(line.key.proxy, Ordering::Relaxed);
        self.word(W_SESSION)
            .store(line.key.session, Ordering::Relaxed);
        self.word(W_SEQ).store(line.seq, Ordering::Relaxed);
        let name = cut(character, MAX_NAME);
        let hidden = text.is_none();
        let text = text.map_or("", |text| cut(text, MAX_TEXT));
        self.copy_in(NAME_AT, name.as_bytes());
        self.copy_in(TEXT_AT, text.as_bytes());
        // Both lengths fit in 16 bits: they are cut to MAX_NAME and MAX_TEXT.
        let lengths = name.len() as u64 | (text.len() as u64) << 16 | u64::from(hidden) << 32;
        self.word(W_LENGTHS).store(lengths, Ordering::Relaxed);
        self.word(W_HANDLING).store(1, Ordering::Release);
        writing.fetch_add(1, Ordering::AcqRel);
        self.progressed();
    }

    /// The line from [`Witness::begin`] is done with.
    pub fn end(&self) {
        self.word(W_HANDLING).store(0, Ordering::Release);
        self.progressed();
    }

    /// Which line is in the core's hands, if any, without copying out its text.
    pub fn line_in_hand(&self) -> Option<LineId> {
        if self.word(W_HANDLING).load(Ordering::Acquire) == 0 {
            return None;
        }
        Some(LineId {
            key: SessionKey {
                proxy: self.word(W_PROXY).load(Ordering::Relaxed),
                session: self.word(W_SESSION).load(Ordering::Relaxed),
            },
            seq: self.word(W_SEQ).load(Ordering::Relaxed),
        })
    }

    /// The line in the core's hands, if any (read after its death, or while it is stuck).
    pub fn handling(&self) -> Option<Handling> {
        if self.word(W_HANDLING).load(Ordering::Acquire) == 0 {
            return None;
        }
        let torn = self.word(W_WRITING).load(Ordering::Acquire) % 2 == 1;
        let lengths = self.word(W_LENGTHS).load(Ordering::Relaxed);
        let name_len = ((lengths & 0xffff) as usize).min(MAX_NAME);
        let text_len = ((lengths >> 16 & 0xffff) as usize).min(MAX_TEXT);
        let hidden = lengths >> 32 & 1 == 1;
        let character = String::from_utf8_lossy(&self.copy_out(NAME_AT, name_len)).into_owned();
        let text = if hidden {
            "(a login line, not recorded)".to_string()
        } else {
            String::from_utf8_lossy(&self.copy_out(TEXT_AT, text_len)).into_owned()
        };
        Some(Handling {
            line: self.line_in_hand()?,
            character,
            text,
            torn,
        })
    }

    fn copy_in(&self, at: usize, bytes: &[u8]) {
        // SAFETY: in bounds (lengths are cut to the field sizes checked above), and the
        // source is ours, so the two cannot overlap. The release store that marks the record
        // complete orders these bytes before it for the reader.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.inner.base.as_ptr().add(at),
                bytes.len(),
            )
        };
    }

    fn copy_out(&self, at: usize, len: usize) -> Vec<u8> {
        let mut bytes = vec![0; len];
        // SAFETY: in bounds, as in `copy_in`; read after the acquire load of the record.
        unsafe {
            std::ptr::copy_nonoverlapping(self.inner.base.as_ptr().add(at), bytes.as_mut_ptr(), len)
        };
        bytes
    }
}

/// The longest prefix of `text` within `max` bytes that ends on a character boundary.
fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(seq: u64) -> LineId {
        LineId {
            key: SessionKey {
                proxy: 7,
                session: 3,
            },
            seq,
        }
    }

    #[test]
    fn progress_and_the_line_in_hand_are_seen_through_a_second_mapping() {
        let supervisor = Witness::create().expect("memfd");
        let fd = nix::unistd::dup(supervisor.as_fd()).expect("dup");
        let core = Witness::map(File::from(fd)).expect("map");
        assert_eq!(supervisor.progress(), 0);
        assert_eq!(supervisor.handling(), None);

        core.progressed();
        core.begin(line(12), "Alice", Some("say hello"));
        assert_eq!(supervisor.progress(), 2);
        let handling = supervisor.handling().expect("a line in hand");
        assert_eq!(handling.line, line(12));
        assert_eq!(supervisor.line_in_hand(), Some(line(12)));
        assert_eq!(
            handling.to_string(),
            "line 12 of session 7:3 (Alice): \"say hello\""
        );
        assert_eq!(handling.character, "Alice");
        assert_eq!(handling.text, "say hello");
        assert!(!handling.torn);

        core.end();
        assert_eq!(supervisor.handling(), None);
        assert_eq!(supervisor.progress(), 3);
        core.set_players(12);
        assert_eq!(supervisor.players(), 12);
    }

    #[test]
    fn login_lines_are_not_recorded_and_long_lines_are_cut() {
        let witness = Witness::create().expect("memfd");
        witness.begin(line(1), "", None);
        let handling = witness.handling().expect("in hand");
        assert_eq!(handling.text, "(a login line, not recorded)");

        let long = "é".repeat(200);
        witness.begin(line(2), &"x".repeat(100), Some(&long));
        let handling = witness.handling().expect("in hand");
        assert_eq!(handling.character.len(), MAX_NAME);
        assert!(handling.text.len() <= MAX_TEXT && handling.text.chars().all(|c| c == 'é'));
    }

    #[test]
    fn line_ids_read_back_what_they_write() {
        let id = line(42);
        assert_eq!(id.to_string().parse::<LineId>(), Ok(id));
        assert!("1:2".parse::<LineId>().is_err());
        assert!("1:2:x".parse::<LineId>().is_err());
        assert!("1:2:3:4".parse::<LineId>().is_err());
    }
}
