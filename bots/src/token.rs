//! The tokens that tie an answer to the command it answers.
//!
//! A token is `tok<run>r<session>s<seq>`, digits and letters only so that no server escapes
//! or splits it. The run id keeps two load runs against one server apart, the session's
//! global index keeps bots apart: every bot in a room hears every other bot's `say`, and only
//! its own tokens may count. A token must stand alone (no letter or digit right before or
//! after), so that `s1` never matches inside `s12`.
//!
//! A token right after `say ` is the command itself, quoted back. Inside other text that is a
//! refusal, not an answer (Evennia: `Command 'say tok..' is not available.` when the player is
//! not logged in); it counts only when the line is the command and nothing else, which is what
//! the loopback echo server of the round-trip floor sends.

pub fn format(run: u32, session: u64, seq: u64) -> String {
    format!("tok{run}r{session}s{seq}")
}

/// Calls `found` with the sequence number of every token of (`run`, `session`) in `line`.
pub fn scan(line: &[u8], run: u32, session: u64, mut found: impl FnMut(u64)) {
    let mut from = 0;
    while let Some(at) = find(&line[from..], b"tok") {
        let start = from + at;
        from = start + 3;
        if start > 0 && line[start - 1].is_ascii_alphanumeric() {
            continue;
        }
        if let Some((r, s, seq, end)) = parse(&line[start + 3..]) {
            let after = start + 3 + end;
            let alone = line.get(after).is_none_or(|b| !b.is_ascii_alphanumeric());
            if alone && r == u64::from(run) && s == session && !quoted_command(line, start, after) {
                found(seq);
            }
        }
    }
}

/// Whether the token at `start..end` is the `say` command quoted inside some other line.
fn quoted_command(line: &[u8], start: usize, end: usize) -> bool {
    let Some(command_start) = start.checked_sub(4) else {
        return false;
    };
    if !line[command_start..start].eq_ignore_ascii_case(b"say ") {
        return false;
    }
    let echo = line[..command_start].trim_ascii().is_empty() && line[end..].trim_ascii().is_empty();
    !echo
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// `<digits>r<digits>s<digits>`: the three numbers and how many bytes they took.
fn parse(text: &[u8]) -> Option<(u64, u64, u64, usize)> {
    let (run, mut at) = number(text, 0)?;
    if text.get(at) != Some(&b'r') {
        return None;
    }
    let (session, next) = number(text, at + 1)?;
    at = next;
    if text.get(at) != Some(&b's') {
        return None;
    }
    let (seq, end) = number(text, at + 1)?;
    Some((run, session, seq, end))
}

fn number(text: &[u8], start: usize) -> Option<(u64, usize)> {
    let mut value: u64 = 0;
    let mut at = start;
    while let Some(digit) = text.get(at).filter(|b| b.is_ascii_digit()) {
        value = value
            .checked_mul(10)?
            .checked_add(u64::from(digit - b'0'))?;
        at += 1;
    }
    (at > start).then_some((value, at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(line: &str, run: u32, session: u64) -> Vec<u64> {
        let mut seqs = Vec::new();
        scan(line.as_bytes(), run, session, |seq| seqs.push(seq));
        seqs
    }

    #[test]
    fn a_quoted_command_is_not_an_answer() {
        let mine = format(42, 7, 3);
        assert_eq!(
            all(&format!("Command 'say {mine}' is not available."), 42, 7),
            [0u64; 0]
        );
        assert_eq!(all(&format!("Huh? (SAY {mine})"), 42, 7), [0u64; 0]);
        // An echo server sends the command back alone: that is its answer.
        assert_eq!(all(&format!("say {mine}"), 42, 7), [3]);
        assert_eq!(all(&format!("  say {mine} "), 42, 7), [3]);
        // Someone saying "say tok.." is still an answer in the usual form.
        assert_eq!(all(&format!("You say, \"{mine}\""), 42, 7), [3]);
    }

    #[test]
    fn finds_own_tokens_only() {
        let mine = format(42, 7, 3);
        assert_eq!(mine, "tok42r7s3");
        assert_eq!(all(&format!("You say, \"{mine}\""), 42, 7), [3]);
        // Another bot's say in the same room, another run, another session.
        assert!(all("Botaaab says, \"tok42r8s3\"", 42, 7).is_empty());
        assert!(all("You say, \"tok41r7s3\"", 42, 7).is_empty());
    }

    #[test]
    fn tokens_must_stand_alone() {
        assert!(all("You say, \"tok42r7s31\"", 42, 7) == [31]);
        assert!(all("xtok42r7s3", 42, 7).is_empty());
        assert!(all("tok42r7s3x", 42, 7).is_empty());
        assert_eq!(all("tok42r7s3", 42, 7), [3]);
    }

    #[test]
    fn malformed_and_overflowing_tokens_are_ignored() {
        for line in [
            "tok",
            "tok42",
            "tok42r",
            "tok42r7",
            "tok42r7s",
            "tokr7s3",
            "tok42r7s99999999999999999999999",
            "tok tok42 r7s3",
        ] {
            assert!(all(line, 42, 7).is_empty(), "{line}");
        }
    }

    #[test]
    fn several_tokens_in_one_line() {
        assert_eq!(all("tok1r2s3 and tok1r2s4; tok1r3s5", 1, 2), [3, 4]);
        assert_eq!(all("tok1tok1r2s9", 1, 2), Vec::<u64>::new());
        assert_eq!(all("\"tok1r2s9\"", 1, 2), [9]);
    }
}
