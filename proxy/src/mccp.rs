//! MCCP2 (telnet option 86): server-to-client compression, sans-IO.
//!
//! After the client agrees (DO MCCP2) the server writes `IAC SB MCCP2 IAC SE`
//! and from the next byte on everything it sends is one zlib stream (RFC
//! 1950: header and Adler-32 trailer, not raw deflate, which clients reject).
//! Compression applies to the finished telnet byte stream, so IAC escaping
//! and negotiations happen before [`Compressor::compress`], never after.
//!
//! The deflate state cannot be serialized: when a connection changes owner,
//! [`Compressor::finish`] the stream and [`Compressor::start`] a new one.

use flate2::{Compress, Compression, FlushCompress, Status};

use crate::telnet::{IAC, SB, SE, option};

/// The uncompressed marker after which the client inflates.
pub const START_SEQUENCE: [u8; 5] = [IAC, SB, option::MCCP2, IAC, SE];

/// One zlib stream towards one client.
pub struct Compressor {
    stream: Compress,
}

impl std::fmt::Debug for Compressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compressor")
            .field("total_in", &self.stream.total_in())
            .field("total_out", &self.stream.total_out())
            .finish()
    }
}

impl Compressor {
    /// Appends the start sequence and returns the compressor for what follows.
    ///
    /// The caller must put the start sequence and the first compressed bytes
    /// on the wire in order, and the start sequence in a single write: Mudlet
    /// failed to switch to inflating when the sequence was split.
    pub fn start(out: &mut Vec<u8>) -> Compressor {
        out.extend_from_slice(&START_SEQUENCE);
        Compressor {
            // `true`: zlib header and trailer, as MCCP2 requires.
            stream: Compress::new(Compression::default(), true),
        }
    }

    /// Appends `data` compressed, sync-flushed so the client can show all of
    /// it now: text held back in the deflate window would look like lag.
    pub fn compress(&mut self, data: &[u8], out: &mut Vec<u8>) {
        // A sync flush of nothing still emits an empty block; skip the noise.
        if data.is_empty() {
            return;
        }
        self.run(data, out, FlushCompress::Sync);
    }

    /// Ends the stream (Z_FINISH). The client goes back to plain telnet for
    /// whatever follows, so later bytes must not go through a compressor.
    pub fn finish(mut self, out: &mut Vec<u8>) {
        self.run(&[], out, FlushCompress::Finish);
    }

    fn run(&mut self, mut input: &[u8], out: &mut Vec<u8>, flush: FlushCompress) {
        loop {
            // Deflate output can slightly exceed its input (stored blocks),
            // plus the flush marker and trailer.
            out.reserve(input.len() + input.len() / 8 + 64);
            let in_before = self.stream.total_in();
            let out_before = out.len();
            let status = match self.stream.compress_vec(input, out, flush) {
                Ok(status) => status,
                Err(err) => {
                    // Only reachable through misuse of the stream (e.g. data
                    // after finish), which this type's API rules out.
                    tracing::error!(%err, "MCCP2 deflate failed");
                    return;
                }
            };
            let consumed = (self.stream.total_in() - in_before) as usize;
            input = &input[consumed.min(input.len())..];
            if status == Status::StreamEnd {
                return;
            }
            // zlib's rule: the flush is complete once deflate returns with
            // output space left over.
            let has_room = out.len() < out.capacity();
            if input.is_empty() && has_room && flush != FlushCompress::Finish {
                return;
            }
            if consumed == 0 && out.len() == out_before && has_room {
                tracing::error!("MCCP2 deflate made no progress");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Decompress, FlushDecompress};

    /// Inflates `chunk` with a persistent decoder, as a client does per read.
    fn inflate(decoder: &mut Decompress, chunk: &[u8]) -> (Vec<u8>, Status) {
        // Small on purpose, so the loop has to handle a full output buffer.
        let mut output = Vec::with_capacity(256);
        let mut input = chunk;
        loop {
            if output.capacity() == output.len() {
                output.reserve(output.len().max(256));
            }
            let before = decoder.total_in();
            let status = decoder
                .decompress_vec(input, &mut output, FlushDecompress::Sync)
                .expect("valid zlib stream");
            let consumed = (decoder.total_in() - before) as usize;
            input = &input[consumed..];
            if status == Status::StreamEnd {
                assert!(input.is_empty(), "bytes after the end of the stream");
                return (output, status);
            }
            if input.is_empty() && output.len() < output.capacity() {
                return (output, status);
            }
        }
    }

    #[test]
    fn start_sequence_is_one_uncompressed_write() {
        let mut out = b"hello".to_vec();
        let _compressor = Compressor::start(&mut out);
        assert_eq!(out, b"hello\xFF\xFA\x56\xFF\xF0");
    }

    #[test]
    fn each_write_inflates_completely_on_its_own() {
        let mut out = Vec::new();
        let mut compressor = Compressor::start(&mut out);
        assert_eq!(out, START_SEQUENCE);

        let writes: Vec<Vec<u8>> = vec![
            b"Welcome to tether!\r\n".to_vec(),
            b"By what name are you known? \xFF\xF9".to_vec(),
            Vec::new(),
            (0..20_000u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect(),
            b"The room is dark.\r\n".repeat(500),
        ];
        let mut decoder = Decompress::new(true);
        for (i, write) in writes.iter().enumerate() {
            let mut chunk = Vec::new();
            compressor.compress(write, &mut chunk);
            if write.is_empty() {
                assert!(chunk.is_empty());
                continue;
            }
            if i == 0 {
                // RFC 1950 header (deflate, 32K window), not raw deflate.
                assert_eq!(chunk[0], 0x78);
            }
            // Sync flush: a client gets everything of this write from this write alone.
            assert!(chunk.ends_with(&[0x00, 0x00, 0xFF, 0xFF]));
            let (inflated, status) = inflate(&mut decoder, &chunk);
            assert_eq!(status, Status::Ok);
            assert_eq!(&inflated, write, "write {i}");
        }

        let mut tail = Vec::new();
        compressor.finish(&mut tail);
        let (inflated, status) = inflate(&mut decoder, &tail);
        assert!(inflated.is_empty());
        assert_eq!(status, Status::StreamEnd);
    }

    #[test]
    fn finished_stream_is_complete_and_plain_telnet_follows() {
        let mut wire = Vec::new();
        let mut compressor = Compressor::start(&mut wire);
        let mut compressed = Vec::new();
        compressor.compress(b"one\r\n", &mut compressed);
        compressor.compress(b"two\r\n", &mut compressed);
        compressor.finish(&mut compressed);
        wire.extend_from_slice(&compressed);
        wire.extend_from_slice(b"plain again\r\n");

        assert!(wire.starts_with(&START_SEQUENCE));
        let after_start = &wire[START_SEQUENCE.len()..];
        // The standard reader accepts the whole stream, trailer checksum included.
        let mut reader = flate2::bufread::ZlibDecoder::new(after_start);
        let mut text = Vec::new();
        std::io::Read::read_to_end(&mut reader, &mut text).expect("complete zlib stream");
        assert_eq!(text, b"one\r\ntwo\r\n");
        let used = reader.total_in() as usize;
        assert_eq!(&after_start[used..], b"plain again\r\n");
    }

    #[test]
    fn restart_after_finish_is_a_fresh_stream() {
        let mut wire = Vec::new();
        let mut first = Compressor::start(&mut wire);
        first.compress(b"before handover", &mut wire);
        first.finish(&mut wire);
        let second_at = wire.len();
        let mut second = Compressor::start(&mut wire);
        second.compress(b"after handover", &mut wire);

        assert_eq!(&wire[second_at..second_at + 5], &START_SEQUENCE);
        let mut decoder = Decompress::new(true);
        let (text, _) = inflate(&mut decoder, &wire[second_at + 5..]);
        assert_eq!(text, b"after handover");
    }
}
