//! Measures what players feel during a core reload or crash: the longest time any
//! continuously typing player waited for an answer, plus lines lost and sessions dropped.
//!
//! ```sh
//! cargo build --release --workspace
//! cargo run --release --example reload_gap -- --sessions 500 --runs 5 --mode reload
//! cargo run --release --example reload_gap -- --sessions 500 --runs 5 --mode kill
//! ```
//!
//! It starts a real tether (release binaries) in a temporary directory, logs in N players,
//! and has every one of them type `look tok<N>` every `--interval-ms` without waiting for
//! answers (open loop: a player does not stop typing because the game is slow). Each run
//! disrupts the core once (planned `tether reload`, or `kill -9` of the core), keeps typing for
//! a few seconds, and reports the longest wait of any line answered in that window. Kills are
//! spaced 11 s apart so that none of them counts as a crash loop (which backs off on purpose).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tether_tests::Tether;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

struct Args {
    sessions: usize,
    runs: usize,
    interval: Duration,
    kill: bool,
}

fn parse_args() -> Args {
    let mut args = Args {
        sessions: 1,
        runs: 5,
        interval: Duration::from_millis(100),
        kill: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_default();
        match flag.as_str() {
            "--sessions" => args.sessions = value.parse().expect("--sessions N"),
            "--runs" => args.runs = value.parse().expect("--runs N"),
            "--interval-ms" => {
                args.interval = Duration::from_millis(value.parse().expect("--interval-ms N"))
            }
            "--mode" => args.kill = value == "kill",
            other => panic!("unknown option {other}"),
        }
    }
    args
}

/// A name of letters only, as the game requires.
fn bot_name(i: usize) -> String {
    let mut name = String::from("Bot");
    let mut n = i;
    for _ in 0..4 {
        name.push((b'a' + (n % 26) as u8) as char);
        n /= 26;
    }
    name
}

#[derive(Default)]
struct Record {
    /// (sent, answered) per answered line.
    answered: Vec<(Instant, Instant)>,
    /// Answers that did not match the oldest outstanding line (lost, duplicated, reordered).
    out_of_order: usize,
    dropped_sessions: usize,
}

async fn player(
    index: usize,
    addr: std::net::SocketAddr,
    interval: Duration,
    record: Arc<Mutex<Record>>,
    outstanding_total: Arc<Mutex<usize>>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let stream = TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let (reader, mut writer) = stream.into_split();
    let mut lines = BufReader::new(reader).lines();
    let name = bot_name(index);
    writer
        .write_all(format!("create {name} botpass1\r\n").as_bytes())
        .await
        .expect("create");
    while let Ok(Some(line)) = lines.next_line().await {
        if line.contains("has been created") || line.contains("already taken") {
            break;
        }
    }
    let outstanding: Arc<Mutex<VecDeque<(u64, Instant)>>> = Arc::default();
    let typist = {
        let outstanding = outstanding.clone();
        let outstanding_total = outstanding_total.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            // Spread the players over the interval.
            tokio::time::sleep(interval.mul_f64((index % 97) as f64 / 97.0)).await;
            let mut ticks = tokio::time::interval(interval);
            let mut token = 0u64;
            loop {
                let stopped = tokio::select! {
                    _ = ticks.tick() => false,
                    _ = stop.changed() => true,
                };
                if stopped {
                    // Dropping the writer would half-close the connection, which a telnet
                    // server rightly takes as the player leaving: keep it until aborted.
                    std::future::pending::<()>().await;
                }
                token += 1;
                outstanding
                    .lock()
                    .unwrap()
                    .push_back((token, Instant::now()));
                *outstanding_total.lock().unwrap() += 1;
                if writer
                    .write_all(format!("look tok{token}\r\n").as_bytes())
                    .await
                    .is_err()
                {
                    return;
                }
            }
        })
    };
    loop {
        match lines.next_line().await {
            Ok(Some(line)) => {
                let Some(rest) = line.split("\"tok").nth(1) else {
                    continue;
                };
                let token: u64 = rest.trim_end_matches("\" here.").parse().unwrap_or(0);
                let now = Instant::now();
                let front = outstanding.lock().unwrap().pop_front();
                *outstanding_total.lock().unwrap() -= 1;
                let mut record = record.lock().unwrap();
                match front {
                    Some((expected, sent)) if expected == token => {
                        record.answered.push((sent, now))
                    }
                    _ => record.out_of_order += 1,
                }
            }
            _ => {
                record.lock().unwrap().dropped_sessions += 1;
                break;
            }
        }
    }
    typist.abort();
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let args = parse_args();
    let tether = Tether::start();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let record = Arc::new(Mutex::new(Record::default()));
    let outstanding = Arc::new(Mutex::new(0usize));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);

    eprintln!("logging in {} players...", args.sessions);
    let login_start = Instant::now();
    let mut players = Vec::new();
    for i in 0..args.sessions {
        players.push(runtime.spawn(player(
            i,
            tether.telnet,
            args.interval,
            record.clone(),
            outstanding.clone(),
            stop_rx.clone(),
        )));
    }
    // Logged in and typing: every player has had a line answered.
    let mut probe = tether.connect();
    probe.create("Observer", "observer1");
    loop {
        probe.send("who");
        let count = probe.expect("online.");
        let online: usize = count
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        if online > args.sessions {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("all logged in after {:?}", login_start.elapsed());
    std::thread::sleep(Duration::from_secs(2));

    let mut longest = Vec::new();
    for run in 1..=args.runs {
        let window_start = Instant::now();
        std::thread::sleep(Duration::from_millis(500));
        let disrupted = Instant::now();
        if args.kill {
            let pid = tether.core_pid();
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            )
            .expect("kill -9");
            tether.wait_for_new_core(pid);
        } else {
            tether.reload();
        }
        let recovered = disrupted.elapsed();
        // A core that dies within 10 s of starting counts towards a crash loop and is restarted
        // with a backoff: space the kills out so each one measures a first crash.
        let settle = if args.kill {
            Duration::from_secs(11)
        } else {
            Duration::from_secs(3)
        };
        std::thread::sleep(settle.saturating_sub(disrupted.elapsed()));
        let window_end = Instant::now();
        let record = record.lock().unwrap();
        let mut waits: Vec<Duration> = record
            .answered
            .iter()
            .filter(|(_, answered)| *answered >= window_start && *answered <= window_end)
            .map(|(sent, answered)| answered.duration_since(*sent))
            .collect();
        waits.sort();
        let max = waits.last().copied().unwrap_or_default();
        println!(
            "run {run}: {} {:>5} lines answered in window, p50 {:>8.2?}, p99 {:>8.2?}, longest wait {:>8.2?} (control command took {:.0?})",
            if args.kill { "kill -9" } else { "reload " },
            waits.len(),
            percentile(&waits, 0.5),
            percentile(&waits, 0.99),
            max,
            recovered
        );
        longest.push(max);
    }

    stop_tx.send_replace(true);
    let drain_start = Instant::now();
    while *outstanding.lock().unwrap() > 0 && drain_start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let record = record.lock().unwrap();
    longest.sort();
    println!(
        "{} sessions, {}: median of {} runs' longest wait: {:.2?}; lines answered {}, unanswered {}, out of order {}, sessions dropped {}",
        args.sessions,
        if args.kill {
            "kill -9"
        } else {
            "planned reload"
        },
        args.runs,
        longest[longest.len() / 2],
        record.answered.len(),
        *outstanding.lock().unwrap(),
        record.out_of_order,
        record.dropped_sessions
    );
    drop(players);
}
