//! Signing in: checking a name and password under the lockout rule, and
//! opening the session of a checked login.

use portcullis_domain::lockout::{self, DeviceClaim, LockoutRule};

use super::{Accounts, normalize_login};
use crate::audit::Origin;
use crate::clock::ms;
use crate::error::AppError;
use crate::hashing::Admission;
use crate::mail::MailKind;
use crate::model::{ClientInfo, User};
use crate::ports::SignIn;

use super::sessions::NewSession;

/// The subject of a failed login whose name no account has.
pub const UNKNOWN: &str = "unknown identifier";

/// A browser's signed claim that it signed in to `user_id` before.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceCookie {
    /// The account.
    pub user_id: i64,
    /// Random, names this browser's own failure counter.
    pub nonce: String,
}

/// A checked login, to be opened with [`Accounts::sign_in`]. It holds its
/// place in the hashing pool until then, so that the attempt it counted is
/// forgotten before the place goes to another login.
#[derive(Debug)]
pub struct Login {
    /// Who.
    pub user: User,
    /// The browser showed a device cookie for this account.
    pub known_device: bool,
    /// The failed-login counter the attempt was counted under.
    attempt_key: String,
    /// Said in the audit event of the sign-in: how the user proved who
    /// they are, when not by password.
    method: Option<&'static str>,
    _place: Option<Admission>,
}

impl Login {
    /// A login whose user was checked some other way than by
    /// [`Accounts::authenticate`] (a second factor, a passkey), counted
    /// under `attempt_key` and holding `place` in the hashing pool: to be
    /// opened with [`Accounts::sign_in`] like any other.
    pub(crate) fn checked(user: User, known_device: bool, attempt_key: String, place: Admission) -> Self {
        Self { user, known_device, attempt_key, method: None, _place: Some(place) }
    }

    /// The failed-login counter the attempt was counted under.
    pub(crate) fn attempt_key(&self) -> &str {
        &self.attempt_key
    }
}

impl Accounts {
    /// Every lockout counter that can hold a user's failed logins.
    pub(super) fn lockout_keys(&self, user: &User) -> Vec<String> {
        let name = |n: &str| self.mailer.fingerprint(&normalize_login(n));
        lockout::account_keys(user.id, &name(&user.username), &name(&user.email))
    }

    /// The lockout rule in force.
    pub(super) fn lockout_rule(&self) -> LockoutRule {
        LockoutRule { threshold: self.settings.lockout_threshold, window_ms: ms(self.settings.lockout_duration) }
    }

    /// Checks a username-or-email and password. Unknown users, wrong passwords
    /// and locked names cost the same and answer alike; at most
    /// `lockout_threshold` guesses per name are ever verified, however many
    /// arrive at once, because each attempt is counted before it is checked.
    /// A success is recorded only when [`Accounts::sign_in`] opens its session.
    pub async fn authenticate(
        &self,
        identifier: &str,
        password: &str,
        device: Option<&DeviceCookie>,
        origin: &Origin,
    ) -> Result<Login, AppError> {
        let normalized = normalize_login(identifier);
        // People type passwords into the name box: a name no account has is
        // recorded and counted by its keyed hash, never as text.
        let name_hash = self.mailer.fingerprint(&normalized);
        let failed = |kind: &str, user: Option<&User>| match user {
            Some(u) => self.event(origin, kind, Some(u.id), Some(identifier.trim()), None),
            None => self.event(origin, kind, None, Some(UNKNOWN), Some(format!("identifier {name_hash}"))),
        };
        if normalized.is_empty()
            || password.is_empty()
            || normalized.len() > 254
            || password.chars().count() > portcullis_domain::password::MAX_LEN
        {
            self.hasher.verify_dummy(password).await?;
            self.audit.insert_audit(&failed("login.failure", None)).await?;
            return Err(AppError::InvalidCredentials);
        }
        // A place in the hashing pool first: when the pool is full the answer
        // is 503 and nothing is counted, so a flood cannot lock owners out.
        // It is held to the end, so the attempt counted here is cleared on
        // success before the place goes to the next login.
        let place = self.hasher.admit()?;
        let user = self.users.user_by_login(&normalized).await?;
        let claim = device.map(|d| DeviceClaim { user_id: d.user_id, nonce: &d.nonce });
        let counted = lockout::attempt_key(user.as_ref().map(|u| u.id), &name_hash, claim);
        let rule = self.lockout_rule();
        let now = self.now();
        let r = rule.reserve(now);
        let attempts =
            self.throttle.reserve_attempt(&counted.key, r.now, r.threshold, r.lock_until, r.window_start).await?;
        if !rule.admits(attempts) {
            self.audit.insert_audit(&failed("login.locked", user.as_ref())).await?;
            return Err(AppError::Locked);
        }
        let Some(user) = user else {
            self.hasher.verify_dummy_admitted(&place, password).await?;
            self.audit.insert_audit(&failed("login.failure", None)).await?;
            if attempts >= r.threshold {
                self.audit.insert_audit(&failed(crate::meter::LOCKOUT_EVENT, None)).await?;
            }
            return Err(AppError::InvalidCredentials);
        };
        let verified = self.hasher.verify_admitted(&place, password, &user.password_hash).await?;
        if !verified.ok {
            self.audit.insert_audit(&failed("login.failure", Some(&user))).await?;
            if attempts >= r.threshold {
                self.audit.insert_audit(&failed(crate::meter::LOCKOUT_EVENT, Some(&user))).await?;
            }
            return Err(AppError::InvalidCredentials);
        }
        // Only the owner, who knows the password, learns of an administrator's lock.
        if lockout::admin_lock_holds(user.admin_locked_until, now) {
            self.audit.insert_audit(&failed("login.locked", Some(&user))).await?;
            return Err(AppError::AdminLocked);
        }
        if verified.needs_rehash {
            // Quietly move old (Werkzeug, cheaper Argon2) hashes to the current cost.
            match self.hasher.hash_admitted(&place, password).await {
                Ok(h) => self.users.update_password_hash(user.id, &h, self.now()).await?,
                Err(e) => {
                    tracing::warn!(user_id = user.id, error = %e, "password rehash postponed")
                }
            }
        }
        Ok(Login {
            user,
            known_device: counted.known_device,
            attempt_key: counted.key,
            method: None,
            _place: Some(place),
        })
    }

    /// A checked login for `user`, who proved who they are by `method` (a
    /// passkey) rather than a password: refused, like a password login,
    /// while the counter a password login from this browser would be counted
    /// on is locked, or while an administrator's lock holds. Nothing was
    /// guessed, so no attempt is counted; a success forgets the counter.
    pub(super) async fn verified_login(
        &self,
        user: User,
        method: &'static str,
        device: Option<&DeviceCookie>,
        origin: &Origin,
    ) -> Result<Login, AppError> {
        let name_hash = self.mailer.fingerprint(&normalize_login(&user.username));
        let claim = device.map(|d| DeviceClaim { user_id: d.user_id, nonce: &d.nonce });
        let counted = lockout::attempt_key(Some(user.id), &name_hash, claim);
        let now = self.now();
        let locked = self.throttle.locked_until(&counted.key, now).await?.is_some();
        let refusal = if locked {
            Some(AppError::Locked)
        } else if lockout::admin_lock_holds(user.admin_locked_until, now) {
            Some(AppError::AdminLocked)
        } else {
            None
        };
        if let Some(e) = refusal {
            let detail = Some(format!("by {method}"));
            let event = self.event(origin, "login.locked", Some(user.id), Some(&user.username), detail);
            self.audit.insert_audit(&event).await?;
            return Err(e);
        }
        Ok(Login {
            user,
            known_device: counted.known_device,
            attempt_key: counted.key,
            method: Some(method),
            _place: None,
        })
    }

    /// Opens the session of a checked login, in one write with the rest of
    /// what a login changes: the attempt is forgotten, the login noted on
    /// the user and in the audit log, and, if the settings ask for it, a
    /// browser the account had not seen (`device` names it) gets the owner
    /// a notice. Any session the browser had is replaced by the caller.
    pub async fn sign_in(
        &self,
        login: Login,
        remember: bool,
        client: ClientInfo,
        device: &str,
        origin: &Origin,
    ) -> Result<NewSession, AppError> {
        let user = &login.user;
        let mail = if login.known_device || !self.settings.new_device_mail {
            None
        } else {
            let mut vars = self.vars(user, None, None);
            vars.ip = client.ip.map(|ip| ip.to_string());
            vars.device = Some(device.to_owned());
            // The notice is not worth refusing the login for.
            self.mailer
                .compose(MailKind::NewDevice, &user.email, &vars)
                .inspect_err(|e| tracing::warn!(error = %e, "new sign-in notice not written"))
                .ok()
        };
        let new = self.new_session(user, remember, client);
        let detail = login.method.map(|m| format!("by {m}"));
        let event = self.event(origin, "login.success", Some(user.id), Some(&user.username), detail);
        let writes = SignIn { attempt_key: &login.attempt_key, audit: &event, mail: mail.as_ref() };
        self.sessions.open_session(&new.session, &writes).await?;
        if mail.is_some() {
            self.mailer.queued();
        }
        Ok(new)
    }

    /// When a user is locked until, if now locked.
    pub async fn locked_until(&self, user: &User) -> Result<Option<i64>, AppError> {
        let now = self.now();
        let by_failures = self.throttle.locked_until(&lockout::account_key(user.id), now).await?;
        Ok(user.admin_locked_until.filter(|t| *t > now).max(by_failures))
    }
}
