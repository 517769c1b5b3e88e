//! Accepting telnet connections and running the proxy until it is told to stop.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::link::{self, LinkConfig};
use crate::session;
use crate::shutdown;

/// How long sessions get to say goodbye when the proxy stops.
const GOODBYE_GRACE: Duration = Duration::from_secs(5);
/// Messages from all sessions to the link thread; a full channel slows readers down.
const LINK_CHANNEL: usize = 8192;

pub struct Proxy {
    pub telnet: TcpListener,
    pub link: LinkConfig,
}

impl Proxy {
    pub async fn bind(telnet: SocketAddr, link: LinkConfig) -> anyhow::Result<Proxy> {
        let telnet = TcpListener::bind(telnet)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen for telnet on {telnet}: {e}"))?;
        Ok(Proxy { telnet, link })
    }

    /// Serves until `stop` resolves, then tells every player goodbye and returns.
    pub async fn run(self, stop: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
        let (to_link, from_sessions) = mpsc::channel(LINK_CHANNEL);
        let game_status = self.link.game_status.clone();
        link::spawn(self.link, from_sessions)?;
        let (trigger, shutdown) = shutdown::channel();
        let sessions = TaskTracker::new();
        info!(addr = %self.telnet.local_addr()?, "listening for telnet");
        let context = session::Context {
            link: to_link,
            shutdown,
            game_status,
            started: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.as_secs()),
        };

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

async fn accept_loop(listener: &TcpListener, context: session::Context, sessions: &TaskTracker) {
    let mut next_session: u64 = 1;
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let session = next_session;
                next_session += 1;
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
