//! MCCP2 (telnet option 86): server-to-client compression, sans-IO.
//!
//! After the client agrees (DO MCCP2) the server writes `IAC SB MCCP2 IAC SE`
//! and from the next byte on everything it sends is one zlib stream (RFC
//! 1950: header and Adler-32 trailer, not raw deflate, which clients reject).
//! Compression applies to the finished telnet byte stream, so IAC escaping
//! and negotiations happen before [`Compressor::compress`], never after.
//!
//! The deflate state cannot be serialized: when a connection changes owner in a hand-over,
//! [`Compressor::finish`] the stream and [`Compressor::start`] a new one. When the owner
//! died instead (a proxy killed), nobody can finish the stream the client is inflating, and
//! a new start sequence would be inflated as data. But every write ended with a sync flush,
//! which leaves the deflate stream at a byte boundary, between blocks, and deflate blocks
//! only refer back to data their own compressor saw: so a fresh compressor without the zlib
//! wrapper ([`Compressor::resume`]) carries the client's stream on with blocks of its own.
//! Such a stream can never be finished (its Adler-32 trailer would have to cover data the
//! dead proxy compressed), so it is simply never ended: closing the connection ends it.
//!
//! Why C zlib (libz-sys, built from its bundled source like SQLite) and not flate2's
//! default: a stream's memory is what every compressing player costs, for as long as they
//! are connected. Measured per stream after 20 writes of game text (1,000 streams): miniz
//! (flate2's default backend) 297 KiB, fixed; zlib-rs 136 KiB at least, whatever the
//! settings (its hash table has a fixed size); C zlib 99 KiB at its defaults and 30 KiB
//! with a 4 KiB window and memory level 4, at the same compression ratio on game text
//! (flate2 cannot set the memory level). See BENCHMARKS.md.

use std::os::raw::{c_int, c_uint, c_void};

use libz_sys as z;

use crate::telnet::{IAC, SB, SE, option};

/// The uncompressed marker after which the client inflates.
pub const START_SEQUENCE: [u8; 5] = [IAC, SB, option::MCCP2, IAC, SE];
/// A 4 KiB window: a room description and the lines around it.
const WINDOW_BITS: c_int = 12;
/// zlib's hash and buffer sizes (1..9, default 8): 4 keeps them at 16 KiB together.
const MEMORY_LEVEL: c_int = 4;
const LEVEL: c_int = 6;

/// One zlib stream towards one client.
pub struct Compressor {
    /// Boxed: zlib's state points back at the stream, which must not move.
    stream: Box<z::z_stream>,
    /// Carries on a stream another process started ([`Compressor::resume`]).
    resumed: bool,
    /// This session's place in the MCCP2 gauge of `/metrics`, for as long as it compresses.
    _counted: crate::metrics::Holding,
}

impl std::fmt::Debug for Compressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compressor")
            .field("total_in", &self.stream.total_in)
            .field("total_out", &self.stream.total_out)
            .finish()
    }
}

// SAFETY: the stream is owned by this value alone and zlib keeps no thread-local state.
unsafe impl Send for Compressor {}

extern "C" fn zalloc(_opaque: *mut c_void, items: c_uint, size: c_uint) -> *mut c_void {
    // SAFETY: calloc with any sizes is sound; zlib checks for null.
    unsafe { nix::libc::calloc(items as usize, size as usize) }
}

extern "C" fn zfree(_opaque: *mut c_void, address: *mut c_void) {
    // SAFETY: zlib frees only what zalloc returned.
    unsafe { nix::libc::free(address) }
}

impl Compressor {
    /// Appends the start sequence and returns the compressor for what follows; `None` (and
    /// nothing appended) if zlib has no memory for another stream.
    ///
    /// The caller must put the start sequence and the first compressed bytes
    /// on the wire in order, and the start sequence in a single write: Mudlet
    /// failed to switch to inflating when the sequence was split.
    pub fn start(out: &mut Vec<u8>) -> Option<Compressor> {
        let compressor = Compressor::init(WINDOW_BITS)?;
        out.extend_from_slice(&START_SEQUENCE);
        Some(compressor)
    }

    /// Carries on a stream the client is inflating, which a process that died started: raw
    /// deflate blocks, no start sequence, no header (see the module's note). `None` if zlib
    /// has no memory for it.
    pub fn resume() -> Option<Compressor> {
        let mut compressor = Compressor::init(-WINDOW_BITS)?;
        compressor.resumed = true;
        Some(compressor)
    }

    /// Whether this carries on another process's stream, and so must never be finished.
    pub fn is_resumed(&self) -> bool {
        self.resumed
    }

    /// A deflate stream; positive `window_bits` with the zlib wrapper, negative raw.
    fn init(window_bits: c_int) -> Option<Compressor> {
        let mut stream = Box::new(z::z_stream {
            next_in: std::ptr::null_mut(),
            avail_in: 0,
            total_in: 0,
            next_out: std::ptr::null_mut(),
            avail_out: 0,
            total_out: 0,
            msg: std::ptr::null_mut(),
            state: std::ptr::null_mut(),
            zalloc,
            zfree,
            opaque: std::ptr::null_mut(),
            data_type: 0,
            adler: 0,
            reserved: 0,
        });
        // SAFETY: `stream` is a valid, boxed z_stream with allocator functions; the version
        // and size are this build's own. A positive window size means the zlib wrapper.
        let status = unsafe {
            z::deflateInit2_(
                &mut *stream,
                LEVEL,
                z::Z_DEFLATED,
                window_bits,
                MEMORY_LEVEL,
                z::Z_DEFAULT_STRATEGY,
                z::zlibVersion(),
                std::mem::size_of::<z::z_stream>() as c_int,
            )
        };
        if status != z::Z_OK {
            tracing::error!(status, "cannot start an MCCP2 stream");
            return None;
        }
        Some(Compressor {
            _counted: crate::metrics::global().compressing(),
            stream,
            resumed: false,
        })
    }

    /// Appends `data` compressed, sync-flushed so the client can show all of
    /// it now: text held back in the deflate window would look like lag.
    pub fn compress(&mut self, data: &[u8], out: &mut Vec<u8>) {
        // A sync flush of nothing still emits an empty block; skip the noise.
        if data.is_empty() {
            return;
        }
        self.run(data, out, z::Z_SYNC_FLUSH);
    }

    /// Ends the stream (Z_FINISH). The client goes back to plain telnet for
    /// whatever follows, so later bytes must not go through a compressor.
    pub fn finish(mut self, out: &mut Vec<u8>) {
        self.run(&[], out, z::Z_FINISH);
    }

    fn run(&mut self, input: &[u8], out: &mut Vec<u8>, flush: c_int) {
        // zlib reads through a mutable pointer but never writes input.
        self.stream.next_in = input.as_ptr().cast_mut();
        self.stream.avail_in = input.len() as c_uint;
        loop {
            // Deflate output can slightly exceed its input (stored blocks), plus the flush
            // marker and trailer.
            out.reserve(input.len() / 8 + 64);
            let spare = out.capacity() - out.len();
            // SAFETY: the output pointer is the Vec's spare capacity, `spare` bytes long;
            // zlib writes at most that and reports how much it wrote.
            let status = unsafe {
                self.stream.next_out = out.as_mut_ptr().add(out.len());
                self.stream.avail_out = spare as c_uint;
                let status = z::deflate(&mut *self.stream, flush);
                let written = spare - self.stream.avail_out as usize;
                out.set_len(out.len() + written);
                status
            };
            match status {
                z::Z_STREAM_END => break,
                // zlib's rule: the flush is complete once deflate returns with output space
                // left over and no input left.
                z::Z_OK if self.stream.avail_out > 0 && self.stream.avail_in == 0 => {
                    if flush != z::Z_FINISH {
                        break;
                    }
                }
                z::Z_OK => {}
                // Z_BUF_ERROR: no progress possible, which the checks above rule out.
                status => {
                    tracing::error!(status, "MCCP2 deflate failed");
                    break;
                }
            }
        }
        self.stream.next_in = std::ptr::null_mut();
        self.stream.avail_in = 0;
        self.stream.next_out = std::ptr::null_mut();
        self.stream.avail_out = 0;
    }
}

impl Drop for Compressor {
    fn drop(&mut self) {
        // SAFETY: the stream was initialised by deflateInit2_ in `start`.
        unsafe {
            z::deflateEnd(&mut *self.stream);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Decompress, FlushDecompress, Status};

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
        let _compressor = Compressor::start(&mut out).expect("a stream");
        assert_eq!(out, b"hello\xFF\xFA\x56\xFF\xF0");
    }

    #[test]
    fn each_write_inflates_completely_on_its_own() {
        let mut out = Vec::new();
        let mut compressor = Compressor::start(&mut out).expect("a stream");
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
                // RFC 1950 header (deflate, 4 KiB window), not raw deflate.
                assert_eq!(chunk[0], 0x48);
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
        let mut compressor = Compressor::start(&mut wire).expect("a stream");
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
        let mut first = Compressor::start(&mut wire).expect("a stream");
        first.compress(b"before handover", &mut wire);
        first.finish(&mut wire);
        let second_at = wire.len();
        let mut second = Compressor::start(&mut wire).expect("a stream");
        second.compress(b"after handover", &mut wire);

        assert_eq!(&wire[second_at..second_at + 5], &START_SEQUENCE);
        let mut decoder = Decompress::new(true);
        let (text, _) = inflate(&mut decoder, &wire[second_at + 5..]);
        assert_eq!(text, b"after handover");
    }
}
