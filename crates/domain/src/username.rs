//! `Username`: 3–32 characters of ASCII letters, digits, `_`, `-` and `.`.

use std::fmt;

/// Shortest username accepted.
pub const MIN_LEN: usize = 3;
/// Longest username accepted.
pub const MAX_LEN: usize = 32;

/// A valid username, as the user typed it (case preserved).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Username(String);

/// Why a username was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsernameError {
    /// Fewer than [`MIN_LEN`] or more than [`MAX_LEN`] characters.
    #[error("Username must be between 3 and 32 characters")]
    Length,
    /// A character outside the allowed set.
    #[error("Username may only contain letters, digits, '_', '-' and '.'")]
    Characters,
}

impl Username {
    /// Parses user input; surrounding whitespace is ignored.
    pub fn parse(input: &str) -> Result<Self, UsernameError> {
        let s = input.trim();
        let len = s.chars().count();
        if !(MIN_LEN..=MAX_LEN).contains(&len) {
            return Err(UsernameError::Length);
        }
        if !s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')) {
            return Err(UsernameError::Characters);
        }
        Ok(Self(s.to_owned()))
    }

    /// The username as typed.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form uniqueness is decided on: lower case.
    pub fn normalized(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_allowed_alphabet() {
        for ok in ["abc", "Alice_01", "a.b-c", &"x".repeat(32), "  bob  "] {
            assert!(Username::parse(ok).is_ok(), "{ok:?}");
        }
        assert_eq!(Username::parse("  bob ").map(|u| u.0), Ok("bob".into()));
    }

    #[test]
    fn refuses_bad_lengths_and_characters() {
        assert_eq!(Username::parse("ab"), Err(UsernameError::Length));
        assert_eq!(Username::parse(&"x".repeat(33)), Err(UsernameError::Length));
        assert_eq!(Username::parse(""), Err(UsernameError::Length));
        for bad in ["bad name", "<script>", "émile", "a/b", "a@b", "null\0x", "tab\tx"] {
            assert_eq!(Username::parse(bad), Err(UsernameError::Characters), "{bad:?}");
        }
    }

    #[test]
    fn normalizes_case() {
        let u = Username::parse("AliCe").expect("valid");
        assert_eq!(u.as_str(), "AliCe");
        assert_eq!(u.normalized(), "alice");
    }
}
