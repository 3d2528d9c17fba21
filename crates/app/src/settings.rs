//! The knobs of the account system, read from configuration by the binary.

use std::time::Duration;

/// Argon2id cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Argon2Settings {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for Argon2Settings {
    fn default() -> Self {
        // OWASP's first recommended set.
        Self { memory_kib: 19_456, iterations: 2, parallelism: 1 }
    }
}

/// Everything the account use cases need to know.
#[derive(Clone, Debug)]
pub struct AuthSettings {
    /// Shortest new password.
    pub min_password_length: usize,
    /// Failed logins for one name before it locks.
    pub lockout_threshold: u32,
    /// How long a lock lasts (and the window failures are counted in).
    pub lockout_duration: Duration,
    /// A session unused this long is dead.
    pub session_idle_timeout: Duration,
    /// A session without "remember me" dies this long after login.
    pub session_absolute_timeout: Duration,
    /// Lifetime of a "remember me" session.
    pub remember_duration: Duration,
    /// Password-reset link lifetime.
    pub reset_token_ttl: Duration,
    /// Verification link lifetime.
    pub verify_token_ttl: Duration,
    /// The public URL links in mails start with (no trailing slash).
    pub base_url: String,
    /// Mail users when their account is signed in to from a new browser.
    pub new_device_mail: bool,
    /// Mails with links (verification, email change, reset) per destination
    /// address, and per account, in an hour (0 = unlimited).
    pub mail_per_hour: u32,
    /// The issuer named in a TOTP enrolment's `otpauth://` URI.
    pub totp_issuer: String,
    /// Administrators without 2FA are sent to enrol before any admin page.
    pub require_two_factor_for_admins: bool,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            min_password_length: 8,
            lockout_threshold: 5,
            lockout_duration: Duration::from_secs(15 * 60),
            session_idle_timeout: Duration::from_secs(2 * 3600),
            session_absolute_timeout: Duration::from_secs(24 * 3600),
            remember_duration: Duration::from_secs(30 * 24 * 3600),
            reset_token_ttl: Duration::from_secs(3600),
            verify_token_ttl: Duration::from_secs(48 * 3600),
            base_url: "http://127.0.0.1:8080".into(),
            new_device_mail: true,
            mail_per_hour: 3,
            totp_issuer: "Portcullis".into(),
            require_two_factor_for_admins: false,
        }
    }
}

impl AuthSettings {
    /// How long after the last write of `last_seen_at` the next one is due:
    /// a tenth of the idle timeout, at most a minute.
    pub fn touch_interval(&self) -> Duration {
        (self.session_idle_timeout / 10).min(Duration::from_secs(60))
    }
}
