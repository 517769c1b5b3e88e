//! Link batching: the cost of encoding and decoding one `Link.submit` batch of player lines.
//!
//! The proxy fills the `events` list of a `submit` request (`write_submits` in the proxy's
//! `link.rs`) and capnp-rpc serializes it onto the socket; the core reads it back event by
//! event. Setting up an RPC system here would measure the event loop, not the encoding, so the
//! same `submit` params struct is built as the root of a plain message: the bytes per event
//! and the work per event are those of the real call, minus the RPC framing around it.

use std::hint::black_box;

use capnp::message::{Builder, ReaderOptions};
use capnp::serialize;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tether_protocol::link_capnp::{link, proxy_event};

/// Typical typed commands: most are a word or two, a few are says and emotes.
const LINES: [&str; 8] = [
    "look",
    "north",
    "say Has anyone seen the ferryman tonight?",
    "get all from corpse",
    "kill rat",
    "tell mira meet me at the docks after the bells",
    "inventory",
    "emote shrugs and orders another spiced ale from the barkeep.",
];

/// Builds and serializes a batch of `events` lines spread over a few dozen sessions, as a busy
/// proxy's batch would be.
fn encode(events: u32, out: &mut Vec<u8>) {
    let mut message = Builder::new_default();
    let params = message.init_root::<link::submit_params::Builder>();
    let mut list = params.init_events(events);
    for i in 0..events {
        let mut event = list.reborrow().get(i);
        event.set_session(u64::from(i % 40) + 1);
        let mut line = event.init_line();
        line.set_seq(u64::from(i / 40) + 1);
        line.set_text(LINES[i as usize % LINES.len()]);
    }
    serialize::write_message(&mut *out, &message).expect("writing to a Vec cannot fail");
}

/// Reads a batch back and touches every field the core uses, so lazy decoding cannot skip
/// work. `read_message` copies the bytes into its own segments, as the RPC system does with
/// what it reads off the socket.
fn decode(mut bytes: &[u8]) -> capnp::Result<usize> {
    let message = serialize::read_message(&mut bytes, ReaderOptions::new())?;
    let params = message.get_root::<link::submit_params::Reader>()?;
    let mut text_bytes = 0;
    for event in params.get_events()? {
        black_box(event.get_session());
        if let proxy_event::Line(line) = event.which()? {
            let line = line?;
            black_box(line.get_seq());
            text_bytes += line.get_text()?.to_str()?.len();
        }
    }
    Ok(text_bytes)
}

fn bench_link(c: &mut Criterion) {
    let mut group = c.benchmark_group("link-submit");
    for events in [1u32, 100, 1000] {
        // Per event, so the three batch sizes compare directly.
        group.throughput(Throughput::Elements(u64::from(events)));

        let mut out = Vec::new();
        encode(events, &mut out);
        println!(
            "link-submit: {events} events -> {} bytes ({:.1} bytes per event)",
            out.len(),
            out.len() as f64 / f64::from(events)
        );
        let expected: usize = (0..events as usize)
            .map(|i| LINES[i % LINES.len()].len())
            .sum();
        assert_eq!(decode(&out).expect("a valid batch"), expected);

        group.bench_with_input(BenchmarkId::new("build+write", events), &events, |b, &n| {
            // Reused like a socket buffer; the message itself is new per batch, as in the proxy.
            let mut buffer = Vec::with_capacity(out.len());
            b.iter(|| {
                buffer.clear();
                encode(black_box(n), &mut buffer);
                black_box(&buffer);
            });
        });
        group.bench_with_input(BenchmarkId::new("read", events), &out, |b, bytes| {
            b.iter(|| decode(black_box(bytes)).expect("a valid batch"));
        });
    }
    group.finish();
}

criterion_group!(benches, bench_link);
criterion_main!(benches);
