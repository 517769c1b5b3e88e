//! `tether`, the supervisor: starts the proxy and the game core, restarts them when they
//! die, replaces the core on request without disconnecting players, and stops everything
//! in order. It runs in the foreground and logs to stderr, so systemd or runit can in turn
//! supervise it.
//!
//! Layout, one concept per module:
//!
//! - [`cli`]: the command line (`up`, `reload`, `status`, `stop` and the global options).
//! - [`config`]: settings, merged command line > config file > defaults.
//! - [`dev`]: under `cargo run`, building the proxy and the core first.
//! - [`sockets`]: the data directory's lock, link socket and control socket.
//! - [`child`]: starting one process (the fd-3 link and fd-4 witness hand-over, READY or
//!   FAILED) and the task that owns it.
//! - [`adoption`]: the record of running children a later supervisor adopts.
//! - [`pidfd`]: a handle on a process that is not (or no longer) our child.
//! - [`backoff`]: the crash-loop restart policy, pure.
//! - [`liveness`]: a hung core told from a busy one, and the poison-line quarantine, pure.
//! - [`notify`]: the systemd notify protocol (READY, RELOADING, STATUS, WATCHDOG).
//! - [`supervisor`]: the single task that owns the children and makes every decision.
//! - [`control`]: the control socket protocol, its server and its client.
//! - [`watch`]: reloading when the core binary is rebuilt.
//! - [`link_certs`]: `tether link-certs`, the certificates of proxies on other hosts.
//! - [`shutdown`]: a small "stop now" flag for tasks.
//!
//! This file holds the two entry points the binary calls: [`up`] and [`ask`].

mod admin;
mod adoption;
mod backoff;
mod child;
mod cli;
mod config;
mod control;
mod dev;
mod keeper;
mod link_certs;
mod liveness;
mod notify;
mod orders;
mod pidfd;
mod shutdown;
mod sockets;
mod supervisor;
mod watch;

pub use admin::run as admin;
pub use cli::{AdminAction, Cli, Command, LinkCertsAction};
pub use control::{ClientError, Request};
pub use link_certs::run as link_certs;

use std::io::Write;
use std::path::{Path, PathBuf};

use thiserror::Error;
use tracing::info;

use crate::child::Role;
use crate::cli::Options;
use crate::config::{ConfigError, Defaults, Settings};
use crate::dev::{BuildError, DevMode};
use crate::sockets::{Sockets, SocketsError};
use crate::supervisor::{RunError, Timing};

#[derive(Debug, Error)]
pub enum UpError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error(
        "the {role} executable {} does not exist; build it (cargo build --release -p tether-{role}) or pass --{role}-bin",
        path.display()
    )]
    MissingBinary { role: Role, path: PathBuf },
    #[error("the world file {} does not exist", .0.display())]
    MissingWorld(PathBuf),
    #[error("cannot use the data directory {}", path.display())]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot listen for {what} on {addr} (is another game running there?)")]
    AddressInUse {
        what: &'static str,
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "a TLS listener ({0}) needs a certificate and key: [tls] in the config file, or --tls-cert and --tls-key"
    )]
    TlsWithoutCertificate(String),
    #[error("cannot read the TLS key {}", path.display())]
    TlsKey {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the TLS key {} can be read by other users (mode {mode:o}); make it private (chmod 600) and start again",
        path.display()
    )]
    TlsKeyShared { path: PathBuf, mode: u32 },
    #[error("cannot use the link's certificates in {} ({how})", dir.display())]
    LinkTls {
        dir: PathBuf,
        how: &'static str,
        #[source]
        source: tether_protocol::link_tls::LinkTlsError,
    },
    #[error(transparent)]
    Sockets(#[from] SocketsError),
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
    #[error(transparent)]
    Run(#[from] RunError),
}

/// `tether up`: runs until told to stop. Returns an error if startup fails (after stopping
/// whatever had been started).
pub fn up(options: &Options) -> Result<(), UpError> {
    // As the proxy's keeper it holds a copy of every player's connection.
    if let Err(error) = tether_protocol::process::raise_open_file_limit() {
        tracing::warn!(%error, "cannot raise the open-file limit");
    }
    let dev = DevMode::detect();
    let mut settings = Settings::resolve(options, Defaults::beside_current_exe(dev.is_some())?)?;
    if let Some(dev) = &dev {
        info!("building tether-proxy and tether-core");
        dev.build()?;
    }
    for (role, path) in [
        (Role::Proxy, &mut settings.proxy_bin),
        (Role::Core, &mut settings.core_bin),
    ] {
        // A bare name is looked up in PATH when spawned; only paths can be checked here.
        if path.components().count() > 1 {
            if !path.exists() {
                return Err(UpError::MissingBinary {
                    role,
                    path: path.clone(),
                });
            }
            *path = absolute(path);
        }
    }
    settings.link_tls = absolute(&settings.link_tls);
    // Read here too: a file that is missing or readable by others is said once, clearly,
    // instead of by a child that fails to start over and over.
    let link_check = match &mut settings.core_site {
        config::CoreSite::Here { listen: Some(_) } => Some((
            tether_protocol::link_tls::server_config(&settings.link_tls).map(drop),
            "made on this host by `tether link-certs init`",
        )),
        config::CoreSite::Elsewhere(config::CoreAt::Tcp(_)) => Some((
            tether_protocol::link_tls::client_config(&settings.link_tls).map(drop),
            "made on the core's host by `tether link-certs proxy NAME` and copied here",
        )),
        config::CoreSite::Here { listen: None } => None,
        config::CoreSite::Elsewhere(config::CoreAt::Unix(socket)) => {
            *socket = absolute(socket);
            None
        }
    };
    if let Some((Err(source), how)) = link_check {
        return Err(UpError::LinkTls {
            dir: settings.link_tls.clone(),
            how,
            source,
        });
    }
    if let Some(world) = &mut settings.world {
        if !world.exists() {
            return Err(UpError::MissingWorld(world.clone()));
        }
        *world = absolute(world);
    }
    let tightened =
        tether_protocol::private::dir(&settings.data).map_err(|source| UpError::DataDir {
            path: settings.data.clone(),
            source,
        })?;
    if let Some(change) = tightened {
        tracing::warn!(
            path = %settings.data.display(),
            "the data directory {change}"
        );
    }
    // The children get absolute paths, and status shows them, whatever the cwd.
    settings.data = settings
        .data
        .canonicalize()
        .map_err(|source| UpError::DataDir {
            path: settings.data.clone(),
            source,
        })?;
    // The proxy binds it for real; checking here turns a busy port into one clear error
    // instead of a proxy crash loop. A proxy an earlier supervisor left running holds the
    // ports, and is adopted rather than competed with.
    let adopting = adoption::proxy_survives(&settings.data);
    if !adopting {
        check_bindable(&settings.telnet).map_err(|source| UpError::AddressInUse {
            what: "telnet",
            addr: settings.telnet.clone(),
            source,
        })?;
    }
    let tls_listeners = [
        ("telnet over TLS", &settings.telnets),
        ("HTTPS", &settings.https),
    ];
    if let Some((_, Some(addr))) = tls_listeners.iter().find(|(_, addr)| addr.is_some()) {
        let Some(tls) = &settings.tls else {
            return Err(UpError::TlsWithoutCertificate(addr.clone()));
        };
        // The proxy refuses such a key too; said here, before anything starts.
        match tether_protocol::private::shared(&tls.key) {
            Ok(None) => {}
            Ok(Some(mode)) => {
                return Err(UpError::TlsKeyShared {
                    path: tls.key.clone(),
                    mode,
                });
            }
            Err(source) => {
                return Err(UpError::TlsKey {
                    path: tls.key.clone(),
                    source,
                });
            }
        }
    }
    for (what, addr) in tls_listeners {
        if let (Some(addr), false) = (addr, adopting) {
            check_bindable(addr).map_err(|source| UpError::AddressInUse {
                what,
                addr: addr.clone(),
                source,
            })?;
        }
    }
    if settings.http != "off" && !adopting {
        check_bindable(&settings.http).map_err(|source| UpError::AddressInUse {
            what: "HTTP",
            addr: settings.http.clone(),
            source,
        })?;
    }
    let sockets = Sockets::open(
        &settings.data,
        &settings.link_socket(),
        &settings.control_socket(),
    )?;
    // Single-threaded: the supervisor's work is tiny.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(UpError::Runtime)?;
    runtime.block_on(supervisor::run(settings, sockets, Timing::default()))?;
    Ok(())
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

#[derive(Debug, Error)]
pub enum AskError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// `tether reload|status|stop`: prints the supervisor's reply lines to stdout as they come
/// and returns whether the outcome was `ok`.
pub fn ask(options: &Options, request: Request) -> Result<bool, AskError> {
    let path = config::client_control_socket(options)?;
    let stdout = std::io::stdout();
    let ok = control::request(&path, request, |line| {
        let mut out = stdout.lock();
        // A closed stdout (`tether status | head -1`) must not turn into a panic.
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    })?;
    Ok(ok)
}

/// What `tether status` adds from the proxy on this host (`GET /admin/summary` with the admin
/// token): the core as the proxy knows it, and players and sessions by transport. Nothing
/// when there is no token yet, the web listener is off or nothing answers there: the
/// supervisor's own lines stand alone then.
pub fn proxy_status(options: &Options) -> Vec<String> {
    let (Ok(data), Ok(Some(web))) = (
        config::client_data_dir(options),
        config::client_web_address(options),
    ) else {
        return Vec::new();
    };
    let Some(summary) = orders::summary(&web, &data) else {
        return Vec::new();
    };
    let by_transport = |field: &str| {
        let counts = summary[field].as_object().cloned().unwrap_or_default();
        let total: i64 = counts.values().filter_map(serde_json::Value::as_i64).sum();
        let each: Vec<String> = counts
            .iter()
            .map(|(transport, count)| format!("{transport} {count}"))
            .collect();
        format!("{total} ({})", each.join(", "))
    };
    vec![format!(
        "game: core {}; players {}; sessions {}",
        summary["core"].as_str().unwrap_or("unknown"),
        by_transport("players"),
        by_transport("sessions"),
    )]
}

/// Asks the supervisor and hands each reply line to `on_line`; returns whether the outcome
/// was `ok`.
pub fn ask_quietly(
    options: &Options,
    request: Request,
    on_line: impl FnMut(&str),
) -> Result<bool, AskError> {
    let path = config::client_control_socket(options)?;
    Ok(control::request(&path, request, on_line)?)
}

/// `err` and its sources, joined like anyhow's `{:#}`, for the places that keep errors as
/// text (replies, logs).
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Fails as the proxy's bind would if `addr` is taken, without listening on it: a player
/// connecting at that moment is refused (and a client retries) rather than accepted into a
/// backlog that is thrown away when the check ends.
fn check_bindable(addr: &str) -> std::io::Result<()> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrStorage, setsockopt};
    use std::net::ToSocketAddrs;
    use std::os::fd::AsRawFd;
    let addr = addr
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other(format!("{addr} names no address")))?;
    let family = if addr.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let socket = nix::sys::socket::socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
    // As the proxy's listener does (tokio and std set it): a port in TIME_WAIT is free.
    setsockopt(&socket, nix::sys::socket::sockopt::ReuseAddr, &true)?;
    nix::sys::socket::bind(socket.as_raw_fd(), &SockaddrStorage::from(addr))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_port_is_found_taken_and_a_free_one_free() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = taken.local_addr().expect("addr").to_string();
        let err = check_bindable(&addr).expect_err("the port is taken");
        assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
        drop(taken);
        check_bindable(&addr).expect("the port is free again");
        assert!(check_bindable("not an address").is_err());
    }
}
