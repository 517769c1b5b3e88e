//! Link messages on a byte stream: Cap'n Proto's standard serialization, one message after
//! another, with no framing of our own (so a core in another language can use its library's
//! `readMessage`/`writeMessage` as they are).
//!
//! `message_len` is the sans-IO part: it tells from the first bytes of a buffer whether a whole
//! message is there and how long it is, and refuses a header that announces more than a link
//! message may hold. `MessageReader` is the thin async shell around it.

use capnp::message::{Builder, HeapAllocator, Reader, ReaderOptions};
use capnp::serialize::{self, BufferSegments};
use tokio::io::{AsyncRead, AsyncReadExt};

/// The largest message either side accepts. A core's `deliver` batches are cut well below it
/// (8,192 events); a peer announcing more is broken or hostile, and the connection is closed.
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;
/// Segments per message: the builders here start small and grow, a few segments at most.
const MAX_SEGMENTS: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum FramingError {
    #[error("a link message announced {0} segments (at most {MAX_SEGMENTS})")]
    TooManySegments(usize),
    #[error("a link message announced {0} bytes (at most {MAX_MESSAGE_BYTES})")]
    TooLarge(usize),
    #[error("the link connection ended in the middle of a message")]
    Truncated,
    #[error("reading the link: {0}")]
    Io(#[from] std::io::Error),
    #[error("decoding a link message: {0}")]
    Decode(#[from] capnp::Error),
}

/// The length in bytes of the message at the start of `bytes`, once all of it is there
/// (`None`: not yet).
pub fn message_len(bytes: &[u8]) -> Result<Option<usize>, FramingError> {
    let word = |i: usize| -> Option<usize> {
        let b = bytes.get(i * 4..i * 4 + 4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let Some(first) = word(0) else {
        return Ok(None);
    };
    let segments = first.saturating_add(1);
    if segments > MAX_SEGMENTS {
        return Err(FramingError::TooManySegments(segments));
    }
    // The count and one size per segment, padded to a whole 8-byte word.
    let header = (4 + 4 * segments).next_multiple_of(8);
    let mut total = header;
    for i in 1..=segments {
        let Some(words) = word(i) else {
            return Ok(None);
        };
        total = total.saturating_add(words.saturating_mul(8));
        if total > MAX_MESSAGE_BYTES {
            return Err(FramingError::TooLarge(total));
        }
    }
    Ok((bytes.len() >= total).then_some(total))
}

/// A builder for one outgoing message. It starts with a 1 KiB segment (one command's batch
/// fits) rather than capnp's 8 KiB default, which would be zeroed for every message.
pub fn builder() -> Builder<HeapAllocator> {
    Builder::new(HeapAllocator::new().first_segment_words(128))
}

/// Appends `message`, serialized, to `out`.
pub fn append<A: capnp::message::Allocator>(message: &Builder<A>, out: &mut Vec<u8>) {
    // Writing to a Vec cannot fail.
    let _ = serialize::write_message(&mut *out, message);
}

/// What both sides accept: the size limit, and traversal limited to the same.
pub fn reader_options() -> ReaderOptions {
    let mut options = ReaderOptions::new();
    options.traversal_limit_in_words(Some(MAX_MESSAGE_BYTES / 8));
    options
}

/// Reads link messages off a stream, one at a time, without copying them out of its buffer.
pub struct MessageReader<R> {
    inner: R,
    buffer: Vec<u8>,
    /// Where the unread bytes start; what comes before was handed out already.
    start: usize,
    /// The length of the message handed out last, consumed at the next call.
    handed_out: usize,
}

/// One message as read: it borrows the reader's buffer until it is dropped.
pub type Message<'a> = Reader<BufferSegments<&'a [u8]>>;

const READ_CHUNK: usize = 16 * 1024;

impl<R: AsyncRead + Unpin> MessageReader<R> {
    pub fn new(inner: R) -> Self {
        MessageReader {
            inner,
            buffer: Vec::new(),
            start: 0,
            handed_out: 0,
        }
    }

    /// A reader that carries on where another left off: `unread` is what that one had read
    /// from the stream and not handed out ([`MessageReader::into_parts`]).
    pub fn resume(inner: R, unread: Vec<u8>) -> Self {
        MessageReader {
            inner,
            buffer: unread,
            start: 0,
            handed_out: 0,
        }
    }

    /// The stream, and the bytes read from it that no message handed out yet covers (part of
    /// the next message, or more), so another reader can carry on without losing any.
    pub fn into_parts(mut self) -> (R, Vec<u8>) {
        self.start += std::mem::take(&mut self.handed_out);
        self.buffer.drain(..self.start);
        (self.inner, self.buffer)
    }

    /// The next message; `None` when the peer closed the stream between two messages.
    pub async fn next(&mut self) -> Result<Option<Message<'_>>, FramingError> {
        self.start += std::mem::take(&mut self.handed_out);
        if self.start == self.buffer.len() {
            self.buffer.clear();
            self.start = 0;
            if self.buffer.capacity() > 4 * READ_CHUNK {
                // A large batch went by; give the memory back once it has been read.
                self.buffer.shrink_to(READ_CHUNK);
            }
        }
        let len = loop {
            if let Some(len) = message_len(&self.buffer[self.start..])? {
                break len;
            }
            // Keep what is unread at the front, so the buffer is only as large as the
            // largest message (and an idle link holds none).
            if self.start > 0 {
                self.buffer.drain(..self.start);
                self.start = 0;
            }
            // Into spare capacity, not zeroed first (a zeroed 16 KiB per read was a third of
            // the core's instructions per command); a read cancelled here appends nothing.
            self.buffer.reserve(READ_CHUNK);
            if self.inner.read_buf(&mut self.buffer).await? == 0 {
                return if self.buffer.is_empty() {
                    Ok(None)
                } else {
                    Err(FramingError::Truncated)
                };
            }
        };
        self.handed_out = len;
        let mut bytes = &self.buffer[self.start..self.start + len];
        Ok(Some(serialize::read_message_from_flat_slice(
            &mut bytes,
            reader_options(),
        )?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link_capnp::{core_message, proxy_message};

    fn submit_of(lines: &[&str]) -> Vec<u8> {
        let mut message = builder();
        let root = message.init_root::<proxy_message::Builder>();
        let mut events = root.init_submit(lines.len() as u32);
        for (i, text) in lines.iter().enumerate() {
            let mut event = events.reborrow().get(i as u32);
            event.set_session(7);
            let mut line = event.init_line();
            line.set_seq(i as u64 + 1);
            line.set_text(*text);
        }
        let mut out = Vec::new();
        append(&message, &mut out);
        out
    }

    fn texts(message: &Message<'_>) -> Vec<String> {
        let root = message.get_root::<proxy_message::Reader>().expect("root");
        let Ok(proxy_message::Submit(events)) = root.which() else {
            panic!("not a submit");
        };
        events
            .expect("events")
            .iter()
            .map(|event| match event.which() {
                Ok(crate::link_capnp::proxy_event::Line(line)) => line
                    .expect("line")
                    .get_text()
                    .expect("text")
                    .to_string()
                    .expect("utf-8"),
                _ => panic!("not a line"),
            })
            .collect()
    }

    #[tokio::test]
    async fn a_reader_handed_on_mid_message_loses_nothing() {
        let mut bytes = submit_of(&["look"]);
        bytes.extend(submit_of(&["north", "say hi"]));
        // The first message and half of the second arrive before the hand-on.
        let cut = bytes.len() - 10;
        let mut first = MessageReader::new(&bytes[..cut]);
        let message = first.next().await.expect("readable").expect("a message");
        assert_eq!(texts(&message), ["look"]);
        let (_, unread) = first.into_parts();
        let mut second = MessageReader::resume(&bytes[cut..], unread);
        let message = second.next().await.expect("readable").expect("a message");
        assert_eq!(texts(&message), ["north", "say hi"]);
        assert!(second.next().await.expect("clean end").is_none());
    }

    #[test]
    fn length_is_known_only_once_the_whole_message_is_there() {
        let bytes = submit_of(&["look", "say hello"]);
        for cut in 0..bytes.len() {
            assert_eq!(message_len(&bytes[..cut]).expect("valid"), None, "at {cut}");
        }
        assert_eq!(message_len(&bytes).expect("valid"), Some(bytes.len()));
        let mut two = bytes.clone();
        two.extend_from_slice(&bytes);
        assert_eq!(message_len(&two).expect("valid"), Some(bytes.len()));
    }

    #[test]
    fn oversized_headers_are_refused_before_anything_is_buffered() {
        let mut huge = Vec::new();
        huge.extend_from_slice(&0u32.to_le_bytes());
        huge.extend_from_slice(&(u32::MAX).to_le_bytes());
        assert!(matches!(message_len(&huge), Err(FramingError::TooLarge(_))));
        let many = 100_000u32.to_le_bytes();
        assert!(matches!(
            message_len(&many),
            Err(FramingError::TooManySegments(_))
        ));
    }

    #[tokio::test]
    async fn messages_come_out_one_by_one_however_the_bytes_are_cut() {
        let mut stream = submit_of(&["look"]);
        stream.extend(submit_of(&["north", "say it is dark"]));
        let long = "x".repeat(40_000);
        stream.extend(submit_of(&[long.as_str()]));
        for chunk in [1, 3, 8, 1000, stream.len()] {
            let (mut client, server) = tokio::io::duplex(chunk);
            let bytes = stream.clone();
            let writer = tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                for piece in bytes.chunks(chunk) {
                    client.write_all(piece).await.expect("write");
                }
            });
            let mut reader = MessageReader::new(server);
            let mut seen = Vec::new();
            while let Some(message) = reader.next().await.expect("valid stream") {
                seen.push(texts(&message));
            }
            writer.await.expect("writer");
            assert_eq!(
                seen,
                vec![
                    vec!["look".to_string()],
                    vec!["north".to_string(), "say it is dark".to_string()],
                    vec![long.clone()],
                ],
                "chunks of {chunk}"
            );
        }
    }

    #[tokio::test]
    async fn a_stream_cut_inside_a_message_is_an_error_not_an_end() {
        let bytes = submit_of(&["look"]);
        let mut reader = MessageReader::new(&bytes[..bytes.len() - 1]);
        assert!(matches!(reader.next().await, Err(FramingError::Truncated)));
    }

    #[tokio::test]
    async fn garbage_closes_with_a_reason() {
        let mut reader = MessageReader::new(&[0xffu8; 64][..]);
        let error = reader.next().await.err().expect("refused");
        assert!(error.to_string().contains("segments"), "{error}");
        // A plausible header whose body is not a CoreMessage still decodes as a message; the
        // union check is the caller's.
        let mut message = builder();
        message
            .init_root::<core_message::Builder>()
            .set_accepted(());
        let mut out = Vec::new();
        append(&message, &mut out);
        let mut reader = MessageReader::new(&out[..]);
        let read = reader.next().await.expect("valid").expect("a message");
        assert!(read.get_root::<core_message::Reader>().is_ok());
    }
}
