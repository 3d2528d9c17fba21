//! `Email`: an address we can send mail to.

use std::fmt;
use std::str::FromStr;

/// Longest address accepted (RFC 5321's path limit).
pub const MAX_LEN: usize = 254;

/// A syntactically valid email address, as the user typed it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Email(String);

/// Why an email address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    /// Not an address, or longer than [`MAX_LEN`].
    #[error("Enter a valid email address")]
    Invalid,
}

impl Email {
    /// Parses user input; surrounding whitespace is ignored. The domain must
    /// contain a dot (or be `localhost`), as mail on the internet needs.
    pub fn parse(input: &str) -> Result<Self, EmailError> {
        let s = input.trim();
        if s.is_empty() || s.len() > MAX_LEN || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(EmailError::Invalid);
        }
        let parsed = email_address::EmailAddress::from_str(s).map_err(|_| EmailError::Invalid)?;
        let domain = parsed.domain();
        let domain_ok = domain.eq_ignore_ascii_case("localhost")
            || (domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.') && !domain.starts_with('['));
        // Display names ("Bob <bob@x.y>") are not addresses.
        if !domain_ok || parsed.as_str() != s || s.contains('<') {
            return Err(EmailError::Invalid);
        }
        Ok(Self(s.to_owned()))
    }

    /// The address as typed.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form uniqueness is decided on: lower case.
    pub fn normalized(&self) -> String {
        self.0.to_lowercase()
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_addresses() {
        for ok in ["a@example.com", "first.last+tag@sub.example.org", "x@localhost", " bob@example.com "] {
            assert!(Email::parse(ok).is_ok(), "{ok:?}");
        }
    }

    #[test]
    fn refuses_non_addresses() {
        for bad in [
            "",
            "plain",
            "@example.com",
            "a@",
            "a@b",
            "a b@example.com",
            "Bob <bob@example.com>",
            "a@example.com\r\nBcc: x@y.z",
            &format!("{}@example.com", "a".repeat(250)),
        ] {
            assert_eq!(Email::parse(bad), Err(EmailError::Invalid), "{bad:?}");
        }
    }

    #[test]
    fn normalizes_case() {
        let e = Email::parse("Bob@Example.COM").expect("valid");
        assert_eq!(e.normalized(), "bob@example.com");
        assert_eq!(e.as_str(), "Bob@Example.COM");
    }
}
