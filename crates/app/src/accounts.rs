//! Accounts and sessions: register, log in, resolve a session cookie, log
//! out, and the administrator's actions on users.

use std::sync::Arc;

use portcullis_domain::{Email, Password, PasswordPolicy, Username};

use tokio::sync::Notify;

use crate::audit::{AuditEvent, Origin};
use crate::clock::{ms, now_ms};
use crate::error::{AppError, FieldErrors, StoreError, TokenProblem};
use crate::hashing::{Admission, HashPool};
use crate::mail::{MailKind, MailRenderer, MailVars, OutgoingMail, Sealer};
use crate::model::{NewToken, NewUser, Session, SignedIn, TokenPurpose, TokenRecord, User, UserSummary};
use crate::ports::{AuditStore, LoginThrottle, NewCredentials, SessionStore, SignIn, TokenStore, UserStore};
use crate::settings::AuthSettings;
use crate::tokens;

/// What the registration form carries.
#[derive(Debug, Default, Clone)]
pub struct Registration {
    /// Raw username.
    pub username: String,
    /// Raw email.
    pub email: String,
    /// Raw password.
    pub password: String,
    /// Make an administrator (command line only).
    pub is_admin: bool,
    /// Mark the email verified (command line only).
    pub email_verified: bool,
}

/// Where a login comes from, kept on the session.
#[derive(Debug, Default, Clone)]
pub struct ClientInfo {
    /// Client IP.
    pub ip: Option<std::net::IpAddr>,
    /// User agent, truncated.
    pub user_agent: Option<String>,
}

/// A new session: `cookie` goes to the browser, never into the store.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// `id.secret`.
    pub cookie: String,
    /// The stored record.
    pub session: Session,
}

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
}

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
    _place: Admission,
}

/// Writes mails for the outbox: renders, seals, and wakes the worker.
#[derive(Clone)]
pub struct Mailer {
    renderer: Arc<dyn MailRenderer>,
    sealer: Sealer,
    wake: Arc<Notify>,
}

impl Mailer {
    /// A mailer rendering with `renderer`, sealing with `sealer`, poking `wake`.
    pub fn new(renderer: Arc<dyn MailRenderer>, sealer: Sealer, wake: Arc<Notify>) -> Self {
        Self { renderer, sealer, wake }
    }

    fn compose(&self, kind: MailKind, to: &str, vars: &MailVars) -> Result<OutgoingMail, AppError> {
        let mail = self.renderer.render(kind, to, vars).map_err(AppError::Internal)?;
        self.sealer.seal(&mail).map_err(AppError::Internal)
    }

    fn queued(&self) {
        self.wake.notify_one();
    }
}

/// "1 hour", "48 hours", "15 minutes".
fn in_words(d: std::time::Duration) -> String {
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

/// The account use cases.
#[derive(Clone)]
pub struct Accounts {
    users: Arc<dyn UserStore>,
    sessions: Arc<dyn SessionStore>,
    throttle: Arc<dyn LoginThrottle>,
    tokens: Arc<dyn TokenStore>,
    audit: Arc<dyn AuditStore>,
    mailer: Mailer,
    hasher: Arc<HashPool>,
    settings: AuthSettings,
}

/// The lockout key of an existing account, or of a name nobody has.
fn throttle_key(user: Option<&User>, normalized: &str) -> String {
    match user {
        Some(u) => format!("user:{}", u.id),
        None => format!("name:{normalized}"),
    }
}

/// Normalizes a login identifier (username or email) for lookup.
fn normalize_login(identifier: &str) -> String {
    identifier.trim().to_lowercase()
}

impl Accounts {
    /// Wires the use cases to their ports.
    pub fn new(ports: AccountPorts, mailer: Mailer, hasher: Arc<HashPool>, settings: AuthSettings) -> Self {
        Self {
            users: ports.users,
            sessions: ports.sessions,
            throttle: ports.throttle,
            tokens: ports.tokens,
            audit: ports.audit,
            mailer,
            hasher,
            settings,
        }
    }

    fn link(&self, path: &str, token: &str) -> String {
        format!("{}/{path}/{token}", self.settings.base_url.trim_end_matches('/'))
    }

    fn vars(&self, user: &User, link: Option<String>, valid_for: Option<std::time::Duration>) -> MailVars {
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

    fn new_token(&self, purpose: TokenPurpose, email: Option<String>, ttl: std::time::Duration) -> (NewToken, String) {
        let minted = tokens::mint();
        let now = now_ms();
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
        if now_ms() >= rec.expires_at {
            return Err(AppError::Token(TokenProblem::Expired));
        }
        Ok(rec)
    }

    /// Sends (again) the verification mail; `false` if already verified.
    pub async fn resend_verification(&self, user: &User) -> Result<bool, AppError> {
        if user.email_verified {
            return Ok(false);
        }
        let (token, value) =
            self.new_token(TokenPurpose::VerifyEmail, Some(user.email.clone()), self.settings.verify_token_ttl);
        let vars = self.vars(user, Some(self.link("verify-email", &value)), Some(self.settings.verify_token_ttl));
        let mail = self.mailer.compose(MailKind::VerifyEmail, &user.email, &vars)?;
        self.tokens.issue_token(user.id, &token, &[mail], None).await?;
        self.mailer.queued();
        Ok(true)
    }

    /// Follows a verification link.
    pub async fn verify_email(&self, value: &str, origin: &Origin) -> Result<User, AppError> {
        let rec = self.check_token(value, TokenPurpose::VerifyEmail).await?;
        let user = self.user(rec.user_id).await?;
        let email = rec.email.clone().unwrap_or_else(|| user.email.clone());
        let event = origin.event("email.verified", Some(user.id), Some(&email), None);
        match self.tokens.verify_email_with_token(&rec.id, user.id, &email, now_ms(), Some(&event)).await {
            Ok(true) => {}
            Ok(false) => return Err(AppError::Token(TokenProblem::Used)),
            Err(StoreError::EmailTaken) => {
                return Err(AppError::Refused("That email address now belongs to another account.".into()));
            }
            Err(e) => return Err(e.into()),
        }
        self.user(user.id).await
    }

    /// Starts a password reset for the account with this email, if there is
    /// one. The caller answers the same whatever happens here, and this
    /// returns before any work is done, so the time taken says nothing either.
    pub fn request_password_reset(&self, email: &str) {
        let normalized = email.trim().to_lowercase();
        if !normalized.contains('@') || normalized.len() > 254 {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(e) = this.send_reset_mail(&normalized).await {
                tracing::warn!(error = %e, "password reset request failed");
            }
        });
    }

    async fn send_reset_mail(&self, normalized_email: &str) -> Result<(), AppError> {
        let Some(user) = self.users.user_by_login(normalized_email).await? else { return Ok(()) };
        if user.email.to_lowercase() != normalized_email {
            return Ok(());
        }
        let (token, value) = self.new_token(TokenPurpose::ResetPassword, None, self.settings.reset_token_ttl);
        let vars = self.vars(&user, Some(self.link("reset-password", &value)), Some(self.settings.reset_token_ttl));
        let mail = self.mailer.compose(MailKind::ResetPassword, &user.email, &vars)?;
        self.tokens.issue_token(user.id, &token, &[mail], None).await?;
        self.mailer.queued();
        Ok(())
    }

    /// Whether a reset link can still be used.
    pub async fn check_reset_token(&self, value: &str) -> Result<(), AppError> {
        self.check_token(value, TokenPurpose::ResetPassword).await.map(|_| ())
    }

    /// Follows a reset link: sets the new password, ends every session of
    /// the user, clears any lockout, and mails a notice.
    pub async fn reset_password(&self, value: &str, new_password: &str, origin: &Origin) -> Result<User, AppError> {
        let rec = self.check_token(value, TokenPurpose::ResetPassword).await?;
        let password =
            Password::parse(new_password, self.password_policy()).map_err(|e| invalid("password", e.to_string()))?;
        let user = self.user(rec.user_id).await?;
        let hash = self.hasher.hash(password.expose()).await?;
        let vars = self.vars(&user, None, None);
        let notice = self.mailer.compose(MailKind::PasswordChanged, &user.email, &vars)?;
        let keys = lockout_keys(&user);
        let event = origin.event("password.reset", Some(user.id), Some(&user.username), None);
        let done = self
            .tokens
            .reset_password_with_token(
                &rec.id,
                &keys,
                &NewCredentials {
                    user_id: user.id,
                    hash: &hash,
                    new_stamp: &tokens::random_b64(16),
                    mails: &[notice],
                    audit: Some(&event),
                    now: now_ms(),
                },
            )
            .await?;
        if !done {
            return Err(AppError::Token(TokenProblem::Used));
        }
        self.mailer.queued();
        self.user(user.id).await
    }

    /// The settings in force.
    pub fn settings(&self) -> &AuthSettings {
        &self.settings
    }

    /// The password policy in force.
    pub fn password_policy(&self) -> PasswordPolicy {
        PasswordPolicy { min_length: self.settings.min_password_length }
    }

    /// The hashing pool.
    pub fn hasher(&self) -> &Arc<HashPool> {
        &self.hasher
    }

    /// Creates an account. Every field is checked and every problem reported at once.
    pub async fn register(&self, form: Registration, origin: &Origin) -> Result<User, AppError> {
        let mut errors = FieldErrors::default();
        let username = Username::parse(&form.username).map_err(|e| errors.add("username", e.to_string())).ok();
        let email = Email::parse(&form.email).map_err(|e| errors.add("email", e.to_string())).ok();
        let password = Password::parse(&form.password, self.password_policy())
            .map_err(|e| errors.add("password", e.to_string()))
            .ok();
        if let Some(u) = &username
            && self.users.username_taken(&u.normalized()).await?
        {
            errors.add("username", StoreError::UsernameTaken.to_string());
        }
        if let Some(e) = &email
            && self.users.email_taken(&e.normalized()).await?
        {
            errors.add("email", StoreError::EmailTaken.to_string());
        }
        let (Some(username), Some(email), Some(password)) = (username, email, password) else {
            return Err(AppError::Invalid(errors));
        };
        if !errors.is_empty() {
            return Err(AppError::Invalid(errors));
        }
        let password_hash = self.hasher.hash(password.expose()).await?;
        let new = NewUser {
            username,
            email,
            password_hash,
            is_admin: form.is_admin,
            email_verified: form.email_verified,
            security_stamp: tokens::random_b64(16),
            now: now_ms(),
        };
        let event = origin.event("register", None, Some(new.username.as_str()), None);
        // The unique indexes decide races the lookups above could not.
        let inserted = if new.email_verified {
            self.users.insert_user(&new, Some(&event)).await
        } else {
            let (token, value) = self.new_token(
                TokenPurpose::VerifyEmail,
                Some(new.email.as_str().to_owned()),
                self.settings.verify_token_ttl,
            );
            let vars = MailVars {
                username: new.username.as_str().to_owned(),
                link: Some(self.link("verify-email", &value)),
                valid_for: Some(in_words(self.settings.verify_token_ttl)),
                base_url: self.settings.base_url.clone(),
                ip: None,
                device: None,
                new_email: None,
            };
            let mail = self.mailer.compose(MailKind::VerifyEmail, new.email.as_str(), &vars)?;
            let user = self.tokens.insert_user_with_token(&new, &token, &[mail], Some(&event)).await;
            self.mailer.queued();
            user
        };
        inserted.map_err(|e| match e {
            StoreError::UsernameTaken => invalid("username", e.to_string()),
            StoreError::EmailTaken => invalid("email", e.to_string()),
            other => other.into(),
        })
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
        let failed =
            |kind: &str, user: Option<&User>| origin.event(kind, user.map(|u| u.id), Some(identifier.trim()), None);
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
        // A browser that signed in to this account before counts its failures
        // on its own key, so strangers' guesses cannot lock the owner out.
        let known_device = match (&user, device) {
            (Some(u), Some(d)) if d.user_id == u.id => Some(d),
            _ => None,
        };
        let key = match known_device {
            Some(d) => format!("device:{}", d.nonce),
            None => throttle_key(user.as_ref(), &normalized),
        };
        let now = now_ms();
        let threshold = i64::from(self.settings.lockout_threshold.max(1));
        let lock_ms = ms(self.settings.lockout_duration);
        let attempts =
            self.throttle.reserve_attempt(&key, now, threshold, now.saturating_add(lock_ms), now - lock_ms).await?;
        if attempts > threshold {
            self.audit.insert_audit(&failed("login.locked", user.as_ref())).await?;
            return Err(AppError::Locked);
        }
        let Some(user) = user else {
            self.hasher.verify_dummy_admitted(&place, password).await?;
            self.audit.insert_audit(&failed("login.failure", None)).await?;
            return Err(AppError::InvalidCredentials);
        };
        if user.admin_locked_until.is_some_and(|t| t > now) {
            self.audit.insert_audit(&failed("login.locked", Some(&user))).await?;
            return Err(AppError::Locked);
        }
        let verified = self.hasher.verify_admitted(&place, password, &user.password_hash).await?;
        if !verified.ok {
            self.audit.insert_audit(&failed("login.failure", Some(&user))).await?;
            return Err(AppError::InvalidCredentials);
        }
        if verified.needs_rehash {
            // Quietly move old (Werkzeug, cheaper Argon2) hashes to the current cost.
            match self.hasher.hash_admitted(&place, password).await {
                Ok(h) => self.users.update_password_hash(user.id, &h, now_ms()).await?,
                Err(e) => {
                    tracing::warn!(user_id = user.id, error = %e, "password rehash postponed")
                }
            }
        }
        Ok(Login { user, known_device: known_device.is_some(), attempt_key: key, _place: place })
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
        let event = origin.event("login.success", Some(user.id), Some(&user.username), None);
        let writes = SignIn { attempt_key: &login.attempt_key, audit: &event, mail: mail.as_ref() };
        self.sessions.open_session(&new.session, &writes).await?;
        if mail.is_some() {
            self.mailer.queued();
        }
        Ok(new)
    }

    /// Opens a new session for `user`. Any session the browser had is replaced by the caller.
    pub async fn start_session(&self, user: &User, remember: bool, client: ClientInfo) -> Result<NewSession, AppError> {
        let new = self.new_session(user, remember, client);
        self.sessions.insert_session(&new.session).await?;
        Ok(new)
    }

    /// A session for `user`, not yet stored.
    fn new_session(&self, user: &User, remember: bool, client: ClientInfo) -> NewSession {
        let token = tokens::mint();
        let now = now_ms();
        let life = if remember { self.settings.remember_duration } else { self.settings.session_absolute_timeout };
        let session = Session {
            id: token.id.clone(),
            secret_hash: token.secret_hash.clone(),
            user_id: user.id,
            security_stamp: user.security_stamp.clone(),
            created_at: now,
            last_seen_at: now,
            expires_at: now.saturating_add(ms(life)),
            remember,
            ip: client.ip.map(|ip| ip.to_string()),
            user_agent: client.user_agent.map(|ua| ua.chars().take(512).collect()),
        };
        NewSession { cookie: token.value(), session }
    }

    /// The live session and user behind a cookie value, if any. Enforces the
    /// absolute and idle timeouts and the security stamp on the server.
    pub async fn resolve_session(&self, cookie: &str) -> Result<Option<Arc<SignedIn>>, AppError> {
        let Some((id, secret)) = tokens::parse(cookie) else {
            return Ok(None);
        };
        let Some(found) = self.sessions.session_with_user(id).await? else {
            return Ok(None);
        };
        let SignedIn { session, user } = &*found;
        if !tokens::secret_matches(secret, &session.secret_hash) {
            return Ok(None);
        }
        let now = now_ms();
        let idle = ms(self.settings.session_idle_timeout);
        let expired = now >= session.expires_at
            || (!session.remember && now.saturating_sub(session.last_seen_at) >= idle)
            || session.security_stamp != user.security_stamp;
        if expired {
            self.sessions.delete_session(user.id, &session.id, None).await?;
            return Ok(None);
        }
        if now.saturating_sub(session.last_seen_at) >= ms(self.settings.touch_interval()) {
            self.sessions.touch_session(&session.id, session.last_seen_at, now).await?;
        }
        Ok(Some(found))
    }

    /// Ends one session.
    pub async fn logout(&self, user: &User, session: &Session, origin: &Origin) -> Result<(), AppError> {
        let event = origin.event("logout", Some(user.id), Some(&user.username), None);
        self.sessions.delete_session(session.user_id, &session.id, Some(&event)).await?;
        Ok(())
    }

    /// Changes the password after checking the current one. Every session of
    /// the user ends (the security stamp changes) and the caller gets a fresh
    /// one in place of `current`.
    pub async fn change_password(
        &self,
        current: &Session,
        current_password: &str,
        new: &Password,
        origin: &Origin,
    ) -> Result<NewSession, AppError> {
        let user = self.user(current.user_id).await?;
        if !self.hasher.verify(current_password, &user.password_hash).await?.ok {
            return Err(AppError::InvalidCredentials);
        }
        let hash = self.hasher.hash(new.expose()).await?;
        let stamp = tokens::random_b64(16);
        let notice = self.mailer.compose(MailKind::PasswordChanged, &user.email, &self.vars(&user, None, None))?;
        let event = origin.event("password.changed", Some(user.id), Some(&user.username), None);
        let change = NewCredentials {
            user_id: user.id,
            hash: &hash,
            new_stamp: &stamp,
            mails: &[notice],
            audit: Some(&event),
            now: now_ms(),
        };
        self.tokens.change_password_with_mail(&change).await?;
        self.mailer.queued();
        self.sessions.delete_user_sessions(user.id, None, None).await?;
        let user = self.user(user.id).await?;
        let client = ClientInfo {
            ip: current.ip.as_deref().and_then(|ip| ip.parse().ok()),
            user_agent: current.user_agent.clone(),
        };
        self.start_session(&user, current.remember, client).await
    }

    /// Asks to change the account's email: the current password is required;
    /// a confirmation link goes to the new address (the change happens when
    /// it is followed) and a notice to the old one.
    pub async fn request_email_change(
        &self,
        user_id: i64,
        current_password: &str,
        new_email: &str,
        origin: &Origin,
    ) -> Result<(), AppError> {
        let user = self.user(user_id).await?;
        let email = Email::parse(new_email).map_err(|e| invalid("new_email", e.to_string()))?;
        if !self.hasher.verify(current_password, &user.password_hash).await?.ok {
            return Err(AppError::InvalidCredentials);
        }
        if email.normalized() == user.email.to_lowercase() {
            return Err(invalid("new_email", "That is already your email address".into()));
        }
        if self.users.email_taken(&email.normalized()).await? {
            return Err(invalid("new_email", StoreError::EmailTaken.to_string()));
        }
        let (token, value) =
            self.new_token(TokenPurpose::VerifyEmail, Some(email.as_str().to_owned()), self.settings.verify_token_ttl);
        let confirm_vars =
            self.vars(&user, Some(self.link("verify-email", &value)), Some(self.settings.verify_token_ttl));
        let confirm = self.mailer.compose(MailKind::VerifyEmail, email.as_str(), &confirm_vars)?;
        let mut notice_vars = self.vars(&user, None, None);
        notice_vars.new_email = Some(email.as_str().to_owned());
        let notice = self.mailer.compose(MailKind::EmailChangeNotice, &user.email, &notice_vars)?;
        let event = origin.event("email.change", Some(user.id), Some(&user.username), Some(format!("to {email}")));
        self.tokens.issue_token(user.id, &token, &[confirm, notice], Some(&event)).await?;
        self.mailer.queued();
        Ok(())
    }

    /// Deletes the user's own account (password required); never the last admin.
    pub async fn delete_own_account(
        &self,
        user_id: i64,
        current_password: &str,
        origin: &Origin,
    ) -> Result<(), AppError> {
        let user = self.user(user_id).await?;
        if !self.hasher.verify(current_password, &user.password_hash).await?.ok {
            return Err(AppError::InvalidCredentials);
        }
        let event = origin.event("account.deleted", Some(user.id), Some(&user.username), None);
        self.delete_recorded(user.id, &event).await
    }

    /// A user's live sessions, newest first.
    pub async fn sessions_of(&self, user_id: i64) -> Result<Vec<Session>, AppError> {
        Ok(self.sessions.user_sessions(user_id, now_ms()).await?)
    }

    /// Revokes one of the user's own sessions.
    pub async fn revoke_session(&self, user: &User, session_id: &str, origin: &Origin) -> Result<(), AppError> {
        let short = session_id.get(..6).unwrap_or(session_id);
        let event =
            origin.event("session.revoked", Some(user.id), Some(&user.username), Some(format!("session {short}")));
        if self.sessions.delete_session(user.id, session_id, Some(&event)).await? {
            Ok(())
        } else {
            Err(AppError::NotFound)
        }
    }

    /// Revokes all of the user's sessions but `keep` (their own, current one).
    pub async fn revoke_other_sessions(&self, user: &User, keep: &str, origin: &Origin) -> Result<u64, AppError> {
        let event =
            origin.event("session.revoked", Some(user.id), Some(&user.username), Some("every other session".into()));
        Ok(self.sessions.delete_user_sessions(user.id, Some(keep), Some(&event)).await?)
    }

    /// Ends every session of a user (an administrator's action).
    pub async fn end_all_sessions(&self, user_id: i64, origin: &Origin) -> Result<u64, AppError> {
        let user = self.user(user_id).await?;
        let event = origin.event("admin.sessions", Some(user.id), Some(&user.username), None);
        Ok(self.sessions.delete_user_sessions(user.id, None, Some(&event)).await?)
    }

    /// Deletes expired sessions; answers how many.
    pub async fn purge_expired_sessions(&self) -> Result<u64, AppError> {
        let now = now_ms();
        Ok(self.sessions.purge_sessions(now, now - ms(self.settings.session_idle_timeout)).await?)
    }

    /// A user by id.
    pub async fn user(&self, id: i64) -> Result<User, AppError> {
        self.users.user_by_id(id).await?.ok_or(AppError::NotFound)
    }

    /// A user by username (any case) or email.
    pub async fn find_user(&self, identifier: &str) -> Result<User, AppError> {
        self.users.user_by_login(&normalize_login(identifier)).await?.ok_or(AppError::NotFound)
    }

    /// Users for the admin list, `limit` at a time after `after_id`.
    pub async fn list_users(
        &self,
        query: Option<&str>,
        after_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<UserSummary>, AppError> {
        let query = query.map(str::trim).filter(|q| !q.is_empty());
        Ok(self.users.list_users(query, after_id, limit, now_ms()).await?)
    }

    /// Whether any administrator exists.
    pub async fn has_admin(&self) -> Result<bool, AppError> {
        Ok(self.users.count_admins().await? > 0)
    }

    /// Grants or revokes admin. The user's sessions end (privilege changed);
    /// the last admin cannot be demoted.
    pub async fn set_admin(&self, user_id: i64, is_admin: bool, origin: &Origin) -> Result<User, AppError> {
        let user = self.user(user_id).await?;
        if user.is_admin == is_admin {
            return Ok(user);
        }
        let stamp = tokens::random_b64(16);
        let kind = if is_admin { "admin.grant" } else { "admin.revoke" };
        let event = origin.event(kind, Some(user.id), Some(&user.username), None);
        if !self.users.set_admin(user_id, is_admin, &stamp, now_ms(), Some(&event)).await? {
            return Err(AppError::Refused("The last administrator cannot be demoted".into()));
        }
        self.sessions.delete_user_sessions(user_id, None, None).await?;
        self.user(user_id).await
    }

    /// Locks a user out of logging in for the lockout duration (an admin's action).
    pub async fn lock_user(&self, user_id: i64, until: i64, origin: &Origin) -> Result<(), AppError> {
        let user = self.user(user_id).await?;
        let event = origin.event("admin.lock", Some(user.id), Some(&user.username), None);
        // On the account itself, so no device cookie gets around it.
        self.users.set_admin_lock(user_id, Some(until), now_ms(), Some(&event)).await?;
        self.sessions.delete_user_sessions(user_id, None, None).await?;
        Ok(())
    }

    /// Clears a user's failed-login lock and any administrator's lock.
    pub async fn unlock_user(&self, user_id: i64, origin: &Origin) -> Result<(), AppError> {
        let user = self.user(user_id).await?;
        let event = origin.event("admin.unlock", Some(user.id), Some(&user.username), None);
        self.throttle.clear_attempts(&lockout_keys(&user)).await?;
        self.users.set_admin_lock(user_id, None, now_ms(), Some(&event)).await?;
        Ok(())
    }

    /// When a user is locked until, if now locked.
    pub async fn locked_until(&self, user: &User) -> Result<Option<i64>, AppError> {
        let now = now_ms();
        let by_failures = self.throttle.locked_until(&throttle_key(Some(user), ""), now).await?;
        Ok(user.admin_locked_until.filter(|t| *t > now).max(by_failures))
    }

    /// Deletes a user, their posts and sessions; never the last admin.
    pub async fn delete_user(&self, user_id: i64, origin: &Origin) -> Result<(), AppError> {
        let user = self.user(user_id).await?;
        let event = origin.event("admin.delete", Some(user.id), Some(&user.username), None);
        self.delete_recorded(user_id, &event).await
    }

    async fn delete_recorded(&self, user_id: i64, event: &AuditEvent) -> Result<(), AppError> {
        if self.users.delete_user(user_id, Some(event)).await? {
            Ok(())
        } else {
            Err(AppError::Refused("The last administrator cannot be deleted".into()))
        }
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), AppError> {
        Ok(self.users.ping().await?)
    }
}

/// Every lockout key that can hold a user's failed logins.
fn lockout_keys(user: &User) -> Vec<String> {
    vec![
        throttle_key(Some(user), ""),
        format!("name:{}", user.username.to_lowercase()),
        format!("name:{}", user.email.to_lowercase()),
    ]
}

fn invalid(field: &'static str, message: String) -> AppError {
    let mut e = FieldErrors::default();
    e.add(field, message);
    AppError::Invalid(e)
}
