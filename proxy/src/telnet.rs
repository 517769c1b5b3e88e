//! A small sans-IO telnet codec: bytes in, [`TelnetEvent`]s out, plus the
//! encoding helpers for the way back.
//!
//! We keep our own codec instead of libtelnet-rs/libmudtelnet because both
//! tie parsing to their option table: they drop subnegotiations for options
//! that are not "locally enabled" (so NAWS never arrives), swallow a client's
//! DO after our own WILL, and lose everything after an escaped `FF FF` in
//! data. Here the parser knows nothing about option state; deciding what to
//! agree to is the session's negotiation (`negotiation`).

use serde::{Deserialize, Serialize};

/// Interpret As Command: starts every telnet command.
pub const IAC: u8 = 0xFF;
pub const DONT: u8 = 0xFE;
pub const DO: u8 = 0xFD;
pub const WONT: u8 = 0xFC;
pub const WILL: u8 = 0xFB;
/// Subnegotiation begin.
pub const SB: u8 = 0xFA;
/// Go Ahead: marks the end of a prompt for clients that hold back text.
pub const GA: u8 = 0xF9;
/// Erase Line.
pub const EL: u8 = 0xF8;
/// Erase Character.
pub const EC: u8 = 0xF7;
/// Are You There.
pub const AYT: u8 = 0xF6;
/// Abort Output.
pub const AO: u8 = 0xF5;
/// Interrupt Process.
pub const IP: u8 = 0xF4;
/// Break.
pub const BRK: u8 = 0xF3;
/// Data Mark.
pub const DM: u8 = 0xF2;
pub const NOP: u8 = 0xF1;
/// Subnegotiation end.
pub const SE: u8 = 0xF0;
/// End Of Record (the command, sent after prompts once option EOR is agreed).
pub const EOR: u8 = 0xEF;

/// Telnet option codes used by MUD clients.
pub mod option {
    pub const ECHO: u8 = 0x01;
    /// Suppress Go Ahead.
    pub const SGA: u8 = 0x03;
    /// Terminal type (also carries MTTS).
    pub const TTYPE: u8 = 0x18;
    /// End Of Record (the option; the command is [`super::EOR`]).
    pub const EOR: u8 = 0x19;
    /// Negotiate About Window Size.
    pub const NAWS: u8 = 0x1F;
    pub const LINEMODE: u8 = 0x22;
    pub const NEW_ENVIRON: u8 = 0x27;
    pub const CHARSET: u8 = 0x2A;
    /// MUD Server Data Protocol.
    pub const MSDP: u8 = 0x45;
    /// MUD Server Status Protocol.
    pub const MSSP: u8 = 0x46;
    /// Server-to-client compression (zlib stream).
    pub const MCCP2: u8 = 0x56;
    /// Client-to-server compression.
    pub const MCCP3: u8 = 0x57;
    /// MUD eXtension Protocol.
    pub const MXP: u8 = 0x5B;
    /// Generic MUD Communication Protocol.
    pub const GMCP: u8 = 0xC9;
}

/// Largest subnegotiation payload kept, in bytes after unescaping. Real
/// payloads (GMCP, MSDP, NEW-ENVIRON) are far smaller; the bound only exists
/// so a client that opens an SB and never closes it cannot grow our memory.
pub const MAX_SUBNEGOTIATION: usize = 8192;

/// One unit of meaning parsed from a client's byte stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TelnetEvent {
    /// Application bytes, with `FF FF` already unescaped. Never empty.
    Data(Vec<u8>),
    /// `IAC <byte>` for any byte that is not a negotiation verb, SB or IAC
    /// (GA, NOP, AYT, a stray SE, or anything unknown).
    Command(u8),
    Will(u8),
    Wont(u8),
    Do(u8),
    Dont(u8),
    /// `IAC SB <option> <data> IAC SE`, with `FF FF` in data unescaped.
    Subnegotiation {
        option: u8,
        data: Vec<u8>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum State {
    Data,
    Iac,
    /// Saw `IAC <verb>`; the next byte is the option.
    Negotiation(u8),
    /// Saw `IAC SB`; the next byte is the option.
    SbOption,
    Sb(u8),
    SbIac(u8),
}

/// Incremental telnet parser. It keeps only the state needed to resume a
/// sequence split across reads, so feeding input in any chunking yields the
/// same events (modulo how Data runs are split between feeds).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TelnetParser {
    state: State,
    sb: Vec<u8>,
    /// Set once the current SB passed [`MAX_SUBNEGOTIATION`]; the rest of it
    /// is skipped until `IAC SE`.
    sb_overflow: bool,
    discarded_subnegotiations: u64,
}

impl Default for TelnetParser {
    fn default() -> Self {
        Self::new()
    }
}

impl TelnetParser {
    pub fn new() -> Self {
        Self {
            state: State::Data,
            sb: Vec::new(),
            sb_overflow: false,
            discarded_subnegotiations: 0,
        }
    }

    /// How many subnegotiations were dropped for exceeding
    /// [`MAX_SUBNEGOTIATION`], so the caller can log or disconnect abusers.
    pub fn discarded_subnegotiations(&self) -> u64 {
        self.discarded_subnegotiations
    }

    /// Parses `input` and appends the resulting events. Data bytes between
    /// commands within one call are coalesced into a single `Data` event.
    pub fn feed(&mut self, input: &[u8], events: &mut Vec<TelnetEvent>) {
        let mut data = Vec::new();
        let mut i = 0;
        while i < input.len() {
            if self.state == State::Data {
                // Plain text is the bulk of the traffic: copy whole runs.
                let rest = &input[i..];
                let run = rest.iter().position(|&b| b == IAC).unwrap_or(rest.len());
                data.extend_from_slice(&rest[..run]);
                i += run;
                if i < input.len() {
                    self.state = State::Iac;
                    i += 1;
                }
                continue;
            }
            let byte = input[i];
            i += 1;
            self.state = match self.state {
                // Unreached while the fast path above handles Data, kept correct anyway.
                State::Data => {
                    if byte == IAC {
                        State::Iac
                    } else {
                        data.push(byte);
                        State::Data
                    }
                }
                State::Iac => match byte {
                    IAC => {
                        data.push(IAC);
                        State::Data
                    }
                    WILL | WONT | DO | DONT => State::Negotiation(byte),
                    SB => State::SbOption,
                    _ => {
                        flush_data(&mut data, events);
                        events.push(TelnetEvent::Command(byte));
                        State::Data
                    }
                },
                State::Negotiation(verb) => {
                    flush_data(&mut data, events);
                    events.push(match verb {
                        WILL => TelnetEvent::Will(byte),
                        WONT => TelnetEvent::Wont(byte),
                        DO => TelnetEvent::Do(byte),
                        _ => TelnetEvent::Dont(byte),
                    });
                    State::Data
                }
                State::SbOption => {
                    self.sb.clear();
                    self.sb_overflow = false;
                    State::Sb(byte)
                }
                State::Sb(option) => {
                    if byte == IAC {
                        State::SbIac(option)
                    } else {
                        self.push_sb(byte);
                        State::Sb(option)
                    }
                }
                State::SbIac(option) => match byte {
                    IAC => {
                        self.push_sb(IAC);
                        State::Sb(option)
                    }
                    SE => {
                        flush_data(&mut data, events);
                        if self.sb_overflow {
                            self.sb_overflow = false;
                            self.discarded_subnegotiations += 1;
                        } else {
                            events.push(TelnetEvent::Subnegotiation {
                                option,
                                data: std::mem::take(&mut self.sb),
                            });
                        }
                        State::Data
                    }
                    other => {
                        // Some old clients do not double a 0xFF in NAWS
                        // sizes; keeping the IAC as data recovers their
                        // value, and only IAC SE may end an SB anyway.
                        self.push_sb(IAC);
                        self.push_sb(other);
                        State::Sb(option)
                    }
                },
            };
        }
        flush_data(&mut data, events);
    }

    fn push_sb(&mut self, byte: u8) {
        if self.sb_overflow {
            return;
        }
        if self.sb.len() >= MAX_SUBNEGOTIATION {
            self.sb_overflow = true;
            // Release the memory now rather than at IAC SE, which may never come.
            self.sb = Vec::new();
            return;
        }
        self.sb.push(byte);
    }
}

fn flush_data(data: &mut Vec<u8>, events: &mut Vec<TelnetEvent>) {
    if !data.is_empty() {
        events.push(TelnetEvent::Data(std::mem::take(data)));
    }
}

/// Appends `data` with every 0xFF doubled, so the peer reads it as data.
pub fn escape_iac(data: &[u8], out: &mut Vec<u8>) {
    out.reserve(data.len());
    for chunk in data.split_inclusive(|&b| b == IAC) {
        out.extend_from_slice(chunk);
        if chunk.last() == Some(&IAC) {
            out.push(IAC);
        }
    }
}

/// Appends `text` for a telnet client: every `\n` (or existing `\r\n`)
/// becomes `\r\n`, and a lone `\r` is dropped. RFC 854 would allow `\r\0`,
/// but game text has no use for carriage-return overwrites and clients differ
/// in how they show a NUL, so dropping it is the predictable choice. 0xFF is
/// doubled, although valid UTF-8 never contains that byte.
pub fn encode_text(text: &str, out: &mut Vec<u8>) {
    let bytes = text.as_bytes();
    out.reserve(bytes.len() + bytes.len() / 16);
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'\n' => {
                escape_iac(&bytes[start..i], out);
                out.extend_from_slice(b"\r\n");
                start = i + 1;
            }
            b'\r' => {
                escape_iac(&bytes[start..i], out);
                // A following `\n` adds the CR back itself.
                start = i + 1;
            }
            _ => {}
        }
    }
    escape_iac(&bytes[start..], out);
}

/// `IAC <verb> <option>`.
pub fn negotiation(verb: u8, option: u8) -> [u8; 3] {
    [IAC, verb, option]
}

/// Appends `IAC SB <option> <data> IAC SE`, with 0xFF in `data` doubled.
pub fn subnegotiation(option: u8, data: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&[IAC, SB, option]);
    escape_iac(data, out);
    out.extend_from_slice(&[IAC, SE]);
}

#[cfg(test)]
mod tests {
    use super::option::{ECHO, GMCP, MCCP2, NAWS, SGA};
    use super::*;

    fn parse(input: &[u8]) -> Vec<TelnetEvent> {
        let mut parser = TelnetParser::new();
        let mut events = Vec::new();
        parser.feed(input, &mut events);
        events
    }

    fn parse_bytewise(input: &[u8]) -> Vec<TelnetEvent> {
        let mut parser = TelnetParser::new();
        let mut events = Vec::new();
        for byte in input {
            parser.feed(std::slice::from_ref(byte), &mut events);
        }
        events
    }

    /// Merges adjacent Data events, which legitimately differ with chunking.
    fn coalesce(events: Vec<TelnetEvent>) -> Vec<TelnetEvent> {
        let mut out: Vec<TelnetEvent> = Vec::new();
        for event in events {
            if let (Some(TelnetEvent::Data(prev)), TelnetEvent::Data(next)) =
                (out.last_mut(), &event)
            {
                prev.extend_from_slice(next);
                continue;
            }
            out.push(event);
        }
        out
    }

    fn data(bytes: &[u8]) -> TelnetEvent {
        TelnetEvent::Data(bytes.to_vec())
    }

    /// Deterministic xorshift64* so the fuzz test is reproducible without a dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    // telnet.md bug 1: SB NAWS after WILL NAWS must be delivered.
    #[test]
    fn bug1_naws_subnegotiation_after_will_is_delivered() {
        let events = parse(&[IAC, WILL, NAWS, IAC, SB, NAWS, 0, 80, 0, 24, IAC, SE]);
        assert_eq!(
            events,
            vec![
                TelnetEvent::Will(NAWS),
                TelnetEvent::Subnegotiation {
                    option: NAWS,
                    data: vec![0, 80, 0, 24]
                },
            ]
        );
    }

    #[test]
    fn subnegotiation_delivered_for_never_negotiated_option() {
        let events = parse(&[IAC, SB, GMCP, b'C', b'o', b'r', b'e', IAC, SE]);
        assert_eq!(
            events,
            vec![TelnetEvent::Subnegotiation {
                option: GMCP,
                data: b"Core".to_vec()
            }]
        );
    }

    // telnet.md bug 2: a DO after our WILL is still reported.
    #[test]
    fn bug2_do_after_our_will_is_reported() {
        let mut parser = TelnetParser::new();
        let mut events = Vec::new();
        // What the server sent has no effect on the parser: it tracks no option state.
        let _sent = negotiation(WILL, GMCP);
        parser.feed(&[IAC, DO, GMCP], &mut events);
        parser.feed(&[IAC, DO, GMCP], &mut events);
        assert_eq!(events, vec![TelnetEvent::Do(GMCP), TelnetEvent::Do(GMCP)]);
    }

    // telnet.md bug 3: a bare F0 inside SB is data (NAWS width 240).
    #[test]
    fn bug3_bare_f0_in_naws_is_data() {
        let events = parse(&[IAC, SB, NAWS, 0x00, 0xF0, 0x00, 0x18, IAC, SE]);
        assert_eq!(
            events,
            vec![TelnetEvent::Subnegotiation {
                option: NAWS,
                data: vec![0x00, 0xF0, 0x00, 0x18]
            }]
        );
        let TelnetEvent::Subnegotiation { data: d, .. } = &events[0] else {
            panic!("expected a subnegotiation");
        };
        assert_eq!(u16::from_be_bytes([d[0], d[1]]), 240);
        assert_eq!(u16::from_be_bytes([d[2], d[3]]), 24);
    }

    // telnet.md bug 4: a negotiation split across two reads.
    #[test]
    fn bug4_negotiation_split_across_feeds() {
        let mut parser = TelnetParser::new();
        let mut events = Vec::new();
        parser.feed(&[IAC, WILL], &mut events);
        assert!(events.is_empty());
        parser.feed(&[NAWS], &mut events);
        assert_eq!(events, vec![TelnetEvent::Will(NAWS)]);
    }

    // telnet.md bug 5: nothing after an escaped FF FF in data is lost.
    #[test]
    fn bug5_escaped_iac_in_data_keeps_the_rest() {
        assert_eq!(parse(b"ab\xFF\xFFcd"), vec![data(b"ab\xFFcd")]);
        assert_eq!(parse(b"\xFF\xFF"), vec![data(b"\xFF")]);
        assert_eq!(parse(b"\xFF\xFF\xFF\xFFx"), vec![data(b"\xFF\xFFx")]);
    }

    #[test]
    fn naws_with_doubled_255() {
        let events = parse(&[IAC, SB, NAWS, 0x00, IAC, IAC, 0x00, 0x30, IAC, SE]);
        assert_eq!(
            events,
            vec![TelnetEvent::Subnegotiation {
                option: NAWS,
                data: vec![0x00, 0xFF, 0x00, 0x30]
            }]
        );
    }

    #[test]
    fn naws_with_undoubled_255_from_old_clients() {
        let events = parse(&[IAC, SB, NAWS, 0x00, IAC, 0x00, 0x30, IAC, SE, b'x']);
        assert_eq!(
            events,
            vec![
                TelnetEvent::Subnegotiation {
                    option: NAWS,
                    data: vec![0x00, 0xFF, 0x00, 0x30]
                },
                data(b"x"),
            ]
        );
    }

    #[test]
    fn commands_and_unknown_bytes() {
        assert_eq!(
            parse(&[b'a', IAC, GA, b'b', IAC, NOP, IAC, 0x42, IAC, SE, IAC, EOR]),
            vec![
                data(b"a"),
                TelnetEvent::Command(GA),
                data(b"b"),
                TelnetEvent::Command(NOP),
                TelnetEvent::Command(0x42),
                TelnetEvent::Command(SE),
                TelnetEvent::Command(EOR),
            ]
        );
    }

    #[test]
    fn all_negotiation_verbs() {
        assert_eq!(
            parse(&[IAC, WILL, 1, IAC, WONT, 2, IAC, DO, 3, IAC, DONT, 4]),
            vec![
                TelnetEvent::Will(1),
                TelnetEvent::Wont(2),
                TelnetEvent::Do(3),
                TelnetEvent::Dont(4),
            ]
        );
    }

    #[test]
    fn data_is_coalesced_within_one_feed() {
        assert_eq!(
            parse(b"hello \xFF\xFFworld\r\n"),
            vec![data(b"hello \xFFworld\r\n")]
        );
        assert!(parse(b"").is_empty());
    }

    const MIXED: &[u8] = &[
        b'h', b'i', IAC, IAC, b'!', IAC, WILL, NAWS, IAC, SB, NAWS, 0, 0xF0, 0, IAC, IAC, IAC, SE,
        b'l', b'o', b'o', b'k', b'\r', b'\n', IAC, DO, GMCP, IAC, SB, GMCP, b'C', b'o', b'r', b'e',
        b'.', b'H', b'e', b'l', b'l', b'o', b' ', b'{', b'}', IAC, SE, IAC, GA, IAC, 0x07, b'x',
        IAC, DONT, ECHO, IAC, WONT, SGA, IAC, SB, MCCP2, IAC, SE, b'e', b'n', b'd',
    ];

    #[test]
    fn byte_at_a_time_equals_all_at_once() {
        let whole = parse(MIXED);
        assert_eq!(
            whole,
            vec![
                data(b"hi\xFF!"),
                TelnetEvent::Will(NAWS),
                TelnetEvent::Subnegotiation {
                    option: NAWS,
                    data: vec![0, 0xF0, 0, 0xFF]
                },
                data(b"look\r\n"),
                TelnetEvent::Do(GMCP),
                TelnetEvent::Subnegotiation {
                    option: GMCP,
                    data: b"Core.Hello {}".to_vec()
                },
                TelnetEvent::Command(GA),
                TelnetEvent::Command(0x07),
                data(b"x"),
                TelnetEvent::Dont(ECHO),
                TelnetEvent::Wont(SGA),
                TelnetEvent::Subnegotiation {
                    option: MCCP2,
                    data: vec![]
                },
                data(b"end"),
            ]
        );
        assert_eq!(coalesce(parse_bytewise(MIXED)), whole);
        for split in 0..=MIXED.len() {
            let mut parser = TelnetParser::new();
            let mut events = Vec::new();
            parser.feed(&MIXED[..split], &mut events);
            parser.feed(&MIXED[split..], &mut events);
            assert_eq!(coalesce(events), whole, "split at {split}");
        }
    }

    #[test]
    fn subnegotiation_overflow_is_discarded_and_resyncs() {
        let mut parser = TelnetParser::new();
        let mut events = Vec::new();
        parser.feed(&[IAC, SB, GMCP], &mut events);
        let chunk = [b'a'; 1000];
        for _ in 0..100 {
            parser.feed(&chunk, &mut events);
            assert!(parser.sb.capacity() <= MAX_SUBNEGOTIATION);
        }
        // Bare SE and escaped IAC inside the oversized SB must not end it.
        parser.feed(&[SE, IAC, IAC, b'z'], &mut events);
        assert!(events.is_empty());
        parser.feed(
            &[IAC, SE, b'o', b'k', IAC, SB, NAWS, 0, 80, 0, 24, IAC, SE],
            &mut events,
        );
        assert_eq!(
            events,
            vec![
                data(b"ok"),
                TelnetEvent::Subnegotiation {
                    option: NAWS,
                    data: vec![0, 80, 0, 24]
                },
            ]
        );
        assert_eq!(parser.discarded_subnegotiations(), 1);
    }

    #[test]
    fn subnegotiation_at_exact_limit_is_kept() {
        let mut input = vec![IAC, SB, GMCP];
        input.extend(std::iter::repeat_n(b'g', MAX_SUBNEGOTIATION));
        input.extend_from_slice(&[IAC, SE]);
        let events = parse(&input);
        assert!(matches!(
            &events[..],
            [TelnetEvent::Subnegotiation { option: GMCP, data }] if data.len() == MAX_SUBNEGOTIATION
        ));

        let mut over = vec![IAC, SB, GMCP];
        over.extend(std::iter::repeat_n(b'g', MAX_SUBNEGOTIATION + 1));
        over.extend_from_slice(&[IAC, SE]);
        assert!(parse(&over).is_empty());
    }

    #[test]
    fn garbage_never_panics_and_chunking_is_irrelevant() {
        // Bias towards the bytes that drive the state machine.
        const SPECIAL: &[u8] = &[IAC, SB, SE, WILL, WONT, DO, DONT, GA, NOP, 0, b'\r', b'\n'];
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for _ in 0..3000 {
            let len = rng.below(300);
            let input: Vec<u8> = (0..len)
                .map(|_| {
                    if rng.below(2) == 0 {
                        SPECIAL[rng.below(SPECIAL.len())]
                    } else {
                        rng.next() as u8
                    }
                })
                .collect();
            let whole = parse(&input);
            let mut parser = TelnetParser::new();
            let mut events = Vec::new();
            let mut at = 0;
            while at < input.len() {
                let end = (at + 1 + rng.below(8)).min(input.len());
                parser.feed(&input[at..end], &mut events);
                at = end;
            }
            assert_eq!(coalesce(events), whole);
            let mut total = 0;
            for event in &whole {
                match event {
                    TelnetEvent::Data(d) => {
                        assert!(!d.is_empty());
                        total += d.len();
                    }
                    TelnetEvent::Subnegotiation { data, .. } => {
                        assert!(data.len() <= MAX_SUBNEGOTIATION);
                        total += data.len();
                    }
                    _ => {}
                }
            }
            assert!(total <= input.len());
        }
    }

    #[test]
    fn escaped_output_round_trips() {
        let mut rng = Rng(42);
        for _ in 0..500 {
            let payload: Vec<u8> = (0..rng.below(64)).map(|_| rng.next() as u8).collect();
            let mut wire = Vec::new();
            escape_iac(&payload, &mut wire);
            let expected = if payload.is_empty() {
                vec![]
            } else {
                vec![TelnetEvent::Data(payload.clone())]
            };
            assert_eq!(parse(&wire), expected);

            let mut wire = Vec::new();
            subnegotiation(GMCP, &payload, &mut wire);
            assert_eq!(
                parse(&wire),
                vec![TelnetEvent::Subnegotiation {
                    option: GMCP,
                    data: payload
                }]
            );
        }
    }

    #[test]
    fn encode_text_crlf() {
        let mut out = Vec::new();
        encode_text("one\ntwo\r\nthree\rfour\n\n", &mut out);
        assert_eq!(out, b"one\r\ntwo\r\nthreefour\r\n\r\n");
        let mut out = Vec::new();
        encode_text("\r", &mut out);
        assert!(out.is_empty());
        let mut out = Vec::new();
        // U+00FF is C3 BF in UTF-8, so nothing to double.
        encode_text("caf\u{e9} \u{ff}", &mut out);
        assert_eq!(out, "caf\u{e9} \u{ff}".as_bytes());
    }

    #[test]
    fn escape_iac_doubles_ff() {
        let mut out = vec![b'>'];
        escape_iac(&[1, IAC, 2, IAC, IAC], &mut out);
        assert_eq!(out, vec![b'>', 1, IAC, IAC, 2, IAC, IAC, IAC, IAC]);
    }

    #[test]
    fn subnegotiation_encoding_doubles_ff() {
        let mut out = Vec::new();
        subnegotiation(NAWS, &[0, 0xFF, 0, 0xF0], &mut out);
        assert_eq!(out, vec![IAC, SB, NAWS, 0, IAC, IAC, 0, 0xF0, IAC, SE]);
        assert_eq!(negotiation(WILL, ECHO), [IAC, WILL, ECHO]);
    }
}
