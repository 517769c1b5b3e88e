//! Cleaning of text that players type before it reaches anyone's screen.
//!
//! A player must not be able to move another player's cursor, change their colours, retitle
//! their terminal window or spoof lines of output, so everything a player supplies passes
//! through [`sanitize_player_text`] before the game repeats it.

/// Removes control characters and terminal escape sequences, turns every run of whitespace
/// (including tabs and line breaks) into one space, and trims both ends.
///
/// Escape sequences are dropped whole (`ESC [ 3 1 m`, not just the `ESC`), so their printable
/// tails do not show up as garbage. Characters that draw nothing (Unicode's
/// Default_Ignorable_Code_Point: zero-width spaces and joiners, the byte-order mark, soft
/// hyphens, bidirectional overrides, variation selectors, fillers) are dropped too: they make
/// text that looks like another player's name or words, or reads differently from what it
/// contains.
pub fn sanitize_player_text(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    let mut chars = input.chars().peekable();
    // Whitespace is emitted lazily so that runs collapse and the ends trim for free.
    let mut pending_space = false;
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => skip_escape(&mut chars),
            // The 8-bit forms of CSI and of the string-carrying sequences (DCS, SOS, OSC, PM, APC).
            '\u{9b}' => skip_csi(&mut chars),
            '\u{90}' | '\u{98}' | '\u{9d}' | '\u{9e}' | '\u{9f}' => skip_string(&mut chars),
            c if c.is_whitespace() => pending_space = !out.is_empty(),
            c if c.is_control() || draws_nothing(c) => {}
            c => {
                if pending_space {
                    out.push(' ');
                    pending_space = false;
                }
                out.push(c);
            }
        }
    }
    out
}

fn draws_nothing(c: char) -> bool {
    use icu_properties::props::{BinaryProperty, DefaultIgnorableCodePoint};
    DefaultIgnorableCodePoint::for_char(c)
}

type Chars<'a> = std::iter::Peekable<std::str::Chars<'a>>;

/// Called just after an ESC.
fn skip_escape(chars: &mut Chars<'_>) {
    match chars.peek() {
        Some('[') => {
            chars.next();
            skip_csi(chars);
        }
        Some(']' | 'P' | 'X' | '^' | '_') => {
            chars.next();
            skip_string(chars);
        }
        // nF sequences: intermediates (space to '/') then one final character.
        Some(' '..='/') => {
            while chars.next_if(|c| matches!(c, ' '..='/')).is_some() {}
            chars.next_if(|c| matches!(c, '0'..='~'));
        }
        // Two-character sequences such as ESC c (reset) or ESC 7 (save cursor).
        Some('0'..='~') => {
            chars.next();
        }
        _ => {}
    }
}

/// Skips parameters and intermediates up to and including the final byte of a CSI sequence.
fn skip_csi(chars: &mut Chars<'_>) {
    while chars
        .next_if(|c| matches!(c, '0'..='?' | ' '..='/'))
        .is_some()
    {}
    chars.next_if(|c| matches!(c, '@'..='~'));
}

/// Skips the body of an OSC/DCS-style sequence up to its terminator (BEL, ST or ESC \).
fn skip_string(chars: &mut Chars<'_>) {
    while let Some(c) = chars.next() {
        match c {
            '\u{07}' | '\u{9c}' => return,
            '\u{1b}' => {
                chars.next_if_eq(&'\\');
                return;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::sanitize_player_text as clean;

    #[test]
    fn plain_text_is_untouched() {
        assert_eq!(
            clean("Hello, world! Ça va? 你好"),
            "Hello, world! Ça va? 你好"
        );
    }

    #[test]
    fn whitespace_collapses_and_trims() {
        assert_eq!(clean("  a \t\t b\r\n\nc  "), "a b c");
        assert_eq!(clean(" \t\r\n "), "");
    }

    #[test]
    fn escape_sequences_are_removed_whole() {
        assert_eq!(clean("\x1b[31;1mred\x1b[0m text"), "red text");
        assert_eq!(clean("a\x1b[2J\x1b[Hb"), "ab");
        assert_eq!(clean("\x1b]0;evil title\x07ok"), "ok");
        assert_eq!(clean("\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\"), "link");
        assert_eq!(clean("x\x1bcy\x1b(Bz"), "xyz");
        assert_eq!(clean("\u{9b}31mred"), "red");
        assert_eq!(clean("trailing\x1b"), "trailing");
    }

    #[test]
    fn control_characters_are_removed() {
        assert_eq!(clean("be\x07ll\x00 de\x7fl c1\u{85}\u{90}x"), "bell del c1");
        assert_eq!(clean("back\x08\x08space"), "backspace");
        assert_eq!(clean("abc\u{202e}fed"), "abcfed");
    }

    #[test]
    fn characters_that_draw_nothing_are_removed() {
        // Zero-width space, non-joiner and joiner, word joiner, the byte-order mark.
        assert_eq!(clean("Ali\u{200b}ce"), "Alice");
        assert_eq!(clean("A\u{200c}l\u{200d}i\u{2060}c\u{feff}e"), "Alice");
        // A soft hyphen, a variation selector, the Hangul filler and a tag character.
        assert_eq!(clean("Al\u{ad}i\u{fe0f}c\u{3164}e\u{e0041}"), "Alice");
        // A title made only of them is empty, as if nothing had been typed.
        assert_eq!(clean("\u{200b}\u{200b} \u{feff}"), "");
        // Text in scripts that need joiners elsewhere stays readable, letters intact.
        assert_eq!(clean("नमस्ते"), "नमस्ते");
    }
}
