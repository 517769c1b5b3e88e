//! Handing a live proxy to its successor: the listening sockets, the connection to the core
//! and every player's connection travel as descriptors (`SCM_RIGHTS`), with the proxy's whole
//! state (`state::ProxyState`) beside them, over a Unix socket.
//!
//! Every proxy started with `--handover PATH` listens there (a private socket, 0600, in the
//! data directory); a new one started with `--take-over` connects to it. One SOCK_SEQPACKET
//! message per step, so nothing needs framing of its own:
//!
//! ```text
//! taker: HELLO(version)
//! giver: SOCKETS(up to 200 descriptors)...  STATE(part of the state)...  END(sockets, bytes)
//!        or REFUSE(why)
//! taker: TAKEN, or REFUSE(why)
//! giver: GONE                                  (the giver will never touch them again)
//! ```
//!
//! The giver stops everything before it sends (`server`) and keeps its own copies of the
//! descriptors until it says GONE: if the taker refuses, dies, or says nothing in time, the
//! giver carries on from the same state as if nothing had happened. The taker starts serving
//! only once it has heard GONE, so the two never serve the same connection at once.
//!
//! Blocking calls: the exchange is one short burst, run on a thread of its own.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::socket::{
    self, AddressFamily, Backlog, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag,
    SockType, UnixAddr, sockopt,
};
use nix::sys::time::TimeVal;
use thiserror::Error;

use crate::state::{self, ProxyState, StateError};

/// Bumped when the exchange changes (the state has its own version).
const HANDOVER_VERSION: u8 = 1;
/// Descriptors per message: the kernel takes at most 253 (`SCM_MAX_FD`).
const SOCKETS_PER_MESSAGE: usize = 200;
/// State bytes per message, well inside a Unix socket's send buffer.
const STATE_CHUNK: usize = 48 * 1024;
/// How long either side waits for the other's next message.
pub const PATIENCE: Duration = Duration::from_secs(30);

mod tag {
    pub const HELLO: u8 = b'H';
    pub const SOCKETS: u8 = b'F';
    pub const STATE: u8 = b'S';
    pub const END: u8 = b'E';
    pub const REFUSE: u8 = b'R';
    pub const TAKEN: u8 = b'T';
    pub const GONE: u8 = b'G';
}

#[derive(Debug, Error)]
pub enum HandOverError {
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("the other proxy closed the hand-over socket")]
    Closed,
    #[error("the other proxy refused: {0}")]
    Refused(String),
    #[error("the other proxy speaks hand-over version {0}, this one {HANDOVER_VERSION}")]
    Version(u8),
    #[error("unexpected hand-over message {0:?}")]
    Unexpected(char),
    #[error("the state is incomplete: {0}")]
    Incomplete(String),
    #[error(transparent)]
    State(#[from] StateError),
}

fn io(what: &'static str) -> impl FnOnce(nix::errno::Errno) -> HandOverError {
    move |errno| HandOverError::Io {
        what,
        source: errno.into(),
    }
}

/// A proxy at rest: its whole state, and the descriptors in the order `ProxyState` lists.
#[derive(Debug)]
pub struct Frozen {
    pub state: ProxyState,
    pub sockets: Vec<OwnedFd>,
}

/// The private socket a running proxy listens on for its successor.
#[derive(Debug)]
pub struct Listener {
    socket: OwnedFd,
}

impl Listener {
    /// Binds `path`, replacing a file a previous proxy left. The socket is made private before
    /// it appears under its name: whoever connects takes every player's connection.
    pub fn bind(path: &Path) -> Result<Listener, HandOverError> {
        let socket = seqpacket().map_err(io("creating the hand-over socket"))?;
        let mut staging = path.as_os_str().to_os_string();
        staging.push(format!(".{}.new", std::process::id()));
        let staging = PathBuf::from(staging);
        let _ = std::fs::remove_file(&staging);
        let address = UnixAddr::new(&staging).map_err(io("naming the hand-over socket"))?;
        socket::bind(socket.as_raw_fd(), &address).map_err(io("binding the hand-over socket"))?;
        let installed = std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(0o600))
            .and_then(|()| std::fs::rename(&staging, path));
        if let Err(source) = installed {
            let _ = std::fs::remove_file(&staging);
            return Err(HandOverError::Io {
                what: "installing the hand-over socket",
                source,
            });
        }
        socket::listen(&socket, Backlog::new(4).unwrap_or(Backlog::MAXCONN))
            .map_err(io("listening on the hand-over socket"))?;
        Ok(Listener { socket })
    }

    /// Waits for a successor and its HELLO.
    pub fn accept(&self) -> Result<Channel, HandOverError> {
        let raw = socket::accept4(self.socket.as_raw_fd(), SockFlag::SOCK_CLOEXEC)
            .map_err(io("accepting a successor"))?;
        // SAFETY: accept4 just returned this descriptor, and nothing else owns it.
        let channel = Channel::new(unsafe { OwnedFd::from_raw_fd(raw) })?;
        let (tag, body, _) = channel.recv()?;
        match (tag, body.first()) {
            (tag::HELLO, Some(&HANDOVER_VERSION)) => Ok(channel),
            (tag::HELLO, Some(&other)) => {
                channel.refuse(&format!(
                    "this proxy speaks hand-over version {HANDOVER_VERSION}"
                ));
                Err(HandOverError::Version(other))
            }
            (other, _) => Err(HandOverError::Unexpected(char::from(other))),
        }
    }
}

/// One hand-over's connection, from either end.
#[derive(Debug)]
pub struct Channel {
    socket: OwnedFd,
}

impl Channel {
    fn new(socket: OwnedFd) -> Result<Channel, HandOverError> {
        let patience = TimeVal::new(PATIENCE.as_secs() as _, 0);
        socket::setsockopt(&socket, sockopt::ReceiveTimeout, &patience)
            .map_err(io("setting the hand-over timeout"))?;
        Ok(Channel { socket })
    }

    /// Connects to the proxy listening at `path` and says HELLO.
    pub fn connect(path: &Path) -> Result<Channel, HandOverError> {
        // Before HELLO, while the old proxy still serves everyone (see below).
        reserve_descriptor_table();
        let socket = seqpacket().map_err(io("creating the hand-over socket"))?;
        let address = UnixAddr::new(path).map_err(io("naming the hand-over socket"))?;
        socket::connect(socket.as_raw_fd(), &address)
            .map_err(io("connecting to the running proxy's hand-over socket"))?;
        let channel = Channel::new(socket)?;
        channel.send(tag::HELLO, &[HANDOVER_VERSION], &[])?;
        Ok(channel)
    }

    /// The giver's side: sends `frozen` and waits for the taker's answer. `Ok` once the taker
    /// took it and was told GONE: from then on the giver must not touch any of it.
    pub fn give(&self, frozen: &Frozen) -> Result<(), HandOverError> {
        let raw: Vec<RawFd> = frozen.sockets.iter().map(AsRawFd::as_raw_fd).collect();
        for group in raw.chunks(SOCKETS_PER_MESSAGE) {
            self.send(tag::SOCKETS, &[], group)?;
        }
        let bytes = state::encode(&frozen.state);
        for chunk in bytes.chunks(STATE_CHUNK) {
            self.send(tag::STATE, chunk, &[])?;
        }
        let mut end = Vec::with_capacity(12);
        end.extend_from_slice(&(raw.len() as u32).to_le_bytes());
        end.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        self.send(tag::END, &end, &[])?;
        let (tag, body, _) = self.recv()?;
        match tag {
            tag::TAKEN => self.send(tag::GONE, &[], &[]),
            tag::REFUSE => Err(HandOverError::Refused(
                String::from_utf8_lossy(&body).into_owned(),
            )),
            other => Err(HandOverError::Unexpected(char::from(other))),
        }
    }

    /// The taker's side: everything the giver sends, up to END.
    pub fn take(&self) -> Result<Frozen, HandOverError> {
        let mut sockets = Vec::new();
        let mut bytes = Vec::new();
        loop {
            let (tag, body, fds) = self.recv()?;
            match tag {
                tag::SOCKETS => sockets.extend(fds),
                tag::STATE => bytes.extend_from_slice(&body),
                tag::END => {
                    let counts = body
                        .get(..12)
                        .ok_or_else(|| HandOverError::Incomplete("a short END".into()))?;
                    let (count, len) = counts.split_at(4);
                    let count = u32::from_le_bytes(count.try_into().unwrap_or_default());
                    let len = u64::from_le_bytes(len.try_into().unwrap_or_default());
                    if count as usize != sockets.len() || len as usize != bytes.len() {
                        return Err(HandOverError::Incomplete(format!(
                            "{} of {count} sockets and {} of {len} bytes arrived",
                            sockets.len(),
                            bytes.len()
                        )));
                    }
                    let state: ProxyState = state::decode(&bytes)?;
                    return Ok(Frozen { state, sockets });
                }
                tag::REFUSE => {
                    return Err(HandOverError::Refused(
                        String::from_utf8_lossy(&body).into_owned(),
                    ));
                }
                other => return Err(HandOverError::Unexpected(char::from(other))),
            }
        }
    }

    /// The taker has everything ready: TAKEN, then wait for GONE. `Err`: the giver carries on
    /// (it gave up waiting, or failed), and the taker must drop everything it received.
    pub fn taken(&self) -> Result<(), HandOverError> {
        self.send(tag::TAKEN, &[], &[])?;
        match self.recv()?.0 {
            tag::GONE => Ok(()),
            other => Err(HandOverError::Unexpected(char::from(other))),
        }
    }

    /// Tells the other side no, and why (best effort: it may be gone already).
    pub fn refuse(&self, why: &str) {
        let _ = self.send(tag::REFUSE, why.as_bytes(), &[]);
    }

    fn send(&self, tag: u8, body: &[u8], fds: &[RawFd]) -> Result<(), HandOverError> {
        let head = [tag];
        let iov = [IoSlice::new(&head), IoSlice::new(body)];
        let rights = [ControlMessage::ScmRights(fds)];
        let cmsgs: &[ControlMessage<'_>] = if fds.is_empty() { &[] } else { &rights };
        socket::sendmsg::<()>(
            self.socket.as_raw_fd(),
            &iov,
            cmsgs,
            MsgFlags::MSG_NOSIGNAL,
            None,
        )
        .map_err(io("sending to the other proxy"))?;
        Ok(())
    }

    fn recv(&self) -> Result<(u8, Vec<u8>, Vec<OwnedFd>), HandOverError> {
        let mut buffer = vec![0u8; STATE_CHUNK + 64];
        let mut space = nix::cmsg_space!([RawFd; SOCKETS_PER_MESSAGE]);
        let (bytes, fds, truncated) = {
            let mut iov = [IoSliceMut::new(&mut buffer)];
            let message = socket::recvmsg::<()>(
                self.socket.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            )
            .map_err(|errno| match errno {
                nix::errno::Errno::EAGAIN => HandOverError::Io {
                    what: "waiting for the other proxy",
                    source: std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("nothing for {} s", PATIENCE.as_secs()),
                    ),
                },
                errno => io("receiving from the other proxy")(errno),
            })?;
            let mut fds = Vec::new();
            // Descriptors that arrived are owned here at once, so none leaks on an error.
            for cmsg in message.cmsgs().map_err(io("reading the descriptors"))? {
                if let ControlMessageOwned::ScmRights(raw) = cmsg {
                    // SAFETY: the kernel just installed these descriptors for this process.
                    fds.extend(
                        raw.into_iter()
                            .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                    );
                }
            }
            let truncated = message.flags.contains(MsgFlags::MSG_TRUNC);
            (message.bytes, fds, truncated)
        };
        if bytes == 0 {
            return Err(HandOverError::Closed);
        }
        if truncated {
            return Err(HandOverError::Incomplete("a message was cut short".into()));
        }
        let tag = buffer[0];
        buffer.truncate(bytes);
        buffer.remove(0);
        Ok((tag, buffer, fds))
    }
}

/// Grows this process's descriptor table to its limit now, in one step. Each time the
/// kernel grows the table of a process with several threads it waits for an RCU grace
/// period, milliseconds each; receiving ten thousand descriptors grew it six or seven
/// times, inside the hand-over, while every player waited (measured: 1,000 sockets took
/// 16 ms to arrive on an idle machine, 57 ms under load; 0.5 ms once the table was grown).
/// The table costs about 8 bytes per slot, so it is capped.
///
/// Cheapest while the process has one thread: the kernel then grows the table without
/// waiting at all. `main` calls it before any thread starts when the proxy is to receive
/// connections; the call before HELLO finds the table grown already.
pub fn reserve_descriptor_table() {
    const MOST: u64 = 1 << 20;
    let Ok((soft, _)) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
    else {
        return;
    };
    let Ok(highest) = i32::try_from(soft.min(MOST).saturating_sub(1)) else {
        return;
    };
    let Ok(probe) = seqpacket() else {
        return;
    };
    // A copy at the highest slot makes the kernel size the table for it; closing the copy
    // keeps the table.
    if let Ok(copy) = nix::fcntl::fcntl(&probe, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(highest)) {
        let _ = nix::unistd::close(copy);
    }
}

fn seqpacket() -> nix::Result<OwnedFd> {
    socket::socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::LinkState;
    use std::os::fd::AsFd;

    #[test]
    fn sockets_and_state_arrive_whole_and_the_giver_hears_gone() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("handover.sock");
        let listener = Listener::bind(&path).expect("bind");
        let mode = std::fs::metadata(&path)
            .expect("exists")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);

        // Enough of both to need several messages of each kind.
        let pairs: Vec<_> = (0..450)
            .map(|_| std::os::unix::net::UnixStream::pair().expect("pair"))
            .collect();
        let state = ProxyState {
            proxy_id: 42,
            started: 7,
            next_session_id: 9,
            game_status: vec![("NAME".into(), "x".repeat(200_000))],
            players: Vec::new(),
            cannot_start: None,
            http: false,
            telnets: false,
            https: false,
            link: LinkState::default(),
            link_unread: None,
            sessions: Vec::new(),
        };
        let frozen = Frozen {
            state,
            sockets: pairs
                .iter()
                .map(|(ours, _)| ours.as_fd().try_clone_to_owned().expect("dup"))
                .collect(),
        };
        let giver = std::thread::spawn(move || {
            let channel = listener.accept().expect("a successor");
            channel.give(&frozen).map(|()| frozen.sockets.len())
        });
        let channel = Channel::connect(&path).expect("connect");
        let taken = channel.take().expect("everything");
        assert_eq!(taken.state.proxy_id, 42);
        assert_eq!(taken.state.game_status[0].1.len(), 200_000);
        assert_eq!(taken.sockets.len(), 450);
        channel.taken().expect("gone");
        assert_eq!(giver.join().expect("giver").expect("given"), 450);

        // The descriptors are the same connections: what goes in one end comes out the other.
        use std::io::{Read, Write};
        let mut ours = std::os::unix::net::UnixStream::from(
            taken.sockets.into_iter().nth(449).expect("the last"),
        );
        ours.write_all(b"hi").expect("write");
        let mut got = [0u8; 2];
        let mut theirs = &pairs[449].1;
        theirs.read_exact(&mut got).expect("read");
        assert_eq!(&got, b"hi");
    }

    #[test]
    fn a_taker_that_refuses_leaves_the_giver_in_charge() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("handover.sock");
        let listener = Listener::bind(&path).expect("bind");
        let giver = std::thread::spawn(move || {
            let channel = listener.accept().expect("a successor");
            let frozen = Frozen {
                state: ProxyState {
                    proxy_id: 1,
                    started: 0,
                    next_session_id: 1,
                    game_status: Vec::new(),
                    players: Vec::new(),
                    cannot_start: None,
                    http: false,
                    telnets: false,
                    https: false,
                    link: LinkState::default(),
                    link_unread: None,
                    sessions: Vec::new(),
                },
                sockets: Vec::new(),
            };
            channel.give(&frozen)
        });
        let channel = Channel::connect(&path).expect("connect");
        channel.take().expect("everything");
        channel.refuse("not today");
        let refused = giver.join().expect("giver");
        assert!(
            matches!(&refused, Err(HandOverError::Refused(why)) if why == "not today"),
            "{refused:?}"
        );

        // A taker that vanishes before TAKEN is the same as a refusal.
        let listener = Listener::bind(&path).expect("bind again");
        let giver = std::thread::spawn(move || {
            let channel = listener.accept().expect("a successor");
            channel.give(&Frozen {
                state: ProxyState {
                    proxy_id: 1,
                    started: 0,
                    next_session_id: 1,
                    game_status: Vec::new(),
                    players: Vec::new(),
                    cannot_start: None,
                    http: false,
                    telnets: false,
                    https: false,
                    link: LinkState::default(),
                    link_unread: None,
                    sessions: Vec::new(),
                },
                sockets: Vec::new(),
            })
        });
        let channel = Channel::connect(&path).expect("connect");
        channel.take().expect("everything");
        drop(channel);
        assert!(matches!(
            giver.join().expect("giver"),
            Err(HandOverError::Closed)
        ));
    }
}
