//! The link's Unix socket, watched for reading only.
//!
//! tokio's `UnixStream` asks epoll for both directions, edge-triggered, and a Unix socket
//! reports room to write every time its peer reads: so each message the other side took
//! woke this side's thread for nothing (the core twice per command instead of once, seen
//! with strace as an `epoll_wait` returning `EPOLLOUT` alone after every `sendto`; the
//! proxy's link as well). On this machine a wake-up is most of what a command costs (see
//! BENCHMARKS.md, "The round-trip target").
//!
//! Here the socket is registered for reading only. A write goes straight to the socket;
//! only when the socket is full (a peer that does not keep up) does the writer register a
//! duplicate of the descriptor for writing, wait for room, and drop it again after the next
//! write that goes through. Registering reports the state at that moment, so room that
//! appeared in between is not missed.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};

/// A connected link socket; split it to read and write from different tasks.
#[derive(Debug)]
pub struct LinkSocket {
    socket: Arc<AsyncFd<UnixStream>>,
}

/// The reading half of a [`LinkSocket`].
#[derive(Debug)]
pub struct LinkReader {
    socket: Arc<AsyncFd<UnixStream>>,
}

/// The writing half of a [`LinkSocket`].
#[derive(Debug)]
pub struct LinkWriter {
    socket: Arc<AsyncFd<UnixStream>>,
    /// A duplicate of the descriptor, registered for writing while the socket is full.
    room: Option<AsyncFd<UnixStream>>,
}

/// Registers `socket` with the runtime's reactor for `interest` only.
fn watch(socket: UnixStream, interest: Interest) -> std::io::Result<AsyncFd<UnixStream>> {
    // SAFETY: a `UnixStream` owns its descriptor, keeps it open and never swaps it for
    // another for as long as it lives, which here is as long as the `AsyncFd`.
    Ok(unsafe { AsyncFd::register_with_interest(socket, interest) }?)
}

impl LinkSocket {
    /// Takes a connected socket (made non-blocking here). Needs a tokio runtime with I/O.
    pub fn new(socket: UnixStream) -> std::io::Result<LinkSocket> {
        socket.set_nonblocking(true)?;
        Ok(LinkSocket {
            socket: Arc::new(watch(socket, Interest::READABLE)?),
        })
    }

    pub fn into_split(self) -> (LinkReader, LinkWriter) {
        (
            LinkReader {
                socket: self.socket.clone(),
            },
            LinkWriter {
                socket: self.socket,
                room: None,
            },
        )
    }
}

/// The socket back from its two halves (for a hand-over); `None` if they are not halves of
/// one socket.
pub fn reunite(reader: LinkReader, writer: LinkWriter) -> Option<UnixStream> {
    if !Arc::ptr_eq(&reader.socket, &writer.socket) {
        return None;
    }
    drop(writer.room);
    drop(reader);
    Arc::try_unwrap(writer.socket).ok().map(AsyncFd::into_inner)
}

impl AsyncRead for LinkReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        loop {
            let mut ready = ready!(self.socket.poll_read_ready(cx))?;
            // Not zeroed first (a reader's buffer is reserved, not filled, before each read).
            // SAFETY: nothing uninitialised is read from it; read(2) only writes.
            let unfilled = unsafe { buf.unfilled_mut() };
            let read = ready.try_io(|socket| {
                // SAFETY: the pointer and length are those of `unfilled`, which outlives it.
                let read = unsafe {
                    nix::libc::read(
                        socket.as_raw_fd(),
                        unfilled.as_mut_ptr().cast(),
                        unfilled.len(),
                    )
                };
                usize::try_from(read).map_err(|_| std::io::Error::last_os_error())
            });
            match read {
                Ok(Ok(read)) => {
                    // SAFETY: read(2) wrote these `read` bytes.
                    unsafe { buf.assume_init(read) };
                    buf.advance(read);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(error)) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Ok(Err(error)) => return Poll::Ready(Err(error)),
                // Read to the end of what was there: wait for the next edge.
                Err(_would_block) => {}
            }
        }
    }
}

impl AsyncWrite for LinkWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        loop {
            match self.socket.get_ref().write(buf) {
                Ok(written) => {
                    // Room again: stop watching for it.
                    self.room = None;
                    return Poll::Ready(Ok(written));
                }
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(error) if error.kind() != std::io::ErrorKind::WouldBlock => {
                    return Poll::Ready(Err(error));
                }
                Err(_full) => {}
            }
            if self.room.is_none() {
                let duplicate = self.socket.get_ref().try_clone()?;
                self.room = Some(watch(duplicate, Interest::WRITABLE)?);
            }
            let Some(room) = &self.room else {
                continue;
            };
            let mut ready = ready!(room.poll_write_ready(cx))?;
            // Whether there is room is the next write's to say.
            ready.clear_ready();
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(self.socket.get_ref().shutdown(std::net::Shutdown::Write))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn carries_bytes_both_ways_and_waits_for_room_when_full() -> std::io::Result<()> {
        let (ours, theirs) = UnixStream::pair()?;
        let (mut reader, mut writer) = LinkSocket::new(ours)?.into_split();
        let (mut their_reader, mut their_writer) = LinkSocket::new(theirs)?.into_split();

        writer.write_all(b"submit").await?;
        let mut got = [0u8; 6];
        their_reader.read_exact(&mut got).await?;
        assert_eq!(&got, b"submit");
        their_writer.write_all(b"deliver").await?;
        let mut got = [0u8; 7];
        reader.read_exact(&mut got).await?;
        assert_eq!(&got, b"deliver");

        // Far more than the socket's buffers hold: the writer must wait for room, and
        // every byte arrives once, in order.
        let big: Vec<u8> = (0..8 << 20).map(|i| (i % 251) as u8).collect();
        let sent = big.clone();
        let sending = tokio::spawn(async move {
            writer.write_all(&sent).await?;
            writer.shutdown().await?;
            Ok::<_, std::io::Error>(writer)
        });
        let mut received = Vec::new();
        their_reader.read_to_end(&mut received).await?;
        assert!(received == big, "all of it, in order");
        let writer = sending.await.map_err(std::io::Error::other)??;
        assert!(writer.room.is_none(), "no longer watching for room");
        assert!(reunite(reader, writer).is_some());
        Ok(())
    }
}
