//! The bytes under a WebSocket session: a plain socket, which the proxy can hand to its
//! successor or its keeper, or TLS over one (HTTPS), which it cannot (see `tls`).

use std::os::fd::{AsFd, OwnedFd};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::close::CloseReason;
use crate::session::{self, Unsent};
use crate::tls::TlsWire;

pub enum Conn {
    Plain { stream: TcpStream, unsent: Unsent },
    Tls(Box<TlsWire>),
}

impl Conn {
    /// A plain socket, with output a previous proxy had not written.
    pub fn plain(stream: TcpStream, unwritten: Vec<u8>) -> Conn {
        Conn::Plain {
            stream,
            unsent: Unsent::new(unwritten),
        }
    }

    /// The next bytes from the client; `Ok(None)` once it has ended. Cancel safe: nothing
    /// is read until it is ready.
    pub async fn read(&mut self) -> Result<Option<Vec<u8>>, CloseReason> {
        match self {
            Conn::Tls(wire) => wire.read().await,
            Conn::Plain { stream, .. } => loop {
                if let Err(error) = stream.readable().await {
                    return Err(CloseReason::ReadFailed(error.to_string()));
                }
                let mut chunk = [0u8; 4096];
                match stream.try_read(&mut chunk) {
                    Ok(0) => return Ok(None),
                    Ok(n) => return Ok(Some(chunk[..n].to_vec())),
                    Err(error)
                        if matches!(
                            error.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                        ) => {}
                    Err(error) => return Err(CloseReason::ReadFailed(error.to_string())),
                }
            },
        }
    }

    /// Queues bytes for the client (encrypted first, over TLS); nothing is written yet.
    pub fn push(&mut self, bytes: Vec<u8>) -> std::io::Result<()> {
        match self {
            Conn::Plain { unsent, .. } => {
                unsent.push(bytes);
                Ok(())
            }
            Conn::Tls(wire) => wire.push(&bytes),
        }
    }

    /// Writes what the socket takes now: `Ok(true)` once nothing is left.
    pub fn write_now(&mut self) -> std::io::Result<bool> {
        match self {
            Conn::Plain { stream, unsent } => {
                unsent.write_now(stream)?;
                Ok(unsent.is_done())
            }
            Conn::Tls(wire) => wire.write_now(),
        }
    }

    /// Writes everything queued, within the write timeout. Cancel safe.
    pub async fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Plain { stream, unsent } => {
                session::within_write_timeout(unsent.write_all(stream)).await
            }
            Conn::Tls(wire) => wire.flush().await,
        }
    }

    pub async fn shutdown(&mut self) {
        match self {
            Conn::Plain { stream, .. } => {
                let _ = stream.shutdown().await;
            }
            Conn::Tls(wire) => wire.shutdown().await,
        }
    }

    /// A copy of a plain socket, for the keeper.
    pub fn socket_copy(&self) -> Option<OwnedFd> {
        match self {
            Conn::Plain { stream, .. } => stream.as_fd().try_clone_to_owned().ok(),
            Conn::Tls(_) => None,
        }
    }

    /// A plain socket for the next proxy, with what was not written; the connection back if
    /// it cannot go.
    pub fn into_socket(self) -> Result<(OwnedFd, Vec<u8>), Conn> {
        match self {
            Conn::Plain { stream, mut unsent } => match stream.as_fd().try_clone_to_owned() {
                Ok(socket) => Ok((socket, unsent.take())),
                Err(_) => Err(Conn::Plain { stream, unsent }),
            },
            tls @ Conn::Tls(_) => Err(tls),
        }
    }
}
