//! One process's share of a run: a task per session, the progress line, and the report.

use std::io::IsTerminal;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinSet;

use crate::bot::{Bot, Plan, Shared, Window};
use crate::mix::Kind;
use crate::names;
use crate::report::{Progress, Report};
use crate::telnet::{Accept, Telnet};

pub struct Worker {
    /// Session `global` plays on `targets[global % targets.len()]`.
    pub targets: Vec<SocketAddr>,
    pub target_text: String,
    /// Sessions of this process, with global indexes `first_index..first_index + sessions`.
    pub sessions: u64,
    pub first_index: u64,
    pub prefix: String,
    pub name_width: usize,
    /// Source addresses 127.0.0.1..=127.0.0.N, by global index; 0 leaves it to the kernel.
    pub source_addrs: u32,
    /// Logins per second started by this process.
    pub ramp: f64,
    pub idle: Duration,
    pub warmup: Duration,
    pub duration: Duration,
    pub connect_timeout: Duration,
    pub mix_text: String,
    /// The options taken as real clients take them (MCCP2, GMCP).
    pub accept: Accept,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ProgressOut {
    Off,
    Stderr,
    /// A child reports to its parent, as JSON lines on stdout.
    Json,
}

/// A message from a child process to its parent: one JSON object per line.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChildMessage {
    Progress(Progress),
    Result(Box<Report>),
}

/// 127.0.0.x for session `global`, round-robin over `count` addresses.
pub fn source_addr(global: u64, count: u32) -> Option<SocketAddr> {
    let last = 1 + global % u64::from(count.max(1));
    let last = u8::try_from(last).ok()?;
    (count > 0).then(|| SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)), 0))
}

async fn connect(worker: &Worker, global: u64) -> std::io::Result<TcpStream> {
    // Never empty: `check` resolved at least one.
    let target = worker.targets[(global % worker.targets.len() as u64) as usize];
    let socket = if target.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // Binding first picks the source address; the kernel still picks the port, from the
    // ephemeral range of that address alone, which is what lifts the ~28k ceiling.
    if let Some(source) = source_addr(global, worker.source_addrs) {
        socket.bind(source)?;
    }
    let stream = tokio::time::timeout(worker.connect_timeout, socket.connect(target))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
    // Commands are small and latency is what we measure: no Nagle delay.
    stream.set_nodelay(true)?;
    Ok(stream)
}

async fn session(shared: Arc<Shared>, worker: Arc<Worker>, local: u64, start_at: Instant) {
    tokio::time::sleep_until(start_at.into()).await;
    let global = worker.first_index + local;
    let stream = match connect(&worker, global).await {
        Ok(stream) => stream,
        Err(error) => {
            shared.counters.connect_failed.fetch_add(1, Relaxed);
            shared.counters.done.fetch_add(1, Relaxed);
            shared.fail(&format!("connect: {error}"));
            return;
        }
    };
    let mut window = shared.window.subscribe();
    let name = names::name(&worker.prefix, global, worker.name_width);
    let mut bot = Bot::connected(&shared, global, name, Instant::now());
    let mut telnet = Telnet::accepting(worker.accept);
    let (mut reader, mut writer) = stream.into_split();
    // Small on purpose: 20,000 sessions hold one each.
    let mut buffer = vec![0u8; 4096];
    let mut out: Vec<u8> = Vec::new();
    loop {
        if let Some(reply) = telnet.take_reply() {
            out.extend_from_slice(&reply);
        }
        out.append(&mut bot.out);
        let close = window.borrow_and_update().close;
        // A bot that never logged in leaves at once; one that did stays connected until
        // everyone is done, so that its leaving does not disturb the others' measurements.
        if bot.is_done() && (close || !bot.was_logged_in()) {
            break;
        }
        let wake = bot.next_wake();
        let timer = async move {
            match wake {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        // One task per session does both directions: reading never waits for a write (a
        // server blocked on its own output would otherwise deadlock with us), and read and
        // write are both cancel-safe.
        tokio::select! {
            read = reader.read(&mut buffer) => match read {
                Ok(0) | Err(_) => {
                    bot.on_closed();
                    break;
                }
                Ok(n) => {
                    let now = Instant::now();
                    if let Err(reason) = telnet.feed(&buffer[..n], |line| bot.on_line(line, now)) {
                        shared.fail(&reason);
                        bot.on_closed();
                        break;
                    }
                }
            },
            written = writer.write(&out), if !out.is_empty() => match written {
                Ok(n) => {
                    out.drain(..n);
                }
                Err(_) => {
                    bot.on_closed();
                    break;
                }
            },
            () = timer => bot.on_timer(Instant::now()),
            changed = window.changed() => {
                if changed.is_err() {
                    break;
                }
            }
        }
    }
    let counters = &shared.counters;
    counters
        .compressed
        .fetch_add(u64::from(telnet.streams_started > 0), Relaxed);
    counters
        .gmcp_messages
        .fetch_add(telnet.gmcp_messages, Relaxed);
}

fn phase(window: &Window, now: Instant) -> &'static str {
    if window.play_from.is_some_and(|from| now < from) {
        return "idle";
    }
    match (window.start, window.end) {
        (Some(start), _) if now < start => "warmup",
        (Some(_), Some(end)) if now < end => "measuring",
        (Some(_), _) => "draining",
        _ => "logging in",
    }
}

fn progress(shared: &Shared, worker: &Worker, t0: Instant) -> Progress {
    let c = &shared.counters;
    let last_second = std::mem::take(&mut *shared.live.lock().unwrap_or_else(|e| e.into_inner()));
    let now = Instant::now();
    Progress {
        elapsed_s: (now - t0).as_secs_f64(),
        phase: phase(&shared.window.borrow(), now).to_owned(),
        sessions: worker.sessions,
        connected: c.connected.load(Relaxed),
        logged_in: c.logged_in.load(Relaxed),
        failed: c.login_failed.load(Relaxed) + c.connect_failed.load(Relaxed),
        up: c.up.load(Relaxed),
        dropped: c.dropped.load(Relaxed),
        pending: c.pending.load(Relaxed),
        lost: c.lost.load(Relaxed),
        answered_total: c.answered.load(Relaxed),
        last_second,
    }
}

/// Prints the progress line: `\r`-updated on a terminal, one line per second otherwise.
pub struct ProgressPrinter {
    tty: bool,
    printed: bool,
}

impl ProgressPrinter {
    pub fn new() -> ProgressPrinter {
        ProgressPrinter {
            tty: std::io::stderr().is_terminal(),
            printed: false,
        }
    }

    pub fn show(&mut self, progress: &Progress) {
        if self.tty {
            eprint!("\r{}\x1b[K", progress.line());
        } else {
            eprintln!("{}", progress.line());
        }
        self.printed = true;
    }

    pub fn finish(&mut self) {
        if self.tty && self.printed {
            eprintln!();
        }
        self.printed = false;
    }
}

pub async fn run(worker: Worker, plan: Plan, output: ProgressOut) -> Report {
    let shared = Arc::new(Shared::new(plan));
    let worker = Arc::new(worker);
    let t0 = Instant::now();
    let mut tasks = JoinSet::new();
    // The ramp: argon2 makes logins expensive for the server, so they are spread out.
    let spacing = 1.0 / worker.ramp;
    for local in 0..worker.sessions {
        let start_at = t0 + Duration::from_secs_f64(spacing * local as f64);
        tasks.spawn(session(shared.clone(), worker.clone(), local, start_at));
    }

    let reporter = {
        let shared = shared.clone();
        let worker = worker.clone();
        tokio::spawn(async move {
            let mut printer = ProgressPrinter::new();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                let progress = progress(&shared, &worker, t0);
                match output {
                    ProgressOut::Off => {}
                    ProgressOut::Stderr => printer.show(&progress),
                    ProgressOut::Json => {
                        if let Ok(line) = serde_json::to_string(&ChildMessage::Progress(progress)) {
                            println!("{line}");
                        }
                    }
                }
                if shared.window.borrow().close {
                    printer.finish();
                    return;
                }
            }
        })
    };

    let mut ctrl_c = std::pin::pin!(tokio::signal::ctrl_c());
    let mut interrupted = false;
    let poll = Duration::from_millis(50);
    let counters = &shared.counters;
    let total = worker.sessions;

    // Logins first: the window opens once every session is in (or has given up).
    while counters.logged_in.load(Relaxed)
        + counters.login_failed.load(Relaxed)
        + counters.connect_failed.load(Relaxed)
        < total
    {
        tokio::select! {
            () = tokio::time::sleep(poll) => {}
            _ = &mut ctrl_c, if !interrupted => {
                interrupted = true;
                break;
            }
        }
    }
    let now = Instant::now();
    let (play_from, start, end) = if interrupted {
        (now, now, now)
    } else {
        let play_from = now + worker.idle;
        let start = play_from + worker.warmup;
        (play_from, start, start + worker.duration)
    };
    shared.window.send_modify(|w| {
        w.play_from = Some(play_from);
        w.start = Some(start);
        w.end = Some(end);
    });

    // Then until every bot has its answers (or gave up on them at the end of the drain).
    let give_up = end + shared.plan.drain + Duration::from_secs(2);
    while counters.done.load(Relaxed) < total && Instant::now() < give_up {
        tokio::select! {
            () = tokio::time::sleep(poll) => {}
            _ = &mut ctrl_c, if !interrupted => {
                interrupted = true;
                let now = Instant::now();
                shared.window.send_modify(|w| {
                    w.start = w.start.map(|s| s.min(now));
                    w.end = w.end.map(|e| e.min(now));
                });
            }
        }
    }
    let window = *shared.window.borrow();
    shared.window.send_modify(|w| w.close = true);
    let _ = reporter.await;
    // Sessions close their connections now; none should take long.
    let closing = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(5), closing)
        .await
        .is_err()
    {
        tasks.abort_all();
    }

    let window_s = match (window.start, window.end) {
        (Some(start), Some(end)) => end.saturating_duration_since(start).as_secs_f64(),
        _ => 0.0,
    };
    let measured = shared.measured.lock().unwrap_or_else(|e| e.into_inner());
    let mut report = Report {
        target: worker.target_text.clone(),
        sessions: worker.sessions,
        processes: 1,
        source_addrs: worker.source_addrs,
        rate_s: shared.plan.rate.as_secs_f64(),
        mix: worker.mix_text.clone(),
        window_s,
        connected: counters.connected.load(Relaxed),
        connect_failed: counters.connect_failed.load(Relaxed),
        login_failed: counters.login_failed.load(Relaxed),
        logged_in: counters.logged_in.load(Relaxed),
        dropped: counters.dropped.load(Relaxed),
        compressed: counters.compressed.load(Relaxed),
        gmcp_messages: counters.gmcp_messages.load(Relaxed),
        unexpected: measured.unexpected,
        kinds: Kind::ALL
            .iter()
            .map(|k| (k.name().to_owned(), measured.kinds[k.index()].clone()))
            .collect(),
        login: measured.login.clone(),
        failures: measured.failures.clone(),
        ..Report::default()
    };
    drop(measured);
    let all = report.all();
    if window_s > 0.0 {
        report.sent_per_s = all.sent as f64 / window_s;
        report.answered_per_s = all.answered as f64 / window_s;
    }
    report.summarize();
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_addresses_go_round_robin() {
        let addrs: Vec<_> = (0..5)
            .map(|g| source_addr(g, 3).map(|a| a.ip().to_string()))
            .collect();
        assert_eq!(
            addrs,
            [
                "127.0.0.1",
                "127.0.0.2",
                "127.0.0.3",
                "127.0.0.1",
                "127.0.0.2"
            ]
            .map(|s| Some(s.to_owned()))
        );
        assert_eq!(source_addr(7, 0), None);
        assert_eq!(
            source_addr(253, 254).unwrap().ip().to_string(),
            "127.0.0.254"
        );
    }
}
