//! The client side of the telnet wire, as little of it as a bot needs (sans-IO: bytes in,
//! text lines and answer bytes out).
//!
//! A bot wants plain lines, so it refuses every option: `DO x` is answered `WONT x` and
//! `WILL x` is answered `DONT x`, each at most once per option, which keeps the server in plain
//! NVT mode (no subnegotiations) and can never loop with a server that asks again. The
//! exceptions, when asked for (`Accept`), are what every modern client takes, so that a bot
//! costs the server what a real player costs: MCCP2, inflated as Mudlet does, and GMCP, with
//! Mudlet's `Core.Hello` and `Core.Supports.Set` (the messages that follow are counted, not
//! read). Other subnegotiations are skipped, `IAC IAC` is a data byte 255, ANSI escape sequences
//! (CSI, OSC and two-byte escapes) are removed, and `IAC GA` / `IAC EOR` end a line, because a
//! prompt is not followed by a newline. Nothing here assumes that a server sends prompts.

const IAC: u8 = 255;
const DONT: u8 = 254;
const DO: u8 = 253;
const WONT: u8 = 252;
const WILL: u8 = 251;
const SB: u8 = 250;
const GA: u8 = 249;
const SE: u8 = 240;
const EOR: u8 = 239;
const MCCP2: u8 = 86;
const GMCP: u8 = 201;
const ESC: u8 = 0x1b;
const BEL: u8 = 0x07;

/// Longer lines are cut, so that a server that never sends a newline cannot make a bot
/// buffer without bound.
pub const MAX_LINE: usize = 64 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wire {
    Data,
    Iac,
    /// After `IAC WILL|WONT|DO|DONT`: the option byte comes next.
    Option(u8),
    /// After `IAC SB`: the option byte comes next.
    SubOption,
    /// Inside `IAC SB <option> ...`.
    Sub(u8),
    SubIac(u8),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ansi {
    Text,
    Esc,
    Csi,
    Osc,
    OscEsc,
}

pub struct Telnet {
    wire: Wire,
    ansi: Ansi,
    line: Vec<u8>,
    /// Options already refused, one bit per option, so each is answered only once.
    refused_do: [bool; 256],
    refused_will: [bool; 256],
    reply: Vec<u8>,
    accept: Accept,
    /// Inflating a compressed stream (between `IAC SB MCCP2 IAC SE` and its end).
    inflater: Option<Box<flate2::Decompress>>,
    /// Compressed streams begun, and those that ended cleanly.
    pub streams_started: u64,
    pub streams_ended: u64,
    /// GMCP was accepted (and Mudlet's hello sent).
    gmcp_on: bool,
    /// GMCP messages received.
    pub gmcp_messages: u64,
}

/// The options a bot takes when the server offers them; it refuses the rest.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Accept {
    pub mccp2: bool,
    pub gmcp: bool,
}

/// What Mudlet 4.17 says once GMCP is on: who it is, and the packages it wants.
const MUDLET_HELLO: &[u8] = br#"Core.Hello {"client":"Mudlet","version":"4.17.2"}"#;
const MUDLET_SUPPORTS: &[u8] = br#"Core.Supports.Set ["Char 1", "Char.Skills 1", "Char.Items 1", "Comm.Channel 1", "Room 1", "IRE.Rift 1", "IRE.Composer 1", "External.Discord 1", "Client.Media 1"]"#;

impl Default for Telnet {
    fn default() -> Self {
        Self {
            wire: Wire::Data,
            ansi: Ansi::Text,
            line: Vec::new(),
            refused_do: [false; 256],
            refused_will: [false; 256],
            reply: Vec::new(),
            accept: Accept::default(),
            inflater: None,
            streams_started: 0,
            streams_ended: 0,
            gmcp_on: false,
            gmcp_messages: 0,
        }
    }
}

impl Telnet {
    /// A client that takes these options when offered.
    pub fn accepting(accept: Accept) -> Telnet {
        Telnet {
            accept,
            ..Telnet::default()
        }
    }

    /// Feeds received bytes; `on_line` gets each complete line (without its line end, not
    /// necessarily UTF-8). Answers to negotiation wait in `take_reply`. A broken compressed
    /// stream is an error: a real client would have to give up too.
    pub fn feed(&mut self, input: &[u8], mut on_line: impl FnMut(&[u8])) -> Result<(), String> {
        let mut rest = input;
        while !rest.is_empty() {
            match &mut self.inflater {
                None => {
                    let used = self.plain(rest, &mut on_line);
                    rest = &rest[used..];
                }
                Some(inflater) => {
                    let before_in = inflater.total_in();
                    let mut plain = Vec::with_capacity(rest.len() * 4 + 1024);
                    let status = inflater
                        .decompress_vec(rest, &mut plain, flate2::FlushDecompress::Sync)
                        .map_err(|error| format!("the MCCP2 stream broke: {error}"))?;
                    let used = (inflater.total_in() - before_in) as usize;
                    rest = &rest[used..];
                    let ended = status == flate2::Status::StreamEnd;
                    if ended {
                        self.inflater = None;
                        self.streams_ended += 1;
                    }
                    let progress = used > 0 || !plain.is_empty();
                    let mut at = 0;
                    while at < plain.len() {
                        at += self.plain(&plain[at..], &mut on_line);
                    }
                    if !progress && !ended {
                        return Err("the MCCP2 stream stalled".into());
                    }
                }
            }
        }
        Ok(())
    }

    /// Plain telnet bytes, up to the end of an MCCP2 start sequence (after which the rest is
    /// compressed); returns how many were used.
    fn plain(&mut self, input: &[u8], on_line: &mut impl FnMut(&[u8])) -> usize {
        for (at, &byte) in input.iter().enumerate() {
            match self.wire {
                Wire::Data => {
                    if byte == IAC {
                        self.wire = Wire::Iac;
                    } else {
                        self.text(byte, on_line);
                    }
                }
                Wire::Iac => {
                    self.wire = Wire::Data;
                    match byte {
                        IAC => self.text(IAC, on_line),
                        WILL | WONT | DO | DONT => self.wire = Wire::Option(byte),
                        SB => self.wire = Wire::SubOption,
                        // A prompt ends here: whatever came before it is a line.
                        GA | EOR => self.end_line(on_line),
                        // NOP, DM, BRK, AYT and the rest carry nothing for us.
                        _ => {}
                    }
                }
                Wire::Option(verb) => {
                    self.wire = Wire::Data;
                    if self.accept.mccp2 && verb == WILL && byte == MCCP2 {
                        self.reply.extend_from_slice(&[IAC, DO, MCCP2]);
                    } else if self.accept.gmcp && verb == WILL && byte == GMCP {
                        // Accepted once: a server that offers again is not answered again.
                        if std::mem::replace(&mut self.gmcp_on, true) {
                            continue;
                        }
                        self.reply.extend_from_slice(&[IAC, DO, GMCP]);
                        for message in [MUDLET_HELLO, MUDLET_SUPPORTS] {
                            self.reply.extend_from_slice(&[IAC, SB, GMCP]);
                            self.reply.extend_from_slice(message);
                            self.reply.extend_from_slice(&[IAC, SE]);
                        }
                    } else {
                        self.refuse(verb, byte);
                    }
                }
                Wire::SubOption => self.wire = Wire::Sub(byte),
                Wire::Sub(option) => {
                    if byte == IAC {
                        self.wire = Wire::SubIac(option);
                    }
                }
                Wire::SubIac(option) => {
                    // `IAC SE` ends it; `IAC IAC` is an escaped 255 inside it.
                    if byte != SE {
                        self.wire = Wire::Sub(option);
                        continue;
                    }
                    self.wire = Wire::Data;
                    if option == GMCP {
                        self.gmcp_messages += 1;
                    }
                    if option == MCCP2 && self.accept.mccp2 {
                        self.streams_started += 1;
                        self.inflater = Some(Box::new(flate2::Decompress::new(true)));
                        return at + 1;
                    }
                }
            }
        }
        input.len()
    }

    /// Negotiation answers produced so far, to be sent to the server.
    pub fn take_reply(&mut self) -> Option<Vec<u8>> {
        (!self.reply.is_empty()).then(|| std::mem::take(&mut self.reply))
    }

    fn refuse(&mut self, verb: u8, option: u8) {
        let slot = option as usize;
        match verb {
            DO if !self.refused_do[slot] => {
                self.refused_do[slot] = true;
                self.reply.extend_from_slice(&[IAC, WONT, option]);
            }
            WILL if !self.refused_will[slot] => {
                self.refused_will[slot] = true;
                self.reply.extend_from_slice(&[IAC, DONT, option]);
            }
            // WONT/DONT confirm the state we are already in: answering would risk a loop.
            _ => {}
        }
    }

    /// One data byte, after telnet unescaping: strips ANSI escapes, assembles lines.
    fn text(&mut self, byte: u8, on_line: &mut impl FnMut(&[u8])) {
        match self.ansi {
            Ansi::Text => match byte {
                ESC => self.ansi = Ansi::Esc,
                b'\n' => self.end_line(on_line),
                // CR LF and CR NUL are the telnet line end; a lone CR is dropped too.
                b'\r' | 0 => {}
                _ => {
                    self.line.push(byte);
                    if self.line.len() >= MAX_LINE {
                        self.end_line(on_line);
                    }
                }
            },
            Ansi::Esc => {
                self.ansi = match byte {
                    b'[' => Ansi::Csi,
                    b']' => Ansi::Osc,
                    // A two-byte escape (ESC 7, ESC c, ...): both bytes are dropped.
                    _ => Ansi::Text,
                }
            }
            Ansi::Csi => {
                // Parameters and intermediates are 0x20-0x3f; a final byte ends the sequence.
                // A control character means the sequence was broken: keep the character.
                if (0x40..=0x7e).contains(&byte) {
                    self.ansi = Ansi::Text;
                } else if byte < 0x20 {
                    self.ansi = Ansi::Text;
                    self.text(byte, on_line);
                }
            }
            Ansi::Osc => match byte {
                BEL => self.ansi = Ansi::Text,
                ESC => self.ansi = Ansi::OscEsc,
                b'\n' => {
                    // An unterminated OSC must not swallow the rest of the session.
                    self.ansi = Ansi::Text;
                    self.end_line(on_line);
                }
                _ => {}
            },
            Ansi::OscEsc => {
                // ESC \ is the string terminator; anything else also ends the OSC.
                self.ansi = Ansi::Text;
                if byte != b'\\' {
                    self.text(byte, on_line);
                }
            }
        }
    }

    fn end_line(&mut self, on_line: &mut impl FnMut(&[u8])) {
        // A prompt right after a newline would otherwise show up as an empty line.
        if !self.line.is_empty() {
            on_line(&self.line);
            self.line.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(telnet: &mut Telnet, input: &[u8]) -> Vec<String> {
        let mut lines = Vec::new();
        telnet
            .feed(input, |line| {
                lines.push(String::from_utf8_lossy(line).into_owned())
            })
            .expect("a valid stream");
        lines
    }

    fn compressed(text: &[u8], finish: bool) -> Vec<u8> {
        let mut deflate = flate2::Compress::new(flate2::Compression::default(), true);
        let mut out = Vec::with_capacity(text.len() + 64);
        let flush = if finish {
            flate2::FlushCompress::Finish
        } else {
            flate2::FlushCompress::Sync
        };
        deflate
            .compress_vec(text, &mut out, flush)
            .expect("deflate");
        out
    }

    #[test]
    fn mccp2_is_accepted_and_inflated_when_asked_for_and_refused_otherwise() {
        assert_eq!(
            {
                let mut telnet = Telnet::default();
                run(&mut telnet, &[IAC, WILL, MCCP2]);
                telnet.take_reply()
            },
            Some(vec![IAC, DONT, MCCP2])
        );
        let mut telnet = Telnet::accepting(Accept {
            mccp2: true,
            gmcp: false,
        });
        run(&mut telnet, &[IAC, WILL, MCCP2]);
        assert_eq!(telnet.take_reply(), Some(vec![IAC, DO, MCCP2]));
        // A stream, its end, plain text, and a second stream, cut anywhere.
        let mut wire = b"plain\r\n".to_vec();
        wire.extend_from_slice(&[IAC, SB, MCCP2, IAC, SE]);
        wire.extend(compressed(b"first\r\n", true));
        wire.extend_from_slice(b"between\r\n");
        wire.extend_from_slice(&[IAC, SB, MCCP2, IAC, SE]);
        wire.extend(compressed(b"second\r\n", false));
        let mut got = Vec::new();
        for chunk in wire.chunks(3) {
            got.extend(run(&mut telnet, chunk));
        }
        assert_eq!(got, ["plain", "first", "between", "second"]);
        assert_eq!(telnet.streams_ended, 1);
        assert!(
            telnet.feed(b"garbage!", |_| {}).is_err(),
            "a broken stream is an error"
        );
    }

    #[test]
    fn gmcp_is_taken_as_mudlet_takes_it_when_asked_for() {
        let offer = [IAC, WILL, GMCP];
        let mut plain = Telnet::default();
        run(&mut plain, &offer);
        assert_eq!(plain.take_reply(), Some(vec![IAC, DONT, GMCP]));

        let mut telnet = Telnet::accepting(Accept {
            mccp2: false,
            gmcp: true,
        });
        assert!(run(&mut telnet, &offer).is_empty());
        let reply = telnet.take_reply().expect("an answer");
        assert!(reply.starts_with(&[IAC, DO, GMCP, IAC, SB, GMCP]));
        let text = String::from_utf8_lossy(&reply);
        assert!(text.contains(r#"Core.Hello {"client":"Mudlet""#), "{text}");
        assert!(text.contains(r#"Core.Supports.Set ["Char 1""#), "{text}");
        assert!(reply.ends_with(&[IAC, SE]));
        // Offered again: nothing more to say (neither a second hello nor a refusal).
        run(&mut telnet, &offer);
        assert_eq!(telnet.take_reply(), None);

        let mut input = vec![IAC, SB, GMCP];
        input.extend_from_slice(br#"Char.Vitals {"hp":100}"#);
        input.extend_from_slice(&[IAC, SE]);
        input.extend_from_slice(b"a line\r\n");
        assert_eq!(run(&mut telnet, &input), ["a line"]);
        assert_eq!(telnet.gmcp_messages, 1);
    }

    fn lines(input: &[u8]) -> Vec<String> {
        run(&mut Telnet::default(), input)
    }

    #[test]
    fn plain_lines_with_any_line_end() {
        assert_eq!(
            lines(b"one\r\ntwo\nthree\r\0four\r\n"),
            ["one", "two", "threefour"]
        );
    }

    #[test]
    fn refuses_each_option_once() {
        let mut telnet = Telnet::default();
        let input = [
            IAC, DO, 31, // NAWS
            IAC, WILL, 86, // MCCP2
            IAC, DO, 31, // asked again: no second answer
            IAC, WONT, 1, // ECHO off: nothing to answer
            IAC, DONT, 24, // nothing to answer either
            b'h', b'i', b'\n',
        ];
        assert_eq!(run(&mut telnet, &input), ["hi"]);
        assert_eq!(telnet.take_reply().unwrap(), [IAC, WONT, 31, IAC, DONT, 86]);
        assert_eq!(telnet.take_reply(), None);
    }

    #[test]
    fn subnegotiations_are_skipped_even_with_escaped_iac() {
        let input = [
            b'a', IAC, SB, 201, b'x', IAC, IAC, b'y', IAC, SE, b'b', b'\n',
        ];
        assert_eq!(lines(&input), ["ab"]);
    }

    #[test]
    fn iac_iac_is_a_data_byte() {
        let mut got = Vec::new();
        Telnet::default()
            .feed(&[b'a', IAC, IAC, b'b', b'\n'], |line| got = line.to_vec())
            .expect("plain telnet");
        assert_eq!(got, [b'a', 255, b'b']);
    }

    #[test]
    fn prompts_end_lines() {
        let input = [
            b'>', b' ', IAC, GA, b'h', b'p', IAC, EOR, b'x', b'\n', IAC, GA,
        ];
        assert_eq!(lines(&input), ["> ", "hp", "x"]);
    }

    #[test]
    fn ansi_escapes_are_stripped() {
        let input = b"\x1b[1;31mYou say, \"tok1\"\x1b[0m\n\x1b]0;title\x07ok\n\x1b]8;;http://x\x1b\\link\n\x1b7saved\n";
        assert_eq!(lines(input), ["You say, \"tok1\"", "ok", "link", "saved"]);
    }

    #[test]
    fn broken_escapes_do_not_eat_lines() {
        assert_eq!(lines(b"a\x1b[12\nb\n"), ["a", "b"]);
        assert_eq!(lines(b"a\x1b]never ends\nb\n"), ["a", "b"]);
    }

    #[test]
    fn long_lines_are_cut() {
        let input = vec![b'x'; MAX_LINE + 10];
        let got = lines(&[input.as_slice(), b"\n"].concat());
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].len(), MAX_LINE);
        assert_eq!(got[1].len(), 10);
    }

    #[test]
    fn any_split_gives_the_same_result() {
        let input: Vec<u8> = [
            &b"\x1b[32mGreen\x1b[0m text\r\n"[..],
            &[IAC, DO, 24, IAC, SB, 24, 1, IAC, SE],
            b"Pro",
            &[IAC, IAC],
            b"mpt",
            &[IAC, GA],
            b"You say, \"tok5\"\r\n",
            &[IAC, WILL, 201],
        ]
        .concat();
        let mut whole = Telnet::default();
        let expected = run(&mut whole, &input);
        let expected_reply = whole.take_reply();
        assert_eq!(expected.len(), 3);
        for split in 0..input.len() {
            let mut telnet = Telnet::default();
            let mut got = run(&mut telnet, &input[..split]);
            got.extend(run(&mut telnet, &input[split..]));
            assert_eq!(got, expected, "split at {split}");
            assert_eq!(telnet.take_reply(), expected_reply, "split at {split}");
        }
    }
}
