//! The keeper: what the proxy tells the supervisor so that a proxy killed without warning
//! costs players nothing but a moment. One definition for both sides.
//!
//! The supervisor gives each proxy one end of a `SOCK_SEQPACKET` socket pair, at fd
//! [`KEEPER_FD`] (announced in [`KEEPER_FD_VAR`]). Over it the proxy sends [`Record`]s: a
//! copy of its listening sockets and of every player's connection (`SCM_RIGHTS`, so the
//! supervisor holds each connection open too), and a checkpoint of each session at rest,
//! sent again whenever it changes. The checkpoints are opaque here: the proxy writes and
//! reads them, the supervisor only keeps the latest.
//!
//! When a proxy dies without handing over, the supervisor starts the next one with
//! [`RECOVER_FLAG`] and sends it, over that proxy's own keeper socket, everything it kept in
//! the same records, then [`Record::End`]. Every proxy, recovered, taking over or new, then
//! tells its keeper its whole set again: [`Record::Begin`], the records, [`Record::Synced`],
//! after which the keeper forgets whatever that set did not name.
//!
//! Several records travel in one message (a proxy that starts with ten thousand players
//! sends them in a few hundred messages, not ten thousand); the descriptors of a message
//! belong to its records in order: [`Record::Proxy`] has `listeners` of them, each
//! [`Record::Opened`] one.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{self, ControlMessage, ControlMessageOwned, MsgFlags};
use thiserror::Error;

/// The descriptor number the proxy finds its end of the keeper socket on.
pub const KEEPER_FD: RawFd = 5;
/// Set to [`KEEPER_FD`] when the proxy has a keeper.
pub const KEEPER_FD_VAR: &str = "TETHER_KEEPER_FD";
/// The proxy's flag: read what the keeper kept before serving (its predecessor died).
pub const RECOVER_FLAG: &str = "--recover";

/// Descriptors per message (the kernel takes at most 253).
pub const FDS_PER_MESSAGE: usize = 200;
/// Bytes per message: far below a Unix socket's buffer, far above one record.
pub const BYTES_PER_MESSAGE: usize = 60 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// The proxy as a whole (who it is to the core, when it started...) and how many
    /// listening sockets come with it.
    Proxy { state: Vec<u8>, listeners: u8 },
    /// A connection opened (or was carried over): its socket comes with it, and the
    /// session's checkpoint.
    Opened { session: u64, checkpoint: Vec<u8> },
    /// The session's checkpoint changed.
    Checkpoint { session: u64, checkpoint: Vec<u8> },
    /// What the link keeps for the session changed (who it is, the core's state blob).
    Link { session: u64, link: Vec<u8> },
    /// The connection closed: the keeper lets go of its copy.
    Closed { session: u64 },
    /// A whole set starts.
    Begin,
    /// The whole set was sent: what it did not name is gone.
    Synced,
    /// The keeper has said everything it kept (keeper to a recovering proxy only).
    End,
}

mod tag {
    pub const PROXY: u8 = b'P';
    pub const OPENED: u8 = b'O';
    pub const CHECKPOINT: u8 = b'C';
    pub const LINK: u8 = b'L';
    pub const CLOSED: u8 = b'X';
    pub const BEGIN: u8 = b'B';
    pub const SYNCED: u8 = b'S';
    pub const END: u8 = b'E';
}

#[derive(Debug, Error)]
pub enum KeeperError {
    #[error("a keeper message is cut short")]
    Short,
    #[error("unknown keeper record {0:?}")]
    Unknown(char),
    #[error("the records of a keeper message name {named} descriptors, {arrived} arrived")]
    Descriptors { named: usize, arrived: usize },
    #[error("a keeper message was cut short by the kernel")]
    Truncated,
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
}

impl Record {
    /// How many descriptors travel with this record.
    pub fn descriptors(&self) -> usize {
        match self {
            Record::Proxy { listeners, .. } => usize::from(*listeners),
            Record::Opened { .. } => 1,
            _ => 0,
        }
    }

    /// Its size in a message.
    pub fn encoded_len(&self) -> usize {
        1 + match self {
            Record::Proxy { state, .. } => 1 + 4 + state.len(),
            Record::Opened { checkpoint, .. } | Record::Checkpoint { checkpoint, .. } => {
                8 + 4 + checkpoint.len()
            }
            Record::Link { link, .. } => 8 + 4 + link.len(),
            Record::Closed { .. } => 8,
            Record::Begin | Record::Synced | Record::End => 0,
        }
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        fn bytes(out: &mut Vec<u8>, bytes: &[u8]) {
            out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            out.extend_from_slice(bytes);
        }
        match self {
            Record::Proxy { state, listeners } => {
                out.push(tag::PROXY);
                out.push(*listeners);
                bytes(out, state);
            }
            Record::Opened {
                session,
                checkpoint,
            } => {
                out.push(tag::OPENED);
                out.extend_from_slice(&session.to_le_bytes());
                bytes(out, checkpoint);
            }
            Record::Checkpoint {
                session,
                checkpoint,
            } => {
                out.push(tag::CHECKPOINT);
                out.extend_from_slice(&session.to_le_bytes());
                bytes(out, checkpoint);
            }
            Record::Link { session, link } => {
                out.push(tag::LINK);
                out.extend_from_slice(&session.to_le_bytes());
                bytes(out, link);
            }
            Record::Closed { session } => {
                out.push(tag::CLOSED);
                out.extend_from_slice(&session.to_le_bytes());
            }
            Record::Begin => out.push(tag::BEGIN),
            Record::Synced => out.push(tag::SYNCED),
            Record::End => out.push(tag::END),
        }
    }

    /// Every record in `message`.
    pub fn decode_all(mut message: &[u8]) -> Result<Vec<Record>, KeeperError> {
        fn take<'a>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8], KeeperError> {
            if input.len() < n {
                return Err(KeeperError::Short);
            }
            let (head, rest) = input.split_at(n);
            *input = rest;
            Ok(head)
        }
        fn u64_of(input: &mut &[u8]) -> Result<u64, KeeperError> {
            let bytes = take(input, 8)?;
            Ok(u64::from_le_bytes(
                bytes.try_into().map_err(|_| KeeperError::Short)?,
            ))
        }
        fn bytes_of(input: &mut &[u8]) -> Result<Vec<u8>, KeeperError> {
            let len = take(input, 4)?;
            let len = u32::from_le_bytes(len.try_into().map_err(|_| KeeperError::Short)?);
            Ok(take(input, len as usize)?.to_vec())
        }
        let mut records = Vec::new();
        while let Some((&tag, rest)) = message.split_first() {
            message = rest;
            let record = match tag {
                tag::PROXY => {
                    let listeners = take(&mut message, 1)?[0];
                    let state = bytes_of(&mut message)?;
                    Record::Proxy { state, listeners }
                }
                tag::OPENED => Record::Opened {
                    session: u64_of(&mut message)?,
                    checkpoint: bytes_of(&mut message)?,
                },
                tag::CHECKPOINT => Record::Checkpoint {
                    session: u64_of(&mut message)?,
                    checkpoint: bytes_of(&mut message)?,
                },
                tag::LINK => Record::Link {
                    session: u64_of(&mut message)?,
                    link: bytes_of(&mut message)?,
                },
                tag::CLOSED => Record::Closed {
                    session: u64_of(&mut message)?,
                },
                tag::BEGIN => Record::Begin,
                tag::SYNCED => Record::Synced,
                tag::END => Record::End,
                other => return Err(KeeperError::Unknown(char::from(other))),
            };
            records.push(record);
        }
        Ok(records)
    }
}

/// Packs records into messages that each fit [`BYTES_PER_MESSAGE`] and
/// [`FDS_PER_MESSAGE`], keeping their order and their descriptors beside them.
#[derive(Debug, Default)]
pub struct Batch {
    bytes: Vec<u8>,
    fds: Vec<RawFd>,
}

impl Batch {
    /// Whether `record` (with `fds` descriptors) still fits in this message.
    pub fn fits(&self, record: &Record) -> bool {
        self.bytes.is_empty()
            || (self.bytes.len() + record.encoded_len() <= BYTES_PER_MESSAGE
                && self.fds.len() + record.descriptors() <= FDS_PER_MESSAGE)
    }

    /// Adds `record` with its descriptors (which must stay open until the batch is sent).
    pub fn push(&mut self, record: &Record, fds: &[RawFd]) {
        record.encode(&mut self.bytes);
        self.fds.extend_from_slice(fds);
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Sends the message and empties the batch.
    pub fn send(&mut self, socket: &impl AsRawFd) -> Result<(), KeeperError> {
        let iov = [IoSlice::new(&self.bytes)];
        let rights = [ControlMessage::ScmRights(&self.fds)];
        let cmsgs: &[ControlMessage<'_>] = if self.fds.is_empty() { &[] } else { &rights };
        socket::sendmsg::<()>(
            socket.as_raw_fd(),
            &iov,
            cmsgs,
            MsgFlags::MSG_NOSIGNAL,
            None,
        )
        .map_err(|errno| KeeperError::Io {
            what: "sending to the keeper",
            source: errno.into(),
        })?;
        self.bytes.clear();
        self.fds.clear();
        Ok(())
    }
}

/// One message's records, and the descriptors that came with them, in order.
pub type Message = (Vec<Record>, Vec<OwnedFd>);

/// One message, its descriptors owned at once so none leaks. `Ok(None)`: the other end
/// closed. A `WouldBlock` error on a non-blocking socket means nothing is there yet.
pub fn receive(socket: &impl AsRawFd) -> Result<Option<Message>, KeeperError> {
    let mut buffer = vec![0u8; BYTES_PER_MESSAGE + 1024];
    let mut space = nix::cmsg_space!([RawFd; FDS_PER_MESSAGE]);
    let (bytes, fds, truncated) = {
        let mut iov = [IoSliceMut::new(&mut buffer)];
        let message = socket::recvmsg::<()>(
            socket.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map_err(|errno| KeeperError::Io {
            what: "receiving from the keeper socket",
            source: errno.into(),
        })?;
        let mut fds = Vec::new();
        for cmsg in message.cmsgs().map_err(|errno| KeeperError::Io {
            what: "reading the descriptors",
            source: errno.into(),
        })? {
            if let ControlMessageOwned::ScmRights(raw) = cmsg {
                // SAFETY: the kernel just installed these descriptors for this process.
                fds.extend(
                    raw.into_iter()
                        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                );
            }
        }
        let truncated = message
            .flags
            .intersects(MsgFlags::MSG_TRUNC | MsgFlags::MSG_CTRUNC);
        (message.bytes, fds, truncated)
    };
    if bytes == 0 && fds.is_empty() {
        return Ok(None);
    }
    if truncated {
        return Err(KeeperError::Truncated);
    }
    let records = Record::decode_all(&buffer[..bytes])?;
    let named: usize = records.iter().map(Record::descriptors).sum();
    if named != fds.len() {
        return Err(KeeperError::Descriptors {
            named,
            arrived: fds.len(),
        });
    }
    Ok(Some((records, fds)))
}

/// A connected pair for a keeper and its proxy, close-on-exec (the proxy's end is placed at
/// [`KEEPER_FD`] for the child alone).
pub fn pair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    socket::socketpair(
        socket::AddressFamily::Unix,
        socket::SockType::SeqPacket,
        None,
        socket::SockFlag::SOCK_CLOEXEC,
    )
    .map_err(std::io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_descriptors_arrive_in_order() {
        let (ours, theirs) = pair().expect("pair");
        let (a, _a) = pair().expect("a");
        let (b, _b) = pair().expect("b");
        let records = vec![
            Record::Begin,
            Record::Proxy {
                state: b"proxy".to_vec(),
                listeners: 1,
            },
            Record::Opened {
                session: 7,
                checkpoint: vec![1, 2, 3],
            },
            Record::Checkpoint {
                session: 7,
                checkpoint: Vec::new(),
            },
            Record::Link {
                session: 7,
                link: b"blob".to_vec(),
            },
            Record::Closed { session: 9 },
            Record::Synced,
            Record::End,
        ];
        let mut batch = Batch::default();
        let mut fds = vec![a.as_raw_fd(), b.as_raw_fd()].into_iter();
        for record in &records {
            assert!(batch.fits(record));
            let mine: Vec<RawFd> = fds.by_ref().take(record.descriptors()).collect();
            batch.push(record, &mine);
        }
        batch.send(&ours).expect("sent");
        assert!(batch.is_empty());
        let (got, fds) = receive(&theirs).expect("received").expect("a message");
        assert_eq!(got, records);
        assert_eq!(fds.len(), 2);
        drop(ours);
        assert!(receive(&theirs).expect("end").is_none());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(Record::decode_all(b"Z").is_err());
        assert!(Record::decode_all(&[tag::OPENED, 1, 2]).is_err());
        assert!(Record::decode_all(&[tag::LINK, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 0, 0]).is_err());
        assert!(Record::decode_all(&[]).expect("empty").is_empty());
    }
}
