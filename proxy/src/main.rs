use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use tether_proxy::CoreAddress;
use tether_proxy::{DEFAULT_MAX_QUEUED_LINES, LinkConfig, Proxy};
use tokio::signal::unix::{SignalKind, signal};

/// The tether proxy: owns player connections and keeps them across game core restarts.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Address to accept telnet players on.
    #[arg(long, default_value = "127.0.0.1:4000")]
    telnet: SocketAddr,
    /// Address for the web client and WebSocket players (`off` to disable).
    #[arg(long, default_value = "127.0.0.1:4080")]
    http: String,
    /// Address to accept telnet players over TLS on (needs --tls-cert and --tls-key).
    #[arg(long, requires_all = ["tls_cert", "tls_key"])]
    telnets: Option<SocketAddr>,
    /// Address for the web client and WebSocket players over TLS (HTTPS and WSS; needs
    /// --tls-cert and --tls-key).
    #[arg(long, requires_all = ["tls_cert", "tls_key"])]
    https: Option<SocketAddr>,
    /// The TLS certificate chain (PEM), read again when it changes on disk.
    #[arg(long, value_name = "PEM")]
    tls_cert: Option<PathBuf>,
    /// The TLS certificate's private key (PEM); other users must not be able to read it.
    #[arg(long, value_name = "PEM")]
    tls_key: Option<PathBuf>,
    /// The game core's link socket.
    #[arg(long, default_value = "data/link.sock")]
    link: PathBuf,
    /// A game core on another host (`host:port`, its --link-listen) instead of --link: the
    /// link runs over TCP with TLS, and each side proves its certificate to the other.
    #[arg(long, value_name = "ADDR", requires = "link_tls")]
    core: Option<String>,
    /// This proxy's link files for --core (made by `tether link-certs proxy NAME`).
    #[arg(long, value_name = "DIR")]
    link_tls: Option<PathBuf>,
    /// Name shown in the core's logs.
    #[arg(long, default_value = "proxy")]
    name: String,
    /// Lines a player may have waiting while the core is away.
    #[arg(long, default_value_t = DEFAULT_MAX_QUEUED_LINES)]
    max_queued_lines: usize,
    /// Read the supervisor's news about the core from stdin (tether passes this).
    #[arg(long = "core-news-on-stdin")]
    core_news_on_stdin: bool,
    /// Listen here (a private Unix socket) for a successor to hand every connection to.
    #[arg(long, value_name = "PATH")]
    handover: Option<PathBuf>,
    /// Take over the listeners, the link and every player from the proxy listening on
    /// --handover, instead of binding the addresses.
    #[arg(long = "take-over", requires = "handover")]
    take_over: bool,
    /// Carry on with the listeners and connections the supervisor kept for a proxy that
    /// died (needs the keeper socket the supervisor passes).
    #[arg(long, conflicts_with = "take_over")]
    recover: bool,
    /// Connections one address may hold at once (loopback is not counted; 0: no limit).
    #[arg(long, default_value_t = tether_proxy::GateLimits::default().per_address)]
    max_connections_per_address: u32,
    /// New connections per second one address may open, after a burst of
    /// --max-connections-per-address (0: no limit).
    #[arg(long, default_value_t = tether_proxy::GateLimits::default().per_second)]
    connections_per_second_per_address: f64,
    /// Listeners whose connections start with a PROXY protocol header (v1 or v2) giving the
    /// player's address: `telnet`, `http` (repeat, or separate with commas).
    #[arg(long, value_enum, value_delimiter = ',')]
    proxy_protocol: Vec<Listener>,
    /// The admin token's file (`tether admin token` makes it): whoever presents that token
    /// may read `/metrics` [default: none; `/metrics` refuses everyone]
    #[arg(long, value_name = "PATH")]
    admin_token_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Listener {
    Telnet,
    Http,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // First: the descriptor table below is sized to it.
    let raised = tether_protocol::process::raise_open_file_limit();
    if args.take_over || args.recover {
        // Every connection is about to arrive at once: the descriptor table is grown now,
        // while this is the only thread (the log's writer thread starts next), when growing
        // it costs no wait (see the function).
        tether_proxy::reserve_descriptor_table();
    }
    let _log = tether_log::init();
    match raised {
        Ok(files) => tracing::debug!(files, "open-file limit"),
        Err(error) => tracing::warn!(%error, "cannot raise the open-file limit"),
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    runtime.block_on(async move {
        let (keeper, keeper_socket) =
            tether_proxy::keeper_from_env().context("cannot use the keeper socket")?;
        let core = match (args.core, &args.link_tls) {
            (Some(addr), Some(dir)) => CoreAddress::Remote {
                addr,
                tls: tether_protocol::link_tls::client_config(dir).with_context(|| {
                    format!(
                        "loading the link's TLS files from {} (made by `tether link-certs proxy NAME`)",
                        dir.display()
                    )
                })?,
            },
            _ => CoreAddress::Unix(args.link),
        };
        let link = LinkConfig {
            core,
            proxy_name: args.name,
            proxy_id: tether_proxy::random_id(),
            max_queued_lines: args.max_queued_lines,
            game_status: Default::default(),
            cannot_start: Default::default(),
            keeper: keeper.clone(),
        };
        let http = match args.http.as_str() {
            "off" | "" => None,
            addr => Some(
                addr.parse()
                    .with_context(|| format!("--http {addr} is not an address"))?,
            ),
        };
        // Read before anything is taken over: a certificate that cannot be used must stop
        // this proxy while the running one still has everyone.
        let tls = match (&args.tls_cert, &args.tls_key) {
            (Some(chain), Some(key)) => {
                let files = tether_proxy::CertificateFiles {
                    chain: chain.clone(),
                    key: key.clone(),
                };
                match tether_proxy::Certificates::load(files) {
                    Ok(certificates) => Some(certificates),
                    Err(error) => {
                        let reason = format!(
                            "cannot use the TLS certificate: {:#}",
                            anyhow::Error::new(error)
                        );
                        // The supervisor reads the reason from stdout (a successor's, or a
                        // first proxy's alike).
                        println!("{}", tether_protocol::process::failed_line(&reason));
                        return Err(anyhow::anyhow!(reason));
                    }
                }
            }
            _ => None,
        };
        let mut proxy = match &args.handover {
            _ if args.recover => {
                let socket =
                    keeper_socket.context("--recover needs the supervisor's keeper socket")?;
                Proxy::recover(socket, link).await?
            }
            Some(path) if args.take_over => match Proxy::take_over(path.clone(), link).await {
                Ok(proxy) => proxy,
                Err(error) => {
                    // The supervisor reads the reason from stdout; the old proxy carries on.
                    let reason = format!("cannot take over: {error:#}");
                    println!("{}", tether_protocol::process::failed_line(&reason));
                    return Err(anyhow::anyhow!(reason));
                }
            },
            _ => Proxy::bind(args.telnet, http, args.telnets, args.https, link).await?,
        };
        proxy.tls = tls;
        proxy.admin_token = args.admin_token_file;
        proxy.core_news_on_stdin = args.core_news_on_stdin;
        proxy.handover = args.handover;
        proxy.keeper = keeper;
        proxy.proxy_protocol = tether_proxy::ProxyProtocolOn {
            telnet: args.proxy_protocol.contains(&Listener::Telnet),
            http: args.proxy_protocol.contains(&Listener::Http),
        };
        proxy.gate = tether_proxy::Gate::new(tether_proxy::GateLimits {
            per_address: args.max_connections_per_address,
            per_second: args.connections_per_second_per_address,
        });
        let mut terminate = signal(SignalKind::terminate()).context("SIGTERM handler")?;
        let mut interrupt = signal(SignalKind::interrupt()).context("SIGINT handler")?;
        proxy
            .run(async move {
                tokio::select! {
                    _ = terminate.recv() => {}
                    _ = interrupt.recv() => {}
                }
            })
            .await
    })
}
