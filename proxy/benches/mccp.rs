//! MCCP2 output compression: `Compressor::compress` on typical writes to a telnet client.
//!
//! The proxy compresses each write it seals (one room, one say, one prompt) with a sync flush,
//! so the client can show it at once; that flush is what makes small writes costly, so the
//! benchmark compresses one 300-byte ANSI-coloured room per call, through one long-lived
//! stream as a session does.
//!
//! Writes are not all the same text: a deflate stream that kept seeing one identical write
//! would turn each into a single back-reference and look far faster and smaller than real
//! output. Instead the rooms are generated from shared vocabulary (as a game's rooms share
//! words and colour codes) and there are enough of them (`VARIANTS` x 300 bytes) to outgrow
//! deflate's 32 KiB window before any repeats.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use tether_protocol::markup::{ColorDepth, render_ansi};
use tether_proxy::mccp::Compressor;
use tether_proxy::telnet::encode_text;

const WRITE_BYTES: usize = 300;
/// 256 x 300 bytes = 75 KiB, more than twice the deflate window.
const VARIANTS: usize = 256;

const NAMES: [&str; 8] = [
    "The Crooked Lantern",
    "Harbour Road",
    "A Muddy Track",
    "The Old Mill",
    "Fishmarket Square",
    "Beneath the Bridge",
    "The Temple Steps",
    "A Narrow Alley",
];
const WORDS: [&str; 32] = [
    "smoke", "beams", "tables", "fire", "hearth", "stone", "ale", "rain", "cobbles", "lantern",
    "shadow", "gulls", "nets", "river", "mud", "moss", "bells", "wind", "barrels", "rope", "the",
    "a", "over", "under", "and", "with", "old", "wet", "dark", "quiet", "crowded", "cold",
];
const COLOURS: [&str; 6] = [
    "{#c8a060}",
    "{#8fa0b0}",
    "{green}",
    "{208}",
    "{white}",
    "{#a07050}",
];
const EXITS: [&str; 6] = ["north", "south", "east", "west", "up", "down"];
const PEOPLE: [&str; 5] = ["Mira", "Oswin", "old Tam", "a stray cat", "the ferryman"];

/// A small deterministic generator, so every run compresses the same bytes.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 as usize
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.next() % from.len()]
    }
}

/// One room as the client receives it: rendered at 256 colours, encoded for telnet (CRLF),
/// cut to exactly [`WRITE_BYTES`] so each call does the same amount of work.
fn room(rng: &mut XorShift) -> Vec<u8> {
    let mut markup = format!("{{bold}}{{bright-white}}{}{{/}}\n", rng.pick(&NAMES));
    markup.push_str(rng.pick(&COLOURS));
    for i in 0..40 {
        markup.push_str(rng.pick(&WORDS));
        markup.push_str(if i % 9 == 8 { ". " } else { " " });
    }
    markup.push_str("{/}\n{green}Exits:{/}");
    for _ in 0..3 {
        markup.push_str(" {bright-green}");
        markup.push_str(rng.pick(&EXITS));
        markup.push_str("{/}");
    }
    markup.push_str("\n{cyan}");
    markup.push_str(rng.pick(&PEOPLE));
    markup.push_str("{/} is here.\n");

    let mut bytes = Vec::new();
    encode_text(&render_ansi(&markup, ColorDepth::Ansi256), &mut bytes);
    assert!(
        bytes.len() >= WRITE_BYTES,
        "room too short: {}",
        bytes.len()
    );
    // Where the cut lands does not matter to deflate; a clean line end keeps it plausible.
    bytes.truncate(WRITE_BYTES - 2);
    bytes.extend_from_slice(b"\r\n");
    bytes
}

fn rooms() -> Vec<Vec<u8>> {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    (0..VARIANTS).map(|_| room(&mut rng)).collect()
}

/// Printed once, for BENCHMARKS.md: what MCCP2 saves on this kind of output.
fn report_ratio(rooms: &[Vec<u8>]) {
    let mut out = Vec::new();
    let mut compressor = Compressor::start(&mut out).expect("a stream");
    let start_len = out.len();
    let mut plain = 0;
    // Two passes: the second shows the steady state once the stream has history.
    for room in rooms.iter().chain(rooms) {
        plain += room.len();
        compressor.compress(room, &mut out);
    }
    let compressed = out.len() - start_len;
    println!(
        "mccp2: {plain} bytes in {} writes of {WRITE_BYTES} -> {compressed} bytes compressed \
         (ratio {:.2}, {:.1} bytes per write)",
        rooms.len() * 2,
        plain as f64 / compressed as f64,
        compressed as f64 / (rooms.len() * 2) as f64,
    );
}

fn bench_mccp(c: &mut Criterion) {
    let rooms = rooms();
    report_ratio(&rooms);

    let mut group = c.benchmark_group("mccp2");
    group.throughput(Throughput::Bytes(WRITE_BYTES as u64));
    group.bench_function("compress/300B-write+sync-flush", |b| {
        let mut out = Vec::with_capacity(4 * WRITE_BYTES);
        let mut compressor = Compressor::start(&mut out).expect("a stream");
        let mut next = rooms.iter().cycle();
        b.iter(|| {
            // The proxy hands each sealed write to the socket; reusing the buffer leaves
            // only the compression in the measurement.
            out.clear();
            let room = next.next().expect("cycle never ends");
            compressor.compress(black_box(room), &mut out);
            black_box(&out);
        });
    });

    // What a session pays once per connection (and per handover to a new owner): deflate's
    // state is a few hundred KiB to set up and tear down.
    group.throughput(Throughput::Elements(1));
    group.bench_function("start+finish", |b| {
        b.iter_batched_ref(
            Vec::new,
            |out| {
                if let Some(stream) = Compressor::start(out) {
                    stream.finish(out);
                }
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

criterion_group!(benches, bench_mccp);
criterion_main!(benches);
