//! The supervisor's side of the keeper (`tether_protocol::keeper`): it holds a copy of the
//! proxy's listening sockets and of every player's connection, with each session's latest
//! checkpoint, so that when the proxy dies without warning the connections stay open and
//! the next proxy carries on with them.
//!
//! One [`Kept`] for the supervisor's whole life, keyed by session id: the proxy that takes
//! over in an upgrade names the same sessions again (their copies are replaced, so the
//! supervisor never holds two per connection), and a recovering proxy is given all of it.
//! Each proxy's keeper socket is read by a task of its own until the proxy closes it (it
//! died, or left after a hand-over); everything the proxy sent before it died is read
//! before the next proxy is given the result.

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tether_protocol::keeper::{self, Batch, KeeperError, Record};
use tokio::io::unix::AsyncFd;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

/// How long a recovering proxy may take to read what it is given.
const GIVE_PATIENCE: Duration = Duration::from_secs(30);

/// What the keeper holds for the proxy.
#[derive(Debug, Default)]
pub struct Kept {
    /// The proxy's own record and its listening sockets.
    proxy: Option<(Vec<u8>, Vec<OwnedFd>)>,
    sessions: BTreeMap<u64, KeptSession>,
    /// The number of the set being told (`Record::Begin`); records of older sets that the
    /// latest did not name are dropped at `Record::Synced`.
    set: u64,
}

#[derive(Debug)]
struct KeptSession {
    socket: OwnedFd,
    checkpoint: Vec<u8>,
    link: Vec<u8>,
    set: u64,
}

pub type SharedKept = Arc<Mutex<Kept>>;

impl Kept {
    pub fn shared() -> SharedKept {
        Arc::new(Mutex::new(Kept::default()))
    }

    /// Whether a proxy can be recovered from this: its listeners are here.
    pub fn can_recover(&self) -> bool {
        self.proxy.is_some()
    }

    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// Applies one message's records; `fds` are its descriptors, in order.
    pub fn apply(&mut self, records: Vec<Record>, fds: Vec<OwnedFd>) {
        let mut fds = fds.into_iter();
        for record in records {
            match record {
                Record::Proxy { state, listeners } => {
                    let listeners = fds.by_ref().take(usize::from(listeners)).collect();
                    self.proxy = Some((state, listeners));
                }
                Record::Opened {
                    session,
                    checkpoint,
                } => {
                    let Some(socket) = fds.next() else { continue };
                    // A session kept already (the same connection, told again by a new
                    // proxy) keeps what the link said about it.
                    let link = self
                        .sessions
                        .remove(&session)
                        .map(|old| old.link)
                        .unwrap_or_default();
                    self.sessions.insert(
                        session,
                        KeptSession {
                            socket,
                            checkpoint,
                            link,
                            set: self.set,
                        },
                    );
                }
                Record::Checkpoint {
                    session,
                    checkpoint,
                } => {
                    if let Some(kept) = self.sessions.get_mut(&session) {
                        kept.checkpoint = checkpoint;
                    }
                }
                Record::Link { session, link } => {
                    if let Some(kept) = self.sessions.get_mut(&session) {
                        kept.link = link;
                    }
                }
                Record::Closed { session } => {
                    self.sessions.remove(&session);
                }
                Record::Begin => self.set += 1,
                Record::Synced => {
                    let set = self.set;
                    self.sessions.retain(|_, kept| kept.set == set);
                }
                Record::End => {}
            }
        }
    }

    /// Sends everything kept to a recovering proxy, then `End` (blocking).
    fn give(&self, socket: &OwnedFd) -> Result<(), KeeperError> {
        let mut batch = Batch::default();
        let mut add = |record: Record, fds: &[RawFd]| -> Result<(), KeeperError> {
            if !batch.fits(&record) {
                batch.send(socket)?;
            }
            batch.push(&record, fds);
            Ok(())
        };
        if let Some((state, listeners)) = &self.proxy {
            let fds: Vec<RawFd> = listeners.iter().map(AsRawFd::as_raw_fd).collect();
            add(
                Record::Proxy {
                    state: state.clone(),
                    listeners: fds.len() as u8,
                },
                &fds,
            )?;
        }
        for (&session, kept) in &self.sessions {
            add(
                Record::Opened {
                    session,
                    checkpoint: kept.checkpoint.clone(),
                },
                &[kept.socket.as_raw_fd()],
            )?;
            if !kept.link.is_empty() {
                add(
                    Record::Link {
                        session,
                        link: kept.link.clone(),
                    },
                    &[],
                )?;
            }
        }
        add(Record::End, &[])?;
        batch.send(socket)
    }
}

/// Keeps for one proxy: first, if it is recovering, gives it everything kept; then reads
/// what it says until it closes its end. The task ends once everything it sent is applied.
pub fn keep(kept: SharedKept, socket: OwnedFd, recovering: bool, pid: u32) -> JoinHandle<()> {
    tokio::spawn(async move {
        let socket = if recovering {
            let kept = kept.clone();
            let given = tokio::task::spawn_blocking(move || {
                let patience = nix::sys::time::TimeVal::new(GIVE_PATIENCE.as_secs() as _, 0);
                let _ = nix::sys::socket::setsockopt(
                    &socket,
                    nix::sys::socket::sockopt::SendTimeout,
                    &patience,
                );
                let kept = kept.lock().unwrap_or_else(PoisonError::into_inner);
                let sessions = kept.sessions();
                (kept.give(&socket).map(|()| sessions), socket)
            })
            .await;
            match given {
                Ok((Ok(sessions), socket)) => {
                    info!("gave the new proxy (pid {pid}) {sessions} kept connections");
                    socket
                }
                Ok((Err(error), socket)) => {
                    warn!("could not give the new proxy (pid {pid}) what was kept: {error}");
                    socket
                }
                Err(error) => {
                    warn!("the keeper's hand-over thread failed: {error}");
                    return;
                }
            }
        } else {
            socket
        };
        if let Err(error) = read(&kept, socket).await {
            warn!("stopped keeping for the proxy (pid {pid}): {error}");
        }
        debug!("the proxy (pid {pid}) closed its keeper socket");
    })
}

async fn read(kept: &SharedKept, socket: OwnedFd) -> Result<(), KeeperError> {
    let nonblocking = nix::fcntl::fcntl(
        &socket,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    );
    nonblocking.map_err(|errno| KeeperError::Io {
        what: "making the keeper socket non-blocking",
        source: errno.into(),
    })?;
    // SAFETY: the OwnedFd stays open, and the same descriptor, for the AsyncFd's life.
    let socket = unsafe { AsyncFd::register_with_interest(socket, tokio::io::Interest::READABLE) }
        .map_err(|error| KeeperError::Io {
            what: "watching the keeper socket",
            source: error.into(),
        })?;
    loop {
        let mut ready = socket.readable().await.map_err(|source| KeeperError::Io {
            what: "waiting on the keeper socket",
            source,
        })?;
        match keeper::receive(socket.get_ref()) {
            Ok(Some((records, fds))) => kept
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .apply(records, fds),
            Ok(None) => return Ok(()),
            Err(KeeperError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::WouldBlock =>
            {
                ready.clear_ready();
            }
            // A message this side cannot read is skipped, not fatal: the next proxy is
            // given what was kept before it.
            Err(error @ (KeeperError::Truncated | KeeperError::Descriptors { .. })) => {
                warn!("a keeper message was not kept: {error}")
            }
            Err(error) => return Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opened(session: u64, checkpoint: &[u8]) -> Record {
        Record::Opened {
            session,
            checkpoint: checkpoint.to_vec(),
        }
    }

    fn socket() -> OwnedFd {
        keeper::pair().expect("pair").0
    }

    #[test]
    fn a_new_set_replaces_the_old_and_forgets_what_it_did_not_name() {
        let mut kept = Kept::default();
        kept.apply(
            vec![Record::Begin, opened(1, b"a"), opened(2, b"b")],
            vec![socket(), socket()],
        );
        kept.apply(
            vec![Record::Link {
                session: 1,
                link: b"blob".to_vec(),
            }],
            Vec::new(),
        );
        kept.apply(vec![Record::Synced], Vec::new());
        assert_eq!(kept.sessions(), 2);
        // A successor names session 1 only (2 closed meanwhile, say).
        kept.apply(
            vec![Record::Begin, opened(1, b"a2"), Record::Synced],
            vec![socket()],
        );
        assert_eq!(kept.sessions(), 1);
        let one = &kept.sessions[&1];
        assert_eq!(one.checkpoint, b"a2");
        assert_eq!(one.link, b"blob", "what the link said is kept");
        kept.apply(vec![Record::Closed { session: 1 }], Vec::new());
        assert_eq!(kept.sessions(), 0);
        // Updates for a session never opened are ignored.
        kept.apply(
            vec![Record::Checkpoint {
                session: 9,
                checkpoint: Vec::new(),
            }],
            Vec::new(),
        );
        assert_eq!(kept.sessions(), 0);
    }

    #[test]
    fn a_recovering_proxy_is_given_everything_then_end() {
        let mut kept = Kept::default();
        let (listener, _) = keeper::pair().expect("listener");
        kept.apply(
            vec![Record::Proxy {
                state: b"proxy".to_vec(),
                listeners: 1,
            }],
            vec![listener],
        );
        let sessions: Vec<_> = (0..450).map(|_| socket()).collect();
        let records: Vec<_> = (0..450).map(|id| opened(id, &[7; 300])).collect();
        kept.apply(records, sessions);
        assert!(kept.can_recover());
        let (ours, theirs) = keeper::pair().expect("pair");
        let giver = std::thread::spawn(move || kept.give(&ours).map(|()| kept));
        let mut records = Vec::new();
        let mut fds = 0;
        while records.last() != Some(&Record::End) {
            let (got, descriptors) = keeper::receive(&theirs).expect("read").expect("open");
            fds += descriptors.len();
            records.extend(got);
        }
        giver.join().expect("giver").expect("given");
        assert_eq!(fds, 451);
        assert_eq!(records.len(), 452);
        assert!(matches!(records[0], Record::Proxy { .. }));
    }
}
