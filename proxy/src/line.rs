//! Turns the Data bytes of a telnet stream into player input lines.
//!
//! Clients disagree on line ends (CRLF, CR NUL, bare LF, LF CR) and on
//! encodings, and players paste all sorts of things; the game core should
//! only ever see bounded, valid, printable UTF-8 lines.

use serde::{Deserialize, Serialize};

/// Longest line kept, in raw bytes before decoding and cleanup.
pub const MAX_LINE_BYTES: usize = 8192;
/// Capacity an assembler keeps between lines for reuse; more is given back at the line's end.
const KEPT_LINE_CAPACITY: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineEvent {
    Line(InputLine),
    /// The current line passed `limit` bytes; it is dropped up to its line end.
    Overlong {
        limit: usize,
    },
}

/// What the player is told when a line was cut off (every transport says it the same way).
pub fn overlong_notice(limit: usize) -> String {
    format!("That line was longer than {limit} bytes and was discarded.")
}

/// What the player is told when a line had bytes that were not UTF-8.
pub const INVALID_UTF8_NOTICE: &str =
    "That line was not valid UTF-8; unreadable bytes were replaced.";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputLine {
    /// Valid UTF-8 without control characters or trailing whitespace.
    pub text: String,
    /// Some bytes were not UTF-8 and became U+FFFD.
    pub had_invalid_utf8: bool,
    /// Control characters or escape sequences were removed.
    pub had_control_chars: bool,
}

/// The line end just seen, so its partner byte (possibly in the next push)
/// does not end a second, empty line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum LastEnd {
    None,
    Cr,
    Lf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LineAssembler {
    max_bytes: usize,
    buf: Vec<u8>,
    /// True after `Overlong` until the line's end, while its bytes are dropped.
    discarding: bool,
    last_end: LastEnd,
    /// The client refused UTF-8 (CHARSET): every byte is one Latin-1 character.
    latin1: bool,
}

impl Default for LineAssembler {
    fn default() -> Self {
        Self::new(MAX_LINE_BYTES)
    }
}

impl LineAssembler {
    pub fn new(max_bytes: usize) -> Self {
        Self {
            max_bytes,
            buf: Vec::new(),
            discarding: false,
            last_end: LastEnd::None,
            latin1: false,
        }
    }

    /// Decode lines as Latin-1 instead of UTF-8 (after CHARSET negotiation).
    pub fn set_latin1(&mut self, latin1: bool) {
        self.latin1 = latin1;
    }

    pub fn is_latin1(&self) -> bool {
        self.latin1
    }

    /// Bytes of the unfinished line currently held.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    pub fn push(&mut self, data: &[u8], events: &mut Vec<LineEvent>) {
        for &byte in data {
            let last_end = std::mem::replace(&mut self.last_end, LastEnd::None);
            match (last_end, byte) {
                (LastEnd::Cr, b'\n' | 0) | (LastEnd::Lf, b'\r') => {}
                (_, b'\r') => {
                    self.end_line(events);
                    self.last_end = LastEnd::Cr;
                }
                (_, b'\n') => {
                    self.end_line(events);
                    self.last_end = LastEnd::Lf;
                }
                _ => self.push_byte(byte, events),
            }
        }
    }

    fn push_byte(&mut self, byte: u8, events: &mut Vec<LineEvent>) {
        if self.discarding {
            return;
        }
        if self.buf.len() >= self.max_bytes {
            events.push(LineEvent::Overlong {
                limit: self.max_bytes,
            });
            self.discarding = true;
            self.buf = Vec::new();
            return;
        }
        if self.buf.len() == self.buf.capacity() {
            // Grow geometrically but never past the limit, so the bound holds
            // for the allocation too, not just for the length.
            let extra = self
                .buf
                .capacity()
                .max(64)
                .min(self.max_bytes - self.buf.len());
            self.buf.reserve_exact(extra);
        }
        self.buf.push(byte);
    }

    fn end_line(&mut self, events: &mut Vec<LineEvent>) {
        if self.discarding {
            self.discarding = false;
            return;
        }
        events.push(LineEvent::Line(clean_line(&self.buf, self.latin1)));
        if self.buf.capacity() > KEPT_LINE_CAPACITY {
            // One long line must not cost the session its size for the rest of its life.
            self.buf = Vec::new();
        } else {
            self.buf.clear();
        }
    }
}

fn clean_line(raw: &[u8], latin1: bool) -> InputLine {
    let (decoded, had_invalid_utf8) = if latin1 {
        let text: String = raw.iter().map(|&byte| char::from(byte)).collect();
        (std::borrow::Cow::Owned(text), false)
    } else {
        match std::str::from_utf8(raw) {
            Ok(text) => (std::borrow::Cow::Borrowed(text), false),
            Err(_) => (String::from_utf8_lossy(raw), true),
        }
    };
    let mut text = String::with_capacity(decoded.len());
    let mut had_control_chars = false;
    let mut chars = decoded.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\t' => text.push(' '),
            '\u{1b}' => {
                had_control_chars = true;
                skip_escape_sequence(&mut chars);
            }
            c if c.is_control() => had_control_chars = true,
            c => text.push(c),
        }
    }
    text.truncate(text.trim_end().len());
    InputLine {
        text,
        had_invalid_utf8,
        had_control_chars,
    }
}

/// Skips the rest of an ANSI escape sequence after ESC. Dropping only the ESC
/// would leave debris such as `[A` from arrow keys or `[200~` from
/// bracketed paste in the player's command.
fn skip_escape_sequence(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    match chars.peek() {
        Some('[') => {
            chars.next();
            // CSI: parameter and intermediate bytes, then one final byte.
            while let Some(&c) = chars.peek() {
                if !('\u{20}'..='\u{7e}').contains(&c) {
                    break;
                }
                chars.next();
                if ('\u{40}'..='\u{7e}').contains(&c) {
                    break;
                }
            }
        }
        Some('N' | 'O') => {
            chars.next();
            // SS2/SS3 select one character: arrow keys in application mode send ESC O A.
            if chars
                .peek()
                .is_some_and(|c| ('\u{20}'..='\u{7e}').contains(c))
            {
                chars.next();
            }
        }
        Some(']' | 'P' | 'X' | '^' | '_') => {
            chars.next();
            // String sequences (OSC, DCS, ...) end at BEL or ST (ESC \).
            while let Some(c) = chars.next() {
                if c == '\u{7}' {
                    break;
                }
                if c == '\u{1b}' {
                    if chars.peek() == Some(&'\\') {
                        chars.next();
                    }
                    break;
                }
            }
        }
        _ => {
            // Other escapes: intermediates (e.g. the `(` of ESC ( B), then a final byte.
            while chars
                .peek()
                .is_some_and(|c| ('\u{20}'..='\u{2f}').contains(c))
            {
                chars.next();
            }
            if chars
                .peek()
                .is_some_and(|c| ('\u{30}'..='\u{7e}').contains(c))
            {
                chars.next();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(events: &[LineEvent]) -> Vec<&str> {
        events
            .iter()
            .filter_map(|e| match e {
                LineEvent::Line(line) => Some(line.text.as_str()),
                LineEvent::Overlong { .. } => None,
            })
            .collect()
    }

    fn push_all(input: &[u8]) -> Vec<LineEvent> {
        let mut assembler = LineAssembler::default();
        let mut events = Vec::new();
        assembler.push(input, &mut events);
        events
    }

    fn push_bytewise(input: &[u8]) -> Vec<LineEvent> {
        let mut assembler = LineAssembler::default();
        let mut events = Vec::new();
        for byte in input {
            assembler.push(std::slice::from_ref(byte), &mut events);
        }
        events
    }

    fn plain(text: &str) -> LineEvent {
        LineEvent::Line(InputLine {
            text: text.to_string(),
            had_invalid_utf8: false,
            had_control_chars: false,
        })
    }

    #[test]
    fn each_terminator_ends_exactly_one_line() {
        for input in [
            &b"look\r\nnorth\r\n"[..],
            b"look\r\0north\r\0",
            b"look\nnorth\n",
            b"look\n\rnorth\n\r",
        ] {
            assert_eq!(
                push_all(input),
                vec![plain("look"), plain("north")],
                "{input:?}"
            );
            assert_eq!(
                push_bytewise(input),
                vec![plain("look"), plain("north")],
                "{input:?}"
            );
        }
    }

    #[test]
    fn bare_cr_ends_a_line_immediately() {
        let mut assembler = LineAssembler::default();
        let mut events = Vec::new();
        assembler.push(b"look\r", &mut events);
        assert_eq!(events, vec![plain("look")]);
        assembler.push(b"north\r", &mut events);
        assert_eq!(lines(&events), vec!["look", "north"]);
    }

    #[test]
    fn split_terminators_across_pushes() {
        for (first, second) in [
            (&b"a\r"[..], &b"\nb\r\n"[..]),
            (b"a\r", b"\0b\r\n"),
            (b"a\n", b"\rb\n\r"),
        ] {
            let mut assembler = LineAssembler::default();
            let mut events = Vec::new();
            assembler.push(first, &mut events);
            assembler.push(second, &mut events);
            assert_eq!(events, vec![plain("a"), plain("b")], "{first:?} {second:?}");
        }
    }

    #[test]
    fn empty_lines_are_delivered() {
        assert_eq!(lines(&push_all(b"\r\n\r\n")), vec!["", ""]);
        assert_eq!(lines(&push_all(b"\n\n\n")), vec!["", "", ""]);
        assert_eq!(lines(&push_all(b"\r\r")), vec!["", ""]);
        // LF CR LF: the CR pairs with the first LF, the second LF is a new line.
        assert_eq!(lines(&push_all(b"a\n\r\n")), vec!["a", ""]);
    }

    #[test]
    fn unterminated_input_waits() {
        let mut assembler = LineAssembler::default();
        let mut events = Vec::new();
        assembler.push(b"say hel", &mut events);
        assert!(events.is_empty());
        assert_eq!(assembler.buffered(), 7);
        assembler.push(b"lo\r\n", &mut events);
        assert_eq!(events, vec![plain("say hello")]);
        assert_eq!(assembler.buffered(), 0);
    }

    #[test]
    fn overlong_is_reported_once_and_next_line_is_intact() {
        let mut assembler = LineAssembler::new(10);
        let mut events = Vec::new();
        assembler.push(b"0123456789", &mut events);
        assert!(events.is_empty(), "exactly the limit is fine so far");
        assembler.push(b"X", &mut events);
        assert_eq!(events, vec![LineEvent::Overlong { limit: 10 }]);
        for _ in 0..1000 {
            assembler.push(b"more junk", &mut events);
            assert!(assembler.buffered() <= 10);
        }
        assembler.push(b"\r\nlook\r\n", &mut events);
        assert_eq!(
            events,
            vec![LineEvent::Overlong { limit: 10 }, plain("look")]
        );
    }

    #[test]
    fn line_of_exactly_the_limit_is_kept() {
        let mut assembler = LineAssembler::new(4);
        let mut events = Vec::new();
        assembler.push(b"abcd\nabcde\nxy\n", &mut events);
        assert_eq!(
            events,
            vec![plain("abcd"), LineEvent::Overlong { limit: 4 }, plain("xy")]
        );
    }

    #[test]
    fn overlong_terminated_by_split_crlf_yields_no_empty_line() {
        let mut assembler = LineAssembler::new(3);
        let mut events = Vec::new();
        assembler.push(b"abcdef\r", &mut events);
        assembler.push(b"\nok\r\n", &mut events);
        assert_eq!(events, vec![LineEvent::Overlong { limit: 3 }, plain("ok")]);
    }

    #[test]
    fn memory_stays_bounded() {
        let mut assembler = LineAssembler::new(MAX_LINE_BYTES);
        let mut events = Vec::new();
        let chunk = vec![b'x'; 1000];
        for _ in 0..200 {
            assembler.push(&chunk, &mut events);
            assert!(assembler.buffered() <= MAX_LINE_BYTES);
            assert!(assembler.buf.capacity() <= MAX_LINE_BYTES);
        }
        assert_eq!(
            events,
            vec![LineEvent::Overlong {
                limit: MAX_LINE_BYTES
            }]
        );

        // A long but legal line never allocates past the limit either.
        let mut assembler = LineAssembler::new(1000);
        assembler.push(&[b'y'; 1000], &mut events);
        assert_eq!(assembler.buffered(), 1000);
        assert!(assembler.buf.capacity() <= 1000);
    }

    #[test]
    fn invalid_utf8_becomes_replacement_char() {
        let events = push_all(b"say caf\xE9 \xF0\x9F\r\n");
        assert_eq!(
            events,
            vec![LineEvent::Line(InputLine {
                text: "say caf\u{FFFD} \u{FFFD}".to_string(),
                had_invalid_utf8: true,
                had_control_chars: false,
            })]
        );
        // A literal U+FFFD typed by the player is valid input.
        assert_eq!(push_all("\u{FFFD}\n".as_bytes()), vec![plain("\u{FFFD}")]);
        // Multibyte characters split across pushes are reassembled.
        let mut assembler = LineAssembler::default();
        let mut events = Vec::new();
        assembler.push(&"é€".as_bytes()[..3], &mut events);
        assembler.push(&"é€".as_bytes()[3..], &mut events);
        assembler.push(b"\n", &mut events);
        assert_eq!(events, vec![plain("é€")]);
    }

    #[test]
    fn control_chars_are_removed() {
        let events = push_all(b"a\x07b\x08c\x00d\x7fe\tf\r\n");
        assert_eq!(
            events,
            vec![LineEvent::Line(InputLine {
                text: "abcde f".to_string(),
                had_invalid_utf8: false,
                had_control_chars: true,
            })]
        );
        // C1 controls, here U+0085 and U+009B, encoded as UTF-8.
        let events = push_all("x\u{85}y\u{9b}z\n".as_bytes());
        assert_eq!(lines(&events), vec!["xyz"]);
        assert!(matches!(&events[0], LineEvent::Line(l) if l.had_control_chars));
        // Tabs become spaces without counting as control characters.
        assert_eq!(push_all(b"say\thi\n"), vec![plain("say hi")]);
    }

    #[test]
    fn escape_sequences_are_removed() {
        let cases: &[(&[u8], &str)] = &[
            (b"\x1b[31mred\x1b[0m\n", "red"),
            (b"north\x1b[A\n", "north"),
            (b"\x1b[200~pasted\x1b[201~\n", "pasted"),
            (b"\x1b]0;title\x07ok\n", "ok"),
            (b"\x1b]8;;http://x\x1b\\link\n", "link"),
            (b"\x1b(Bplain\n", "plain"),
            (b"\x1bOAup\n", "up"),
            (b"lone\x1b\n", "lone"),
        ];
        for (input, expected) in cases {
            let events = push_all(input);
            assert_eq!(
                events,
                vec![LineEvent::Line(InputLine {
                    text: expected.to_string(),
                    had_invalid_utf8: false,
                    had_control_chars: true,
                })],
                "{input:?}"
            );
        }
    }

    #[test]
    fn trailing_whitespace_is_trimmed() {
        assert_eq!(push_all(b"  say hi   \t \r\n"), vec![plain("  say hi")]);
        assert_eq!(push_all(b"   \n"), vec![plain("")]);
    }

    #[test]
    fn zero_limit_allows_only_empty_lines() {
        let mut assembler = LineAssembler::new(0);
        let mut events = Vec::new();
        assembler.push(b"\nx\n\n", &mut events);
        assert_eq!(
            events,
            vec![plain(""), LineEvent::Overlong { limit: 0 }, plain("")]
        );
    }

    #[test]
    fn garbage_never_panics_and_chunking_is_irrelevant() {
        let mut state = 0x2545_F491_4F6C_DD1D_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..2000 {
            let len = (next() % 200) as usize;
            let input: Vec<u8> = (0..len)
                .map(|_| match next() % 4 {
                    0 => [b'\r', b'\n', 0, 0x1b, b'[', 0xFF][(next() % 6) as usize],
                    _ => next() as u8,
                })
                .collect();
            let mut whole = LineAssembler::new(50);
            let mut expected = Vec::new();
            whole.push(&input, &mut expected);
            let mut split = LineAssembler::new(50);
            let mut events = Vec::new();
            for chunk in input.chunks(1 + (next() % 7) as usize) {
                split.push(chunk, &mut events);
                assert!(split.buffered() <= 50);
            }
            assert_eq!(events, expected);
            for event in &events {
                if let LineEvent::Line(line) = event {
                    assert!(!line.text.chars().any(char::is_control));
                    assert_eq!(line.text.trim_end(), line.text);
                }
            }
        }
    }

    #[test]
    fn latin1_lines_decode_every_byte() {
        let mut lines = LineAssembler::new(MAX_LINE_BYTES);
        lines.set_latin1(true);
        let mut events = Vec::new();
        lines.push(b"caf\xe9\r\n", &mut events);
        assert_eq!(
            events,
            vec![LineEvent::Line(InputLine {
                text: "caf\u{e9}".into(),
                had_invalid_utf8: false,
                had_control_chars: false,
            })]
        );
    }
}
