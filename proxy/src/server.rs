//! Accepting connections and running the proxy until it is told to stop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::link::LinkConfig;
use crate::session;
use crate::shard::Shards;
use crate::shutdown;
use crate::web;

/// How long sessions get to say goodbye when the proxy stops.
const GOODBYE_GRACE: Duration = Duration::from_secs(5);

pub struct Proxy {
    pub telnet: TcpListener,
    /// The web front door, if enabled.
    pub http: Option<TcpListener>,
    pub link: LinkConfig,
    /// Worker threads, each with its own link to the core (see `shard`).
    pub shards: usize,
}

impl Proxy {
    pub async fn bind(
        telnet: SocketAddr,
        http: Option<SocketAddr>,
        link: LinkConfig,
        shards: usize,
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
            shards,
        })
    }

    /// Serves until `stop` resolves, then tells every player goodbye and returns.
    pub async fn run(self, stop: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
        let (trigger, shutdown) = shutdown::channel();
        let sessions = TaskTracker::new();
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs());
        let ids = Arc::new(AtomicU64::new(1));
        let game_status = self.link.game_status.clone();
        let shards = Arc::new(Shards::start(self.shards, &self.link, &sessions, |link| {
            session::Context {
                link,
                shutdown: shutdown.clone(),
                game_status: game_status.clone(),
                started,
                ids: ids.clone(),
            }
        })?);
        info!(
            addr = %self.telnet.local_addr()?,
            shards = shards.len(),
            "listening for telnet"
        );
        if let Some(http) = self.http {
            info!(addr = %http.local_addr()?, "listening for HTTP and WebSocket");
            let app = web::router(web::Web {
                shards: shards.clone(),
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
            () = accept_loop(&self.telnet, &shards) => {}
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

async fn accept_loop(listener: &TcpListener, shards: &Shards) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => shards.hand_over(stream, peer),
            Err(error) => {
                // Typically out of file descriptors: back off instead of spinning.
                warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
