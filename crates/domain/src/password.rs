//! `Password`: a new password that meets the policy. Never printed.

use std::collections::HashSet;
use std::fmt;
use std::sync::LazyLock;

/// Longest password accepted, in characters: long enough for any passphrase,
/// short enough that hashing it costs nothing extra.
pub const MAX_LEN: usize = 1024;

/// Django's list of 20,000 common passwords (BSD-3-Clause); see `data/README.md`.
static COMMON: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("../data/common-passwords.txt").lines().map(str::trim).filter(|l| !l.is_empty()).collect()
});

/// The rules a new password must meet.
#[derive(Clone, Copy, Debug)]
pub struct PasswordPolicy {
    /// Fewest characters (Unicode scalar values) accepted.
    pub min_length: usize,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self { min_length: 8 }
    }
}

/// Why a new password was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// Shorter than the policy's minimum.
    #[error("Password must be at least {0} characters")]
    TooShort(usize),
    /// Longer than [`MAX_LEN`].
    #[error("Password must be at most 1024 characters")]
    TooLong,
    /// On the common-passwords list.
    #[error("This password is too common; choose a less predictable one")]
    TooCommon,
}

/// A new password that passed the policy. Its `Debug` shows nothing.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    /// Checks a new password against the policy. The input is taken as is:
    /// spaces are part of a password.
    pub fn parse(input: &str, policy: PasswordPolicy) -> Result<Self, PasswordError> {
        let len = input.chars().count();
        if len < policy.min_length {
            return Err(PasswordError::TooShort(policy.min_length));
        }
        if len > MAX_LEN {
            return Err(PasswordError::TooLong);
        }
        if is_common(input) {
            return Err(PasswordError::TooCommon);
        }
        Ok(Self(input.to_owned()))
    }

    /// The secret itself, for hashing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Whether `password` (compared without regard to case) is on the list.
pub fn is_common(password: &str) -> bool {
    COMMON.contains(password.trim().to_lowercase().as_str())
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: PasswordPolicy = PasswordPolicy { min_length: 8 };

    #[test]
    fn length_counts_characters_not_bytes() {
        assert_eq!(Password::parse("short", P).err(), Some(PasswordError::TooShort(8)));
        // Seven characters, many bytes.
        assert_eq!(Password::parse("日本語のパスワ", P).err(), Some(PasswordError::TooShort(8)));
        assert!(Password::parse("日本語のパスワード", P).is_ok());
        let strict = PasswordPolicy { min_length: 12 };
        assert_eq!(
            Password::parse("elevenchars", strict).err().map(|e| e.to_string()),
            Some("Password must be at least 12 characters".into())
        );
    }

    #[test]
    fn long_and_unicode_passwords_are_fine() {
        let long: String = "ab€🔐".repeat(64);
        assert_eq!(long.chars().count(), 256);
        assert!(Password::parse(&long, P).is_ok());
        assert_eq!(Password::parse(&"x".repeat(1025), P).err(), Some(PasswordError::TooLong));
    }

    #[test]
    fn common_passwords_are_refused_in_any_case() {
        for common in ["password", "PASSWORD", "12345678", "iloveyou", "qwertyuiop"] {
            assert_eq!(Password::parse(common, P).err(), Some(PasswordError::TooCommon), "{common}");
        }
        assert!(COMMON.len() >= 10_000, "list has {} entries", COMMON.len());
        assert!(Password::parse("correct horse battery staple", P).is_ok());
    }

    #[test]
    fn debug_hides_the_secret() {
        let p = Password::parse("s3cret-value!", P).expect("valid");
        assert_eq!(format!("{p:?}"), "Password(***)");
    }
}
