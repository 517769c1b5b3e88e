//! The supervisor proper: a single task that owns the proxy and the cores and decides
//! everything, so there are no locks and no two decisions can race.
//!
//! It never waits inline: a core that is starting, an old core that is stopping, a restart
//! that is backing off are all states it records, and the events that end them (a child's
//! READY or exit, a timer) arrive through its loop. That keeps it answering `status` and
//! signals even while a reload takes its time.

use std::ffi::OsString;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use thiserror::Error;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};

use crate::adoption::{self, Record};
use crate::backoff::Backoff;
use crate::keeper::{self, Kept, SharedKept};
use tether_protocol::keeper::{KEEPER_FD, KEEPER_FD_VAR, RECOVER_FLAG};
use tether_protocol::process::{
    CONTROL_VAR, CORE_NEWS_FLAG, CoreNews, HANDOVER_FLAG, LINK_FD, LINK_FD_VAR, QUARANTINE_VAR,
    READY_LINE, TAKE_OVER_FLAG,
};
use tether_protocol::witness::{WITNESS_FD, WITNESS_FD_VAR, Witness};

use crate::child::{self, ChildId, EventKind, Exit, Handle, Role, Spec};
use crate::config::{CoreSite, Settings};
use crate::control::{self, Incoming, Replier, Request, ServeError};
use crate::error_chain;
use crate::liveness::{Blame, Liveness, SUSPECT_HANG_TIMEOUT, Suspects, Verdict};
use crate::notify::Notifier;
use crate::shutdown;
use crate::sockets::Sockets;
use crate::watch::{self, WatchError};

/// The waits of the child contracts.
#[derive(Debug, Clone)]
pub struct Timing {
    /// How long a new core has to print READY.
    pub ready_within: Duration,
    /// How long a child has between SIGTERM and SIGKILL.
    pub stop_grace: Duration,
    /// How long the core binary must be left alone after a change before reloading.
    pub watch_quiet: Duration,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            ready_within: Duration::from_secs(30),
            stop_grace: Duration::from_secs(10),
            watch_quiet: Duration::from_millis(300),
        }
    }
}

#[derive(Debug, Error)]
pub enum RunError {
    #[error("cannot install the signal handlers")]
    Signals(#[source] std::io::Error),
    #[error("cannot share the control socket")]
    ControlSocket(#[source] std::io::Error),
    #[error(transparent)]
    Control(#[from] ServeError),
    #[error(transparent)]
    Watch(#[from] WatchError),
    #[error("cannot re-execute tether; the proxy and the core run on without a supervisor")]
    Reexec(#[source] std::io::Error),
    /// Startup failed; everything that was started has been stopped again.
    #[error("{0}")]
    Startup(String),
}

/// Runs until shut down. `sockets` stay bound for the whole run and are removed after.
pub async fn run(settings: Settings, sockets: Sockets, timing: Timing) -> Result<(), RunError> {
    let mut sigterm = signal(SignalKind::terminate()).map_err(RunError::Signals)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(RunError::Signals)?;
    let mut sighup = signal(SignalKind::hangup()).map_err(RunError::Signals)?;
    let mut sigusr2 = signal(SignalKind::user_defined2()).map_err(RunError::Signals)?;

    let (request_tx, mut requests) = mpsc::channel(64);
    let (stop_server, server_stop) = shutdown::channel();
    let control_listener = sockets
        .control
        .try_clone()
        .map_err(RunError::ControlSocket)?;
    let server = tokio::spawn(control::serve(control_listener, request_tx, server_stop));

    // The sender is kept even without a watch, so the branch below just never fires.
    let (watch_tx, mut watch_rx) = mpsc::unbounded_channel();
    let _watch = if settings.watch {
        Some(watch::watch(
            &settings.core_bin,
            timing.watch_quiet,
            watch_tx.clone(),
        )?)
    } else {
        None
    };
    let (proxy_watch_tx, mut proxy_watch_rx) = mpsc::unbounded_channel();
    let _proxy_watch = if settings.watch {
        Some(watch::watch(
            &settings.proxy_bin,
            timing.watch_quiet,
            proxy_watch_tx.clone(),
        )?)
    } else {
        None
    };

    info!(
        "tether supervisor {} (pid {}): telnet {}, data {}, watch {}",
        env!("CARGO_PKG_VERSION"),
        std::process::id(),
        settings.telnet,
        settings.data.display(),
        if settings.watch { "on" } else { "off" },
    );
    let (events_tx, mut events) = mpsc::unbounded_channel();
    // Looks at the core's progress often enough to act within a few percent of the timeout.
    let mut liveness_ticks = tokio::time::interval(
        (settings.hang_timeout / 8).clamp(Duration::from_millis(20), Duration::from_millis(250)),
    );
    liveness_ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sup = Supervisor::new(settings, timing, sockets.link.as_raw_fd(), events_tx);
    let mut drained = sup.take_drained();
    // systemd's watchdog, if it watches: a tick that never fires otherwise.
    let mut watchdog_ticks = tokio::time::interval(
        sup.notifier
            .watchdog_interval()
            .unwrap_or(Duration::from_secs(86400)),
    );
    sup.begin(adoption::read(&sup.settings.data));
    // At once: a supervisor that died before its loop first turned would leave none.
    sup.save_record();

    while !sup.is_finished() && sup.reexec.is_none() {
        let core_restart_at = sup.core_restart_at;
        let proxy_restart_at = sup.proxy_restart_at;
        tokio::select! {
            Some(event) = events.recv() => sup.on_child_event(event),
            Some(id) = drained.recv() => sup.on_keeper_drained(id),
            Some(incoming) = requests.recv() => sup.on_request(incoming),
            Some(()) = watch_rx.recv() => {
                info!("core binary changed; reloading");
                sup.request_reload(None);
            }
            _ = sigterm.recv() => sup.on_stop_signal("SIGTERM"),
            _ = sigint.recv() => sup.on_stop_signal("SIGINT"),
            _ = sighup.recv() => {
                info!("SIGHUP received; reloading");
                sup.request_reload(None);
            }
            Some(()) = proxy_watch_rx.recv() => {
                info!("proxy binary changed; upgrading the proxy");
                sup.request_proxy_upgrade(None);
            }
            _ = sigusr2.recv() => {
                info!("SIGUSR2 received; upgrading the proxy");
                sup.request_proxy_upgrade(None);
            }
            _ = sleep_until(core_restart_at) => {
                sup.core_restart_at = None;
                sup.start_core(Purpose::Restart);
            }
            _ = sleep_until(proxy_restart_at) => {
                sup.proxy_restart_at = None;
                sup.start_proxy();
            }
            _ = liveness_ticks.tick() => sup.check_liveness(),
            _ = watchdog_ticks.tick() => sup.pet_watchdog(),
        }
        sup.advance();
        sup.save_record();
    }
    if let Some(reexec) = sup.reexec.take() {
        // Everything goes on as it is; the next image adopts it from the record.
        sup.save_record();
        drop(requests);
        stop_server.fire();
        let _ = server.await;
        // The sockets stay where they are (dropping them would remove the files).
        std::mem::forget(sockets);
        let err = reexec.exec();
        return Err(RunError::Reexec(err));
    }
    let result = sup.finish();
    // Requests that arrive from now on are told the supervisor is going away.
    drop(requests);
    stop_server.fire();
    match server.await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => warn!("control socket: {}", error_chain(&err)),
        Err(err) => warn!("control socket task failed: {err}"),
    }
    drop(sockets);
    result
}

/// Tells whoever asked for a proxy upgrade how it went, and the log.
fn answer_proxy_upgrade(waiters: &[Replier], result: Result<String, String>) {
    let line = match result {
        Ok(message) => {
            info!("{message}");
            format!("ok: {message}")
        }
        Err(message) => {
            warn!("{message}");
            format!("error: {message}")
        }
    };
    for waiter in waiters {
        waiter.line(line.clone());
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}

/// One planned reload and who waits for its outcome.
#[derive(Debug)]
struct ReloadJob {
    requested: Instant,
    waiters: Vec<Replier>,
}

impl ReloadJob {
    fn elapsed_ms(&self) -> u128 {
        self.requested.elapsed().as_millis()
    }
}

/// Why a core is being started; decides what its READY or its failure means.
#[derive(Debug)]
enum Purpose {
    /// The first core: failing means tether cannot start.
    Initial,
    /// Replacing a core that died: failing is another crash.
    Restart,
    /// Replacing a running core: failing leaves the old one in place.
    Reload(ReloadJob),
}

/// A core that has been started and has not printed READY yet.
#[derive(Debug)]
struct Candidate {
    handle: Handle,
    purpose: Purpose,
    /// Why it cannot start, as it said on stdout before exiting.
    failure: Option<String>,
}

/// A proxy upgrade under way: the new proxy taking over, and who waits for the outcome.
#[derive(Debug)]
struct ProxyUpgrade {
    requested: Instant,
    candidate: Handle,
    /// Why it cannot take over, as it said on stdout before exiting.
    failure: Option<String>,
    waiters: Vec<Replier>,
    /// The proxy it takes over from, once that one has exited. Its exit and the new one's
    /// READY race (the old leaves the instant it has handed everything over), so its exit
    /// means nothing until the new one says how it went: READY, and nothing needs doing;
    /// death, and this is a lost proxy whose players the keeper holds.
    predecessor_gone: Option<LostProxy>,
}

/// A proxy that died, waiting for its keeper to have read all it said.
#[derive(Debug)]
struct LostProxy {
    id: ChildId,
    what: String,
    uptime: Duration,
    recovered: bool,
}

/// After this many recovered proxies in a row died within the backoff's stable time, the
/// kept sessions are let go (something in them may be what kills the proxy).
const RECOVERY_ATTEMPTS: u32 = 3;

/// A child that was asked to exit and has not been reaped yet.
#[derive(Debug)]
struct Stopping {
    handle: Handle,
    /// Set for the old core of a reload: the reload is over when it has exited.
    reload: Option<ReloadJob>,
}

#[derive(Debug)]
struct ShuttingDown {
    started: Instant,
    /// The proxy is gone and the core has been told to stop.
    core_phase: bool,
    waiters: Vec<Replier>,
}

struct Supervisor {
    settings: Settings,
    timing: Timing,
    link_fd: RawFd,
    events: mpsc::UnboundedSender<child::Event>,
    next_id: ChildId,
    started: Instant,

    /// The core serving the game (it printed READY).
    core: Option<Handle>,
    /// Whether `core` makes progress; set with it.
    core_liveness: Option<Liveness>,
    /// `core` was killed for making no progress (for how long): its exit says so.
    core_hung: Option<Duration>,
    /// The lines recent core deaths were blamed on.
    suspects: Suspects,
    /// No core runs, and the last one to start said why it cannot: waiting for a reload.
    core_blocked: Option<String>,
    candidate: Option<Candidate>,
    core_restart_at: Option<Instant>,
    core_backoff: Backoff,
    core_restarts: u32,
    core_reloads: u32,

    proxy: Option<Handle>,
    proxy_ever_started: bool,
    proxy_restart_at: Option<Instant>,
    proxy_backoff: Backoff,
    proxy_restarts: u32,
    proxy_upgrade: Option<ProxyUpgrade>,
    proxy_upgrades: u32,
    /// What the keeper holds for the proxy: a copy of every connection and its checkpoint.
    kept: SharedKept,
    /// The task keeping for each proxy process, until that process closes its keeper socket.
    keepers: std::collections::HashMap<ChildId, tokio::task::JoinHandle<()>>,
    /// A proxy's keeper task has read everything the proxy said (its id).
    drained_tx: mpsc::UnboundedSender<ChildId>,
    drained_rx: Option<mpsc::UnboundedReceiver<ChildId>>,
    /// The proxy died; the next starts once its keeper has read everything it said.
    proxy_lost: Option<LostProxy>,
    /// Recovered proxies that died soon after, in a row: kept sessions that crash every
    /// proxy are let go after a few.
    quick_recovery_deaths: u32,
    recoveries: u32,
    /// The proxy running now was started to recover (its id).
    recovered_proxy: Option<ChildId>,

    stopping: Vec<Stopping>,
    /// Requested and not started yet: requests made meanwhile join it.
    pending_reload: Option<ReloadJob>,
    last_reload: Option<(Instant, String)>,
    shutdown: Option<ShuttingDown>,
    /// Why startup failed, once it has.
    fatal: Option<String>,
    /// systemd, when it runs us (a no-op otherwise).
    notifier: Notifier,
    /// systemd was told READY=1 (the game first opened).
    announced_ready: bool,
    /// What the record of children last said (see [`adoption`]).
    recorded: Vec<Record>,
    /// This image is to be replaced by the binary on disk (`tether upgrade-supervisor`).
    reexec: Option<Reexec>,
    /// How many images of tether have run this game without stopping it (1 for the first).
    generation: u32,
}

impl Supervisor {
    fn new(
        settings: Settings,
        timing: Timing,
        link_fd: RawFd,
        events: mpsc::UnboundedSender<child::Event>,
    ) -> Supervisor {
        let (drained_tx, drained_rx) = mpsc::unbounded_channel();
        Supervisor {
            settings,
            timing,
            link_fd,
            events,
            next_id: 1,
            started: Instant::now(),
            core: None,
            core_liveness: None,
            core_hung: None,
            suspects: Suspects::default(),
            core_blocked: None,
            candidate: None,
            core_restart_at: None,
            core_backoff: Backoff::standard(),
            core_restarts: 0,
            core_reloads: 0,
            proxy: None,
            proxy_ever_started: false,
            proxy_restart_at: None,
            proxy_backoff: Backoff::standard(),
            proxy_restarts: 0,
            proxy_upgrade: None,
            proxy_upgrades: 0,
            kept: Kept::shared(),
            keepers: std::collections::HashMap::new(),
            drained_tx,
            drained_rx: Some(drained_rx),
            proxy_lost: None,
            quick_recovery_deaths: 0,
            recoveries: 0,
            recovered_proxy: None,
            stopping: Vec::new(),
            pending_reload: None,
            last_reload: None,
            shutdown: None,
            fatal: None,
            notifier: Notifier::from_env(),
            announced_ready: false,
            recorded: Vec::new(),
            reexec: None,
            generation: Reexec::generation(),
        }
    }

    /// Starts the game, or takes on the proxy and core an earlier supervisor left running.
    ///
    /// Adopted processes keep serving while this supervisor replaces each by the invisible
    /// route (a core reload, a proxy upgrade), so that both are its own children again: with
    /// a witness page for the core, a news pipe and a READY line for the proxy.
    fn begin(&mut self, records: Vec<Record>) {
        let mut adopted_core = false;
        let mut adopted_proxy = false;
        for record in records {
            let id = self.next_id();
            let handle = match child::adopt(
                record.role,
                record.pid,
                record.start_time,
                id,
                self.events.clone(),
            ) {
                Ok(Some(handle)) => handle,
                Ok(None) => {
                    debug!("the {} (pid {}) recorded is gone", record.role, record.pid);
                    continue;
                }
                Err(err) => {
                    warn!(
                        "cannot adopt the {} (pid {}): {err}",
                        record.role, record.pid
                    );
                    continue;
                }
            };
            match record.role {
                Role::Core if record.serving && self.core.is_none() => {
                    info!("adopted the running core (pid {})", handle.pid);
                    self.install_core(handle);
                    adopted_core = true;
                }
                Role::Proxy if record.serving && self.proxy.is_none() => {
                    info!(
                        "adopted the running proxy (pid {}): players stay connected",
                        handle.pid
                    );
                    self.proxy = Some(handle);
                    self.proxy_ever_started = true;
                    adopted_proxy = true;
                }
                _ => {
                    info!(
                        "stopping the {} (pid {}) that was starting or stopping",
                        handle.role, handle.pid
                    );
                    handle.terminate(self.timing.stop_grace);
                    self.stopping.push(Stopping {
                        handle,
                        reload: None,
                    });
                }
            }
        }
        let core_here = matches!(self.settings.core_site, CoreSite::Here { .. });
        match (adopted_core, adopted_proxy) {
            // An edge host: the proxy attaches to the core on its own host, by itself.
            (false, false) if !core_here => self.start_proxy(),
            (false, true) if !core_here => {}
            (false, false) => self.start_core(Purpose::Initial),
            // The proxy waits for a core as it does after a crash.
            (false, true) => self.start_core(Purpose::Restart),
            (true, false) => self.start_proxy(),
            (true, true) => {}
        }
        if adopted_core {
            self.request_reload(None);
        }
        if adopted_proxy {
            // The game is open: players are on it.
            self.announced_ready = true;
            self.notifier.ready();
            self.request_proxy_upgrade(None);
        }
    }

    /// Every child this supervisor runs, as the next one would need to know them.
    fn record(&self) -> Vec<Record> {
        let entry = |handle: &Handle, serving| Record {
            role: handle.role,
            pid: handle.pid,
            start_time: handle.start_time,
            serving,
        };
        let serving = self.core.iter().chain(self.proxy.iter());
        let others = self
            .candidate
            .iter()
            .map(|candidate| &candidate.handle)
            .chain(self.proxy_upgrade.iter().map(|upgrade| &upgrade.candidate))
            .chain(self.stopping.iter().map(|stopping| &stopping.handle));
        serving
            .map(|handle| entry(handle, true))
            .chain(others.map(|handle| entry(handle, false)))
            .collect()
    }

    /// Rewrites the record of children when it changed.
    fn save_record(&mut self) {
        let record = self.record();
        if record == self.recorded {
            return;
        }
        match adoption::write(&self.settings.data, &record) {
            Ok(()) => self.recorded = record,
            Err(err) => warn!(
                "cannot record the running children in {}: {err}; a supervisor started after \
                 this one dies would not find them",
                self.settings.data.display()
            ),
        }
    }

    /// `tether upgrade-supervisor`: re-executes the binary on disk in place. The proxy and
    /// the core stay this process's children and are adopted by the new image.
    fn request_reexec(&mut self, waiter: Replier) {
        let busy = if self.shutdown.is_some() {
            Some("tether is shutting down")
        } else if self.candidate.is_some() || self.pending_reload.is_some() {
            Some("a core is starting; try again when it is up")
        } else if self.proxy_upgrade.is_some() {
            Some("a proxy upgrade is in progress; try again when it is over")
        } else {
            None
        };
        if let Some(why) = busy {
            warn!("supervisor upgrade refused: {why}");
            waiter.line(format!("error: supervisor upgrade refused: {why}"));
            return;
        }
        let reexec = Reexec::new(self.generation + 1);
        info!(
            "re-executing {} (generation {}); the proxy and the core run on",
            reexec.program.display(),
            reexec.generation
        );
        waiter.line(format!(
            "ok: re-executing {} (pid {}, generation {})",
            reexec.program.display(),
            std::process::id(),
            reexec.generation
        ));
        self.reexec = Some(reexec);
    }

    fn core_spec(&self) -> Spec {
        let settings = &self.settings;
        let mut args: Vec<OsString> = vec![
            "--data".into(),
            settings.data.clone().into(),
            "--link".into(),
            settings.link_socket().into(),
        ];
        if let Some(world) = &settings.world {
            args.push("--world".into());
            args.push(world.clone().into());
        }
        args.extend(settings.limits.core_args());
        args.extend(settings.core_link_args());
        let mut env: Vec<(OsString, OsString)> = vec![
            (LINK_FD_VAR.into(), LINK_FD.to_string().into()),
            (CONTROL_VAR.into(), settings.control_socket().into()),
        ];
        env.extend(settings.child_env());
        let quarantine = self.suspects.quarantine_list();
        if !quarantine.is_empty() {
            env.push((QUARANTINE_VAR.into(), quarantine.into()));
        }
        Spec {
            role: Role::Core,
            program: settings.core_bin.clone(),
            args,
            env,
            link_fd: Some(self.link_fd),
            keeper_fd: None,
            witness: None,
            news_pipe: false,
            ready_within: Some(self.timing.ready_within),
        }
    }

    fn proxy_spec(&self) -> Spec {
        Spec {
            role: Role::Proxy,
            program: self.settings.proxy_bin.clone(),
            args: [
                "--telnet".into(),
                self.settings.telnet.clone().into(),
                "--http".into(),
                self.settings.http.clone().into(),
                CORE_NEWS_FLAG.into(),
                HANDOVER_FLAG.into(),
                self.settings.handover_socket().into(),
                "--admin-token-file".into(),
                self.settings.admin_token_file().into(),
            ]
            .into_iter()
            .chain(self.settings.limits.proxy_args())
            .chain(crate::config::proxy_protocol_args(
                &self.settings.proxy_protocol,
            ))
            .chain(self.settings.tls_args())
            .chain(self.settings.proxy_link_args())
            .collect(),
            env: self.settings.child_env(),
            link_fd: None,
            keeper_fd: None,
            witness: None,
            news_pipe: true,
            // The proxy says READY once it listens and a core is attached.
            ready_within: Some(self.timing.ready_within),
        }
    }

    fn next_id(&mut self) -> ChildId {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn start_core(&mut self, purpose: Purpose) {
        debug_assert!(self.candidate.is_none(), "one new core at a time");
        let mut spec = self.core_spec();
        match Witness::create() {
            Ok(witness) => {
                spec.witness = Some(witness);
                spec.env
                    .push((WITNESS_FD_VAR.into(), WITNESS_FD.to_string().into()));
            }
            Err(err) => {
                let reason = format!("cannot make the core's witness page: {err}");
                return self.core_start_failed(purpose, reason, false);
            }
        }
        let id = self.next_id();
        match child::spawn(&spec, id, self.events.clone()) {
            Ok(handle) => {
                info!(
                    "starting core (pid {}): {}",
                    handle.pid,
                    spec.program.display()
                );
                self.candidate = Some(Candidate {
                    handle,
                    purpose,
                    failure: None,
                });
            }
            Err(err) => self.core_start_failed(purpose, error_chain(&err), false),
        }
    }

    /// Starts a proxy with a keeper of its own; `recovering`: it carries on with what the
    /// keeper kept from a proxy that died.
    fn spawn_proxy(
        &mut self,
        mut spec: Spec,
        recovering: bool,
    ) -> Result<Handle, child::SpawnError> {
        let (ours, theirs) = match tether_protocol::keeper::pair() {
            Ok(pair) => (Some(pair.0), Some(pair.1)),
            Err(err) => {
                warn!(
                    "cannot make the proxy's keeper socket ({err}); a proxy crash will disconnect players"
                );
                (None, None)
            }
        };
        if let Some(theirs) = &theirs {
            spec.keeper_fd = Some(theirs.as_raw_fd());
            spec.env
                .push((KEEPER_FD_VAR.into(), KEEPER_FD.to_string().into()));
            if recovering {
                spec.args.push(RECOVER_FLAG.into());
            }
        }
        let id = self.next_id();
        let handle = child::spawn(&spec, id, self.events.clone())?;
        // The child has its copy; ours would keep the socket open after it died.
        drop(theirs);
        if let Some(ours) = ours {
            let task = keeper::keep(
                self.kept.clone(),
                ours,
                recovering && spec.keeper_fd.is_some(),
                handle.pid,
            );
            self.keepers.insert(id, task);
        }
        Ok(handle)
    }

    /// The serving proxy is gone: once everything it told its keeper has been read, the
    /// next proxy is given it (`on_keeper_drained`).
    fn lose_proxy(&mut self, lost: LostProxy) {
        let id = lost.id;
        self.proxy_lost = Some(lost);
        match self.keepers.remove(&id) {
            Some(task) => {
                let drained = self.drained_tx.clone();
                tokio::spawn(async move {
                    let _ = task.await;
                    let _ = drained.send(id);
                });
            }
            None => self.on_keeper_drained(id),
        }
    }

    fn take_drained(&mut self) -> mpsc::UnboundedReceiver<ChildId> {
        self.drained_rx
            .take()
            .unwrap_or_else(|| mpsc::unbounded_channel().1)
    }

    fn start_proxy(&mut self) {
        let spec = self.proxy_spec();
        let kept = self
            .kept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (recovering, sessions) = (kept.can_recover(), kept.sessions());
        drop(kept);
        match self.spawn_proxy(spec, recovering) {
            Ok(handle) => {
                if recovering {
                    self.recoveries += 1;
                    self.recovered_proxy = Some(handle.id);
                    info!(
                        "proxy started (pid {}): it carries on with {sessions} kept connections",
                        handle.pid
                    );
                } else {
                    info!(
                        "proxy started (pid {}) on {}",
                        handle.pid, self.settings.telnet
                    );
                }
                if let Some(reason) = &self.core_blocked {
                    handle.tell(&CoreNews::CannotStart(reason.clone()));
                }
                self.proxy = Some(handle);
                self.proxy_ever_started = true;
            }
            Err(err) if !self.proxy_ever_started => {
                self.fail_startup(error_chain(&err));
            }
            Err(err) => self.schedule_proxy_restart(error_chain(&err), Duration::ZERO),
        }
    }

    fn fail_startup(&mut self, reason: String) {
        error!("{reason}");
        self.fatal = Some(reason);
        self.begin_shutdown(None, "startup failed");
    }

    /// `said_why`: the core itself said why it cannot start (a broken world file, a missing or
    /// corrupt database): starting it again will fail the same way until someone fixes it.
    fn core_start_failed(&mut self, purpose: Purpose, reason: String, said_why: bool) {
        match purpose {
            Purpose::Initial => self.fail_startup(format!("the core failed to start: {reason}")),
            Purpose::Restart if said_why => self.block_core(reason),
            // A core that never became ready has no uptime to earn forgiveness with.
            Purpose::Restart => {
                self.schedule_core_restart(format!("new core failed: {reason}"), Duration::ZERO)
            }
            Purpose::Reload(job) => {
                let message = if self.core.is_some() {
                    format!("reload failed: {reason}; the old core keeps running")
                } else {
                    format!("reload failed: {reason}")
                };
                self.finish_reload(job, Err(message));
                if self.core.is_none() && self.shutdown.is_none() {
                    // The old core died while the new one was starting.
                    if said_why {
                        self.block_core(reason);
                    } else {
                        self.schedule_core_restart(
                            "no core is running".to_string(),
                            Duration::ZERO,
                        );
                    }
                }
            }
        }
    }

    /// Stops restarting a core that cannot start until someone asks for a reload: retrying
    /// blindly would only fill the log. Players stay connected meanwhile.
    fn block_core(&mut self, reason: String) {
        if self.shutdown.is_some() {
            return;
        }
        error!(
            "the core cannot start: {reason}. Players stay connected and what they type is \
             kept; fix the cause, then run `tether reload` (or send SIGHUP) to start it"
        );
        self.core_restarts += 1;
        // A reload asked for while the core was down was this very attempt: it failed.
        if let Some(job) = self.pending_reload.take() {
            self.finish_reload(job, Err(format!("reload failed: {reason}")));
        }
        if let Some(proxy) = &self.proxy {
            proxy.tell(&CoreNews::CannotStart(reason.clone()));
        }
        self.core_blocked = Some(reason);
    }

    fn schedule_core_restart(&mut self, what: String, uptime: Duration) {
        if self.shutdown.is_some() {
            info!("{what}");
            return;
        }
        let delay = self.core_backoff.delay_after(uptime);
        self.core_restarts += 1;
        if delay.is_zero() {
            warn!("{what}; restarting");
            self.start_core(Purpose::Restart);
        } else {
            warn!(
                "{what}; restarting in {} ms (crash-loop backoff: it ran less than {} s)",
                delay.as_millis(),
                self.core_backoff.stable_after().as_secs()
            );
            self.core_restart_at = Some(Instant::now() + delay);
        }
    }

    /// The proxy that died has been heard out: start the next, which carries on with every
    /// kept connection, or, with nothing kept, starts afresh.
    fn on_keeper_drained(&mut self, id: ChildId) {
        let Some(lost) = self.proxy_lost.take_if(|lost| lost.id == id) else {
            return;
        };
        let stable = lost.uptime >= self.proxy_backoff.stable_after();
        self.quick_recovery_deaths = match (lost.recovered, stable) {
            (true, false) => self.quick_recovery_deaths + 1,
            _ => 0,
        };
        let mut kept = self
            .kept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.quick_recovery_deaths >= RECOVERY_ATTEMPTS {
            error!(
                "{} recovered proxies in a row died within {} s; letting the {} kept connections go",
                self.quick_recovery_deaths,
                self.proxy_backoff.stable_after().as_secs(),
                kept.sessions()
            );
            *kept = Kept::default();
            self.quick_recovery_deaths = 0;
        }
        let what = match (kept.can_recover(), self.shutdown.is_some()) {
            (_, true) => lost.what,
            (true, false) => format!(
                "{}; its {} players stay connected (the keeper holds their connections)",
                lost.what,
                kept.sessions()
            ),
            (false, false) => format!("{}; players were disconnected", lost.what),
        };
        drop(kept);
        self.schedule_proxy_restart(what, lost.uptime);
    }

    fn schedule_proxy_restart(&mut self, what: String, uptime: Duration) {
        if self.shutdown.is_some() {
            info!("{what}");
            return;
        }
        let delay = self.proxy_backoff.delay_after(uptime);
        self.proxy_restarts += 1;
        if delay.is_zero() {
            warn!("{what}; restarting");
            self.start_proxy();
        } else {
            warn!(
                "{what}; restarting in {} ms (crash-loop backoff: it ran less than {} s)",
                delay.as_millis(),
                self.proxy_backoff.stable_after().as_secs()
            );
            self.proxy_restart_at = Some(Instant::now() + delay);
        }
    }

    fn on_child_event(&mut self, event: child::Event) {
        let from_proxy = self
            .proxy
            .as_ref()
            .is_some_and(|proxy| proxy.id == event.id);
        let from_new_proxy = self
            .proxy_upgrade
            .as_ref()
            .is_some_and(|upgrade| upgrade.candidate.id == event.id);
        match event.kind {
            EventKind::Ready if from_new_proxy => self.on_proxy_took_over(),
            EventKind::NotReady if from_new_proxy => {
                if let Some(upgrade) = &mut self.proxy_upgrade {
                    upgrade.failure = Some(format!(
                        "it did not take over within {} s",
                        self.timing.ready_within.as_secs()
                    ));
                    upgrade.candidate.kill();
                }
            }
            EventKind::Failed(reason) if from_new_proxy => {
                if let Some(upgrade) = &mut self.proxy_upgrade {
                    upgrade.failure = Some(reason);
                }
            }
            EventKind::Ready if from_proxy => self.on_proxy_ready(),
            EventKind::NotReady if from_proxy => {
                warn!("the proxy has not attached to a core yet; players are kept waiting")
            }
            EventKind::Ready => self.on_core_ready(event.id),
            EventKind::NotReady => self.on_core_not_ready(event.id),
            EventKind::Failed(reason) => {
                if let Some(candidate) = self.candidate.as_mut().filter(|c| c.handle.id == event.id)
                {
                    candidate.failure = Some(reason);
                }
            }
            EventKind::Exited(exit) => self.on_exit(event.id, exit),
        }
    }

    fn take_candidate(&mut self, id: ChildId) -> Option<Candidate> {
        self.candidate
            .take_if(|candidate| candidate.handle.id == id)
    }

    fn on_core_ready(&mut self, id: ChildId) {
        let Some(Candidate {
            handle, purpose, ..
        }) = self.take_candidate(id)
        else {
            return;
        };
        let took = handle.uptime().as_millis();
        match purpose {
            Purpose::Initial => {
                info!("core ready (pid {}) in {took} ms", handle.pid);
                self.install_core(handle);
                self.start_proxy();
            }
            Purpose::Restart => {
                info!("core restarted (pid {}), ready in {took} ms", handle.pid);
                let started = handle.started;
                self.install_core(handle);
                // A reload asked for before this core was started is done: it runs the
                // binary as it is now.
                if let Some(job) = self.pending_reload.take_if(|job| job.requested <= started) {
                    let ms = job.elapsed_ms();
                    self.finish_reload(
                        job,
                        Ok(format!("reloaded in {ms} ms (the core was restarting)")),
                    );
                }
            }
            Purpose::Reload(job) => {
                self.core_reloads += 1;
                let pid = handle.pid;
                match self.install_core(handle) {
                    Some(old) => {
                        info!(
                            "new core (pid {pid}) ready in {took} ms; stopping the old core (pid {})",
                            old.pid
                        );
                        old.terminate(self.timing.stop_grace);
                        self.stopping.push(Stopping {
                            handle: old,
                            reload: Some(job),
                        });
                    }
                    None => {
                        let ms = job.elapsed_ms();
                        self.finish_reload(job, Ok(format!("reloaded in {ms} ms")));
                    }
                }
            }
        }
    }

    fn on_proxy_ready(&mut self) {
        if let Some(proxy) = &self.proxy {
            info!(
                "proxy (pid {}) is listening and attached to a core",
                proxy.pid
            );
        }
        if !self.announced_ready {
            self.announced_ready = true;
            self.notifier.ready();
        }
    }

    /// Tells systemd's watchdog all is well: this loop turns, and the serving core (if any;
    /// a core being replaced is this loop's business) makes progress.
    fn pet_watchdog(&mut self) {
        let core_live = match &self.core_liveness {
            Some(liveness) => liveness.verdict(Instant::now()) == Verdict::Live,
            None => true,
        };
        if core_live && self.core_hung.is_none() {
            self.notifier.watchdog();
        }
    }

    /// One line for systemd's STATUS: players online and the core's state.
    fn status_summary(&self) -> String {
        let players = self
            .core
            .as_ref()
            .and_then(|core| core.witness.as_ref())
            .map(Witness::players);
        let verdict = self
            .core_liveness
            .as_ref()
            .map(|liveness| liveness.verdict(Instant::now()));
        let core = match (&self.core, &self.candidate) {
            (Some(core), _) if self.core_hung.is_some() => {
                format!("core pid {} hung, being replaced", core.pid)
            }
            (Some(core), _) => match verdict {
                Some(Verdict::Silent(silent) | Verdict::Hung(silent)) => format!(
                    "core pid {} not live (no progress for {} s)",
                    core.pid,
                    silent.as_secs()
                ),
                _ if self.core_database_lost() => {
                    format!(
                        "core pid {} live, DATABASE LOST (no change is saved)",
                        core.pid
                    )
                }
                _ => format!("core pid {} live", core.pid),
            },
            (None, Some(_)) => "core starting".to_string(),
            (None, None) if self.core_restart_at.is_some() => "core restarting".to_string(),
            (None, None) if self.core_blocked.is_some() => {
                "core cannot start (see the log); waiting for a reload".to_string()
            }
            (None, None) => "no core".to_string(),
        };
        match players {
            Some(1) => format!("1 player online; {core}"),
            Some(n) => format!("{n} players online; {core}"),
            None => core,
        }
    }

    /// Makes `handle` the serving core and starts watching its progress; returns the one it
    /// replaces.
    fn install_core(&mut self, handle: Handle) -> Option<Handle> {
        self.core_liveness = handle.witness.as_ref().map(|witness| {
            Liveness::new(
                witness.progress(),
                Instant::now(),
                self.settings.hang_timeout,
            )
        });
        self.core_hung = None;
        self.core_blocked = None;
        if let Some(proxy) = &self.proxy {
            proxy.tell(&CoreNews::Running);
        }
        self.core.replace(handle)
    }

    /// Kills the serving core if it has made no progress for the hang timeout. It is then
    /// replaced like a crashed one when its exit arrives. Also keeps systemd's STATUS up to date (it is a no-op outside systemd).
    fn check_liveness(&mut self) {
        self.judge_core();
        self.update_systemd_status();
    }

    fn update_systemd_status(&mut self) {
        if self.notifier.is_listening() {
            let summary = self.status_summary();
            self.notifier.status(summary);
        }
    }

    fn judge_core(&mut self) {
        let (Some(core), Some(liveness)) = (&self.core, &mut self.core_liveness) else {
            return;
        };
        if self.core_hung.is_some() || self.shutdown.is_some() {
            return;
        }
        let Some(witness) = &core.witness else {
            return;
        };
        let now = Instant::now();
        liveness.observe(witness.progress(), now);
        // Only the line's id is read on every look; its text only for the log of a kill.
        let in_suspect = self
            .suspects
            .suspect()
            .is_some_and(|suspect| witness.line_in_hand() == Some(suspect));
        let timeout = if in_suspect {
            SUSPECT_HANG_TIMEOUT
        } else {
            self.settings.hang_timeout
        };
        if let Verdict::Hung(silent) = liveness.verdict_within(timeout, now) {
            let doing = match witness.handling() {
                Some(h) if in_suspect => {
                    format!(" while handling {h}, the line the last core died in")
                }
                Some(h) => format!(" while handling {h}"),
                None => String::new(),
            };
            error!(
                "the core (pid {}) has made no progress for {:.1} s{doing}; killing it",
                core.pid,
                silent.as_secs_f64()
            );
            core.kill();
            self.core_hung = Some(silent);
        }
    }

    /// What the serving core's death says about the line it was handling.
    fn blame_death(&mut self, core: &Handle) {
        let handling = core.witness.as_ref().and_then(Witness::handling);
        let blame = self.suspects.core_died(handling.as_ref());
        // A blamed line is one the witness recorded, so `handling` is there to describe it.
        let Some(h) = handling else {
            return;
        };
        match blame {
            Blame::None => {}
            Blame::Suspect(_) => warn!(
                "the core died handling {h}; it is run once more, and quarantined if it does \
                 this again"
            ),
            Blame::Quarantined(_) => {
                error!(
                    "the core died twice in a row handling {h}; that line is quarantined and \
                     will not be run again"
                );
                // The cause of the crash loop is gone: restart at once, not after a backoff.
                self.core_backoff = Backoff::standard();
            }
        }
    }

    fn on_core_not_ready(&mut self, id: ChildId) {
        let Some(Candidate {
            handle, purpose, ..
        }) = self.take_candidate(id)
        else {
            return;
        };
        let reason = format!(
            "the core (pid {}) did not print {READY_LINE} within {} s",
            handle.pid,
            self.timing.ready_within.as_secs()
        );
        handle.kill();
        self.stopping.push(Stopping {
            handle,
            reload: None,
        });
        self.core_start_failed(purpose, reason, false);
    }

    fn on_exit(&mut self, id: ChildId, exit: Exit) {
        if let Some(Candidate {
            handle,
            purpose,
            failure,
        }) = self.take_candidate(id)
        {
            let said_why = failure.is_some();
            let reason = match failure {
                Some(why) => format!("the new core (pid {}) could not start: {why}", handle.pid),
                None => format!(
                    "the core (pid {}) exited ({exit}) before printing {READY_LINE}",
                    handle.pid
                ),
            };
            self.core_start_failed(purpose, reason, said_why);
        } else if let Some(core) = self.core.take_if(|core| core.id == id) {
            self.core_liveness = None;
            self.update_systemd_status();
            let uptime = core.uptime();
            let what = match self.core_hung.take() {
                Some(silent) => format!(
                    "core killed after {:.1} s without progress (it had run {:.1} s)",
                    silent.as_secs_f64(),
                    uptime.as_secs_f64()
                ),
                None => format!("core exited ({exit}) after {:.1} s", uptime.as_secs_f64()),
            };
            if self.shutdown.is_none() {
                self.blame_death(&core);
            }
            if self.shutdown.is_some() {
                info!("{what}");
            } else if self.candidate.is_some() {
                self.core_restarts += 1;
                warn!("{what}; the new core that is starting takes over");
            } else {
                self.schedule_core_restart(what, uptime);
            }
        } else if let Some(upgrade) = self
            .proxy_upgrade
            .take_if(|upgrade| upgrade.candidate.id == id)
        {
            // It never served: nothing it could have told its keeper is kept.
            if let Some(task) = self.keepers.remove(&id) {
                task.abort();
            }
            let why = upgrade
                .failure
                .clone()
                .unwrap_or_else(|| format!("it exited ({exit}) before taking over"));
            let who_keeps = match &upgrade.predecessor_gone {
                None => "the running proxy keeps every player",
                Some(_) => {
                    "the old proxy had already left, so the keeper holds every player for the next proxy"
                }
            };
            let message = format!(
                "proxy upgrade failed: the new proxy (pid {}): {why}; {who_keeps}",
                upgrade.candidate.pid
            );
            answer_proxy_upgrade(&upgrade.waiters, Err(message));
            if let Some(lost) = upgrade.predecessor_gone {
                self.lose_proxy(lost);
            }
        } else if let Some(proxy) = self.proxy.take_if(|proxy| proxy.id == id) {
            let uptime = proxy.uptime();
            let lost = LostProxy {
                id,
                what: format!("proxy exited ({exit}) after {:.1} s", uptime.as_secs_f64()),
                uptime,
                recovered: self.recovered_proxy == Some(id),
            };
            match &mut self.proxy_upgrade {
                Some(upgrade) => {
                    info!(
                        "proxy (pid {}) exited ({exit}) while its successor takes over",
                        proxy.pid
                    );
                    upgrade.predecessor_gone = Some(lost);
                }
                None => self.lose_proxy(lost),
            }
        } else if let Some(index) = self.stopping.iter().position(|s| s.handle.id == id) {
            let Stopping { handle, reload } = self.stopping.swap_remove(index);
            self.keepers.remove(&id);
            if exit.is_success() || (handle.adopted && matches!(exit, Exit::Unknown(_))) {
                info!("{} (pid {}) stopped", handle.role, handle.pid);
                if handle.role == Role::Core {
                    self.suspects.core_stopped_cleanly();
                }
            } else {
                warn!("{} (pid {}) stopped ({exit})", handle.role, handle.pid);
            }
            if let Some(job) = reload {
                let ms = job.elapsed_ms();
                self.finish_reload(job, Ok(format!("reloaded in {ms} ms")));
            }
        } else {
            debug!("an unknown child (id {id}) exited ({exit})");
        }
    }

    fn on_request(&mut self, incoming: Incoming) {
        match incoming.request {
            Request::Status => {
                for line in self.status_lines() {
                    incoming.reply.line(line);
                }
            }
            Request::Reload => {
                info!("reload requested on the control socket");
                self.request_reload(Some(incoming.reply));
            }
            Request::UpgradeProxy => {
                info!("proxy upgrade requested on the control socket");
                self.request_proxy_upgrade(Some(incoming.reply));
            }
            Request::UpgradeSupervisor => {
                info!("supervisor upgrade requested on the control socket");
                self.request_reexec(incoming.reply);
            }
            Request::Shutdown => self.begin_shutdown(
                Some(incoming.reply),
                "shutdown requested on the control socket",
            ),
        }
    }

    fn on_stop_signal(&mut self, name: &str) {
        if self.shutdown.is_none() {
            self.begin_shutdown(None, &format!("{name} received"));
            return;
        }
        warn!("{name} received again: killing the children now");
        let children = self
            .stopping
            .iter()
            .map(|s| &s.handle)
            .chain(self.core.as_ref())
            .chain(self.proxy.as_ref())
            .chain(self.candidate.as_ref().map(|c| &c.handle))
            .chain(self.proxy_upgrade.as_ref().map(|u| &u.candidate));
        for handle in children {
            handle.kill();
        }
    }

    /// Starts a new proxy that takes every connection over from the running one.
    fn request_proxy_upgrade(&mut self, waiter: Option<Replier>) {
        let refuse = |waiter: Option<Replier>, why: &str| {
            warn!("proxy upgrade refused: {why}");
            if let Some(waiter) = waiter {
                waiter.line(format!("error: proxy upgrade refused: {why}"));
            }
        };
        if self.shutdown.is_some() {
            return refuse(waiter, "tether is shutting down");
        }
        if let Some(upgrade) = &mut self.proxy_upgrade {
            info!("a proxy upgrade is in progress; its outcome answers this request too");
            upgrade.waiters.extend(waiter);
            return;
        }
        let Some(old) = &self.proxy else {
            return refuse(
                waiter,
                "no proxy is running to take over from (a new one starts by itself)",
            );
        };
        let old_pid = old.pid;
        let mut spec = self.proxy_spec();
        spec.args.push(TAKE_OVER_FLAG.into());
        match self.spawn_proxy(spec, false) {
            Ok(candidate) => {
                info!(
                    "upgrading the proxy: new proxy (pid {}) takes over from pid {old_pid}",
                    candidate.pid
                );
                if let Some(reason) = &self.core_blocked {
                    candidate.tell(&CoreNews::CannotStart(reason.clone()));
                }
                self.proxy_upgrade = Some(ProxyUpgrade {
                    requested: Instant::now(),
                    candidate,
                    failure: None,
                    waiters: waiter.into_iter().collect(),
                    predecessor_gone: None,
                });
            }
            Err(err) => refuse(waiter, &error_chain(&err)),
        }
    }

    /// The new proxy says it has everything: it is the proxy now, and the old one, which
    /// let go of every connection, exits by itself.
    fn on_proxy_took_over(&mut self) {
        let Some(upgrade) = self.proxy_upgrade.take() else {
            return;
        };
        let ProxyUpgrade {
            requested,
            candidate,
            waiters,
            predecessor_gone,
            ..
        } = upgrade;
        let pid = candidate.pid;
        self.proxy_upgrades += 1;
        if let Some(gone) = predecessor_gone {
            // It left having handed everything over; what it told its keeper is superseded
            // by the set the new proxy names.
            info!("the old proxy has left; the new one took every connection over");
            if let Some(task) = self.keepers.remove(&gone.id) {
                task.abort();
            }
        }
        match self.proxy.replace(candidate) {
            Some(old) => {
                // It has nothing more to keep: the new proxy names every session again.
                if let Some(task) = self.keepers.remove(&old.id) {
                    task.abort();
                }
                // It has let go of everything, so even a SIGTERM (after the grace, a
                // SIGKILL) cannot reach a player.
                old.terminate(self.timing.stop_grace);
                self.stopping.push(Stopping {
                    handle: old,
                    reload: None,
                });
            }
            None => self.proxy_ever_started = true,
        }
        let ms = requested.elapsed().as_millis();
        answer_proxy_upgrade(
            &waiters,
            Ok(format!(
                "proxy upgraded in {ms} ms: pid {pid} took every connection over"
            )),
        );
    }

    fn reload_in_progress(&self) -> bool {
        matches!(
            self.candidate,
            Some(Candidate {
                purpose: Purpose::Reload(_),
                ..
            })
        ) || self.stopping.iter().any(|s| s.reload.is_some())
    }

    fn request_reload(&mut self, waiter: Option<Replier>) {
        if let CoreSite::Elsewhere(at) = &self.settings.core_site {
            let why = format!(
                "reload refused: another supervisor runs the game core (at {at}); reload it there"
            );
            warn!("{why}");
            if let Some(waiter) = waiter {
                waiter.line(format!("error: {why}"));
            }
            return;
        }
        if self.shutdown.is_some() {
            info!("not reloading: tether is shutting down");
            if let Some(waiter) = waiter {
                waiter.line("error: reload refused: tether is shutting down");
            }
            return;
        }
        let busy = self.reload_in_progress();
        let job = self.pending_reload.get_or_insert_with(|| ReloadJob {
            requested: Instant::now(),
            waiters: Vec::new(),
        });
        job.waiters.extend(waiter);
        if busy {
            info!("a reload is in progress; another one will follow it");
        }
    }

    /// Starts what is due: a queued reload once the previous one is over.
    fn advance(&mut self) {
        if self.shutdown.is_some() {
            self.progress_shutdown();
            return;
        }
        if self.pending_reload.is_none() || self.reload_in_progress() {
            return;
        }
        if self.core.is_some() && self.candidate.is_none() {
            if let Some(job) = self.pending_reload.take() {
                info!("reloading: starting a new core");
                self.notifier.reloading();
                self.start_core(Purpose::Reload(job));
            }
        } else if self.core.is_none()
            && self.candidate.is_none()
            && (self.core_restart_at.is_some() || self.core_blocked.is_some())
        {
            // The new binary (or the repaired world or database) may well be the fix for
            // whatever kept the core from running.
            info!("reload requested while the core is down: starting it now");
            self.core_restart_at = None;
            self.start_core(Purpose::Restart);
        }
        // Otherwise a core is starting; the reload waits for it.
    }

    fn finish_reload(&mut self, job: ReloadJob, result: Result<String, String>) {
        let line = match result {
            Ok(message) => {
                info!("{message}");
                format!("ok: {message}")
            }
            Err(message) => {
                warn!("{message}");
                format!("error: {message}")
            }
        };
        for waiter in &job.waiters {
            waiter.line(line.clone());
        }
        self.last_reload = Some((Instant::now(), line));
        if self.announced_ready && self.shutdown.is_none() {
            // Ends the RELOADING=1 of `advance`, whatever the outcome: the game is open.
            self.notifier.ready();
        }
    }

    fn begin_shutdown(&mut self, waiter: Option<Replier>, why: &str) {
        if let Some(waiter) = &waiter {
            waiter.line("ok: shutting down");
        }
        if let Some(state) = &mut self.shutdown {
            state.waiters.extend(waiter);
            return;
        }
        info!("{why}: stopping the proxy, then the core");
        self.notifier.stopping();
        self.shutdown = Some(ShuttingDown {
            started: Instant::now(),
            core_phase: false,
            waiters: waiter.into_iter().collect(),
        });
        self.core_restart_at = None;
        self.proxy_restart_at = None;
        if let Some(job) = self.pending_reload.take() {
            self.finish_reload(
                job,
                Err("reload cancelled: tether is shutting down".to_string()),
            );
        }
        if let Some(Candidate {
            handle, purpose, ..
        }) = self.candidate.take()
        {
            info!("stopping the core that was starting (pid {})", handle.pid);
            handle.terminate(self.timing.stop_grace);
            self.stopping.push(Stopping {
                handle,
                reload: None,
            });
            if let Purpose::Reload(job) = purpose {
                self.finish_reload(
                    job,
                    Err("reload cancelled: tether is shutting down".to_string()),
                );
            }
        }
        if let Some(upgrade) = self.proxy_upgrade.take() {
            info!(
                "stopping the new proxy that was taking over (pid {})",
                upgrade.candidate.pid
            );
            upgrade.candidate.terminate(self.timing.stop_grace);
            answer_proxy_upgrade(
                &upgrade.waiters,
                Err("proxy upgrade cancelled: tether is shutting down".to_string()),
            );
            self.stopping.push(Stopping {
                handle: upgrade.candidate,
                reload: None,
            });
        }
        if let Some(proxy) = self.proxy.take() {
            info!("stopping the proxy (pid {})", proxy.pid);
            proxy.terminate(self.timing.stop_grace);
            self.stopping.push(Stopping {
                handle: proxy,
                reload: None,
            });
        }
        self.progress_shutdown();
    }

    /// Players are told by the proxy, which needs the core until it has gone; so the core
    /// is only asked to stop once the proxy has exited.
    fn progress_shutdown(&mut self) {
        let Some(state) = &mut self.shutdown else {
            return;
        };
        if state.core_phase {
            return;
        }
        let proxy_alive =
            self.proxy.is_some() || self.stopping.iter().any(|s| s.handle.role == Role::Proxy);
        if proxy_alive {
            return;
        }
        state.core_phase = true;
        if let Some(core) = self.core.take() {
            info!("stopping the core (pid {})", core.pid);
            core.terminate(self.timing.stop_grace);
            self.stopping.push(Stopping {
                handle: core,
                reload: None,
            });
        }
    }

    fn is_finished(&self) -> bool {
        self.shutdown.as_ref().is_some_and(|state| state.core_phase)
            && self.core.is_none()
            && self.proxy.is_none()
            && self.candidate.is_none()
            && self.stopping.is_empty()
    }

    /// Tells whoever asked for the shutdown that it is complete.
    fn finish(self) -> Result<(), RunError> {
        // Everything has stopped: nothing for a later supervisor to adopt.
        adoption::remove(&self.settings.data);
        if let Some(state) = &self.shutdown {
            let ms = state.started.elapsed().as_millis();
            info!("stopped in {ms} ms");
            for waiter in &state.waiters {
                waiter.line(format!("ok: stopped in {ms} ms"));
            }
        }
        match self.fatal {
            Some(reason) => Err(RunError::Startup(reason)),
            None => Ok(()),
        }
    }

    /// `live`, or how long the serving core has been silent.
    fn core_health(&self) -> String {
        if let Some(silent) = self.core_hung {
            return format!(
                "NOT LIVE: killed after {:.1} s without progress, being replaced",
                silent.as_secs_f64()
            );
        }
        match self
            .core_liveness
            .as_ref()
            .map(|l| l.verdict(Instant::now()))
        {
            Some(Verdict::Silent(silent) | Verdict::Hung(silent)) => format!(
                "NOT LIVE: no progress for {:.1} s (replaced at {:.1} s)",
                silent.as_secs_f64(),
                self.settings.hang_timeout.as_secs_f64()
            ),
            Some(Verdict::Live) if self.core_database_lost() => {
                "live, but DATABASE LOST: its file was deleted or replaced, no change is saved"
                    .to_string()
            }
            Some(Verdict::Live) => "live".to_string(),
            None => "liveness unknown".to_string(),
        }
    }

    fn core_database_lost(&self) -> bool {
        self.core
            .as_ref()
            .and_then(|core| core.witness.as_ref())
            .is_some_and(Witness::database_lost)
    }

    fn status_lines(&self) -> Vec<String> {
        let state = if self.shutdown.is_some() {
            "shutting down"
        } else {
            "running"
        };
        let mut lines = vec![format!(
            "ok: tether supervisor {state}, pid {}, up {}, generation {}",
            std::process::id(),
            human(self.started.elapsed()),
            self.generation
        )];

        // Never waits: the keeper may be busy giving everything to a recovering proxy.
        let kept = match self.kept.try_lock() {
            Ok(kept) if kept.can_recover() => format!("keeper holds {}", kept.sessions()),
            Ok(_) => "keeper holds nothing".to_string(),
            Err(_) => "keeper busy".to_string(),
        };
        lines.push(match &self.proxy {
            Some(proxy) => format!(
                "proxy: pid {}, up {}, restarts {}, upgrades {}, recoveries {}, {kept}{}",
                proxy.pid,
                human(proxy.uptime()),
                self.proxy_restarts,
                self.proxy_upgrades,
                self.recoveries,
                adopted_note(proxy)
            ),
            None => {
                let why = match self.proxy_restart_at {
                    Some(at) => format!("restarting in {} ms", millis_until(at)),
                    None if self.shutdown.is_some() => "stopping".to_string(),
                    None if !self.proxy_ever_started => "waiting for the core".to_string(),
                    None => "stopped".to_string(),
                };
                format!(
                    "proxy: not running ({why}), restarts {}",
                    self.proxy_restarts
                )
            }
        });

        // No "pid" in the not-running form: scripts take "core: pid N" as the serving core.
        lines.push(match &self.core {
            Some(core) => format!(
                "core: pid {}{}, up {}, restarts {}, reloads {}, {}, players online {}",
                core.pid,
                adopted_note(core),
                human(core.uptime()),
                self.core_restarts,
                self.core_reloads,
                self.core_health(),
                core.witness
                    .as_ref()
                    .map_or_else(|| "unknown".to_string(), |w| w.players().to_string())
            ),
            None => {
                let why = match (&self.candidate, self.core_restart_at, &self.core_blocked) {
                    (Some(candidate), _, _) => {
                        format!("new core process {} starting", candidate.handle.pid)
                    }
                    (None, Some(at), _) => format!("restarting in {} ms", millis_until(at)),
                    (None, None, Some(reason)) => {
                        format!("CANNOT START: {reason}; `tether reload` tries again")
                    }
                    (None, None, None) => match &self.settings.core_site {
                        CoreSite::Elsewhere(at) => format!("another supervisor runs it, at {at}"),
                        CoreSite::Here { .. } => "stopped".to_string(),
                    },
                };
                format!(
                    "core: not running ({why}), restarts {}, reloads {}",
                    self.core_restarts, self.core_reloads
                )
            }
        });

        let mut reload = match &self.candidate {
            Some(Candidate {
                handle,
                purpose: Purpose::Reload(_),
                ..
            }) => format!("in progress (new core process {} starting)", handle.pid),
            _ => match self.stopping.iter().find(|s| s.reload.is_some()) {
                Some(old) => format!("in progress (old core process {} stopping)", old.handle.pid),
                None => "idle".to_string(),
            },
        };
        if self.pending_reload.is_some() {
            reload.push_str(", one more queued");
        }
        lines.push(format!("reload: {reload}"));
        lines.push(match &self.last_reload {
            Some((at, outcome)) => format!("last reload: {outcome} ({} ago)", human(at.elapsed())),
            None => "last reload: none".to_string(),
        });
        lines.push(format!("telnet: {}", self.settings.telnet));
        lines.push(format!("http: {}", self.settings.http));
        lines.push(format!("data: {}", self.settings.data.display()));
        lines.push(if self.settings.watch {
            format!("watch: on ({})", self.settings.core_bin.display())
        } else {
            "watch: off".to_string()
        });
        lines
    }
}

/// The supervisor's own upgrade: the same command line, the binary as it is on disk now.
#[derive(Debug)]
struct Reexec {
    program: std::path::PathBuf,
    args: Vec<OsString>,
    generation: u32,
}

/// Tells a re-executed image which generation it is.
const GENERATION_VAR: &str = "TETHER_GENERATION";

impl Reexec {
    fn new(generation: u32) -> Reexec {
        // Read at exec time: `current_exe` names the path we were started from, which is
        // where an upgrade puts the new binary (the old inode may be gone by now).
        let program = std::env::current_exe()
            .map(|path| {
                let text = path.to_string_lossy();
                match text.strip_suffix(" (deleted)") {
                    Some(original) => std::path::PathBuf::from(original),
                    None => path,
                }
            })
            .unwrap_or_else(|_| std::path::PathBuf::from("tether"));
        Reexec {
            program,
            args: std::env::args_os().skip(1).collect(),
            generation,
        }
    }

    fn generation() -> u32 {
        std::env::var(GENERATION_VAR)
            .ok()
            .and_then(|value| value.parse().ok())
            .unwrap_or(1)
    }

    /// Only returns if the exec failed.
    fn exec(self) -> std::io::Error {
        use std::os::unix::process::CommandExt;
        std::process::Command::new(&self.program)
            .args(&self.args)
            .env(GENERATION_VAR, self.generation.to_string())
            .exec()
    }
}

/// Said of a child an earlier supervisor started (until it is replaced by one of ours).
fn adopted_note(handle: &Handle) -> &'static str {
    if handle.adopted {
        " (adopted from an earlier supervisor)"
    } else {
        ""
    }
}

fn millis_until(at: Instant) -> u128 {
    at.saturating_duration_since(Instant::now()).as_millis()
}

/// `12.3 s`, `5m 07s`, `2h 05m 07s`, `3d 02h 05m`.
fn human(duration: Duration) -> String {
    let secs = duration.as_secs();
    let (days, hours, minutes, seconds) =
        (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if secs < 60 {
        format!("{:.1} s", duration.as_secs_f64())
    } else if secs < 3600 {
        format!("{minutes}m {seconds:02}s")
    } else if secs < 86400 {
        format!("{hours}h {minutes:02}m {seconds:02}s")
    } else {
        format!("{days}d {hours:02}h {minutes:02}m")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human(Duration::from_millis(12_345)), "12.3 s");
        assert_eq!(human(Duration::from_secs(307)), "5m 07s");
        assert_eq!(human(Duration::from_secs(2 * 3600 + 307)), "2h 05m 07s");
        assert_eq!(
            human(Duration::from_secs(3 * 86400 + 2 * 3600 + 307)),
            "3d 02h 05m"
        );
    }
}
