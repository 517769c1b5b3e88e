//! Character names: what a valid one is and how it is stored. A leaf module: the login flow
//! checks names with it and the messages explain its errors, without either needing the other.

/// Why a name was refused, in the words a player (or `tether admin`) is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("Names may contain only the letters A to Z.")]
    NotLetters,
    #[error("Names must be at least 3 letters long.")]
    TooShort,
    #[error("Names can be at most 20 letters long.")]
    TooLong,
}

/// Checks a character name and returns it the way it is stored: `aLIce` becomes `Alice`.
pub(crate) fn normalize_name(raw: &str) -> Result<String, NameError> {
    if !raw.chars().all(|c| c.is_ascii_alphabetic()) {
        return Err(NameError::NotLetters);
    }
    match raw.len() {
        0..3 => Err(NameError::TooShort),
        3..=20 => {
            let lower = raw.to_ascii_lowercase();
            Ok(lower[..1].to_ascii_uppercase() + &lower[1..])
        }
        _ => Err(NameError::TooLong),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_capitalised() {
        assert_eq!(normalize_name("aLIce").unwrap(), "Alice");
        assert_eq!(normalize_name("bob").unwrap(), "Bob");
        assert_eq!(normalize_name("Al"), Err(NameError::TooShort));
        assert_eq!(normalize_name(&"a".repeat(21)), Err(NameError::TooLong));
        assert!(normalize_name(&"a".repeat(20)).is_ok());
        for bad in ["al1ce", "al-ice", "Zoë", "a\x1bb", "ab_c"] {
            assert_eq!(normalize_name(bad), Err(NameError::NotLetters), "{bad}");
        }
    }
}
