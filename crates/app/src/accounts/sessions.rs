//! Sessions: opening one, resolving a cookie under the idle and absolute
//! timeouts, logging out, and a user's view of their own sessions.

use std::sync::Arc;

use super::Accounts;
use crate::audit::Origin;
use crate::clock::ms;
use crate::error::AppError;
use crate::model::{ClientInfo, Session, SignedIn, User};
use crate::tokens;

/// A new session: `cookie` goes to the browser, never into the store.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// `id.secret`.
    pub cookie: String,
    /// The stored record.
    pub session: Session,
}

impl Accounts {
    /// Opens a new session for `user`. Any session the browser had is replaced by the caller.
    pub async fn start_session(&self, user: &User, remember: bool, client: ClientInfo) -> Result<NewSession, AppError> {
        let new = self.new_session(user, remember, client);
        self.sessions.insert_session(&new.session).await?;
        Ok(new)
    }

    /// A session for `user`, not yet stored: a remembered one lives the
    /// remember duration, any other the absolute timeout.
    pub(super) fn new_session(&self, user: &User, remember: bool, client: ClientInfo) -> NewSession {
        let token = tokens::mint();
        let now = self.now();
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
        let now = self.now();
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
        let event = self.event(origin, "logout", Some(user.id), Some(&user.username), None);
        self.sessions.delete_session(session.user_id, &session.id, Some(&event)).await?;
        Ok(())
    }

    /// A user's live sessions, newest first.
    pub async fn sessions_of(&self, user_id: i64) -> Result<Vec<Session>, AppError> {
        Ok(self.sessions.user_sessions(user_id, self.now()).await?)
    }

    /// Revokes one of the user's own sessions.
    pub async fn revoke_session(&self, user: &User, session_id: &str, origin: &Origin) -> Result<(), AppError> {
        // No session id holds a NUL, and PostgreSQL refuses one in text.
        if session_id.contains('\0') {
            return Err(AppError::NotFound);
        }
        let short = session_id.get(..6).unwrap_or(session_id);
        let detail = Some(format!("session {short}"));
        let event = self.event(origin, "session.revoked", Some(user.id), Some(&user.username), detail);
        if self.sessions.delete_session(user.id, session_id, Some(&event)).await? {
            Ok(())
        } else {
            Err(AppError::NotFound)
        }
    }

    /// Revokes all of the user's sessions but `keep` (their own, current one).
    pub async fn revoke_other_sessions(&self, user: &User, keep: &str, origin: &Origin) -> Result<u64, AppError> {
        let detail = Some("every other session".into());
        let event = self.event(origin, "session.revoked", Some(user.id), Some(&user.username), detail);
        Ok(self.sessions.delete_user_sessions(user.id, Some(keep), Some(&event)).await?)
    }

    /// Forgets the failed-login and mail counters that the next attempt
    /// would start again anyway (a lock run out, or no attempt within the
    /// longest window any of them counts in); answers how many.
    pub async fn purge_stale_attempts(&self) -> Result<u64, AppError> {
        let now = self.now();
        let longest = ms(self.settings.lockout_duration).max(super::mail_limits::HOUR_MS);
        Ok(self.throttle.purge_attempts(now, now - longest).await?)
    }

    /// Deletes expired sessions; answers how many.
    pub async fn purge_expired_sessions(&self) -> Result<u64, AppError> {
        let now = self.now();
        Ok(self.sessions.purge_sessions(now, now - ms(self.settings.session_idle_timeout)).await?)
    }
}
