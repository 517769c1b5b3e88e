//! Link batching: the cost of encoding and decoding one `submit` batch of player lines.
//!
//! The proxy's relay hands the link a batch of typed events, which `message::encode_submit`
//! appends to the socket's bytes; the core decodes it in place (`framing`) into typed events
//! whose texts borrow from the bytes. This is that batch, encoded and decoded the same way.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tether_protocol::framing;
use tether_protocol::message::{self, ProxyEvent, ProxyMessage, SessionEvent};

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

/// A batch of `events` lines spread over a few dozen sessions, as a busy proxy's would be.
fn batch(events: u32) -> Vec<ProxyEvent<'static>> {
    (0..events)
        .map(|i| ProxyEvent {
            session: u64::from(i % 40) + 1,
            event: SessionEvent::Line {
                seq: u64::from(i / 40) + 1,
                text: LINES[i as usize % LINES.len()].into(),
            },
        })
        .collect()
}

/// Reads a batch back and touches every field the core uses. The message is read where it
/// lies, as the core reads it from its socket buffer.
fn decode(mut bytes: &[u8]) -> capnp::Result<usize> {
    let message =
        capnp::serialize::read_message_from_flat_slice(&mut bytes, framing::reader_options())?;
    let Ok(ProxyMessage::Submit(events)) = ProxyMessage::decode(&message) else {
        return Err(capnp::Error::failed("not a submit".into()));
    };
    let mut text_bytes = 0;
    for event in events {
        black_box(event.session);
        if let SessionEvent::Line { seq, text } = event.event {
            black_box(seq);
            text_bytes += text.len();
        }
    }
    Ok(text_bytes)
}

fn bench_link(c: &mut Criterion) {
    let mut group = c.benchmark_group("link-submit");
    for events in [1u32, 100, 1000] {
        // Per event, so the three batch sizes compare directly.
        group.throughput(Throughput::Elements(u64::from(events)));

        let events_batch = batch(events);
        let mut out = Vec::new();
        message::encode_submit(&events_batch, &mut out);
        println!(
            "link-submit: {events} events -> {} bytes ({:.1} bytes per event)",
            out.len(),
            out.len() as f64 / f64::from(events)
        );
        let expected: usize = (0..events as usize)
            .map(|i| LINES[i % LINES.len()].len())
            .sum();
        assert_eq!(decode(&out).expect("a valid batch"), expected);

        group.bench_with_input(
            BenchmarkId::new("build+write", events),
            &events_batch,
            |b, batch| {
                // Reused like a socket buffer; the message itself is new per batch, as in the proxy.
                let mut buffer = Vec::with_capacity(out.len());
                b.iter(|| {
                    buffer.clear();
                    message::encode_submit(black_box(batch), &mut buffer);
                    black_box(&buffer);
                });
            },
        );
        group.bench_with_input(BenchmarkId::new("read", events), &out, |b, bytes| {
            b.iter(|| decode(black_box(bytes)).expect("a valid batch"));
        });
    }
    group.finish();
}

criterion_group!(benches, bench_link);
criterion_main!(benches);
