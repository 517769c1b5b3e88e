//! One telnet connection: the async shell around the sans-IO telnet parser, line assembler and
//! flood guard. It reads bytes, turns them into lines for the link, and writes what the link
//! routes back. It never waits on the core: the link may be down for seconds and this task
//! keeps reading, answering and queueing.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::flood::{FloodGuard, FloodLimits, Verdict};
use crate::line::{LineAssembler, LineEvent, MAX_LINE_BYTES};
use crate::link::{SessionHandle, ToLink};
use crate::relay::{SessionInfo, ToSession};
use crate::shutdown::Shutdown;
use crate::telnet::{self, OptionPolicy, TelnetEvent, TelnetParser};

/// Messages the link may queue for one session before it is considered stuck.
const OUTPUT_QUEUE: usize = 1024;
/// A client that does not take our output within this long is gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
const READ_BUFFER: usize = 4096;

pub const SHUTDOWN_MESSAGE: &str = "The game is shutting down. Goodbye!";

/// Serves one connection until it closes. `link` is how lines reach the core.
pub async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    session: u64,
    link: mpsc::Sender<ToLink>,
    mut shutdown: Shutdown,
) {
    if let Err(error) = stream.set_nodelay(true) {
        debug!(session, %error, "cannot disable Nagle");
    }
    let (mut reader, writer) = stream.into_split();
    let mut out = Output {
        writer,
        buffer: Vec::with_capacity(512),
    };
    let (messages_tx, mut messages) = mpsc::channel(OUTPUT_QUEUE);
    let overflow = CancellationToken::new();
    let handle = SessionHandle {
        messages: messages_tx,
        overflow: overflow.clone(),
    };
    let info = SessionInfo {
        transport: "telnet".into(),
        remote_addr: peer.to_string(),
    };
    if link
        .send(ToLink::Opened {
            session,
            info,
            handle,
        })
        .await
        .is_err()
    {
        return;
    }
    info!(session, %peer, "connected");

    let mut input = Input {
        parser: TelnetParser::new(),
        policy: OptionPolicy::default(),
        lines: LineAssembler::new(MAX_LINE_BYTES),
        flood: FloodGuard::new(FloodLimits::default(), Instant::now()),
        telnet_events: Vec::new(),
        line_events: Vec::new(),
    };
    let mut read_buffer = vec![0u8; READ_BUFFER];

    let reason = loop {
        tokio::select! {
            read = reader.read(&mut read_buffer) => {
                let n = match read {
                    Ok(0) => break "connection closed by client".to_string(),
                    Ok(n) => n,
                    Err(error) => break format!("read error: {error}"),
                };
                match input.bytes(&read_buffer[..n], &mut out) {
                    Ok(lines) => {
                        for text in lines {
                            if link.send(ToLink::Line { session, text }).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(reason) => {
                        out.notice(&reason);
                        let _ = out.flush().await;
                        break reason;
                    }
                }
                if let Err(error) = out.flush().await {
                    break format!("write error: {error}");
                }
            }
            message = messages.recv() => {
                let Some(message) = message else {
                    break "link gone".to_string();
                };
                let closing = out.message(message);
                // Drain whatever else is already queued into the same write.
                let closing = closing.or_else(|| {
                    while let Ok(next) = messages.try_recv() {
                        if let Some(reason) = out.message(next) {
                            return Some(reason);
                        }
                    }
                    None
                });
                if let Err(error) = out.flush().await {
                    break format!("write error: {error}");
                }
                if let Some(reason) = closing {
                    break reason;
                }
            }
            _ = overflow.cancelled() => {
                let reason = "Disconnected: output was not being read fast enough.".to_string();
                out.notice(&reason);
                let _ = out.flush().await;
                break reason;
            }
            _ = shutdown.wait() => {
                out.notice(SHUTDOWN_MESSAGE);
                let _ = out.flush().await;
                break "proxy shutting down".to_string();
            }
        }
    };
    let _ = out.writer.shutdown().await;
    info!(session, %peer, %reason, "disconnected");
    let _ = link.send(ToLink::Closed { session, reason }).await;
}

/// The read side's sans-IO pieces.
struct Input {
    parser: TelnetParser,
    policy: OptionPolicy,
    lines: LineAssembler,
    flood: FloodGuard,
    telnet_events: Vec<TelnetEvent>,
    line_events: Vec<LineEvent>,
}

impl Input {
    /// Bytes from the client: returns the complete lines to submit, or a reason to close.
    fn bytes(&mut self, bytes: &[u8], out: &mut Output) -> Result<Vec<String>, String> {
        let mut accepted = Vec::new();
        self.telnet_events.clear();
        self.parser.feed(bytes, &mut self.telnet_events);
        for event in self.telnet_events.drain(..) {
            if let TelnetEvent::Data(data) = &event {
                self.lines.push(data, &mut self.line_events);
                continue;
            }
            if let Some(answer) = self.policy.answer(&event) {
                out.buffer.extend_from_slice(&answer);
            }
        }
        for event in self.line_events.drain(..) {
            match event {
                LineEvent::Overlong { limit } => out.notice(&format!(
                    "That line was longer than {limit} bytes and was discarded."
                )),
                LineEvent::Line(line) => {
                    if line.had_invalid_utf8 {
                        out.notice(
                            "That line was not valid UTF-8; unreadable bytes were replaced.",
                        );
                    }
                    match self.flood.check(Instant::now()) {
                        Verdict::Accept => accepted.push(line.text),
                        Verdict::Refuse { first } => {
                            if first {
                                let wait = self.flood.wait_hint().as_millis();
                                out.notice(&format!(
                                    "You are sending too fast; lines are refused until you \
                                     slow down (try again in {wait} ms)."
                                ));
                            }
                        }
                        Verdict::Disconnect => {
                            return Err("Disconnected: too much input (flood).".to_string());
                        }
                    }
                }
            }
        }
        Ok(accepted)
    }
}

/// The write side: everything for one write is gathered in `buffer` first.
struct Output {
    writer: OwnedWriteHalf,
    buffer: Vec<u8>,
}

impl Output {
    /// Encodes one message; returns the reason if the connection must now close.
    fn message(&mut self, message: ToSession) -> Option<String> {
        match message {
            ToSession::Output(text) => {
                telnet::encode_text(&text, &mut self.buffer);
                self.buffer.extend_from_slice(b"\r\n");
                None
            }
            ToSession::Notice(text) => {
                self.notice(&text);
                None
            }
            ToSession::Disconnect(reason) => {
                telnet::encode_text(&reason, &mut self.buffer);
                self.buffer.extend_from_slice(b"\r\n");
                Some(reason)
            }
        }
    }

    /// A line from tether itself, marked so it cannot be mistaken for game text.
    fn notice(&mut self, text: &str) {
        telnet::encode_text(&format!("[tether] {text}"), &mut self.buffer);
        self.buffer.extend_from_slice(b"\r\n");
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let result = tokio::time::timeout(WRITE_TIMEOUT, self.writer.write_all(&self.buffer))
            .await
            .unwrap_or_else(|_| {
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "client stopped reading",
                ))
            });
        self.buffer.clear();
        result
    }
}
