//! WebSocket connections over a TCP socket this proxy owns outright, so that a live one can
//! be handed to the next proxy between two messages, the browser none the wiser.
//!
//! tungstenite does the protocol (masking, control frames, UTF-8, close codes, size limits)
//! through its `WebSocketContext`, which reads from and writes to any `Read + Write`. Here
//! that is a pair of buffers, and the context is only ever given one whole message at a time
//! (frames are found with tungstenite's own header parser): after it hands the message back
//! its buffers are empty, so every byte not yet made sense of is in `unparsed`, ours. That,
//! and nothing of tungstenite's, is what a hand-over carries.
//!
//! The HTTP upgrade itself is answered here too (`accept_key`): hyper gives back the very TCP
//! socket the request came on, with whatever the browser sent after it.

use std::io::{Cursor, Read, Write};
use std::os::fd::OwnedFd;

use axum::http::{HeaderMap, header};
use tokio::net::TcpStream;
use tungstenite::protocol::frame::coding::OpCode;
use tungstenite::protocol::frame::{CloseFrame, FrameHeader};
use tungstenite::protocol::{Message, Role, WebSocketConfig, WebSocketContext};

use crate::close::CloseReason;
use crate::conn::Conn;
use crate::session::{CarriedSocket, Transport};
use crate::web::{Frame, MAX_MESSAGE};

/// The `Sec-WebSocket-Accept` answer to a valid upgrade request, or why it is not one.
pub fn accept_key(headers: &HeaderMap) -> Result<String, &'static str> {
    let has = |name: header::HeaderName, word: &str| {
        headers.get_all(name).iter().any(|value| {
            value.to_str().is_ok_and(|value| {
                value
                    .split(',')
                    .any(|part| part.trim().eq_ignore_ascii_case(word))
            })
        })
    };
    if !has(header::CONNECTION, "upgrade") || !has(header::UPGRADE, "websocket") {
        return Err("this address takes WebSocket connections only");
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|version| version != "13")
    {
        return Err("only WebSocket version 13 is spoken here");
    }
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .ok_or("the WebSocket key is missing")?;
    Ok(tungstenite::handshake::derive_accept_key(key.as_bytes()))
}

/// What tungstenite reads from and writes to: memory, never the socket.
#[derive(Default)]
struct Buffers {
    input: Vec<u8>,
    read: usize,
    output: Vec<u8>,
}

impl Read for Buffers {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let rest = &self.input[self.read..];
        if rest.is_empty() {
            return Err(std::io::ErrorKind::WouldBlock.into());
        }
        let n = rest.len().min(buffer.len());
        buffer[..n].copy_from_slice(&rest[..n]);
        self.read += n;
        if self.read == self.input.len() {
            self.input = Vec::new();
            self.read = 0;
        }
        Ok(n)
    }
}

impl Write for Buffers {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.output.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A WebSocket session's connection, in `gmcp.mudstandards.org` frames.
pub struct WsTransport {
    /// The socket (or TLS over it), with the frames not all written yet.
    conn: Conn,
    context: WebSocketContext,
    buffers: Buffers,
    /// Bytes from the socket not yet given to the context: a message not all here yet.
    unparsed: Vec<u8>,
}

fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE))
}

impl WsTransport {
    /// A connection just upgraded: `unparsed` is what the browser sent after the request.
    pub fn new(conn: Conn, unparsed: Vec<u8>) -> WsTransport {
        WsTransport {
            conn,
            context: WebSocketContext::new(Role::Server, Some(config())),
            buffers: Buffers::default(),
            unparsed,
        }
    }

    /// A connection carried on from another proxy: what it had read and not made sense of,
    /// and the frames it had not written.
    pub fn resume(stream: TcpStream, unparsed: Vec<u8>, unwritten: Vec<u8>) -> WsTransport {
        WsTransport::new(Conn::plain(stream, unwritten), unparsed)
    }

    /// Moves what the context produced (whole frames) to the queue for the socket.
    fn take_frames(&mut self) -> std::io::Result<()> {
        let _ = self.context.flush(&mut self.buffers);
        let frames = std::mem::take(&mut self.buffers.output);
        if frames.is_empty() {
            return Ok(());
        }
        self.conn.push(frames)
    }

    /// The length of the first whole message at the front of `unparsed` (fragments and all),
    /// once it is all there. A control frame counts as a message of its own, unless it came
    /// between the fragments of one, which then waits for the rest.
    fn next_message_len(&self) -> Result<Option<usize>, CloseReason> {
        let mut cursor = Cursor::new(&self.unparsed[..]);
        let mut fragmented = false;
        loop {
            let Some((header, length)) = FrameHeader::parse(&mut cursor)
                .map_err(|error| CloseReason::WebSocketError(error.to_string()))?
            else {
                return Ok(None);
            };
            if length > MAX_MESSAGE as u64 {
                return Err(CloseReason::FrameTooLarge(MAX_MESSAGE));
            }
            let end = cursor.position() + length;
            if end > self.unparsed.len() as u64 {
                // Bounded: a frame is at most MAX_MESSAGE, and so is a message (below).
                return Ok(None);
            }
            // A message in many fragments is bounded too (tungstenite refuses it later anyway).
            if end as usize > 2 * MAX_MESSAGE {
                return Err(CloseReason::FrameTooLarge(MAX_MESSAGE));
            }
            cursor.set_position(end);
            let data = matches!(header.opcode, OpCode::Data(_));
            if data {
                fragmented = !header.is_final;
            }
            if !fragmented {
                return Ok(Some(end as usize));
            }
        }
    }

    /// Writes what the context has for the socket without waiting (a pong, say); what does
    /// not fit now goes with the next flush.
    fn write_replies(&mut self) {
        // A failed write shows at the next flush or read.
        let _ = self.take_frames().and_then(|()| self.conn.write_now());
    }
}

/// What a broken WebSocket read means.
fn read_failure(error: tungstenite::Error) -> CloseReason {
    match error {
        tungstenite::Error::Capacity(_) => CloseReason::FrameTooLarge(MAX_MESSAGE),
        tungstenite::Error::Io(error) => CloseReason::ReadFailed(error.to_string()),
        other => CloseReason::WebSocketError(other.to_string()),
    }
}

impl Transport for WsTransport {
    type In = Frame;
    type Out = Frame;

    async fn recv(&mut self) -> Result<Option<Frame>, CloseReason> {
        loop {
            // Only ever one whole message in the context, so nothing stays inside it.
            if let Some(len) = self.next_message_len()? {
                self.buffers.input = self.unparsed.drain(..len).collect();
                self.buffers.read = 0;
                // Until the context has used every byte of it: a ping between fragments
                // comes out before the message it interrupted.
                loop {
                    let read = self.context.read(&mut self.buffers);
                    // The answer to a ping, or to a close, is written at once.
                    self.write_replies();
                    match read {
                        Ok(Message::Text(text)) => return Ok(Some(Frame::Text(text.to_string()))),
                        Ok(Message::Binary(bytes)) => {
                            return Ok(Some(Frame::Binary(bytes.to_vec())));
                        }
                        Ok(Message::Close(_)) => return Ok(None),
                        Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => {}
                        Err(
                            tungstenite::Error::ConnectionClosed
                            | tungstenite::Error::AlreadyClosed,
                        ) => return Ok(None),
                        Err(tungstenite::Error::Io(error))
                            if error.kind() == std::io::ErrorKind::WouldBlock =>
                        {
                            break;
                        }
                        Err(error) => return Err(read_failure(error)),
                    }
                }
                continue;
            }
            // Cancel safe, as `select!` in the session needs: nothing is read until ready.
            match self.conn.read().await? {
                Some(bytes) => self.unparsed.extend_from_slice(&bytes),
                None => return Ok(None),
            }
        }
    }

    fn queue(&mut self, output: Vec<Frame>) -> std::io::Result<()> {
        for frame in output {
            let message = match frame {
                Frame::Text(text) => Message::Text(text.into()),
                Frame::Binary(bytes) => Message::Binary(bytes.into()),
            };
            self.context
                .write(&mut self.buffers, message)
                .map_err(std::io::Error::other)?;
        }
        self.take_frames()
    }

    fn write_now(&mut self) -> std::io::Result<bool> {
        self.conn.write_now()
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        // A browser that stops reading must not hold its session forever (the timeout).
        self.conn.flush().await
    }

    async fn close(&mut self, reason: &CloseReason) {
        let code = reason.websocket_code();
        // Close reasons are limited to 123 bytes.
        let mut reason = reason.to_string();
        while reason.len() > 120 {
            reason.pop();
        }
        let _ = self.context.close(
            &mut self.buffers,
            Some(CloseFrame {
                code: code.into(),
                reason: reason.into(),
            }),
        );
        let _ = self.take_frames();
        let _ = self.flush().await;
        self.conn.shutdown().await;
    }

    fn socket_copy(&self) -> Option<OwnedFd> {
        self.conn.socket_copy()
    }

    fn is_tls(&self) -> bool {
        matches!(self.conn, Conn::Tls(_))
    }

    fn into_socket(mut self) -> Result<CarriedSocket, WsTransport> {
        let _ = self.take_frames();
        let WsTransport {
            conn,
            context,
            buffers,
            unparsed,
        } = self;
        match conn.into_socket() {
            Ok((socket, unwritten)) => Ok(CarriedSocket {
                socket,
                unread: unparsed,
                unwritten,
            }),
            Err(conn) => Err(WsTransport {
                conn,
                context,
                buffers,
                unparsed,
            }),
        }
    }
}

/// `telnet.mudstandards.org`: the telnet stream, in binary frames.
pub struct TelnetFrames(pub WsTransport);

impl Transport for TelnetFrames {
    type In = Vec<u8>;
    type Out = Vec<u8>;

    async fn recv(&mut self) -> Result<Option<Vec<u8>>, CloseReason> {
        Ok(self.0.recv().await?.map(|frame| match frame {
            Frame::Binary(bytes) => bytes,
            Frame::Text(text) => text.into_bytes(),
        }))
    }

    fn queue(&mut self, output: Vec<Vec<u8>>) -> std::io::Result<()> {
        self.0
            .queue(output.into_iter().map(Frame::Binary).collect())
    }

    fn write_now(&mut self) -> std::io::Result<bool> {
        Transport::write_now(&mut self.0)
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush().await
    }

    async fn close(&mut self, reason: &CloseReason) {
        self.0.close(reason).await;
    }

    fn socket_copy(&self) -> Option<OwnedFd> {
        self.0.socket_copy()
    }

    fn is_tls(&self) -> bool {
        self.0.is_tls()
    }

    fn into_socket(self) -> Result<CarriedSocket, TelnetFrames> {
        self.0.into_socket().map_err(TelnetFrames)
    }
}

/// A socket carried from another process, back on this runtime.
pub fn adopt(socket: OwnedFd) -> std::io::Result<TcpStream> {
    let stream = std::net::TcpStream::from(socket);
    stream.set_nonblocking(true)?;
    TcpStream::from_std(stream)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    fn frame(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
        // Client frames are masked; a zero mask keeps the payload readable.
        let mut bytes = vec![
            if fin { 0x80 } else { 0 } | opcode,
            0x80 | payload.len() as u8,
        ];
        bytes.extend_from_slice(&[0, 0, 0, 0]);
        bytes.extend_from_slice(payload);
        bytes
    }

    async fn pair() -> (WsTransport, tokio::net::TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        (WsTransport::resume(server, Vec::new(), Vec::new()), client)
    }

    #[tokio::test]
    async fn a_message_cut_anywhere_travels_with_the_socket() {
        let (mut first, mut client) = pair().await;
        let mut bytes = frame(2, true, b"look");
        // "north", in two fragments with a ping between them.
        bytes.extend(frame(2, false, b"nor"));
        bytes.extend(frame(9, true, b"p"));
        bytes.extend(frame(0, true, b"th"));
        let cut = bytes.len() - 3;
        client.write_all(&bytes[..cut]).await.expect("write");
        assert_eq!(
            first.recv().await.expect("read"),
            Some(Frame::Binary(b"look".to_vec()))
        );
        // Let the rest of the first write arrive, then hand over mid-message.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let recv = tokio::time::timeout(std::time::Duration::from_millis(50), first.recv()).await;
        assert!(recv.is_err(), "the cut message is not whole yet");
        let carried = first.into_socket().ok().expect("carried");
        assert!(!carried.unread.is_empty());

        let mut second = WsTransport::resume(
            adopt(carried.socket).expect("adopt"),
            carried.unread,
            Vec::new(),
        );
        client.write_all(&bytes[cut..]).await.expect("write");
        assert_eq!(
            second.recv().await.expect("read"),
            Some(Frame::Binary(b"north".to_vec()))
        );
        // The ping was answered (a pong frame, opcode 10).
        second.flush().await.expect("flush");
        let mut answer = [0u8; 3];
        use tokio::io::AsyncReadExt;
        client.read_exact(&mut answer).await.expect("pong");
        assert_eq!(answer, [0x8a, 1, b'p']);
    }
}
