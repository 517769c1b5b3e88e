//! Link batching: the cost of encoding and decoding one `submit` batch of player lines.
//!
//! The proxy fills a `ProxyMessage.submit` list (`write_submits` in the proxy's `link.rs`) and
//! appends it to the socket's bytes; the core reads it back in place (`framing`) event by
//! event. This is that message, built and read the same way.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tether_protocol::framing;
use tether_protocol::link_capnp::{proxy_event, proxy_message};

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
    let mut message = framing::builder();
    let mut list = message
        .init_root::<proxy_message::Builder>()
        .init_submit(events);
    for i in 0..events {
        let mut event = list.reborrow().get(i);
        event.set_session(u64::from(i % 40) + 1);
        let mut line = event.init_line();
        line.set_seq(u64::from(i / 40) + 1);
        line.set_text(LINES[i as usize % LINES.len()]);
    }
    framing::append(&message, out);
}

/// Reads a batch back and touches every field the core uses, so lazy decoding cannot skip
/// work. The message is read where it lies, as the core reads it from its socket buffer.
fn decode(mut bytes: &[u8]) -> capnp::Result<usize> {
    let message =
        capnp::serialize::read_message_from_flat_slice(&mut bytes, framing::reader_options())?;
    let proxy_message::Submit(events) = message.get_root::<proxy_message::Reader>()?.which()?
    else {
        return Err(capnp::Error::failed("not a submit".into()));
    };
    let mut text_bytes = 0;
    for event in events? {
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
