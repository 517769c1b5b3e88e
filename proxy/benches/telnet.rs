//! Client input, from socket bytes to player lines: `TelnetParser::feed` (telnet decode) and
//! `LineAssembler::push` (line ends, size cap, UTF-8, control characters), separately and
//! chained as a session chains them.
//!
//! Input is read in chunks of up to 4 KiB (the session's read buffer), so the stream is fed in
//! 4 KiB chunks; chunk edges fall in the middle of lines and telnet sequences, as real reads do.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tether_proxy::line::{LineAssembler, LineEvent, MAX_LINE_BYTES};
use tether_proxy::telnet::{
    DO, IAC, NOP, SB, SE, TelnetEvent, TelnetParser, WILL, option, subnegotiation,
};

/// The session's read buffer size (`READ_BUFFER` in `session.rs`, which is private).
const CHUNK: usize = 4096;
/// Enough 4 KiB chunks that per-iteration overhead (a fresh parser) is noise.
const STREAM_BYTES: usize = 16 * CHUNK;

/// What a player's client sends: its answers to the opening negotiation, then typed commands
/// with CRLF, a keep-alive NOP, a window resize (NAWS SB) and a Latin-1 line whose 0xFF (`ÿ`)
/// is escaped as `IAC IAC`.
fn client_stream() -> Vec<u8> {
    let mut stream = Vec::with_capacity(STREAM_BYTES);
    for verb_option in [
        [IAC, WILL, option::TTYPE],
        [IAC, WILL, option::NAWS],
        [IAC, DO, option::EOR],
        [IAC, DO, option::MCCP2],
        [IAC, DO, option::GMCP],
    ] {
        stream.extend_from_slice(&verb_option);
    }
    subnegotiation(option::NAWS, &[0, 120, 0, 40], &mut stream);
    stream.extend_from_slice(&[IAC, SB, option::TTYPE, 0]);
    stream.extend_from_slice(b"MUDLET");
    stream.extend_from_slice(&[IAC, SE]);

    const COMMANDS: [&[u8]; 10] = [
        b"look\r\n",
        b"north\r\n",
        b"say Has anyone seen the ferryman tonight?\r\n",
        b"get all from corpse\r\n",
        b"kill rat\r\n",
        b"tell mira meet me at the docks after the bells\r\n",
        b"inventory\r\n",
        b"\r\n",
        b"emote shrugs and orders another spiced ale from the barkeep.\r\n",
        b"score\r\n",
    ];
    let mut round = 0usize;
    while stream.len() < STREAM_BYTES {
        for command in COMMANDS {
            stream.extend_from_slice(command);
        }
        // Once a round: a keep-alive, a resize to 255 columns (255 must be sent as IAC IAC
        // inside the SB), and a Latin-1 line ending in `ÿ` (0xFF, sent as IAC IAC).
        stream.extend_from_slice(&[IAC, NOP]);
        let height = 30 + (round % 20) as u8;
        subnegotiation(option::NAWS, &[0, 255, 0, height], &mut stream);
        stream.extend_from_slice(b"say caf\xe9 na\xefve ");
        stream.extend_from_slice(&[IAC, IAC]);
        stream.extend_from_slice(b"\r\n");
        round += 1;
    }
    stream
}

/// The Data payloads of each chunk, as the session hands them to its line assembler.
fn data_per_chunk(stream: &[u8]) -> Vec<Vec<Vec<u8>>> {
    let mut parser = TelnetParser::new();
    let mut events = Vec::new();
    stream
        .chunks(CHUNK)
        .map(|chunk| {
            events.clear();
            parser.feed(chunk, &mut events);
            events
                .drain(..)
                .filter_map(|event| match event {
                    TelnetEvent::Data(data) => Some(data),
                    _ => None,
                })
                .collect()
        })
        .collect()
}

/// Checks that the stream really contains what the benchmark claims to measure.
fn check(stream: &[u8]) {
    let mut parser = TelnetParser::new();
    let mut events = Vec::new();
    for chunk in stream.chunks(CHUNK) {
        parser.feed(chunk, &mut events);
    }
    let count = |wanted: fn(&TelnetEvent) -> bool| events.iter().filter(|e| wanted(e)).count();
    let naws = count(|e| match e {
        TelnetEvent::Subnegotiation { option: code, data } => {
            *code == option::NAWS && data.len() == 4
        }
        _ => false,
    });
    let nops = count(|e| matches!(e, TelnetEvent::Command(NOP)));
    let escaped_ff = count(|e| matches!(e, TelnetEvent::Data(data) if data.contains(&IAC)));
    assert!(
        naws > 10 && nops > 10 && escaped_ff > 10,
        "stream has {naws} NAWS SBs, {nops} NOPs, {escaped_ff} data runs with 0xFF"
    );
}

fn bench_input(c: &mut Criterion) {
    let stream = client_stream();
    check(&stream);
    let data = data_per_chunk(&stream);
    let data_bytes: usize = data.iter().flatten().map(Vec::len).sum();

    let mut group = c.benchmark_group("telnet");

    group.throughput(Throughput::Bytes(stream.len() as u64));
    group.bench_function("feed/4KiB-chunks", |b| {
        // Reused across chunks as the session reuses its event buffer.
        let mut events = Vec::new();
        b.iter(|| {
            let mut parser = TelnetParser::new();
            for chunk in stream.chunks(CHUNK) {
                events.clear();
                parser.feed(black_box(chunk), &mut events);
                black_box(&events);
            }
        });
    });

    // Throughput here counts only the Data bytes, which is all the assembler sees.
    group.throughput(Throughput::Bytes(data_bytes as u64));
    group.bench_function("line_push/4KiB-chunks", |b| {
        let mut lines = Vec::new();
        b.iter(|| {
            let mut assembler = LineAssembler::new(MAX_LINE_BYTES);
            for chunk in &data {
                for payload in chunk {
                    assembler.push(black_box(payload), &mut lines);
                }
                black_box(&lines);
                lines.clear();
            }
        });
    });

    // Socket bytes to lines, the way `session.rs` chains the two.
    group.throughput(Throughput::Bytes(stream.len() as u64));
    group.bench_function("feed+line_push/4KiB-chunks", |b| {
        let mut events = Vec::new();
        let mut lines: Vec<LineEvent> = Vec::new();
        b.iter(|| {
            let mut parser = TelnetParser::new();
            let mut assembler = LineAssembler::new(MAX_LINE_BYTES);
            for chunk in stream.chunks(CHUNK) {
                events.clear();
                parser.feed(black_box(chunk), &mut events);
                for event in &events {
                    if let TelnetEvent::Data(payload) = event {
                        assembler.push(payload, &mut lines);
                    }
                }
                black_box(&lines);
                lines.clear();
            }
        });
    });
    group.finish();
}

criterion_group!(benches, bench_input);
criterion_main!(benches);
