//! One supervised process: how it is started, and a task that owns it until it is reaped.
//!
//! The task is the only owner of the OS process, which is what makes signalling it safe: a
//! pid cannot be reused until the process is reaped, and only this task reaps it. The
//! supervisor talks to it through a [`Handle`] and hears back through [`Event`]s.

use std::ffi::OsString;
use std::fmt;
use std::os::fd::RawFd;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tether_protocol::keeper::KEEPER_FD;
use tether_protocol::process::{CoreNews, CoreSays, LINK_FD};
use tether_protocol::witness::{WITNESS_FD, Witness};
use thiserror::Error;
use tokio::io::AsyncReadExt;
use tokio::process::{Child, ChildStdout};
use tokio::sync::mpsc;
use tokio::time::sleep_until;
use tracing::{info, warn};

use crate::pidfd::PidFd;

/// A child's stdout line longer than this is logged in pieces rather than buffered forever.
const MAX_LINE: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Proxy,
    Core,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Proxy => "proxy",
            Role::Core => "core",
        })
    }
}

pub type ChildId = u64;

/// How to start one process.
#[derive(Debug, Clone)]
pub struct Spec {
    pub role: Role,
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub env: Vec<(OsString, OsString)>,
    /// A listening socket to hand over as [`LINK_FD`].
    pub link_fd: Option<RawFd>,
    /// The proxy's end of its keeper socket, to hand over as [`KEEPER_FD`].
    pub keeper_fd: Option<RawFd>,
    /// A witness page to hand over as [`WITNESS_FD`]; the handle keeps it to read.
    pub witness: Option<Witness>,
    /// A pipe on the child's stdin for [`Handle::tell`] (the proxy's `CoreNews`).
    pub news_pipe: bool,
    /// When set, stdout is piped and the child must print [`READY_LINE`](tether_protocol::process::READY_LINE) within this time.
    pub ready_within: Option<Duration>,
}

#[derive(Debug, Error)]
#[error("cannot start the {role} ({})", program.display())]
pub struct SpawnError {
    pub role: Role,
    pub program: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// How a process ended, worded for logs: `status 1`, `signal 9`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
    Unknown(String),
}

impl Exit {
    fn from_wait(result: std::io::Result<ExitStatus>) -> Exit {
        match result {
            Ok(status) => match (status.code(), status.signal()) {
                (Some(code), _) => Exit::Code(code),
                (None, Some(signal)) => Exit::Signal(signal),
                (None, None) => Exit::Unknown(format!("{status}")),
            },
            Err(err) => Exit::Unknown(format!("wait failed: {err}")),
        }
    }

    pub fn is_success(&self) -> bool {
        *self == Exit::Code(0)
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Code(code) => write!(f, "status {code}"),
            Exit::Signal(signal) => write!(f, "signal {signal}"),
            Exit::Unknown(what) => f.write_str(what),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// The child printed [`READY_LINE`](tether_protocol::process::READY_LINE).
    Ready,
    /// The child did not print [`READY_LINE`](tether_protocol::process::READY_LINE) in time (it is still running).
    NotReady,
    /// The child said why it cannot start (it is about to exit).
    Failed(String),
    /// The child was reaped.
    Exited(Exit),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: ChildId,
    pub kind: EventKind,
}

#[derive(Debug)]
enum Order {
    /// SIGTERM now, SIGKILL if still alive after the grace period.
    Terminate(Duration),
    Kill,
}

/// The supervisor's side of a running child.
#[derive(Debug)]
pub struct Handle {
    pub id: ChildId,
    pub role: Role,
    pub pid: u32,
    /// When the kernel started it (`/proc/<pid>/stat`, clock ticks since boot): with the
    /// pid, what tells this process from a later one that reuses its pid.
    pub start_time: u64,
    /// Started by an earlier supervisor (a re-executed or a dead one) and taken on by this
    /// one: no READY to wait for, no news pipe, no witness, an exit status only if it
    /// happens to be this process's child.
    pub adopted: bool,
    pub started: Instant,
    /// What the child shows of its progress (cores only).
    pub witness: Option<Witness>,
    /// The write end of the child's stdin, non-blocking (see [`Spec::news_pipe`]).
    news: Option<std::fs::File>,
    orders: mpsc::UnboundedSender<Order>,
}

impl Handle {
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn terminate(&self, grace: Duration) {
        // The task is gone only once the child was reaped; then there is nothing to stop.
        let _ = self.orders.send(Order::Terminate(grace));
    }

    pub fn kill(&self) {
        let _ = self.orders.send(Order::Kill);
    }

    /// Tells the child what happened to the core. Never waits: the lines are tiny and the
    /// proxy reads them at once; one that does not fit the pipe now is dropped (and logged).
    pub fn tell(&self, news: &CoreNews) {
        use std::io::Write;
        let Some(mut pipe) = self.news.as_ref() else {
            return;
        };
        if let Err(err) = pipe.write_all(news.line().as_bytes()) {
            warn!(
                "cannot tell the {} (pid {}) {news:?}: {err}",
                self.role, self.pid
            );
        }
    }
}

/// Variables `cargo run` sets for the supervisor. They describe this package, not the
/// children, and a child that looked for them (as the supervisor does for dev mode) would
/// be misled.
fn is_cargo_run_variable(name: &str) -> bool {
    name == "CARGO"
        || name == "CARGO_PRIMARY_PACKAGE"
        || [
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
            "CARGO_BIN_",
            "CARGO_CRATE_",
        ]
        .iter()
        .any(|prefix| name.starts_with(prefix))
}

/// Starts `spec` and the task that owns it. Must be called inside the tokio runtime.
pub fn spawn(
    spec: &Spec,
    id: ChildId,
    events: mpsc::UnboundedSender<Event>,
) -> Result<Handle, SpawnError> {
    let mut command = tokio::process::Command::new(&spec.program);
    command
        .args(&spec.args)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(if spec.news_pipe {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(if spec.ready_within.is_some() {
            Stdio::piped()
        } else {
            Stdio::inherit()
        })
        .stderr(Stdio::inherit())
        // Its own process group, so a Ctrl-C in the terminal reaches only the supervisor,
        // which then stops the children in the right order (proxy first).
        .process_group(0)
        .kill_on_drop(false);
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(is_cargo_run_variable) {
            command.env_remove(name);
        }
    }
    let mut passed = Vec::new();
    if let Some(fd) = spec.link_fd {
        passed.push((fd, LINK_FD));
    }
    if let Some(fd) = spec.keeper_fd {
        passed.push((fd, KEEPER_FD));
    }
    if let Some(witness) = &spec.witness {
        use std::os::fd::{AsFd, AsRawFd};
        passed.push((witness.as_fd().as_raw_fd(), WITNESS_FD));
    }
    // SAFETY: the closure runs between fork and exec and only makes async-signal-safe
    // system calls; it does not allocate or take locks.
    unsafe {
        command.pre_exec(move || pass_fds(&passed));
    }

    let spawn_error = |source| SpawnError {
        role: spec.role,
        program: spec.program.clone(),
        source,
    };
    let mut child = command.spawn().map_err(spawn_error)?;
    let pid = child
        .id()
        .ok_or_else(|| spawn_error(std::io::Error::other("exited before it could be tracked")))?;
    let started = Instant::now();
    // The child exists (it may not have exec'd yet; exec keeps the start time). Failing
    // here must not orphan it (it runs already): 0 matches no process, so a later
    // supervisor just does not adopt it.
    let start_time = start_time(pid).unwrap_or_else(|err| {
        warn!("cannot read the start time of pid {pid}: {err}; it will not be adoptable");
        0
    });
    let stdout = child.stdout.take();
    let news = match child.stdin.take() {
        Some(stdin) => Some(news_pipe(stdin).map_err(spawn_error)?),
        None => None,
    };
    let (orders_tx, orders_rx) = mpsc::unbounded_channel();
    let task = Owner {
        id,
        role: spec.role,
        pid,
        events,
        orders: orders_rx,
    };
    let ready_deadline = spec
        .ready_within
        .map(|within| tokio::time::Instant::from_std(started + within));
    tokio::spawn(task.run(child, stdout, ready_deadline));
    Ok(Handle {
        id,
        role: spec.role,
        pid,
        start_time,
        adopted: false,
        started,
        witness: spec.witness.clone(),
        news,
        orders: orders_tx,
    })
}

/// Takes on a process an earlier supervisor started: `pid`, if it is still the process that
/// started at `start_time` (a pid can be reused). `Ok(None)` when it is gone.
///
/// It is watched through a pidfd, which works for a process that is not our child (a dead
/// supervisor's children are re-parented to init) and, unlike a bare pid, can never signal
/// a stranger that inherited the number.
pub fn adopt(
    role: Role,
    pid: u32,
    expected_start: u64,
    id: ChildId,
    events: mpsc::UnboundedSender<Event>,
) -> std::io::Result<Option<Handle>> {
    let pidfd = match PidFd::open(pid) {
        Ok(pidfd) => pidfd,
        Err(err) if err.raw_os_error() == Some(nix::libc::ESRCH) => return Ok(None),
        Err(err) => return Err(err),
    };
    // Checked after the pidfd is open: from here on the number cannot change hands.
    match start_time(pid) {
        Ok(start) if start == expected_start => {}
        Ok(_) => return Ok(None),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err),
    }
    let (orders_tx, orders_rx) = mpsc::unbounded_channel();
    let owner = Owner {
        id,
        role,
        pid,
        events,
        orders: orders_rx,
    };
    tokio::spawn(owner.watch_adopted(pidfd));
    Ok(Some(Handle {
        id,
        role,
        pid,
        start_time: expected_start,
        adopted: true,
        started: Instant::now(),
        witness: None,
        news: None,
        orders: orders_tx,
    }))
}

/// When `pid` started, in clock ticks after boot: field 22 of `/proc/<pid>/stat`, read after
/// the command name (which may hold spaces and parentheses).
pub fn start_time(pid: u32) -> std::io::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let malformed = || std::io::Error::other(format!("/proc/{pid}/stat is not as expected"));
    let after_name = stat.rsplit_once(')').ok_or_else(malformed)?.1;
    // After the name come the state (field 3) and so on; the start time is field 22.
    after_name
        .split_whitespace()
        .nth(22 - 3)
        .and_then(|field| field.parse().ok())
        .ok_or_else(malformed)
}

/// The child's stdin as a plain non-blocking file, writable from outside the runtime.
fn news_pipe(stdin: tokio::process::ChildStdin) -> std::io::Result<std::fs::File> {
    let fd = stdin.into_owned_fd()?;
    let flags = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_GETFL)?;
    let flags = nix::fcntl::OFlag::from_bits_retain(flags) | nix::fcntl::OFlag::O_NONBLOCK;
    nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_SETFL(flags))?;
    Ok(std::fs::File::from(fd))
}

/// Puts each `(source, target)` descriptor at `target`, open across exec. Runs in the child
/// after fork: async-signal-safe calls only, no allocation.
///
/// There is deliberately no parent-death signal: the proxy and the core outlive a
/// supervisor that dies, and the next one adopts them ([`adopt`]).
fn pass_fds(passed: &[(RawFd, RawFd)]) -> std::io::Result<()> {
    use nix::fcntl::{FcntlArg, FdFlag, fcntl};
    use std::os::fd::{BorrowedFd, FromRawFd, IntoRawFd, OwnedFd};
    /// Above every target, so that placing one descriptor never overwrites another's source.
    const SCRATCH: RawFd = 64;
    const MAX_PASSED: usize = 4;
    if passed.len() > MAX_PASSED {
        return Err(nix::errno::Errno::EINVAL.into());
    }
    // First copy every source out of the way (close-on-exec, so the copies vanish at exec),
    // then place the copies: a source that is some other descriptor's target survives.
    let mut copies = [0 as RawFd; MAX_PASSED];
    for (copy, &(source, _)) in copies.iter_mut().zip(passed) {
        // SAFETY: the sources are the supervisor's, open for its whole life.
        *copy = fcntl(
            unsafe { BorrowedFd::borrow_raw(source) },
            FcntlArg::F_DUPFD_CLOEXEC(SCRATCH),
        )?;
    }
    for (&copy, &(_, target)) in copies.iter().zip(passed) {
        // SAFETY: `target` is only named here so dup2 can replace it; into_raw_fd below
        // makes sure it is never closed by this code.
        let mut at = unsafe { OwnedFd::from_raw_fd(target) };
        // SAFETY: `copy` was made above and is open.
        let result = nix::unistd::dup2(unsafe { BorrowedFd::borrow_raw(copy) }, &mut at);
        let _ = at.into_raw_fd();
        result?;
        // dup2 leaves the target open across exec; made explicit all the same.
        // SAFETY: `target` is open: it was just made a copy of the source.
        fcntl(
            unsafe { BorrowedFd::borrow_raw(target) },
            FcntlArg::F_SETFD(FdFlag::empty()),
        )?;
    }
    Ok(())
}

/// A SIGTERM given a grace, after which it becomes a SIGKILL: the same for a child and for
/// an adopted process, whichever way each is signalled.
#[derive(Debug, Default)]
struct Escalation {
    /// When the grace ends, and how long it was.
    pending: Option<(tokio::time::Instant, Duration)>,
}

impl Escalation {
    /// Starts the grace; `false` if one runs already (the SIGTERM went out then).
    fn start(&mut self, grace: Duration) -> bool {
        if self.pending.is_some() {
            return false;
        }
        self.pending = Some((tokio::time::Instant::now() + grace, grace));
        true
    }

    fn is_pending(&self) -> bool {
        self.pending.is_some()
    }

    fn deadline(&self) -> tokio::time::Instant {
        self.pending.map_or_else(far_future, |(at, _)| at)
    }

    /// The grace ran out: says so (the caller sends the SIGKILL).
    fn expired(&mut self, role: Role, pid: u32) {
        if let Some((_, grace)) = self.pending.take() {
            warn!(
                "{role} (pid {pid}) did not exit within {} s of SIGTERM; killing it",
                grace.as_secs_f64()
            );
        }
    }
}

/// The task that owns one child process.
struct Owner {
    id: ChildId,
    role: Role,
    pid: u32,
    events: mpsc::UnboundedSender<Event>,
    orders: mpsc::UnboundedReceiver<Order>,
}

impl Owner {
    async fn run(
        mut self,
        mut child: Child,
        stdout: Option<ChildStdout>,
        ready_deadline: Option<tokio::time::Instant>,
    ) {
        let mut output = stdout.map(LineReader::new);
        let mut awaiting_ready = ready_deadline.is_some();
        let ready_deadline = ready_deadline.unwrap_or_else(far_future);
        let mut orders_open = true;
        let mut escalation = Escalation::default();

        let exit = loop {
            tokio::select! {
                status = child.wait() => break Exit::from_wait(status),
                lines = read_lines(&mut output) => match lines {
                    Some(lines) => {
                        for line in lines {
                            self.on_line(&line, &mut awaiting_ready);
                        }
                    }
                    // Closed stdout is not an exit; the wait branch will tell.
                    None => output = None,
                },
                _ = sleep_until(ready_deadline), if awaiting_ready => {
                    awaiting_ready = false;
                    self.send(EventKind::NotReady);
                }
                order = self.orders.recv(), if orders_open => match order {
                    Some(Order::Terminate(grace)) => {
                        if escalation.start(grace) {
                            self.signal(Signal::SIGTERM);
                        }
                    }
                    Some(Order::Kill) => {
                        let _ = child.start_kill();
                    }
                    None => orders_open = false,
                },
                _ = sleep_until(escalation.deadline()), if escalation.is_pending() => {
                    escalation.expired(self.role, self.pid);
                    let _ = child.start_kill();
                }
            }
        };
        // What it printed last may not have been read yet when the exit was noticed; a
        // READY among it still counts (it was ready, then died), and the rest is logged.
        if let Some(reader) = output.as_mut() {
            for line in reader.drain_remaining().await {
                self.on_line(&line, &mut awaiting_ready);
            }
        }
        self.send(EventKind::Exited(exit));
    }

    /// The life of an adopted process: orders go through its pidfd, its exit shows as the
    /// pidfd turning readable.
    async fn watch_adopted(mut self, pidfd: PidFd) {
        let mut orders_open = true;
        let mut escalation = Escalation::default();
        let exited = loop {
            tokio::select! {
                exited = pidfd.exited() => break exited,
                order = self.orders.recv(), if orders_open => match order {
                    Some(Order::Terminate(grace)) => {
                        if escalation.start(grace) {
                            self.signal_pidfd(&pidfd, Signal::SIGTERM);
                        }
                    }
                    Some(Order::Kill) => self.signal_pidfd(&pidfd, Signal::SIGKILL),
                    None => orders_open = false,
                },
                _ = sleep_until(escalation.deadline()), if escalation.is_pending() => {
                    escalation.expired(self.role, self.pid);
                    self.signal_pidfd(&pidfd, Signal::SIGKILL);
                }
            }
        };
        let exit = match exited {
            Err(err) => Exit::Unknown(format!("cannot watch it: {err}")),
            // After a re-exec it is still our child, and its status is ours to collect.
            Ok(()) => match nix::sys::wait::waitpid(
                Pid::from_raw(self.pid as i32),
                Some(nix::sys::wait::WaitPidFlag::WNOHANG),
            ) {
                Ok(nix::sys::wait::WaitStatus::Exited(_, code)) => Exit::Code(code),
                Ok(nix::sys::wait::WaitStatus::Signaled(_, signal, _)) => {
                    Exit::Signal(signal as i32)
                }
                _ => Exit::Unknown("exit status unknown: adopted".to_string()),
            },
        };
        self.send(EventKind::Exited(exit));
    }

    fn signal_pidfd(&self, pidfd: &PidFd, signal: Signal) {
        if let Err(err) = pidfd.send_signal(signal) {
            warn!(
                "cannot send {signal} to {} (pid {}): {err}",
                self.role, self.pid
            );
        }
    }

    fn on_line(&self, line: &str, awaiting_ready: &mut bool) {
        match CoreSays::parse(line) {
            CoreSays::Ready if *awaiting_ready => {
                *awaiting_ready = false;
                self.send(EventKind::Ready);
            }
            CoreSays::Failed(reason) if *awaiting_ready => {
                self.send(EventKind::Failed(reason.to_string()));
            }
            _ => info!("{} (pid {}): {line}", self.role, self.pid),
        }
    }

    fn send(&self, kind: EventKind) {
        let _ = self.events.send(Event { id: self.id, kind });
    }

    fn signal(&self, signal: Signal) {
        let Ok(raw) = i32::try_from(self.pid) else {
            return;
        };
        // Safe from pid reuse: this task has not reaped the child yet.
        if let Err(err) = kill(Pid::from_raw(raw), signal) {
            warn!(
                "cannot send {signal} to {} (pid {}): {err}",
                self.role, self.pid
            );
        }
    }
}

fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(86400 * 365)
}

async fn read_lines(reader: &mut Option<LineReader>) -> Option<Vec<String>> {
    match reader {
        Some(reader) => reader.next_lines().await,
        None => std::future::pending().await,
    }
}

/// Splits a child's stdout into lines without trusting it: any bytes are accepted (logged
/// lossily) and an endless line cannot grow the buffer without bound. Cancel-safe, so it
/// can sit in a `select!`.
struct LineReader {
    stdout: ChildStdout,
    pending: Vec<u8>,
}

impl LineReader {
    fn new(stdout: ChildStdout) -> LineReader {
        LineReader {
            stdout,
            pending: Vec::new(),
        }
    }

    /// The next complete lines, or `None` at end of file or on a read error.
    async fn next_lines(&mut self) -> Option<Vec<String>> {
        let mut chunk = [0u8; 4096];
        loop {
            let n = match self.stdout.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => n,
            };
            self.pending.extend_from_slice(&chunk[..n]);
            let lines = split_lines(&mut self.pending, MAX_LINE);
            if !lines.is_empty() {
                return Some(lines);
            }
        }
    }

    async fn drain_remaining(&mut self) -> Vec<String> {
        let mut rest = Vec::new();
        // The child is gone, so this ends at EOF unless a grandchild kept the pipe open.
        let _ = tokio::time::timeout(
            Duration::from_millis(200),
            self.stdout.read_to_end(&mut rest),
        )
        .await;
        self.pending.extend_from_slice(&rest);
        let mut lines = split_lines(&mut self.pending, MAX_LINE);
        if !self.pending.is_empty() {
            lines.push(String::from_utf8_lossy(&self.pending).into_owned());
            self.pending.clear();
        }
        lines
    }
}

/// Removes the complete lines from the front of `pending` (and an overlong partial line).
fn split_lines(pending: &mut Vec<u8>, max_line: usize) -> Vec<String> {
    let mut lines = Vec::new();
    while let Some(end) = pending.iter().position(|&b| b == b'\n') {
        let line: Vec<u8> = pending.drain(..=end).collect();
        let text = String::from_utf8_lossy(&line[..end]);
        lines.push(text.trim_end_matches('\r').to_string());
    }
    if pending.len() > max_line {
        lines.push(String::from_utf8_lossy(pending).into_owned());
        pending.clear();
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_and_partial_lines_kept() {
        let mut pending = b"READY\r\nhello\npart".to_vec();
        assert_eq!(split_lines(&mut pending, 100), ["READY", "hello"]);
        assert_eq!(pending, b"part");
        pending.extend_from_slice(b"ial\n");
        assert_eq!(split_lines(&mut pending, 100), ["partial"]);
        assert!(pending.is_empty());
    }

    #[test]
    fn overlong_and_invalid_output_is_tolerated() {
        let mut pending = vec![b'x'; 20];
        assert_eq!(split_lines(&mut pending, 10), ["x".repeat(20)]);
        let mut pending = b"\xff\xfe\n".to_vec();
        assert_eq!(split_lines(&mut pending, 10), ["\u{fffd}\u{fffd}"]);
    }

    #[test]
    fn exits_are_worded_for_logs() {
        assert_eq!(Exit::Code(1).to_string(), "status 1");
        assert_eq!(Exit::Signal(9).to_string(), "signal 9");
        assert!(Exit::Code(0).is_success());
        assert!(!Exit::Signal(15).is_success());
    }

    #[test]
    fn only_cargo_run_variables_are_dropped() {
        for name in [
            "CARGO",
            "CARGO_PKG_NAME",
            "CARGO_MANIFEST_DIR",
            "CARGO_BIN_NAME",
            "CARGO_CRATE_NAME",
            "CARGO_PRIMARY_PACKAGE",
        ] {
            assert!(is_cargo_run_variable(name), "{name}");
        }
        for name in ["CARGO_HOME", "CARGO_TARGET_DIR", "PATH", "RUST_LOG"] {
            assert!(!is_cargo_run_variable(name), "{name}");
        }
    }

    fn script(body: &str) -> Spec {
        Spec {
            role: Role::Core,
            program: PathBuf::from("/bin/sh"),
            args: vec!["-c".into(), body.into()],
            env: Vec::new(),
            link_fd: None,
            keeper_fd: None,
            witness: None,
            news_pipe: false,
            ready_within: Some(Duration::from_secs(5)),
        }
    }

    async fn next(events: &mut mpsc::UnboundedReceiver<Event>) -> EventKind {
        tokio::time::timeout(Duration::from_secs(10), events.recv())
            .await
            .expect("an event in time")
            .expect("the task sends events")
            .kind
    }

    #[tokio::test]
    async fn ready_then_exit_is_reported() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        spawn(
            &script("echo starting; echo READY; echo more; exit 3"),
            7,
            tx,
        )
        .expect("spawn");
        assert_eq!(next(&mut rx).await, EventKind::Ready);
        assert_eq!(next(&mut rx).await, EventKind::Exited(Exit::Code(3)));
    }

    #[tokio::test]
    async fn silence_is_not_ready_and_terminate_escalates() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut spec = script("trap '' TERM; while :; do sleep 0.05; done");
        spec.ready_within = Some(Duration::from_millis(100));
        let handle = spawn(&spec, 1, tx).expect("spawn");
        assert_eq!(next(&mut rx).await, EventKind::NotReady);
        handle.terminate(Duration::from_millis(200));
        assert_eq!(
            next(&mut rx).await,
            EventKind::Exited(Exit::Signal(Signal::SIGKILL as i32))
        );
    }

    #[tokio::test]
    async fn the_link_listener_arrives_as_fd_3() {
        use std::os::fd::AsRawFd;
        let dir = tempfile::tempdir().expect("temp dir");
        let listener =
            std::os::unix::net::UnixListener::bind(dir.path().join("l.sock")).expect("bind");
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut spec =
            script("[ \"$TETHER_LINK_FD\" = 3 ] && [ -S /proc/self/fd/3 ] && echo READY; exit 0");
        spec.env = vec![("TETHER_LINK_FD".into(), "3".into())];
        spec.link_fd = Some(listener.as_raw_fd());
        spawn(&spec, 2, tx).expect("spawn");
        assert_eq!(next(&mut rx).await, EventKind::Ready);
        assert_eq!(next(&mut rx).await, EventKind::Exited(Exit::Code(0)));
    }
}
