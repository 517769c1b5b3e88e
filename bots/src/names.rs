//! Character names for bots: the prefix followed by the session's global index written in
//! letters, because MUD names are usually letters only (tether: 3 to 20 letters A-Z, case
//! insensitive).
//!
//! The index is written with a fixed width of at least four letters, most significant first,
//! so a bot's name depends only on its index: a later run with `--login connect` finds the
//! accounts an earlier run created, whatever `--sessions` or `--processes` were then.

use anyhow::{Result, bail};

/// The shortest suffix: 26^4 = 456,976 names per prefix before names grow longer.
const MIN_WIDTH: usize = 4;
const MAX_NAME: usize = 20;
const MIN_NAME: usize = 3;

/// Letters needed to write every index below `count`.
pub fn width_for(count: u64) -> usize {
    let mut width = MIN_WIDTH;
    let mut capacity = 26u64.pow(MIN_WIDTH as u32);
    while capacity < count {
        width += 1;
        capacity = capacity.saturating_mul(26);
    }
    width
}

/// `index` as `width` lowercase letters, base 26, most significant first (`a` = 0).
pub fn letters(index: u64, width: usize) -> String {
    let mut out = vec![b'a'; width];
    let mut rest = index;
    for slot in out.iter_mut().rev() {
        *slot = b'a' + (rest % 26) as u8;
        rest /= 26;
    }
    // Only ASCII letters were written.
    String::from_utf8(out).unwrap_or_default()
}

/// Checks that `prefix` makes valid names for `total` sessions; returns the suffix width.
pub fn check_prefix(prefix: &str, total: u64) -> Result<usize> {
    if !prefix.chars().all(|c| c.is_ascii_alphabetic()) {
        bail!("--prefix must be letters A-Z only (got {prefix:?})");
    }
    let width = width_for(total);
    let length = prefix.len() + width;
    if !(MIN_NAME..=MAX_NAME).contains(&length) {
        bail!(
            "--prefix {prefix:?} plus {width} index letters makes {length}-letter names; \
             names must be {MIN_NAME} to {MAX_NAME} letters"
        );
    }
    Ok(width)
}

pub fn name(prefix: &str, index: u64, width: usize) -> String {
    format!("{prefix}{}", letters(index, width))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_are_base_26_most_significant_first() {
        assert_eq!(letters(0, 4), "aaaa");
        assert_eq!(letters(1, 4), "aaab");
        assert_eq!(letters(25, 4), "aaaz");
        assert_eq!(letters(26, 4), "aaba");
        assert_eq!(letters(26 * 26 * 26 * 26 - 1, 4), "zzzz");
    }

    #[test]
    fn width_grows_only_past_four_letters() {
        assert_eq!(width_for(0), 4);
        assert_eq!(width_for(1000), 4);
        assert_eq!(width_for(456_976), 4);
        assert_eq!(width_for(456_977), 5);
    }

    #[test]
    fn names_are_unique_letters_only_and_case_insensitively_distinct() {
        let mut seen = std::collections::HashSet::new();
        for index in 0..30_000 {
            let name = name("Bot", index, 4);
            assert!(name.chars().all(|c| c.is_ascii_alphabetic()), "{name}");
            assert!(seen.insert(name.to_ascii_lowercase()), "duplicate {name}");
        }
    }

    #[test]
    fn prefixes_are_checked() {
        assert_eq!(check_prefix("Bot", 100).unwrap(), 4);
        assert!(check_prefix("Bot1", 100).is_err());
        assert!(check_prefix("Bot_", 100).is_err());
        assert!(check_prefix("Abcdefghijklmnop", 100).is_ok()); // 16 + 4 = 20
        assert!(check_prefix("Abcdefghijklmnopq", 100).is_err()); // 21
        assert!(check_prefix("", 100).is_ok()); // "aaaa" is a valid name
    }
}
