//! Records as the store returns them.

use portcullis_domain::{Email, Username};

/// Where a request comes from: kept on the session and on audit events.
#[derive(Debug, Default, Clone)]
pub struct ClientInfo {
    /// Client IP.
    pub ip: Option<std::net::IpAddr>,
    /// User agent, truncated.
    pub user_agent: Option<String>,
}

/// A user account.
#[derive(Clone, Debug)]
pub struct User {
    /// Primary key.
    pub id: i64,
    /// As typed at registration.
    pub username: String,
    /// As typed.
    pub email: String,
    /// PHC string (Argon2id) or a Werkzeug hash awaiting upgrade.
    pub password_hash: String,
    /// Administrator.
    pub is_admin: bool,
    /// Email address confirmed.
    pub email_verified: bool,
    /// Changes whenever credentials or privileges change; sessions carry the
    /// value they were made under, so changing it ends them all at once.
    pub security_stamp: String,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub updated_at: i64,
    /// Unix ms of the last successful login.
    pub last_login_at: Option<i64>,
    /// Locked by an administrator until this time (unix ms).
    pub admin_locked_until: Option<i64>,
}

/// A user about to be inserted.
#[derive(Clone, Debug)]
pub struct NewUser {
    /// Parsed username.
    pub username: Username,
    /// Parsed email.
    pub email: Email,
    /// Already hashed.
    pub password_hash: String,
    /// Administrator.
    pub is_admin: bool,
    /// Email address confirmed.
    pub email_verified: bool,
    /// Fresh random stamp.
    pub security_stamp: String,
    /// Unix ms.
    pub now: i64,
}

/// A line of the admin's user list.
#[derive(Clone, Debug)]
pub struct UserSummary {
    /// The user.
    pub user: User,
    /// Locked by failed logins until this time (unix ms), if in the future.
    pub locked_until: Option<i64>,
}

/// A server-side login session.
#[derive(Clone, Debug)]
pub struct Session {
    /// Public half of the cookie.
    pub id: String,
    /// SHA-256 (hex) of the secret half.
    pub secret_hash: String,
    /// Owner.
    pub user_id: i64,
    /// The owner's security stamp when the session was made.
    pub security_stamp: String,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms; written at most every `touch_interval`.
    pub last_seen_at: i64,
    /// Unix ms; the hard end.
    pub expires_at: i64,
    /// Made with "remember me".
    pub remember: bool,
    /// Client IP at login.
    pub ip: Option<String>,
    /// User agent at login.
    pub user_agent: Option<String>,
}

/// A live session and its user, read together. Shared behind an `Arc`:
/// every request of a signed-in user reads one, and a cache can hand out
/// the same one many times.
#[derive(Clone, Debug)]
pub struct SignedIn {
    /// The session.
    pub session: Session,
    /// Its user.
    pub user: User,
}

/// A post with its author's name.
#[derive(Clone, Debug)]
pub struct Post {
    /// Primary key.
    pub id: i64,
    /// Author's id.
    pub author_id: i64,
    /// Author's username.
    pub author: String,
    /// Title.
    pub title: String,
    /// Content.
    pub content: String,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub updated_at: i64,
}

/// What a one-shot token is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenPurpose {
    /// Confirms an email address.
    VerifyEmail,
    /// Sets a new password.
    ResetPassword,
}

impl TokenPurpose {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::ResetPassword => "reset_password",
        }
    }

    /// From the stored form.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "verify_email" => Some(Self::VerifyEmail),
            "reset_password" => Some(Self::ResetPassword),
            _ => None,
        }
    }
}

/// A token about to be stored (only the hash of its secret).
#[derive(Clone, Debug)]
pub struct NewToken {
    /// Public id.
    pub id: String,
    /// Hex SHA-256 of the secret.
    pub secret_hash: String,
    /// What it is for.
    pub purpose: TokenPurpose,
    /// The address it verifies (verification tokens).
    pub email: Option<String>,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub expires_at: i64,
}

/// A stored token.
#[derive(Clone, Debug)]
pub struct TokenRecord {
    /// Public id.
    pub id: String,
    /// Hex SHA-256 of the secret.
    pub secret_hash: String,
    /// What it is for (`None` if unknown to this version).
    pub purpose: Option<TokenPurpose>,
    /// Owner.
    pub user_id: i64,
    /// The address it verifies.
    pub email: Option<String>,
    /// Unix ms.
    pub expires_at: i64,
    /// Unix ms, once used.
    pub used_at: Option<i64>,
}

/// A user's two-factor settings as stored.
#[derive(Clone, Debug, Default)]
pub struct TwoFactorRecord {
    /// Whose.
    pub user_id: i64,
    /// The confirmed TOTP secret, sealed; `None` while 2FA is off.
    pub secret: Option<String>,
    /// When 2FA was turned on (unix ms).
    pub enabled_at: Option<i64>,
    /// The last step a code was accepted for.
    pub last_step: Option<i64>,
    /// A secret shown for enrolment and not yet confirmed, sealed.
    pub pending_secret: Option<String>,
    /// When that enrolment started (unix ms).
    pub pending_at: Option<i64>,
    /// Recovery codes not yet used.
    pub recovery_left: i64,
}

impl TwoFactorRecord {
    /// Whether 2FA is on.
    pub fn enabled(&self) -> bool {
        self.secret.is_some()
    }
}

/// A sign-in whose password was right, waiting for its second factor.
#[derive(Clone, Debug)]
pub struct PendingSignIn {
    /// Public half of its cookie.
    pub id: String,
    /// SHA-256 (hex) of the secret half.
    pub secret_hash: String,
    /// Who.
    pub user_id: i64,
    /// The failed-login counter the password was counted under; wrong codes count there too.
    pub attempt_key: String,
    /// The browser showed a device cookie for this account.
    pub known_device: bool,
    /// "Remember me" was ticked.
    pub remember: bool,
    /// Where to go afterwards (a local path).
    pub next: Option<String>,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub expires_at: i64,
}
