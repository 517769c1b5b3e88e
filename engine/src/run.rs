use std::io::Write;
use std::os::fd::FromRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::db::Db;
use crate::game::Game;
use crate::world::{DEFAULT_WORLD, World};
use anyhow::Context;
use clap::Parser;
use tether_protocol::process;
use tether_protocol::witness::{LineId, Witness};
use tokio::signal::unix::{SignalKind, signal};

/// The tether game core: the world and its rules. Restart it at will; players stay connected
/// to the proxy.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Directory holding the database.
    #[arg(long, default_value = "data")]
    data: PathBuf,
    /// World file (TOML); without it the built-in world is used.
    #[arg(long)]
    world: Option<PathBuf>,
    /// Link socket to listen on, unless one is inherited (TETHER_LINK_FD).
    #[arg(long, default_value = "data/link.sock")]
    link: PathBuf,
    /// Also take proxies on other hosts, over TCP with the link's TLS, on this address
    /// (e.g. 0.0.0.0:4100). Needs the files `tether link-certs init` makes.
    #[arg(long, value_name = "ADDR")]
    link_listen: Option<String>,
    /// The link's TLS files for --link-listen [default: DATA/link-tls].
    #[arg(long, value_name = "DIR")]
    link_tls: Option<PathBuf>,
    /// Seconds a connection may take to log in before it is closed.
    #[arg(long, default_value_t = 300.0, value_name = "SECS")]
    login_timeout: f64,
    /// Seconds a connection that has not logged in may go without typing anything.
    #[arg(long, default_value_t = 120.0, value_name = "SECS")]
    login_idle_timeout: f64,
}

/// The game core process for a game of `rules`: parses its command line, loads the world and
/// the database (running the game's migrations it has not seen), and serves proxies until it
/// is told to stop. A game's `main` is this one call:
///
/// ```no_run
/// fn main() -> std::process::ExitCode {
///     let mut rules = tether_engine::Rules::new();
///     // rules.command(...), rules.on_event(...), ...
///     tether_engine::main(rules)
/// }
/// ```
pub fn main(rules: crate::Rules) -> std::process::ExitCode {
    let _log = tether_log::init();
    die_on_engine_panics();
    let args = Args::parse();
    match run(args, rules) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            let reason = format!("{error:#}");
            tracing::error!("{reason}");
            // The supervisor reads stdout: the reason reaches `tether reload` and `@reload`.
            let mut stdout = std::io::stdout();
            let _ =
                writeln!(stdout, "{}", process::failed_line(&reason)).and_then(|()| stdout.flush());
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: Args, rules: crate::Rules) -> anyhow::Result<()> {
    crate::fault::slow_start();
    let world = match &args.world {
        Some(path) => World::load(path)
            .with_context(|| format!("loading the world from {}", path.display()))?,
        None => World::from_toml_str(DEFAULT_WORLD).context("loading the built-in world")?,
    };
    let tightened = tether_protocol::private::dir(&args.data)
        .with_context(|| format!("creating the data directory {}", args.data.display()))?;
    if let Some(change) = tightened {
        tracing::warn!(
            path = %args.data.display(),
            "the data directory {change}"
        );
    }
    let db_path = Db::path_in(&args.data);
    let mut db = Db::open(&db_path).with_context(|| format!("opening {}", db_path.display()))?;
    // Before this core takes any input. A failing one stops this core, saying why, and the
    // core it was to replace goes on serving.
    db.run_game_migrations(&rules)
        .context("running the game's data migrations")?;
    if db.admin_count().unwrap_or(1) == 0 {
        tracing::warn!(
            "this game has no administrator yet; make one on this host with `tether admin \
             create NAME` (or `tether admin promote NAME` for an existing character)"
        );
    }
    let mut game = Game::new(world, db, rules).context("loading the game's data")?;
    let seconds = |value: f64, what: &str| {
        std::time::Duration::try_from_secs_f64(value)
            .ok()
            .filter(|d| !d.is_zero())
            .with_context(|| format!("{what} must be a positive number of seconds, not {value}"))
    };
    game.set_login_limits(crate::LoginLimits {
        total: seconds(args.login_timeout, "--login-timeout")?,
        idle: seconds(args.login_idle_timeout, "--login-idle-timeout")?,
    });
    let witness = Witness::inherited().context("taking the witness page")?;
    if let Some(witness) = &witness {
        game.set_witness(witness.clone());
    }
    game.set_quarantine(quarantined_lines()?);
    let control = std::env::var_os(process::CONTROL_VAR).map(PathBuf::from);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let local = tokio::task::LocalSet::new();
    let remote_tls = match &args.link_listen {
        Some(_) => {
            let dir = args
                .link_tls
                .clone()
                .unwrap_or_else(|| args.data.join(tether_protocol::link_tls::DIR_IN_DATA));
            let config = tether_protocol::link_tls::server_config(&dir).with_context(|| {
                format!(
                    "loading the link's TLS files from {} (made by `tether link-certs init`)",
                    dir.display()
                )
            })?;
            Some(config)
        }
        None => None,
    };
    let served = local.block_on(&runtime, async move {
        let listener = link_listener(&args.link)?;
        let remote = match (&args.link_listen, remote_tls) {
            (Some(addr), Some(tls)) => Some(crate::RemoteDoor {
                listener: remote_listener(addr)
                    .with_context(|| format!("listening for proxies on {addr}"))?,
                tls,
            }),
            _ => None,
        };
        let mut terminate = signal(SignalKind::terminate()).context("SIGTERM handler")?;
        let mut interrupt = signal(SignalKind::interrupt()).context("SIGINT handler")?;
        if let Some(witness) = witness {
            // The loop turning is progress even when nobody types (see `witness`).
            tokio::task::spawn_local(async move {
                let mut ticks = tokio::time::interval(std::time::Duration::from_millis(100));
                loop {
                    ticks.tick().await;
                    witness.progressed();
                    if crate::fault::engine_panic_due() {
                        panic!("injected fault: the engine panicked outside any command");
                    }
                }
            });
        }
        let mut stdout = std::io::stdout();
        writeln!(stdout, "{}", process::READY_LINE)
            .and_then(|()| stdout.flush())
            .context("writing READY")?;
        tracing::info!("ready");
        let roster = args.data.join("proxies");
        crate::serve(listener, remote, game, control, roster, async move {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = interrupt.recv() => {}
            }
        })
        .await;
        Ok(())
    });
    // `serve` has finished all the game's work. What may still run on the blocking pool is
    // an admin's request to the supervisor, which is answered only once this core is gone:
    // waiting for it would hold the exit until the supervisor's kill.
    runtime.shutdown_background();
    served
}

/// A panic inside a command is caught and survived (see `Game`). Any other panic is the
/// engine's own bug: tokio would end just the task it hit, leaving, say, a link that reads
/// nothing more and a core that still looks alive. Dying instead is a crash like any other:
/// the supervisor restarts the core, the proxy resubmits what was not acknowledged, and the
/// witness says which line (if any) was in hand.
fn die_on_engine_panics() {
    let log_it = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        log_it(info);
        if !crate::panic_is_isolated() {
            tether_log::flush(std::time::Duration::from_millis(200));
            std::process::abort();
        }
    }));
}

/// The supervisor owns the link socket and hands it to each core as an inherited descriptor,
/// so the socket never disappears while cores are swapped. Run alone, the core binds it.
fn link_listener(path: &Path) -> anyhow::Result<tokio::net::UnixListener> {
    let std_listener = match std::env::var(process::LINK_FD_VAR) {
        Ok(fd) => {
            let fd: i32 = fd
                .parse()
                .with_context(|| format!("{} is not a number", process::LINK_FD_VAR))?;
            // SAFETY: the supervisor passes this descriptor for us alone; nothing else in this
            // process owns it.
            unsafe { std::os::unix::net::UnixListener::from_raw_fd(fd) }
        }
        Err(_) => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let _ = std::fs::remove_file(path);
            // Created private (no window where another user could connect), then made sure of.
            let previous = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
            let bound = std::os::unix::net::UnixListener::bind(path);
            nix::sys::stat::umask(previous);
            let listener =
                bound.with_context(|| format!("binding the link socket {}", path.display()))?;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .context("making the link socket private")?;
            listener
        }
    };
    std_listener.set_nonblocking(true)?;
    Ok(tokio::net::UnixListener::from_std(std_listener)?)
}

/// The TCP listener for proxies on other hosts. Each core binds its own, with SO_REUSEPORT so
/// that the next core of a reload can listen while this one drains; a proxy that reaches this
/// one as it stops is declined and tries again at once.
fn remote_listener(addr: &str) -> anyhow::Result<tokio::net::TcpListener> {
    use std::net::ToSocketAddrs;
    let addr = addr
        .to_socket_addrs()?
        .next()
        .with_context(|| format!("{addr} names no address"))?;
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    Ok(socket.listen(128)?)
}

/// The lines the supervisor says must not run again (see `witness`).
fn quarantined_lines() -> anyhow::Result<Vec<LineId>> {
    let Ok(list) = std::env::var(process::QUARANTINE_VAR) else {
        return Ok(Vec::new());
    };
    list.split(',')
        .filter(|entry| !entry.is_empty())
        .map(|entry| entry.parse().map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<_>>()
        .with_context(|| format!("reading {}", process::QUARANTINE_VAR))
}
