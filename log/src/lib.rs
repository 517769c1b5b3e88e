//! Logging that can never hurt the game.
//!
//! Every tether process logs to stderr, which systemd's journal or runit's svlogd collect. That
//! destination can fail (a full disk, `/dev/full`, a closed pipe) or stop reading (journald or
//! svlogd restarting, a pipe nobody drains). Written directly, a failure makes
//! tracing-subscriber report it with `eprintln!`, which panics; a reader that stops makes the
//! write block, and with it the thread that logged: the core's game loop, the proxy's
//! sessions, the supervisor.
//!
//! So log lines go into a bounded queue ([`QUEUE_BYTES`]) and a thread of their own writes
//! them. A line that does not fit, or whose write fails, is dropped and counted, never
//! retried into a full disk; once a write succeeds again a warning says how many were lost.
//! Nothing here panics and nothing a game thread does waits on the log destination.
//!
//! Panics are logged through the same queue (the default hook writes to stderr directly and
//! would block on a full pipe).

use std::collections::VecDeque;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// Log text that may wait for the destination; past this, lines are dropped and counted.
pub const QUEUE_BYTES: usize = 1 << 20;
/// How long [`Guard`] lets the writer finish when the process ends.
const FLUSH_AT_EXIT: Duration = Duration::from_secs(1);

/// How log lines are written: for people, or for machines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Format {
    /// One line of text per event (coloured only when stderr is a terminal and `NO_COLOR`
    /// is not set).
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `message` and the event's
    /// own fields (`session`, `character`, `address`, ... where they apply) at the top level,
    /// for a log shipper to index.
    Json,
}

/// The environment variable that chooses the [`Format`] (`text` or `json`): the supervisor
/// sets it for the proxy and the core from its `--log-format`.
pub const FORMAT_VAR: &str = "TETHER_LOG_FORMAT";

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(word: &str) -> Result<Format, String> {
        match word.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(Format::Text),
            "json" => Ok(Format::Json),
            other => Err(format!("unknown log format {other:?} (text or json)")),
        }
    }
}

impl Format {
    /// The word [`Format::from_str`](std::str::FromStr) reads.
    pub fn word(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Json => "json",
        }
    }
}

/// Installs the subscriber for this process in the format [`FORMAT_VAR`] names (text if
/// unset or unknown); see [`init_as`].
pub fn init() -> Guard {
    let wanted = std::env::var(FORMAT_VAR).ok();
    let format = wanted.as_deref().map(str::parse::<Format>);
    let guard = init_as(match &format {
        Some(Ok(format)) => *format,
        _ => Format::Text,
    });
    if let Some(Err(why)) = format {
        tracing::warn!("{FORMAT_VAR}: {why}; writing text");
    }
    guard
}

/// Installs the subscriber for this process (`RUST_LOG` filters, `info` by default) and the
/// panic hook. Keep the guard until the process ends: dropping it writes what is queued.
pub fn init_as(format: Format) -> Guard {
    let sink = Sink::start(std::io::stderr());
    let _ = INSTALLED.set(sink.clone());
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(sink.clone());
    let installed = match format {
        // Colours for a human at a terminal, never into a journal, a pipe or a file.
        Format::Text => builder.with_ansi(colours_wanted()).try_init(),
        Format::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
    };
    if installed.is_ok() {
        std::panic::set_hook(Box::new(|info| {
            tracing::error!(target: "panic", "{info}");
        }));
    }
    Guard { sink }
}

/// Whether text logs get colour codes: only for a terminal, and not if `NO_COLOR` is set
/// (<https://no-color.org>).
fn colours_wanted() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// The sink `init` installed, for [`flush`].
static INSTALLED: std::sync::OnceLock<Sink> = std::sync::OnceLock::new();

/// Waits (at most `limit`) until the log lines queued so far are written: for a process
/// about to die on purpose, whose last words should not be lost.
pub fn flush(limit: Duration) {
    if let Some(sink) = INSTALLED.get() {
        sink.flush(limit);
    }
}

/// Writes what is queued when dropped (for at most a second).
#[must_use = "dropping the guard at once would end logging's flush at exit"]
pub struct Guard {
    sink: Sink,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.sink.flush(FLUSH_AT_EXIT);
    }
}

/// The queue between the threads that log and the one that writes.
#[derive(Clone)]
pub struct Sink {
    shared: Arc<Shared>,
}

struct Shared {
    queue: Mutex<Queue>,
    /// Wakes the writer when lines arrive, and flushers when the queue empties.
    changed: Condvar,
}

#[derive(Default)]
struct Queue {
    lines: VecDeque<Vec<u8>>,
    bytes: usize,
    /// Dropped since the last report: the queue was full, or the write failed.
    lost: u64,
    /// The writer holds lines it took and has not written yet.
    writing: bool,
}

impl Sink {
    /// A sink writing to `destination` from a thread of its own.
    pub fn start(destination: impl Write + Send + 'static) -> Sink {
        let sink = Sink {
            shared: Arc::new(Shared {
                queue: Mutex::new(Queue::default()),
                changed: Condvar::new(),
            }),
        };
        let writer = sink.clone();
        let spawned = std::thread::Builder::new()
            .name("log writer".into())
            .spawn(move || writer.write_forever(destination));
        if spawned.is_err() {
            // Without a writer every line is counted as lost; the game is unaffected.
            sink.lock().lost += 1;
        }
        sink
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A panic while holding this lock cannot leave the queue inconsistent.
        self.shared
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues one formatted line, or counts it as lost. Never waits for the destination.
    pub fn push(&self, line: &[u8]) {
        let mut queue = self.lock();
        if queue.bytes + line.len() > QUEUE_BYTES {
            queue.lost += 1;
            return;
        }
        queue.bytes += line.len();
        queue.lines.push_back(line.to_vec());
        drop(queue);
        self.shared.changed.notify_all();
    }

    /// Lines dropped and not reported yet.
    pub fn lost(&self) -> u64 {
        self.lock().lost
    }

    /// Waits until everything queued is written (or given up on), at most `limit`.
    pub fn flush(&self, limit: Duration) {
        let deadline = std::time::Instant::now() + limit;
        let mut queue = self.lock();
        while !queue.lines.is_empty() || queue.writing {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return;
            }
            queue = match self.shared.changed.wait_timeout(queue, left) {
                Ok((queue, _)) => queue,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    fn write_forever(&self, mut destination: impl Write) {
        let mut batch = Vec::new();
        loop {
            {
                let mut queue = self.lock();
                queue.writing = false;
                self.shared.changed.notify_all();
                while queue.lines.is_empty() {
                    queue = match self.shared.changed.wait(queue) {
                        Ok(queue) => queue,
                        Err(poisoned) => poisoned.into_inner(),
                    };
                }
                batch.extend(queue.lines.drain(..));
                queue.bytes = 0;
                queue.writing = true;
            }
            let mut wrote_any = false;
            for line in batch.drain(..) {
                // One line, one write: a failure loses that line only.
                match destination.write_all(&line) {
                    Ok(()) => wrote_any = true,
                    Err(_) => self.lock().lost += 1,
                }
            }
            let _ = destination.flush();
            if wrote_any {
                let lost = std::mem::take(&mut self.lock().lost);
                if lost > 0 {
                    // Through the queue like any other line, so it is formatted as one.
                    tracing::warn!(
                        target: "tether_log",
                        lost,
                        "log lines were lost: the log destination failed or stopped reading"
                    );
                }
            }
        }
    }
}

/// Each event is formatted whole and handed over in one `write`.
pub struct LineHandle {
    sink: Sink,
}

impl Write for LineHandle {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.sink.push(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Sink {
    type Writer = LineHandle;

    fn make_writer(&'a self) -> LineHandle {
        LineHandle { sink: self.clone() }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    /// A destination that fails until told otherwise, and records what it was given.
    #[derive(Clone, Default)]
    struct Flaky {
        failing: Arc<AtomicBool>,
        written: Arc<Mutex<Vec<u8>>>,
    }

    impl Write for Flaky {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.failing.load(Ordering::SeqCst) {
                return Err(std::io::Error::other("no space left on device"));
            }
            self.written.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn failed_writes_are_counted_and_never_reach_the_caller() {
        let flaky = Flaky::default();
        flaky.failing.store(true, Ordering::SeqCst);
        let sink = Sink::start(flaky.clone());
        for _ in 0..10 {
            sink.push(b"a line\n");
        }
        sink.flush(Duration::from_secs(5));
        assert_eq!(sink.lost(), 10);

        flaky.failing.store(false, Ordering::SeqCst);
        sink.push(b"works again\n");
        sink.flush(Duration::from_secs(5));
        let written = String::from_utf8(flaky.written.lock().expect("lock").clone()).expect("utf8");
        assert_eq!(written, "works again\n");
        assert_eq!(sink.lost(), 0, "the loss was reported and the count reset");
    }

    #[test]
    fn a_destination_that_blocks_costs_lines_not_time() {
        // A socket nobody reads: the writer blocks once its buffer is full. Were `push` to
        // wait for the writer, this test would never end.
        let (writer, reader) = std::os::unix::net::UnixStream::pair().expect("socket pair");
        let sink = Sink::start(writer);
        let line = vec![b'x'; 1000];
        for _ in 0..20_000 {
            sink.push(&line);
        }
        // Twenty megabytes offered; a megabyte queued and a socket buffer's worth taken (the
        // kernel sizes it, a few hundred KiB to a few MiB): the rest is lost and counted.
        let absorbed_at_most = (QUEUE_BYTES + (5 << 20)) / line.len();
        assert!(
            sink.lost() >= (20_000 - absorbed_at_most) as u64,
            "lost {}",
            sink.lost()
        );
        drop(reader);
    }
}
