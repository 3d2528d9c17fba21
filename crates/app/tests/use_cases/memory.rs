//! Every port the use cases need, in memory. The fakes keep the contracts
//! the port traits document, as the SQL and Redis stores do, so a use case
//! behaves here as it does on a real store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use portcullis_app::audit::{AuditEvent, AuditFilter};
use portcullis_app::mail::{ClaimedMail, OutgoingMail};
use portcullis_app::ports::{AuditStore, NewCredentials, RateLimitStore, SignIn, StoreResult};
use portcullis_app::{
    LoginThrottle, NewToken, NewUser, OutboxStore, Session, SessionStore, SignedIn, StoreError, TokenRecord,
    TokenStore, User, UserStore, UserSummary,
};
use portcullis_domain::lockout::{Counter, Reservation};

mod two_factor;

/// A queued mail, as the outbox table keeps it.
#[derive(Clone, Debug)]
pub struct OutboxRow {
    /// Row id.
    pub id: i64,
    /// The sealed body.
    pub sealed: String,
    /// Failed attempts so far.
    pub attempts: i64,
    /// Due from (unix ms).
    pub next_attempt_at: i64,
    /// Reserved for a sender until (unix ms).
    pub leased_until: Option<i64>,
    /// When sent.
    pub sent_at: Option<i64>,
}

#[derive(Default)]
struct State {
    users: Vec<User>,
    next_user_id: i64,
    sessions: HashMap<String, Session>,
    counters: HashMap<String, Counter>,
    tokens: HashMap<String, TokenRecord>,
    outbox: Vec<OutboxRow>,
    audit: Vec<AuditEvent>,
    rate: HashMap<(String, i64), i64>,
    two_factor: two_factor::TwoFactorState,
}

impl State {
    fn user_mut(&mut self, id: i64) -> StoreResult<&mut User> {
        self.users.iter_mut().find(|u| u.id == id).ok_or_else(|| StoreError::Backend("no such user".into()))
    }

    fn insert_user(&mut self, new: &NewUser, audit: Option<&AuditEvent>) -> StoreResult<User> {
        let (name, email) = (new.username.normalized(), new.email.normalized());
        if self.users.iter().any(|u| u.username.to_lowercase() == name) {
            return Err(StoreError::UsernameTaken);
        }
        if self.users.iter().any(|u| u.email.to_lowercase() == email) {
            return Err(StoreError::EmailTaken);
        }
        self.next_user_id += 1;
        let user = User {
            id: self.next_user_id,
            username: new.username.as_str().to_owned(),
            email: new.email.as_str().to_owned(),
            password_hash: new.password_hash.clone(),
            is_admin: new.is_admin,
            email_verified: new.email_verified,
            security_stamp: new.security_stamp.clone(),
            created_at: new.now,
            updated_at: new.now,
            last_login_at: None,
            admin_locked_until: None,
        };
        self.users.push(user.clone());
        self.record(audit, Some(user.id));
        Ok(user)
    }

    fn record(&mut self, audit: Option<&AuditEvent>, user_id: Option<i64>) {
        if let Some(event) = audit {
            let mut event = event.clone();
            event.id = i64::try_from(self.audit.len()).unwrap_or(0) + 1;
            event.user_id = event.user_id.or(user_id);
            self.audit.push(event);
        }
    }

    fn queue(&mut self, mails: &[OutgoingMail], now: i64) {
        for mail in mails {
            let id = i64::try_from(self.outbox.len()).unwrap_or(0) + 1;
            self.outbox.push(OutboxRow {
                id,
                sealed: mail.sealed.clone(),
                attempts: 0,
                next_attempt_at: now,
                leased_until: None,
                sent_at: None,
            });
        }
    }

    fn issue(&mut self, user_id: i64, token: &NewToken) {
        let purpose = Some(token.purpose);
        self.tokens.retain(|_, t| !(t.user_id == user_id && t.purpose == purpose && t.used_at.is_none()));
        self.tokens.insert(
            token.id.clone(),
            TokenRecord {
                id: token.id.clone(),
                secret_hash: token.secret_hash.clone(),
                purpose,
                user_id,
                email: token.email.clone(),
                expires_at: token.expires_at,
                used_at: None,
            },
        );
    }

    fn set_credentials(&mut self, change: &NewCredentials<'_>) -> StoreResult<()> {
        let user = self.user_mut(change.user_id)?;
        user.password_hash = change.hash.to_owned();
        user.security_stamp = change.new_stamp.to_owned();
        user.updated_at = change.now;
        self.queue(change.mails, change.now);
        self.record(change.audit, Some(change.user_id));
        Ok(())
    }
}

/// Every port the use cases need, in memory.
#[derive(Default)]
pub struct Memory {
    state: Mutex<State>,
}

impl Memory {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("fake store lock")
    }

    /// The outbox as it stands.
    pub fn outbox(&self) -> Vec<OutboxRow> {
        self.state().outbox.clone()
    }

    /// The audit events recorded, oldest first.
    pub fn audit_events(&self) -> Vec<AuditEvent> {
        self.state().audit.clone()
    }

    /// How many sessions are stored.
    pub fn session_count(&self) -> usize {
        self.state().sessions.len()
    }

    /// The failed-login counter under `key`, if any.
    pub fn counter(&self, key: &str) -> Option<Counter> {
        self.state().counters.get(key).copied()
    }

    /// The names of every counter.
    pub fn counter_keys(&self) -> Vec<String> {
        self.state().counters.keys().cloned().collect()
    }
}

#[async_trait]
impl UserStore for Memory {
    async fn insert_user(&self, user: &NewUser, audit: Option<&AuditEvent>) -> StoreResult<User> {
        self.state().insert_user(user, audit)
    }

    async fn user_by_id(&self, id: i64) -> StoreResult<Option<User>> {
        Ok(self.state().users.iter().find(|u| u.id == id).cloned())
    }

    async fn user_by_login(&self, normalized: &str) -> StoreResult<Option<User>> {
        let state = self.state();
        let found = state
            .users
            .iter()
            .find(|u| u.username.to_lowercase() == normalized || u.email.to_lowercase() == normalized);
        Ok(found.cloned())
    }

    async fn username_taken(&self, normalized: &str) -> StoreResult<bool> {
        Ok(self.state().users.iter().any(|u| u.username.to_lowercase() == normalized))
    }

    async fn email_taken(&self, normalized: &str) -> StoreResult<bool> {
        Ok(self.state().users.iter().any(|u| u.email.to_lowercase() == normalized))
    }

    async fn list_users(
        &self,
        query: Option<&str>,
        after_id: Option<i64>,
        limit: i64,
        now: i64,
    ) -> StoreResult<Vec<UserSummary>> {
        let state = self.state();
        let q = query.map(str::to_lowercase);
        let rows = state
            .users
            .iter()
            .filter(|u| u.id > after_id.unwrap_or(0))
            .filter(|u| {
                q.as_deref().is_none_or(|q| u.username.to_lowercase().contains(q) || u.email.to_lowercase().contains(q))
            })
            .take(usize::try_from(limit).unwrap_or(0))
            .map(|u| UserSummary {
                user: u.clone(),
                locked_until: state
                    .counters
                    .get(&format!("user:{}", u.id))
                    .and_then(|c| c.locked_until)
                    .filter(|t| *t > now),
            })
            .collect();
        Ok(rows)
    }

    async fn update_password_hash(&self, id: i64, hash: &str, now: i64) -> StoreResult<()> {
        let mut state = self.state();
        let user = state.user_mut(id)?;
        user.password_hash = hash.to_owned();
        user.updated_at = now;
        Ok(())
    }

    async fn set_admin(
        &self,
        id: i64,
        is_admin: bool,
        new_stamp: &str,
        now: i64,
        audit: Option<&AuditEvent>,
    ) -> StoreResult<bool> {
        let mut state = self.state();
        let admins = state.users.iter().filter(|u| u.is_admin).count();
        let user = state.user_mut(id)?;
        if !is_admin && user.is_admin && admins <= 1 {
            return Ok(false);
        }
        user.is_admin = is_admin;
        user.security_stamp = new_stamp.to_owned();
        user.updated_at = now;
        state.record(audit, Some(id));
        Ok(true)
    }

    async fn count_admins(&self) -> StoreResult<i64> {
        Ok(i64::try_from(self.state().users.iter().filter(|u| u.is_admin).count()).unwrap_or(0))
    }

    async fn delete_user(&self, id: i64, audit: Option<&AuditEvent>) -> StoreResult<bool> {
        let mut state = self.state();
        let admins = state.users.iter().filter(|u| u.is_admin).count();
        let Some(user) = state.users.iter().find(|u| u.id == id) else { return Ok(false) };
        if user.is_admin && admins <= 1 {
            return Ok(false);
        }
        state.users.retain(|u| u.id != id);
        state.sessions.retain(|_, s| s.user_id != id);
        state.record(audit, Some(id));
        Ok(true)
    }

    async fn set_admin_lock(
        &self,
        id: i64,
        until: Option<i64>,
        now: i64,
        audit: Option<&AuditEvent>,
    ) -> StoreResult<bool> {
        let mut state = self.state();
        let locks = until.is_some_and(|t| t > now);
        let unlocked_admin = |u: &User| u.is_admin && u.id != id && u.admin_locked_until.is_none_or(|t| t <= now);
        let is_admin = state.user_mut(id)?.is_admin;
        if locks && is_admin && !state.users.iter().any(unlocked_admin) {
            return Ok(false);
        }
        let user = state.user_mut(id)?;
        user.admin_locked_until = until;
        user.updated_at = now;
        state.record(audit, Some(id));
        Ok(true)
    }

    async fn ping(&self) -> StoreResult<()> {
        Ok(())
    }
}

#[async_trait]
impl SessionStore for Memory {
    async fn insert_session(&self, session: &Session) -> StoreResult<()> {
        let mut state = self.state();
        if state.sessions.contains_key(&session.id) {
            return Err(StoreError::Backend("session id already exists".into()));
        }
        state.sessions.insert(session.id.clone(), session.clone());
        Ok(())
    }

    async fn open_session(&self, session: &Session, login: &SignIn<'_>) -> StoreResult<()> {
        let mut state = self.state();
        state.counters.remove(login.attempt_key);
        state.user_mut(session.user_id)?.last_login_at = Some(session.created_at);
        state.record(Some(login.audit), Some(session.user_id));
        if let Some(mail) = login.mail {
            state.queue(std::slice::from_ref(mail), session.created_at);
        }
        state.sessions.insert(session.id.clone(), session.clone());
        Ok(())
    }

    async fn session_with_user(&self, id: &str) -> StoreResult<Option<Arc<SignedIn>>> {
        let state = self.state();
        let Some(session) = state.sessions.get(id) else { return Ok(None) };
        let user = state.users.iter().find(|u| u.id == session.user_id);
        Ok(user.map(|u| Arc::new(SignedIn { session: session.clone(), user: u.clone() })))
    }

    async fn touch_session(&self, id: &str, seen: i64, now: i64) -> StoreResult<()> {
        if let Some(s) = self.state().sessions.get_mut(id)
            && s.last_seen_at <= seen
        {
            s.last_seen_at = now;
        }
        Ok(())
    }

    async fn delete_session(&self, user_id: i64, id: &str, audit: Option<&AuditEvent>) -> StoreResult<bool> {
        let mut state = self.state();
        let deleted = state.sessions.get(id).is_some_and(|s| s.user_id == user_id);
        if deleted {
            state.sessions.remove(id);
            state.record(audit, Some(user_id));
        }
        Ok(deleted)
    }

    async fn delete_user_sessions(
        &self,
        user_id: i64,
        except: Option<&str>,
        audit: Option<&AuditEvent>,
    ) -> StoreResult<u64> {
        let mut state = self.state();
        let before = state.sessions.len();
        state.sessions.retain(|id, s| s.user_id != user_id || Some(id.as_str()) == except);
        let removed = before - state.sessions.len();
        state.record(audit, Some(user_id));
        Ok(u64::try_from(removed).unwrap_or(0))
    }

    async fn user_sessions(&self, user_id: i64, now: i64) -> StoreResult<Vec<Session>> {
        let state = self.state();
        let mut out: Vec<Session> =
            state.sessions.values().filter(|s| s.user_id == user_id && s.expires_at > now).cloned().collect();
        out.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| b.id.cmp(&a.id)));
        Ok(out)
    }

    async fn purge_sessions(&self, now: i64, idle_cutoff: i64) -> StoreResult<u64> {
        let mut state = self.state();
        let before = state.sessions.len();
        state.sessions.retain(|_, s| s.expires_at > now && (s.remember || s.last_seen_at >= idle_cutoff));
        Ok(u64::try_from(before - state.sessions.len()).unwrap_or(0))
    }
}

#[async_trait]
impl LoginThrottle for Memory {
    async fn reserve_attempt(
        &self,
        key: &str,
        now: i64,
        threshold: i64,
        lock_until: i64,
        window_start: i64,
    ) -> StoreResult<i64> {
        let mut state = self.state();
        let counted = Reservation { now, threshold, lock_until, window_start }.count(state.counters.get(key).copied());
        state.counters.insert(key.to_owned(), counted);
        Ok(counted.attempts)
    }

    async fn clear_attempts(&self, keys: &[String]) -> StoreResult<()> {
        let mut state = self.state();
        for key in keys {
            state.counters.remove(key);
        }
        Ok(())
    }

    async fn purge_attempts(&self, now: i64, window_start: i64) -> StoreResult<u64> {
        let mut state = self.state();
        let before = state.counters.len();
        state.counters.retain(|_, c| !c.is_stale(now, window_start));
        Ok(u64::try_from(before - state.counters.len()).unwrap_or(0))
    }

    async fn locked_until(&self, key: &str, now: i64) -> StoreResult<Option<i64>> {
        Ok(self.state().counters.get(key).and_then(|c| c.locked_until).filter(|t| *t > now))
    }
}

#[async_trait]
impl TokenStore for Memory {
    async fn insert_user_with_token(
        &self,
        user: &NewUser,
        token: &NewToken,
        mails: &[OutgoingMail],
        audit: Option<&AuditEvent>,
    ) -> StoreResult<User> {
        let mut state = self.state();
        let inserted = state.insert_user(user, audit)?;
        state.issue(inserted.id, token);
        state.queue(mails, user.now);
        Ok(inserted)
    }

    async fn issue_token(
        &self,
        user_id: i64,
        token: &NewToken,
        mails: &[OutgoingMail],
        audit: Option<&AuditEvent>,
    ) -> StoreResult<()> {
        let mut state = self.state();
        state.issue(user_id, token);
        state.queue(mails, token.created_at);
        state.record(audit, Some(user_id));
        Ok(())
    }

    async fn token(&self, id: &str) -> StoreResult<Option<TokenRecord>> {
        Ok(self.state().tokens.get(id).cloned())
    }

    async fn verify_email_with_token(
        &self,
        token_id: &str,
        user_id: i64,
        email: &str,
        now: i64,
        audit: Option<&AuditEvent>,
    ) -> StoreResult<bool> {
        let mut state = self.state();
        if state.users.iter().any(|u| u.id != user_id && u.email.eq_ignore_ascii_case(email)) {
            return Err(StoreError::EmailTaken);
        }
        match state.tokens.get_mut(token_id) {
            Some(t) if t.used_at.is_none() => t.used_at = Some(now),
            _ => return Ok(false),
        }
        let user = state.user_mut(user_id)?;
        user.email = email.to_owned();
        user.email_verified = true;
        user.updated_at = now;
        state.record(audit, Some(user_id));
        Ok(true)
    }

    async fn reset_password_with_token(
        &self,
        token_id: &str,
        lockout_keys: &[String],
        change: &NewCredentials<'_>,
    ) -> StoreResult<bool> {
        let mut state = self.state();
        match state.tokens.get_mut(token_id) {
            Some(t) if t.used_at.is_none() => t.used_at = Some(change.now),
            _ => return Ok(false),
        }
        state.set_credentials(change)?;
        state.sessions.retain(|_, s| s.user_id != change.user_id);
        for key in lockout_keys {
            state.counters.remove(key);
        }
        Ok(true)
    }

    async fn change_password_with_mail(&self, change: &NewCredentials<'_>) -> StoreResult<()> {
        self.state().set_credentials(change)
    }
}

impl Memory {
    /// Queues a mail on its own, as a tool would.
    pub async fn enqueue_mail(&self, mail: &OutgoingMail, now: i64) -> StoreResult<()> {
        self.state().queue(std::slice::from_ref(mail), now);
        Ok(())
    }
}

#[async_trait]
impl OutboxStore for Memory {
    async fn claim_mail(&self, now: i64, lease_until: i64, limit: i64) -> StoreResult<Vec<ClaimedMail>> {
        let mut state = self.state();
        let due = state
            .outbox
            .iter_mut()
            .filter(|m| m.sent_at.is_none() && m.next_attempt_at <= now && m.leased_until.is_none_or(|t| t <= now))
            .take(usize::try_from(limit).unwrap_or(0));
        Ok(due
            .map(|m| {
                m.leased_until = Some(lease_until);
                ClaimedMail { id: m.id, sealed: m.sealed.clone(), attempts: m.attempts }
            })
            .collect())
    }

    async fn mark_mails_sent(&self, ids: &[i64], now: i64) -> StoreResult<()> {
        for m in self.state().outbox.iter_mut().filter(|m| ids.contains(&m.id)) {
            m.sent_at = Some(now);
            m.sealed.clear();
        }
        Ok(())
    }

    async fn mark_mail_failed(&self, id: i64, attempts: i64, next_attempt_at: i64, _error: &str) -> StoreResult<()> {
        if let Some(m) = self.state().outbox.iter_mut().find(|m| m.id == id) {
            m.attempts = attempts;
            m.next_attempt_at = next_attempt_at;
            m.leased_until = None;
        }
        Ok(())
    }
}

#[async_trait]
impl RateLimitStore for Memory {
    async fn hit(&self, key: &str, window_start: i64) -> StoreResult<i64> {
        let mut state = self.state();
        let count = state.rate.entry((key.to_owned(), window_start)).or_insert(0);
        *count += 1;
        Ok(*count)
    }

    async fn purge_rate_limits(&self, before: i64) -> StoreResult<u64> {
        let mut state = self.state();
        let n = state.rate.len();
        state.rate.retain(|(_, start), _| *start >= before);
        Ok(u64::try_from(n - state.rate.len()).unwrap_or(0))
    }
}

#[async_trait]
impl AuditStore for Memory {
    async fn insert_audit(&self, event: &AuditEvent) -> StoreResult<()> {
        self.state().record(Some(event), None);
        Ok(())
    }

    async fn list_audit(&self, filter: &AuditFilter, limit: i64) -> StoreResult<Vec<AuditEvent>> {
        let state = self.state();
        Ok(state
            .audit
            .iter()
            .rev()
            .filter(|e| filter.user_id.is_none_or(|id| e.user_id == Some(id)))
            .filter(|e| filter.kind.as_deref().is_none_or(|k| e.kind == k))
            .filter(|e| filter.before_id.is_none_or(|b| e.id < b))
            .take(usize::try_from(limit).unwrap_or(0))
            .cloned()
            .collect())
    }

    async fn purge_audit(&self, before: i64) -> StoreResult<u64> {
        let mut state = self.state();
        let n = state.audit.len();
        state.audit.retain(|e| e.at >= before);
        Ok(u64::try_from(n - state.audit.len()).unwrap_or(0))
    }
}
