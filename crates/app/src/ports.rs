//! The ports: what the use cases need from storage. `portcullis-store`
//! implements them on SQLite and PostgreSQL.

use std::sync::Arc;

use async_trait::async_trait;

use crate::audit::AuditEvent;
use crate::error::StoreError;
use crate::mail::{ClaimedMail, OutgoingMail};
use crate::model::{
    NewToken, NewUser, PendingSignIn, Post, Session, SignedIn, TokenRecord, TwoFactorRecord, User, UserSummary,
};

/// Result of a store call.
pub type StoreResult<T> = Result<T, StoreError>;

/// Users.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Inserts a user and records `audit` (its `user_id` set to the new id), in
    /// one transaction; a taken username or email is `UsernameTaken`/`EmailTaken`.
    async fn insert_user(&self, user: &NewUser, audit: Option<&AuditEvent>) -> StoreResult<User>;
    /// By id.
    async fn user_by_id(&self, id: i64) -> StoreResult<Option<User>>;
    /// By normalized username or normalized email.
    async fn user_by_login(&self, normalized: &str) -> StoreResult<Option<User>>;
    /// Whether a normalized username is taken.
    async fn username_taken(&self, normalized: &str) -> StoreResult<bool>;
    /// Whether a normalized email is taken.
    async fn email_taken(&self, normalized: &str) -> StoreResult<bool>;
    /// Users whose username or email contains `query` (case-insensitive), by id, after `after_id`.
    async fn list_users(
        &self,
        query: Option<&str>,
        after_id: Option<i64>,
        limit: i64,
        now: i64,
    ) -> StoreResult<Vec<UserSummary>>;
    /// Replaces the password hash (an upgrade: sessions stay).
    async fn update_password_hash(&self, id: i64, hash: &str, now: i64) -> StoreResult<()>;
    /// Grants or revokes admin and sets a new security stamp, recording `audit`.
    /// Revoking the last admin does nothing and answers `false`.
    async fn set_admin(
        &self,
        id: i64,
        is_admin: bool,
        new_stamp: &str,
        now: i64,
        audit: Option<&AuditEvent>,
    ) -> StoreResult<bool>;
    /// Number of admins.
    async fn count_admins(&self) -> StoreResult<i64>;
    /// Deletes a user with their posts and sessions and records `audit`,
    /// unless they are the last admin (`false`, nothing recorded).
    async fn delete_user(&self, id: i64, audit: Option<&AuditEvent>) -> StoreResult<bool>;
    /// Sets or clears an administrator's lock on the account and records
    /// `audit`. A lock that would leave no administrator unlocked at `now`
    /// does nothing and answers `false` (race-free: two admins locking each
    /// other at once cannot both succeed).
    async fn set_admin_lock(
        &self,
        id: i64,
        until: Option<i64>,
        now: i64,
        audit: Option<&AuditEvent>,
    ) -> StoreResult<bool>;
    /// Whether the store answers.
    async fn ping(&self) -> StoreResult<()>;
}

/// Login sessions.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Stores a new session.
    async fn insert_session(&self, session: &Session) -> StoreResult<()>;
    /// Stores the session a successful login opens, with what the login
    /// changes besides (see [`SignIn`]): in one transaction, or, where the
    /// session lives apart from the SQL database, the rest first in one.
    async fn open_session(&self, session: &Session, login: &SignIn<'_>) -> StoreResult<()>;
    /// The session and its user, in one read.
    async fn session_with_user(&self, id: &str) -> StoreResult<Option<Arc<SignedIn>>>;
    /// Moves `last_seen_at` on to `now` from `seen`, the value the caller
    /// read; if another request has moved it past `seen` meanwhile, it is
    /// left as it is (parallel requests on one session write it once).
    async fn touch_session(&self, id: &str, seen: i64, now: i64) -> StoreResult<()>;
    /// Deletes one session of one user and records `audit`; `false` (nothing
    /// recorded) if there was none.
    async fn delete_session(&self, user_id: i64, id: &str, audit: Option<&AuditEvent>) -> StoreResult<bool>;
    /// Deletes all of a user's sessions but `except` and records `audit`.
    async fn delete_user_sessions(
        &self,
        user_id: i64,
        except: Option<&str>,
        audit: Option<&AuditEvent>,
    ) -> StoreResult<u64>;
    /// A user's sessions that are not past `expires_at`, newest first.
    async fn user_sessions(&self, user_id: i64, now: i64) -> StoreResult<Vec<Session>>;
    /// Deletes sessions past `expires_at`, and non-remembered ones last seen before `idle_cutoff`.
    async fn purge_sessions(&self, now: i64, idle_cutoff: i64) -> StoreResult<u64>;
}

/// Failed-login counting, race-free.
#[async_trait]
pub trait LoginThrottle: Send + Sync {
    /// Atomically counts one attempt for `key` and answers how many attempts
    /// the current window now holds. A window whose lock has passed, or whose
    /// last attempt is older than `window_start`, starts again at one. When the
    /// count reaches `threshold` the key is locked until `lock_until`.
    async fn reserve_attempt(
        &self,
        key: &str,
        now: i64,
        threshold: i64,
        lock_until: i64,
        window_start: i64,
    ) -> StoreResult<i64>;
    /// Forgets the attempts for these keys (a success, a reset, an unlock).
    async fn clear_attempts(&self, keys: &[String]) -> StoreResult<()>;
    /// When `key` is locked until, if in the future.
    async fn locked_until(&self, key: &str, now: i64) -> StoreResult<Option<i64>>;
    /// Deletes the counters the next attempt would start again at one anyway
    /// (see `Counter::is_stale`): a lock that has run out, or no lock and no
    /// attempt since `window_start`. Answers how many went.
    async fn purge_attempts(&self, now: i64, window_start: i64) -> StoreResult<u64>;
}

/// Posts.
#[async_trait]
pub trait PostStore: Send + Sync {
    /// Inserts a post and answers its id.
    async fn insert_post(&self, author_id: i64, title: &str, content: &str, now: i64) -> StoreResult<i64>;
    /// One post with its author.
    async fn post_by_id(&self, id: i64) -> StoreResult<Option<Post>>;
    /// Updates title and content.
    async fn update_post(&self, id: i64, title: &str, content: &str, now: i64) -> StoreResult<()>;
    /// Deletes a post.
    async fn delete_post(&self, id: i64) -> StoreResult<()>;
    /// Newest first, ids below `before_id`; of one author when given.
    async fn list_posts(&self, author_id: Option<i64>, before_id: Option<i64>, limit: i64) -> StoreResult<Arc<[Post]>>;
}

/// The durable mail outbox, drained by [`crate::mail::OutboxWorker`].
#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Reserves up to `limit` due mails until `lease_until`; no two callers get the same mail.
    async fn claim_mail(&self, now: i64, lease_until: i64, limit: i64) -> StoreResult<Vec<ClaimedMail>>;
    /// Marks mails sent and forgets their bodies.
    async fn mark_mails_sent(&self, ids: &[i64], now: i64) -> StoreResult<()>;
    /// Records a failed attempt and when to try again.
    async fn mark_mail_failed(&self, id: i64, attempts: i64, next_attempt_at: i64, error: &str) -> StoreResult<()>;
}

/// One-shot tokens (verification, reset) and the changes they make, each in
/// one transaction together with the mail it causes.
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Inserts a user, their verification token and its mail, and records
    /// `audit` (its `user_id` set to the new id), atomically.
    async fn insert_user_with_token(
        &self,
        user: &NewUser,
        token: &NewToken,
        mails: &[OutgoingMail],
        audit: Option<&AuditEvent>,
    ) -> StoreResult<User>;
    /// Replaces the user's unused tokens of `token.purpose` with `token`,
    /// queues `mails` and records `audit`, atomically.
    async fn issue_token(
        &self,
        user_id: i64,
        token: &NewToken,
        mails: &[OutgoingMail],
        audit: Option<&AuditEvent>,
    ) -> StoreResult<()>;
    /// A token by id.
    async fn token(&self, id: &str) -> StoreResult<Option<TokenRecord>>;
    /// Uses a verification token: marks it used and makes `email` the
    /// account's address, verified (`EmailTaken` if another account took it
    /// meanwhile), recording `audit`. `false` if the token was used meanwhile.
    async fn verify_email_with_token(
        &self,
        token_id: &str,
        user_id: i64,
        email: &str,
        now: i64,
        audit: Option<&AuditEvent>,
    ) -> StoreResult<bool>;
    /// Uses a reset token: applies `change`, ends every session of the user,
    /// clears `lockout_keys`. `false` if the token was used meanwhile.
    async fn reset_password_with_token(
        &self,
        token_id: &str,
        lockout_keys: &[String],
        change: &NewCredentials<'_>,
    ) -> StoreResult<bool>;
    /// Applies `change` (new password and stamp, and its mails), atomically.
    async fn change_password_with_mail(&self, change: &NewCredentials<'_>) -> StoreResult<()>;
}

/// What a successful login writes besides its session: the user's
/// `last_login_at` becomes the session's `created_at`.
#[derive(Clone, Copy, Debug)]
pub struct SignIn<'a> {
    /// The failed-login counter the attempt was counted under: forgotten.
    pub attempt_key: &'a str,
    /// Recorded (`login.success`).
    pub audit: &'a AuditEvent,
    /// Queued with it, if any (the notice of a sign-in from a new browser).
    pub mail: Option<&'a OutgoingMail>,
}

/// A new password for a user, with the mails that announce it.
#[derive(Clone, Copy, Debug)]
pub struct NewCredentials<'a> {
    /// Whose.
    pub user_id: i64,
    /// The new hash.
    pub hash: &'a str,
    /// A new security stamp: every session made before ends.
    pub new_stamp: &'a str,
    /// Mails to queue in the same transaction.
    pub mails: &'a [OutgoingMail],
    /// The event to record in the same transaction.
    pub audit: Option<&'a AuditEvent>,
    /// Unix ms.
    pub now: i64,
}

/// Fixed-window request counters per client, shared by every node.
#[async_trait]
pub trait RateLimitStore: Send + Sync {
    /// Counts one request for `key` in the window starting at `window_start`
    /// and answers the count so far in that window.
    async fn hit(&self, key: &str, window_start: i64) -> StoreResult<i64>;
    /// Forgets windows that started before `before`.
    async fn purge_rate_limits(&self, before: i64) -> StoreResult<u64>;
}

/// The audit log.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends an event that goes with no other change (a failed login).
    async fn insert_audit(&self, event: &AuditEvent) -> StoreResult<()>;
    /// Events newest first.
    async fn list_audit(&self, filter: &crate::audit::AuditFilter, limit: i64) -> StoreResult<Vec<AuditEvent>>;
    /// Deletes events before `before` (unix ms).
    async fn purge_audit(&self, before: i64) -> StoreResult<u64>;
}

/// What a two-factor change writes besides itself, in its transaction.
#[derive(Clone, Copy, Debug)]
pub struct TwoFactorChange<'a> {
    /// Mails to queue.
    pub mails: &'a [OutgoingMail],
    /// The event to record.
    pub audit: Option<&'a AuditEvent>,
    /// Unix ms.
    pub now: i64,
}

/// Two-factor settings, recovery codes and sign-ins waiting for a code.
/// Secrets arrive sealed and codes hashed: the store never sees them in clear.
#[async_trait]
pub trait TwoFactorStore: Send + Sync {
    /// A user's settings, if any.
    async fn two_factor(&self, user_id: i64) -> StoreResult<Option<TwoFactorRecord>>;
    /// Those of `user_ids` who have 2FA on.
    async fn two_factor_users(&self, user_ids: &[i64]) -> StoreResult<Vec<i64>>;
    /// Keeps `sealed` as the user's pending enrolment, replacing any other;
    /// `false` (nothing changed) if 2FA is on already.
    async fn start_enrolment(&self, user_id: i64, sealed: &str, now: i64) -> StoreResult<bool>;
    /// Turns 2FA on with the pending secret `sealed`, `step` as the last
    /// step used, and `code_hashes` as the recovery codes; `false` (nothing
    /// changed) if that is no longer the pending secret or 2FA is on.
    async fn confirm_enrolment(
        &self,
        user_id: i64,
        sealed: &str,
        step: i64,
        code_hashes: &[String],
        change: &TwoFactorChange<'_>,
    ) -> StoreResult<bool>;
    /// Records `step` as the last one used if 2FA is on and it is later
    /// than the last; `false` otherwise (a replay, or a race lost).
    async fn accept_step(&self, user_id: i64, step: i64) -> StoreResult<bool>;
    /// Uses an unused recovery code of a user with 2FA on; the number left,
    /// or `None` (nothing changed) if there was no such code.
    async fn use_recovery_code(
        &self,
        user_id: i64,
        code_hash: &str,
        change: &TwoFactorChange<'_>,
    ) -> StoreResult<Option<i64>>;
    /// Replaces every recovery code of a user with 2FA on; `false` if it is off.
    async fn replace_recovery_codes(
        &self,
        user_id: i64,
        code_hashes: &[String],
        change: &TwoFactorChange<'_>,
    ) -> StoreResult<bool>;
    /// Turns 2FA off: the secret, the codes and the user's pending sign-ins
    /// go. `false` (nothing recorded) if it was off.
    async fn disable_two_factor(&self, user_id: i64, change: &TwoFactorChange<'_>) -> StoreResult<bool>;
    /// Stores a pending sign-in.
    async fn insert_pending_sign_in(&self, pending: &PendingSignIn) -> StoreResult<()>;
    /// A pending sign-in by id.
    async fn pending_sign_in(&self, id: &str) -> StoreResult<Option<PendingSignIn>>;
    /// Deletes a pending sign-in; `false` if it was gone already.
    async fn delete_pending_sign_in(&self, id: &str) -> StoreResult<bool>;
    /// Deletes pending sign-ins past `expires_at`.
    async fn purge_pending_sign_ins(&self, now: i64) -> StoreResult<u64>;
}

/// Personal access tokens for the JSON API.
#[async_trait]
pub trait AccessTokenStore: Send + Sync {
    /// Stores a new token and records `audit`, in one transaction.
    async fn insert_access_token(
        &self,
        token: &crate::access_tokens::AccessToken,
        audit: Option<&AuditEvent>,
    ) -> StoreResult<()>;
    /// A token with its user, in one read.
    async fn access_token_with_user(&self, id: &str) -> StoreResult<Option<(crate::access_tokens::AccessToken, User)>>;
    /// A user's tokens, newest first.
    async fn user_access_tokens(&self, user_id: i64) -> StoreResult<Vec<crate::access_tokens::AccessToken>>;
    /// Deletes one token of one user and records `audit`; `false` if there was none.
    async fn delete_access_token(&self, user_id: i64, id: &str, audit: Option<&AuditEvent>) -> StoreResult<bool>;
    /// Notes a use at `now` from `ip`, unless another request noted one
    /// since `seen` (the value the caller read); records `audit` with it.
    async fn touch_access_token(
        &self,
        id: &str,
        seen: Option<i64>,
        now: i64,
        ip: Option<&str>,
        audit: Option<&AuditEvent>,
    ) -> StoreResult<bool>;
    /// Marks the token shown; `true` only the first time.
    async fn reveal_access_token(&self, user_id: i64, id: &str) -> StoreResult<bool>;
}

/// The numbers of the administrators' overview, each one indexed query.
#[async_trait]
pub trait OverviewStore: Send + Sync {
    /// Events of each of `kinds` per UTC day, from `since` (unix ms) on.
    async fn daily_events(&self, kinds: &[&str], since: i64) -> StoreResult<Vec<crate::overview::DailyCount>>;
    /// How many users, verified, administrators (and, where stored, with
    /// two-factor sign-in and with passkeys).
    async fn user_counts(&self) -> StoreResult<crate::overview::UserCounts>;
    /// Sessions not expired at `now` and used since `idle_cutoff`.
    async fn active_sessions(&self, now: i64, idle_cutoff: i64) -> StoreResult<i64>;
    /// Mails waiting in the outbox, and when the oldest was queued.
    async fn outbox_health(&self) -> StoreResult<crate::overview::OutboxHealth>;
}

/// Other nodes' copies of what this node writes. When several nodes keep
/// read caches, a request that changed something answers only once the
/// others have let go of what it changed, so that the client's next
/// request, wherever it goes, sees the change (a revoked session is
/// refused on every node at once).
#[async_trait]
pub trait Settle: Send + Sync {
    /// How many changes this node has made so far.
    fn written(&self) -> u64;
    /// Returns once the other nodes have let go of what this node's first
    /// `count` changes changed.
    async fn settle(&self, count: u64);
}
