//! The proxy's worker threads: one shard per CPU, each a current-thread runtime that runs its
//! own link to the core and the telnet sessions handed to it.
//!
//! Why shards and not one multi-thread runtime with the link on a thread of its own: a player's
//! line then crossed threads twice per command (session to link, link back to session), and on
//! small virtual machines every such wake-up costs more than the work it hands over (see
//! BENCHMARKS.md). In a shard, a line goes from the socket to the link's write, and the core's
//! answer from the link back to the socket, on one thread. Shards share nothing on that path.
//!
//! Each shard attaches to the core as a proxy of its own (the core serves any number of
//! proxies), so queueing, resending after a core restart and flow control work per shard
//! exactly as they did for the whole process. WebSocket sessions stay on the main runtime with
//! axum and are given a shard's link in turn.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;
use tracing::warn;

use crate::link::{self, LinkConfig, ToLink};
use crate::session::{self, Context};

/// Messages from one shard's sessions to its link; a full channel slows readers down.
const LINK_CHANNEL: usize = 8192;

/// A telnet connection accepted on the main runtime, on its way to a shard.
struct Arrival {
    stream: std::net::TcpStream,
    peer: SocketAddr,
    session: u64,
}

struct Shard {
    arrivals: mpsc::UnboundedSender<Arrival>,
    /// What this shard's sessions share; its `link` is this shard's link.
    context: Context,
    attached: Arc<AtomicBool>,
}

/// The running shards, and the round-robin that spreads new sessions over them.
pub struct Shards {
    shards: Vec<Shard>,
    next: AtomicUsize,
}

impl Shards {
    /// Starts `count` shard threads (at least one). Each gets its own link, named
    /// `{proxy_name}/{index}` with an id of its own when there is more than one.
    /// `context` builds what a shard's sessions share around that shard's link.
    pub fn start(
        count: usize,
        link: &LinkConfig,
        sessions: &TaskTracker,
        context: impl Fn(mpsc::Sender<ToLink>) -> Context,
    ) -> std::io::Result<Shards> {
        let count = count.max(1);
        let mut shards = Vec::with_capacity(count);
        for index in 0..count {
            let mut config = link.clone();
            if count > 1 {
                config.proxy_name = format!("{}/{index}", link.proxy_name);
                config.proxy_id = crate::random_id() ^ index as u64;
            }
            let attached = Arc::new(AtomicBool::new(false));
            config.link_up = attached.clone();
            let (to_link, from_sessions) = mpsc::channel(LINK_CHANNEL);
            let (arrivals, incoming) = mpsc::unbounded_channel();
            let context = context(to_link);
            spawn(
                index,
                config,
                from_sessions,
                incoming,
                context.clone(),
                sessions.clone(),
            )?;
            shards.push(Shard {
                arrivals,
                context,
                attached,
            });
        }
        Ok(Shards {
            shards,
            next: AtomicUsize::new(0),
        })
    }

    pub fn len(&self) -> usize {
        self.shards.len()
    }

    pub fn is_empty(&self) -> bool {
        self.shards.is_empty()
    }

    fn pick(&self) -> &Shard {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.shards.len();
        &self.shards[index]
    }

    /// Moves an accepted telnet connection to the next shard, which serves it from then on.
    pub fn hand_over(&self, stream: TcpStream, peer: SocketAddr) {
        let shard = self.pick();
        let session = shard.context.next_session_id();
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(error) => {
                warn!(%peer, %error, "cannot hand a connection to a shard");
                return;
            }
        };
        if shard
            .arrivals
            .send(Arrival {
                stream,
                peer,
                session,
            })
            .is_err()
        {
            warn!(%peer, "a shard has stopped; connection dropped");
        }
    }

    /// What a session served outside the shards (WebSocket) shares, with the next shard's link.
    pub fn context(&self) -> Context {
        self.pick().context.clone()
    }

    /// Whether every shard's link is attached to a core right now.
    pub fn attached(&self) -> bool {
        self.shards
            .iter()
            .all(|shard| shard.attached.load(Ordering::Relaxed))
    }
}

fn spawn(
    index: usize,
    config: LinkConfig,
    from_sessions: mpsc::Receiver<ToLink>,
    mut incoming: mpsc::UnboundedReceiver<Arrival>,
    context: Context,
    sessions: TaskTracker,
) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name(format!("tether-shard-{index}"))
        .spawn(move || {
            let local = tokio::task::LocalSet::new();
            local.block_on(&runtime, async move {
                tokio::task::spawn_local(link::run(config, from_sessions));
                while let Some(arrival) = incoming.recv().await {
                    let Arrival {
                        stream,
                        peer,
                        session,
                    } = arrival;
                    match TcpStream::from_std(stream) {
                        Ok(stream) => {
                            let served = session::serve_tcp(stream, peer, session, context.clone());
                            tokio::task::spawn_local(sessions.track_future(served));
                        }
                        Err(error) => warn!(%peer, %error, "a shard cannot take a connection"),
                    }
                }
                // The proxy is ending: sessions finish their goodbyes while the main thread
                // waits for them, and the link keeps running under them until the process exits.
                std::future::pending::<()>().await;
            });
        })?;
    Ok(())
}
