//! Accepting telnet connections and running the proxy until it is told to stop.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::link::{self, LinkConfig};
use crate::session;
use crate::shutdown;
use crate::web;

/// How long sessions get to say goodbye when the proxy stops.
const GOODBYE_GRACE: Duration = Duration::from_secs(5);

pub struct Proxy {
    pub telnet: TcpListener,
    /// The web front door, if enabled.
    pub http: Option<TcpListener>,
    pub link: LinkConfig,
    /// Read what the supervisor says about the core from stdin (`CoreNews`).
    pub core_news_on_stdin: bool,
}

impl Proxy {
    pub async fn bind(
        telnet: SocketAddr,
        http: Option<SocketAddr>,
        link: LinkConfig,
    ) -> anyhow::Result<Proxy> {
        let telnet = TcpListener::bind(telnet)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen for telnet on {telnet}: {e}"))?;
        let http = match http {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot listen for HTTP on {addr}: {e}"))?,
            ),
            None => None,
        };
        Ok(Proxy {
            telnet,
            http,
            link,
            core_news_on_stdin: false,
        })
    }

    /// Serves until `stop` resolves, then tells every player goodbye and returns.
    pub async fn run(self, stop: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
        let game_status = self.link.game_status.clone();
        let link = link::start(self.link);
        // The supervisor (and through it systemd) hears that the game is open once players
        // can connect and a core is there to answer them.
        let ready = link.clone();
        tokio::spawn(async move {
            ready.wait_attached().await;
            let mut stdout = std::io::stdout();
            let _ = writeln!(stdout, "{}", tether_protocol::process::READY_LINE)
                .and_then(|()| stdout.flush());
        });
        if self.core_news_on_stdin {
            read_core_news(link.clone());
        }
        let (trigger, shutdown) = shutdown::channel();
        let sessions = TaskTracker::new();
        info!(addr = %self.telnet.local_addr()?, "listening for telnet");
        let context = session::Context {
            link,
            shutdown,
            game_status,
            started: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.as_secs()),
            ids: Arc::new(AtomicU64::new(1)),
        };
        if let Some(http) = self.http {
            info!(addr = %http.local_addr()?, "listening for HTTP and WebSocket");
            let app = web::router(web::Web {
                context: context.clone(),
                sessions: sessions.clone(),
            })
            .into_make_service_with_connect_info::<SocketAddr>();
            tokio::spawn(async move {
                if let Err(error) = axum::serve(http, app).await {
                    warn!(%error, "the HTTP listener stopped");
                }
            });
        }

        tokio::select! {
            () = accept_loop(&self.telnet, context, &sessions) => {}
            () = stop => {}
        }
        info!(
            sessions = sessions.len(),
            "shutting down: telling players goodbye"
        );
        trigger.trigger();
        sessions.close();
        if tokio::time::timeout(GOODBYE_GRACE, sessions.wait())
            .await
            .is_err()
        {
            warn!("some sessions did not close in time");
        }
        Ok(())
    }
}

/// Hands the supervisor's news about the core to the link, until stdin closes. A thread of
/// its own, not tokio's stdin: that reads on the blocking pool, and a runtime waits for its
/// blocking reads to end before the process may exit, which they never do while the
/// supervisor holds the pipe open.
fn read_core_news(link: link::LinkHandle) {
    use std::io::BufRead;
    let spawned = std::thread::Builder::new()
        .name("core news".into())
        .spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                match tether_protocol::process::CoreNews::parse(&line) {
                    Some(news) => link.core_news(news),
                    None => warn!(%line, "unknown news from the supervisor"),
                }
            }
        });
    if let Err(error) = spawned {
        warn!(%error, "cannot read the supervisor's news; /health will not say why a core is down");
    }
}

async fn accept_loop(listener: &TcpListener, context: session::Context, sessions: &TaskTracker) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let session = context.next_session_id();
                sessions.spawn(session::serve_tcp(stream, peer, session, context.clone()));
            }
            Err(error) => {
                // Typically out of file descriptors: back off instead of spinning.
                warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
