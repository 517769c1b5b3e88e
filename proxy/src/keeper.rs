//! The proxy's side of the keeper (`tether_protocol::keeper`): tells the supervisor about
//! every connection and its checkpoint, so that a proxy killed without warning is replaced
//! by one that carries on with the same connections; and reads what the supervisor kept,
//! when this proxy is that replacement.
//!
//! Sessions and the link never wait for it: they queue records, and a thread of its own
//! sends them, several per message. If the supervisor goes away the thread stops, and the
//! proxy goes on serving, just without that safety net (the next supervisor replaces this
//! proxy by an upgrade, which starts a new keeper).

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::mpsc;

use tether_protocol::keeper::{self, Batch, KeeperError, Record};
use tracing::{info, warn};

/// The keeper socket the supervisor passed (`KEEPER_FD_VAR`), if it did: a keeper that
/// sends on it, and the socket itself, for reading what was kept when recovering.
pub fn from_env() -> std::io::Result<(Keeper, Option<OwnedFd>)> {
    use std::os::fd::FromRawFd;
    let Some(fd) = std::env::var(keeper::KEEPER_FD_VAR)
        .ok()
        .and_then(|fd| fd.parse::<RawFd>().ok())
    else {
        return Ok((Keeper::off(), None));
    };
    // Not for our own children.
    nix::fcntl::fcntl(
        // SAFETY: checked just below to be an open descriptor before it is owned.
        unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) },
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )
    .map_err(std::io::Error::from)?;
    // SAFETY: the supervisor put this descriptor here for this process alone, and fcntl
    // just showed it is open; nothing else in the process owns it.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    let keeper = Keeper::start(socket.try_clone()?)?;
    Ok((keeper, Some(socket)))
}

/// Where sessions and the link send records. Cheap to clone; does nothing when off.
///
/// One pointer wide: every session's task holds a few copies of it.
#[derive(Debug, Clone, Default)]
pub struct Keeper {
    records: Option<std::sync::Arc<mpsc::Sender<Queued>>>,
}

/// A record on its way to the keeper thread, with its descriptors.
type Queued = (Record, Vec<OwnedFd>);

/// What a keeper kept for a recovering proxy.
#[derive(Debug, Default)]
pub struct Recovered {
    pub proxy: Option<(Vec<u8>, Vec<OwnedFd>)>,
    pub sessions: Vec<RecoveredSession>,
}

#[derive(Debug)]
pub struct RecoveredSession {
    pub id: u64,
    pub socket: OwnedFd,
    pub checkpoint: Vec<u8>,
    /// What the link kept (empty if it said nothing yet).
    pub link: Vec<u8>,
}

impl Keeper {
    /// A keeper that keeps nothing (a proxy run without a supervisor, tests).
    pub fn off() -> Keeper {
        Keeper::default()
    }

    /// Starts sending to the keeper on `socket`.
    pub fn start(socket: OwnedFd) -> std::io::Result<Keeper> {
        let (records, receiver) = mpsc::channel::<Queued>();
        std::thread::Builder::new()
            .name("keeper".into())
            .spawn(move || {
                if let Err(error) = send_all(&socket, &receiver) {
                    warn!(%error, "stopped telling the supervisor about connections; a proxy crash would now disconnect players");
                }
            })?;
        Ok(Keeper {
            records: Some(std::sync::Arc::new(records)),
        })
    }

    pub fn is_on(&self) -> bool {
        self.records.is_some()
    }

    fn send(&self, record: Record, fds: Vec<OwnedFd>) {
        if let Some(records) = &self.records {
            // Fails only once the thread stopped; then there is nobody to tell.
            let _ = records.send((record, fds));
        }
    }

    pub fn begin(&self) {
        self.send(Record::Begin, Vec::new());
    }

    pub fn synced(&self) {
        self.send(Record::Synced, Vec::new());
    }

    pub fn proxy(&self, state: Vec<u8>, listeners: Vec<OwnedFd>) {
        let count = listeners.len() as u8;
        self.send(
            Record::Proxy {
                state,
                listeners: count,
            },
            listeners,
        );
    }

    pub fn opened(&self, session: u64, socket: OwnedFd, checkpoint: Vec<u8>) {
        self.send(
            Record::Opened {
                session,
                checkpoint,
            },
            vec![socket],
        );
    }

    pub fn checkpoint(&self, session: u64, checkpoint: Vec<u8>) {
        self.send(
            Record::Checkpoint {
                session,
                checkpoint,
            },
            Vec::new(),
        );
    }

    pub fn link(&self, session: u64, link: Vec<u8>) {
        self.send(Record::Link { session, link }, Vec::new());
    }

    pub fn closed(&self, session: u64) {
        self.send(Record::Closed { session }, Vec::new());
    }
}

/// The thread: waits for a record, then sends it with every other one already queued.
fn send_all(socket: &OwnedFd, records: &mpsc::Receiver<Queued>) -> Result<(), KeeperError> {
    let mut batch = Batch::default();
    // The descriptors must stay open until their message is sent.
    let mut holding: Vec<OwnedFd> = Vec::new();
    while let Ok(first) = records.recv() {
        let mut next = Some(first);
        while let Some((record, fds)) = next.take() {
            if record.encoded_len() > keeper::BYTES_PER_MESSAGE {
                // Never seen (a checkpoint is a few hundred bytes); the keeper keeps the
                // session's last one rather than this thread dying on it.
                warn!(
                    bytes = record.encoded_len(),
                    "a checkpoint too big for the keeper was not sent"
                );
                next = records.try_recv().ok();
                continue;
            }
            if !batch.fits(&record) {
                batch.send(socket)?;
                holding.clear();
            }
            let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
            batch.push(&record, &raw);
            holding.extend(fds);
            next = records.try_recv().ok();
        }
        batch.send(socket)?;
        holding.clear();
    }
    Ok(())
}

/// Reads what the keeper kept, up to `End` (blocking; before this proxy serves).
pub fn recover(socket: &OwnedFd) -> Result<Recovered, KeeperError> {
    let mut recovered = Recovered::default();
    loop {
        let Some((records, fds)) = keeper::receive(socket)? else {
            return Err(KeeperError::Io {
                what: "reading what the keeper kept",
                source: std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the supervisor closed the keeper socket",
                ),
            });
        };
        let mut fds = fds.into_iter();
        for record in records {
            match record {
                Record::Proxy { state, listeners } => {
                    let listeners = fds.by_ref().take(usize::from(listeners)).collect();
                    recovered.proxy = Some((state, listeners));
                }
                Record::Opened {
                    session,
                    checkpoint,
                } => {
                    if let Some(socket) = fds.next() {
                        recovered.sessions.push(RecoveredSession {
                            id: session,
                            socket,
                            checkpoint,
                            link: Vec::new(),
                        });
                    }
                }
                Record::Link { session, link } => {
                    if let Some(kept) = recovered
                        .sessions
                        .last_mut()
                        .filter(|kept| kept.id == session)
                    {
                        kept.link = link;
                    }
                }
                Record::End => {
                    info!(
                        sessions = recovered.sessions.len(),
                        "read what the keeper kept"
                    );
                    return Ok(recovered);
                }
                _ => {}
            }
        }
    }
}
