//! Accounts and sessions: the use cases behind [`Accounts`], one file per
//! use case (registration, sign-in and lockout, sessions, recovery, email
//! change, administration, two-factor); this file holds what they share.

mod administration;
mod email_change;
mod export;
mod mail_limits;
mod passkeys;
mod password_check;
mod recovery;
mod registration;
mod sessions;
mod setup;
mod sign_in;
mod two_factor;
mod two_factor_sign_in;

use std::sync::Arc;
use std::time::Duration;

use portcullis_domain::PasswordPolicy;

use crate::audit::{AuditEvent, Origin};
use crate::clock::{Clock, ms};
use crate::error::{AppError, FieldErrors, TokenProblem};
use crate::hashing::HashPool;
use crate::mail::{MailVars, Mailer};
use crate::model::{NewToken, TokenPurpose, TokenRecord, User};
use crate::ports::{AuditStore, LoginThrottle, SessionStore, TokenStore, TwoFactorStore, UserStore};
use crate::settings::AuthSettings;
use crate::tokens;

pub use export::{AccountExport, ExportSources};
pub use passkeys::{CEREMONY_TTL, Passkeys, Proof, Started, relying_party};
pub use registration::Registration;
pub use sessions::NewSession;
pub use setup::{FirstAdmin, SETUP_TTL};
pub use sign_in::{DeviceCookie, Login};
pub use two_factor::{CodeUsed, Enrolment, RECOVERY_CODES, SecondFactorKeys, TwoFactorStatus, WRONG_CODE};
pub use two_factor_sign_in::{FirstStep, PENDING_SIGN_IN_TTL, SecondStep};

/// The storage ports the account use cases need.
#[derive(Clone)]
pub struct AccountPorts {
    /// Users.
    pub users: Arc<dyn UserStore>,
    /// Sessions.
    pub sessions: Arc<dyn SessionStore>,
    /// Failed-login counters.
    pub throttle: Arc<dyn LoginThrottle>,
    /// One-shot tokens and the changes they make.
    pub tokens: Arc<dyn TokenStore>,
    /// Audit events that go with no other change (failed logins).
    pub audit: Arc<dyn AuditStore>,
    /// Two-factor settings, recovery codes, pending sign-ins.
    pub two_factor: Arc<dyn TwoFactorStore>,
}

/// The account use cases.
#[derive(Clone)]
pub struct Accounts {
    users: Arc<dyn UserStore>,
    sessions: Arc<dyn SessionStore>,
    throttle: Arc<dyn LoginThrottle>,
    tokens: Arc<dyn TokenStore>,
    audit: Arc<dyn AuditStore>,
    two_factor: Arc<dyn TwoFactorStore>,
    mailer: Mailer,
    hasher: Arc<HashPool>,
    settings: AuthSettings,
    clock: Arc<dyn Clock>,
    setup: setup::SetupSlot,
    meter: Arc<crate::meter::Meter>,
}

impl Accounts {
    /// Wires the use cases to their ports; every timeout and lifetime is
    /// measured on `clock`.
    pub fn new(
        ports: AccountPorts,
        mailer: Mailer,
        hasher: Arc<HashPool>,
        settings: AuthSettings,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            users: ports.users,
            sessions: ports.sessions,
            throttle: ports.throttle,
            tokens: ports.tokens,
            audit: ports.audit,
            two_factor: ports.two_factor,
            mailer,
            hasher,
            settings,
            clock,
            setup: setup::SetupSlot::default(),
            meter: Arc::default(),
        }
    }

    /// The settings in force.
    pub fn settings(&self) -> &AuthSettings {
        &self.settings
    }

    /// The clock the use cases read.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The password policy in force.
    pub fn password_policy(&self) -> PasswordPolicy {
        PasswordPolicy { min_length: self.settings.min_password_length }
    }

    /// Sign-in counters (for metrics).
    pub fn meter(&self) -> &crate::meter::Meter {
        &self.meter
    }

    /// The hashing pool.
    pub fn hasher(&self) -> &Arc<HashPool> {
        &self.hasher
    }

    /// A user by id.
    pub async fn user(&self, id: i64) -> Result<User, AppError> {
        self.users.user_by_id(id).await?.ok_or(AppError::NotFound)
    }

    /// A user by username (any case) or email.
    pub async fn find_user(&self, identifier: &str) -> Result<User, AppError> {
        self.users.user_by_login(&normalize_login(identifier)).await?.ok_or(AppError::NotFound)
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), AppError> {
        Ok(self.users.ping().await?)
    }

    fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// An audit event of `kind` from `origin`, dated now; sign-in events
    /// are counted for metrics as they are made.
    fn event(
        &self,
        origin: &Origin,
        kind: &str,
        user_id: Option<i64>,
        subject: Option<&str>,
        detail: Option<String>,
    ) -> AuditEvent {
        self.meter.saw(kind);
        origin.event(self.now(), kind, user_id, subject, detail)
    }

    fn link(&self, path: &str, token: &str) -> String {
        format!("{}/{path}/{token}", self.settings.base_url.trim_end_matches('/'))
    }

    fn vars(&self, user: &User, link: Option<String>, valid_for: Option<Duration>) -> MailVars {
        MailVars {
            username: user.username.clone(),
            link,
            valid_for: valid_for.map(in_words),
            base_url: self.settings.base_url.clone(),
            ip: None,
            device: None,
            new_email: None,
        }
    }

    /// A fresh one-shot token living `ttl` from now, and the value its link carries.
    fn new_token(&self, purpose: TokenPurpose, email: Option<String>, ttl: Duration) -> (NewToken, String) {
        let minted = tokens::mint();
        let now = self.now();
        let token = NewToken {
            id: minted.id.clone(),
            secret_hash: minted.secret_hash.clone(),
            purpose,
            email,
            created_at: now,
            expires_at: now.saturating_add(ms(ttl)),
        };
        (token, minted.value())
    }

    /// Checks a link's token: right secret, right purpose, unused, unexpired.
    async fn check_token(&self, value: &str, purpose: TokenPurpose) -> Result<TokenRecord, AppError> {
        let (id, secret) = tokens::parse(value.trim()).ok_or(AppError::Token(TokenProblem::Invalid))?;
        let rec = self.tokens.token(id).await?.ok_or(AppError::Token(TokenProblem::Invalid))?;
        if !tokens::secret_matches(secret, &rec.secret_hash) || rec.purpose != Some(purpose) {
            return Err(AppError::Token(TokenProblem::Invalid));
        }
        if rec.used_at.is_some() {
            return Err(AppError::Token(TokenProblem::Used));
        }
        if self.now() >= rec.expires_at {
            return Err(AppError::Token(TokenProblem::Expired));
        }
        Ok(rec)
    }
}

/// "1 hour", "48 hours", "15 minutes".
fn in_words(d: Duration) -> String {
    let secs = d.as_secs();
    let (n, unit) = if secs >= 86_400 * 2 && secs.is_multiple_of(86_400) {
        (secs / 86_400, "day")
    } else if secs >= 3600 && secs.is_multiple_of(3600) {
        (secs / 3600, "hour")
    } else if secs >= 60 {
        (secs / 60, "minute")
    } else {
        (secs, "second")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// Normalizes a login identifier (username or email) for lookup.
fn normalize_login(identifier: &str) -> String {
    identifier.trim().to_lowercase()
}

fn invalid(field: &'static str, message: String) -> AppError {
    let mut e = FieldErrors::default();
    e.add(field, message);
    AppError::Invalid(e)
}
