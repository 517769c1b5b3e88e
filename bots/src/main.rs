//! `tether-bots`: a load generator for telnet MUD servers. See `bots/README.md`.
//!
//! It opens N telnet sessions, logs each into its own character, has them type a scripted mix
//! of commands at a fixed rate, and measures every command's round trip by a token its answer
//! echoes. It uses only the telnet wire and the `create`, `connect` and `say` commands, so the
//! same run can target another MUD server.

mod bot;
mod hist;
mod limits;
mod mix;
mod names;
mod report;
mod run;
mod telnet;
mod token;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use tokio::io::AsyncBufReadExt;

use crate::bot::{LoginStep, Plan};
use crate::hist::Hist;
use crate::mix::Mix;
use crate::report::{Progress, Report};
use crate::run::{ChildMessage, ProgressOut, ProgressPrinter, Worker};
use crate::telnet::Accept;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum LoginMode {
    /// `create` a new character (or `create` then `connect` where creating does not log in).
    Create,
    /// `connect` to an existing character.
    Connect,
    /// `connect`, and `create` if that is refused.
    Auto,
}

#[derive(Parser, Debug, Clone)]
#[command(
    name = "tether-bots",
    version,
    about = "Opens N telnet sessions that play a scripted mix and measures every command's round trip."
)]
struct Cli {
    /// The server's telnet address, or several separated by commas: sessions take them in
    /// turn (one proxy each, for more players than one proxy's open files allow).
    #[arg(long, default_value = "127.0.0.1:4000")]
    target: String,
    /// Sessions (players) in all.
    #[arg(long, default_value_t = 100)]
    sessions: u64,
    /// Each session sends one command every SECONDS (open loop; first one at a random point
    /// of the first period).
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0)]
    rate: f64,
    /// Length of the measuring window.
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0)]
    duration: f64,
    /// Silent time after the last login: sessions stay connected and type nothing (to measure
    /// what idle sessions cost the server); the warmup follows.
    #[arg(long, value_name = "SECONDS", default_value_t = 0.0)]
    idle: f64,
    /// Playing time before the measuring window.
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0)]
    warmup: f64,
    /// How long after the window answers are still awaited before they count as lost.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    drain: f64,
    /// Weights of the command kinds: say, look, move, who. `who`'s answer grows with the
    /// number of players: keep it rare.
    #[arg(long, default_value = "say=50,look=30,move=10,who=10")]
    mix: String,
    /// The two directions a moving bot alternates between, so that it walks back.
    #[arg(long, value_name = "THERE,BACK", default_value = "north,south")]
    moves: String,
    /// Name prefix, letters only; the session index follows as letters (Botaaaa, Botaaab...).
    #[arg(long, default_value = "Bot")]
    prefix: String,
    #[arg(long, default_value = "botpass1")]
    password: String,
    #[arg(long, value_enum, default_value_t = LoginMode::Auto)]
    login: LoginMode,
    /// Logins started per second, in all processes together (password hashing is slow).
    #[arg(long, value_name = "PER_SECOND", default_value_t = 50.0)]
    ramp: f64,
    /// Give up on a session whose login is not done after this long.
    #[arg(long, value_name = "SECONDS", default_value_t = 120.0)]
    login_timeout: f64,
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    connect_timeout: f64,
    /// Bind sessions to source addresses 127.0.0.1..=127.0.0.N, round-robin (each address has
    /// its own ~28k ephemeral ports). Default: one per 20,000 sessions; 0: do not bind.
    #[arg(long, value_name = "N")]
    source_addrs: Option<u32>,
    /// Split the sessions over P child processes (one process may hold ~20,000 sockets).
    #[arg(long, value_name = "P", default_value_t = 1)]
    processes: u64,
    /// Accept MCCP2 compression and inflate it, as Mudlet, TinTin++ and most clients do.
    #[arg(long)]
    mccp2: bool,
    /// Accept GMCP and ask for what Mudlet asks for (`Core.Hello`, `Core.Supports.Set` with
    /// Char, Room, Comm.Channel and more), as Mudlet and most graphical clients do.
    #[arg(long)]
    gmcp: bool,
    /// Print the final result as one JSON line instead of a table.
    #[arg(long)]
    json: bool,
    /// No progress line on stderr.
    #[arg(long)]
    no_progress: bool,

    // For child processes only: which slice of the run they are.
    #[arg(long, hide = true)]
    child_index: Option<u64>,
    #[arg(long, hide = true, default_value_t = 0)]
    first_index: u64,
    #[arg(long, hide = true)]
    total_sessions: Option<u64>,
    #[arg(long, hide = true)]
    run_id: Option<u32>,
}

fn seconds(value: f64, what: &str) -> Result<Duration> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| anyhow::anyhow!("{what}: {value} is not a duration"))
}

/// The kernel's ephemeral port range size: the most connections one source address can
/// have to one server address.
fn ephemeral_ports() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut parts = text.split_whitespace().map(|p| p.parse::<u64>().ok());
    let (low, high) = (parts.next()??, parts.next()??);
    Some(high.checked_sub(low)? + 1)
}

/// Sockets a process needs besides its sessions: stdio, the runtime, pipes.
const SPARE_FILES: u64 = 64;
/// Sessions per source address when `--source-addrs` is not given.
const AUTO_PER_ADDR: u64 = 20_000;

struct Checked {
    targets: Vec<SocketAddr>,
    total: u64,
    source_addrs: u32,
    name_width: usize,
    plan: Plan,
}

async fn check(cli: &Cli) -> Result<Checked> {
    let total = cli.total_sessions.unwrap_or(cli.sessions);
    if cli.sessions == 0 {
        bail!("--sessions must be at least 1");
    }
    let mut targets = Vec::new();
    for text in cli.target.split(',').map(str::trim) {
        targets.push(
            tokio::net::lookup_host(text)
                .await
                .with_context(|| format!("--target {text}"))?
                .next()
                .with_context(|| format!("--target {text} resolves to nothing"))?,
        );
    }
    let loopback = targets
        .iter()
        .all(|target| target.ip().is_loopback() && target.is_ipv4());
    let source_addrs = match cli.source_addrs {
        None if loopback => total.div_ceil(AUTO_PER_ADDR).clamp(1, 254) as u32,
        None => 0,
        Some(0) => 0,
        Some(n) if !loopback => bail!(
            "--source-addrs {n} binds 127.0.0.x, which reaches only an IPv4 loopback target; \
             use --source-addrs 0 (and several machines) for {}",
            cli.target
        ),
        Some(n) if n > 254 => bail!("--source-addrs: at most 254 (127.0.0.1..=127.0.0.254)"),
        Some(n) => n,
    };
    if let Some(ports) = ephemeral_ports() {
        let per_addr = total.div_ceil(u64::from(source_addrs.max(1)));
        if per_addr > ports {
            bail!(
                "{per_addr} sessions per source address, but the kernel has only {ports} \
                 ephemeral ports (ip_local_port_range): use --source-addrs {}",
                total.div_ceil(ports)
            );
        }
    }
    let name_width = names::check_prefix(&cli.prefix, total)?;
    let rate = seconds(cli.rate, "--rate")?;
    if rate.is_zero() {
        bail!("--rate must be above 0");
    }
    if !(cli.ramp > 0.0 && cli.ramp.is_finite()) {
        bail!("--ramp must be above 0");
    }
    let mix = Mix::parse(&cli.mix)?;
    let moves = cli
        .moves
        .split_once(',')
        .map(|(a, b)| (a.trim().to_owned(), b.trim().to_owned()))
        .filter(|(a, b)| !a.is_empty() && !b.is_empty())
        .context("--moves must be two directions, as in north,south")?;
    if cli.password.is_empty() || cli.password.contains(['\r', '\n']) {
        bail!("--password must be one non-empty line");
    }
    let plan = Plan {
        run_id: cli.run_id.unwrap_or_else(new_run_id),
        password: cli.password.clone(),
        login_steps: match cli.login {
            LoginMode::Create => vec![LoginStep::Create],
            LoginMode::Connect => vec![LoginStep::Connect],
            LoginMode::Auto => vec![LoginStep::Connect, LoginStep::Create],
        },
        login_timeout: seconds(cli.login_timeout, "--login-timeout")?,
        rate,
        mix,
        moves,
        drain: seconds(cli.drain, "--drain")?,
        wait_to_play: cli.idle > 0.0,
    };
    seconds(cli.duration, "--duration")?;
    seconds(cli.idle, "--idle")?;
    seconds(cli.warmup, "--warmup")?;
    seconds(cli.connect_timeout, "--connect-timeout")?;
    Ok(Checked {
        targets,
        total,
        source_addrs,
        name_width,
        plan,
    })
}

/// Tells this run's tokens from another run's against the same server.
fn new_run_id() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() ^ d.as_secs() as u32)
        .unwrap_or(0);
    (nanos ^ std::process::id().rotate_left(16)) % 1_000_000
}

/// This process plays sessions itself (alone, or as one child of a parent).
async fn worker(cli: &Cli, checked: Checked, files: u64) -> Result<Report> {
    if cli.sessions + SPARE_FILES > files {
        bail!(
            "{} sessions need about {} open files, this process may have {files}: \
             use --processes {}",
            cli.sessions,
            cli.sessions + SPARE_FILES,
            checked
                .total
                .div_ceil(files.saturating_sub(SPARE_FILES).max(1))
        );
    }
    let worker = Worker {
        targets: checked.targets,
        target_text: cli.target.clone(),
        sessions: cli.sessions,
        first_index: cli.first_index,
        prefix: cli.prefix.clone(),
        name_width: checked.name_width,
        source_addrs: checked.source_addrs,
        ramp: cli.ramp,
        idle: seconds(cli.idle, "--idle")?,
        warmup: seconds(cli.warmup, "--warmup")?,
        duration: seconds(cli.duration, "--duration")?,
        connect_timeout: seconds(cli.connect_timeout, "--connect-timeout")?,
        mix_text: checked.plan.mix.describe(),
        accept: Accept {
            mccp2: cli.mccp2,
            gmcp: cli.gmcp,
        },
    };
    let output = if cli.child_index.is_some() {
        ProgressOut::Json
    } else if cli.no_progress {
        ProgressOut::Off
    } else {
        ProgressOut::Stderr
    };
    Ok(run::run(worker, checked.plan, output).await)
}

/// The arguments of child `index`, which plays `sessions` sessions from `first`.
fn child_args(cli: &Cli, index: u64, sessions: u64, first: u64, run_id: u32) -> Vec<String> {
    let processes = cli.processes as f64;
    let mut args: Vec<String> = [
        ("--target", cli.target.clone()),
        ("--sessions", sessions.to_string()),
        ("--rate", cli.rate.to_string()),
        ("--duration", cli.duration.to_string()),
        ("--idle", cli.idle.to_string()),
        ("--warmup", cli.warmup.to_string()),
        ("--drain", cli.drain.to_string()),
        ("--mix", cli.mix.clone()),
        ("--moves", cli.moves.clone()),
        ("--prefix", cli.prefix.clone()),
        ("--password", cli.password.clone()),
        (
            "--login",
            match cli.login {
                LoginMode::Create => "create",
                LoginMode::Connect => "connect",
                LoginMode::Auto => "auto",
            }
            .to_owned(),
        ),
        // Together the children start `--ramp` logins per second.
        ("--ramp", (cli.ramp / processes).to_string()),
        ("--login-timeout", cli.login_timeout.to_string()),
        ("--connect-timeout", cli.connect_timeout.to_string()),
        ("--child-index", index.to_string()),
        ("--first-index", first.to_string()),
        ("--total-sessions", cli.sessions.to_string()),
        ("--run-id", run_id.to_string()),
    ]
    .into_iter()
    .flat_map(|(flag, value)| [flag.to_owned(), value])
    .collect();
    if let Some(addrs) = cli.source_addrs {
        args.extend(["--source-addrs".to_owned(), addrs.to_string()]);
    }
    if cli.gmcp {
        args.push("--gmcp".to_owned());
    }
    if cli.mccp2 {
        args.push("--mccp2".to_owned());
    }
    args
}

enum Event {
    Message(u64, ChildMessage),
    Ended(u64),
}

/// Spawns the children, shows their combined progress, adds up their results.
async fn parent(cli: &Cli, checked: Checked, files: u64) -> Result<Report> {
    let processes = cli.processes.min(cli.sessions);
    // The children check this too, but one bad child would only show up as a missing result.
    let per_child = cli.sessions.div_ceil(processes);
    if per_child + SPARE_FILES > files {
        bail!(
            "{per_child} sessions per process need about {} open files, a process may have \
             {files}: use --processes {}",
            per_child + SPARE_FILES,
            cli.sessions
                .div_ceil(files.saturating_sub(SPARE_FILES).max(1))
        );
    }
    let cli = Cli {
        processes,
        ..cli.clone()
    };
    let exe = std::env::current_exe().context("finding this program to run its children")?;
    let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let mut children = Vec::new();
    let mut first = 0;
    for index in 0..processes {
        let sessions = cli.sessions / processes + u64::from(index < cli.sessions % processes);
        let mut child = tokio::process::Command::new(&exe)
            .args(child_args(
                &cli,
                index,
                sessions,
                first,
                checked.plan.run_id,
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting child {index}"))?;
        first += sessions;
        let stdout = child.stdout.take().context("child stdout")?;
        let events_tx = events_tx.clone();
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                // Anything else on a child's stdout is not ours to interpret.
                if let Ok(message) = serde_json::from_str::<ChildMessage>(&line) {
                    let _ = events_tx.send(Event::Message(index, message));
                }
            }
            let _ = events_tx.send(Event::Ended(index));
        });
        children.push(child);
    }
    drop(events_tx);

    let mut latest: BTreeMap<u64, Progress> = BTreeMap::new();
    let mut this_second = Hist::default();
    let mut results: BTreeMap<u64, Report> = BTreeMap::new();
    let mut ended = 0;
    let mut printer = ProgressPrinter::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    // Ctrl-C reaches the children too (same process group); they end their windows and
    // report. The parent only has to keep waiting for them.
    let mut ctrl_c = std::pin::pin!(tokio::signal::ctrl_c());
    let mut interrupted = false;
    while ended < processes {
        tokio::select! {
            event = events.recv() => match event {
                Some(Event::Message(index, ChildMessage::Progress(mut progress))) => {
                    // Every child second counts once, in whichever tick of ours it arrives.
                    this_second.merge(&progress.last_second);
                    progress.last_second = Hist::default();
                    latest.insert(index, progress);
                }
                Some(Event::Message(index, ChildMessage::Result(report))) => {
                    results.insert(index, *report);
                }
                Some(Event::Ended(index)) => {
                    ended += 1;
                    if !results.contains_key(&index) {
                        printer.finish();
                        eprintln!("tether-bots: child {index} ended without a result");
                    }
                }
                None => break,
            },
            _ = tick.tick() => {
                if !cli.no_progress && !latest.is_empty() {
                    let mut all = Progress::default();
                    for progress in latest.values() {
                        all.merge(progress);
                    }
                    all.last_second = std::mem::take(&mut this_second);
                    printer.show(&all);
                }
            }
            _ = &mut ctrl_c, if !interrupted => interrupted = true,
        }
    }
    printer.finish();
    for (index, child) in children.iter_mut().enumerate() {
        let status = child.wait().await?;
        if !status.success() {
            eprintln!("tether-bots: child {index} exited with {status}");
        }
    }
    let mut total = Report {
        target: cli.target.clone(),
        source_addrs: checked.source_addrs,
        rate_s: checked.plan.rate.as_secs_f64(),
        mix: checked.plan.mix.describe(),
        ..Report::default()
    };
    for report in results.values() {
        total.merge(report);
    }
    if results.len() as u64 != processes {
        bail!(
            "only {} of {processes} child processes reported a result",
            results.len()
        );
    }
    total.summarize();
    Ok(total)
}

fn main() -> std::process::ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("tether-bots: starting the runtime: {error}");
            return std::process::ExitCode::from(2);
        }
    };
    match runtime.block_on(run_cli()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // A usage or setup problem: the message, not a backtrace.
            eprintln!("tether-bots: {error:#}");
            std::process::ExitCode::from(2)
        }
    }
}

async fn run_cli() -> Result<()> {
    let cli = Cli::parse();
    // Every session is a socket: take all the open files this process may have.
    let files = limits::raise_nofile()?;
    let checked = check(&cli).await?;
    let is_child = cli.child_index.is_some();
    let report = if cli.processes > 1 && !is_child {
        parent(&cli, checked, files).await?
    } else {
        worker(&cli, checked, files).await?
    };
    if is_child {
        println!(
            "{}",
            serde_json::to_string(&ChildMessage::Result(Box::new(report)))?
        );
    } else if cli.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", report.human());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_get_disjoint_slices_and_the_same_run() {
        let cli = Cli::parse_from([
            "tether-bots",
            "--sessions",
            "10",
            "--processes",
            "3",
            "--ramp",
            "30",
            "--source-addrs",
            "4",
        ]);
        let args = child_args(&cli, 1, 3, 4, 77);
        let child = Cli::parse_from(std::iter::once("tether-bots".to_owned()).chain(args));
        assert_eq!(child.sessions, 3);
        assert_eq!(child.first_index, 4);
        assert_eq!(child.total_sessions, Some(10));
        assert_eq!(child.run_id, Some(77));
        assert_eq!(child.child_index, Some(1));
        assert_eq!(child.ramp, 10.0);
        assert_eq!(child.source_addrs, Some(4));
        assert_eq!(child.mix, cli.mix);
        assert_eq!(child.login, LoginMode::Auto);
    }
}
