//! The application layer's one error type.

use std::fmt;

/// Errors the store reports; constraint violations arrive as domain words.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The username is taken (case-insensitively).
    #[error("Username already exists")]
    UsernameTaken,
    /// The email is taken (case-insensitively).
    #[error("Email already registered")]
    EmailTaken,
    /// Anything else from the database.
    #[error("database error: {0}")]
    Backend(String),
}

/// Messages about individual form fields, in display order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FieldErrors(pub Vec<(&'static str, String)>);

impl FieldErrors {
    /// Records a message for `field`.
    pub fn add(&mut self, field: &'static str, message: impl Into<String>) {
        self.0.push((field, message.into()));
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The first message for `field`, if any.
    pub fn get(&self, field: &str) -> Option<&str> {
        self.0.iter().find(|(f, _)| *f == field).map(|(_, m)| m.as_str())
    }
}

impl fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let msgs: Vec<&str> = self.0.iter().map(|(_, m)| m.as_str()).collect();
        f.write_str(&msgs.join("; "))
    }
}

/// What a use case can answer besides success.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The input was refused; each message belongs to a field.
    #[error("{0}")]
    Invalid(FieldErrors),
    /// Unknown user or wrong password: deliberately one answer.
    #[error("Invalid username or password")]
    InvalidCredentials,
    /// Too many failed logins for this name.
    #[error("Too many failed login attempts: this account is temporarily locked. Try again later.")]
    Locked,
    /// The right password for an account an administrator locked: said only
    /// once the password is known to be right, so a stranger learns nothing.
    #[error("This account is locked by an administrator.")]
    AdminLocked,
    /// The password hashing pool is full.
    #[error("The server is busy; try again in a moment")]
    Busy,
    /// This user or client already has its share of the work in flight.
    #[error("Too many requests at once; try again in a moment")]
    TooMany {
        /// Seconds to wait.
        retry_after: u64,
    },
    /// A mail of this kind went to this address or account recently; none is sent now.
    #[error("We sent you a mail recently. Check your inbox (and spam folder), or try again later.")]
    SentRecently,
    /// No such thing.
    #[error("Not found")]
    NotFound,
    /// Signed in but not allowed.
    #[error("{0}")]
    Forbidden(&'static str),
    /// A rule of the product refused the action (the message says which).
    #[error("{0}")]
    Refused(String),
    /// A link's token is unknown, altered, used or expired.
    #[error("{0}")]
    Token(TokenProblem),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Something that should not happen.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<crate::hashing::PoolBusy> for AppError {
    fn from(_: crate::hashing::PoolBusy) -> Self {
        AppError::Busy
    }
}

/// What is wrong with a link's token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenProblem {
    /// Unknown or altered.
    Invalid,
    /// Already used.
    Used,
    /// Past its expiry.
    Expired,
}

impl fmt::Display for TokenProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Invalid => "This link is not valid. Check that you copied the whole link from the email.",
            Self::Used => "This link has already been used.",
            Self::Expired => "This link has expired. Request a new one.",
        })
    }
}
