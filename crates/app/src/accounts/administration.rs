//! An administrator's actions on users: listing, granting and revoking
//! admin, locking and unlocking, ending sessions, deleting.

use portcullis_domain::lockout;

use super::Accounts;
use crate::audit::Origin;
use crate::error::AppError;
use crate::model::{User, UserSummary};
use crate::tokens;

impl Accounts {
    /// Users for the admin list, `limit` at a time after `after_id`.
    pub async fn list_users(
        &self,
        query: Option<&str>,
        after_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<UserSummary>, AppError> {
        let query = query.map(str::trim).filter(|q| !q.is_empty());
        // No username or email holds a NUL (and PostgreSQL refuses one in text).
        if query.is_some_and(|q| q.contains('\0')) {
            return Ok(Vec::new());
        }
        Ok(self.users.list_users(query, after_id, limit, self.now()).await?)
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
        let event = self.event(origin, kind, Some(user.id), Some(&user.username), None);
        if !self.users.set_admin(user_id, is_admin, &stamp, self.now(), Some(&event)).await? {
            return Err(AppError::Refused("The last administrator cannot be demoted".into()));
        }
        self.sessions.delete_user_sessions(user_id, None, None).await?;
        self.user(user_id).await
    }

    /// Locks a user out of logging in until an administrator unlocks the
    /// account (an admin's action). No administrator can lock themselves,
    /// and the last administrator who is not locked cannot be locked.
    pub async fn lock_user(&self, user_id: i64, origin: &Origin) -> Result<(), AppError> {
        let user = self.user(user_id).await?;
        if origin.actor.as_ref().is_some_and(|(id, _)| *id == user_id) {
            return Err(AppError::Refused("You cannot lock your own account".into()));
        }
        let until = lockout::UNTIL_UNLOCKED;
        let event = self.event(origin, "admin.lock", Some(user.id), Some(&user.username), None);
        // On the account itself, so no device cookie gets around it; the
        // store refuses, race-free, to lock the last unlocked admin.
        if !self.users.set_admin_lock(user_id, Some(until), self.now(), Some(&event)).await? {
            return Err(AppError::Refused("The last active administrator cannot be locked".into()));
        }
        self.sessions.delete_user_sessions(user_id, None, None).await?;
        Ok(())
    }

    /// Clears a user's failed-login lock and any administrator's lock.
    pub async fn unlock_user(&self, user_id: i64, origin: &Origin) -> Result<(), AppError> {
        let user = self.user(user_id).await?;
        let event = self.event(origin, "admin.unlock", Some(user.id), Some(&user.username), None);
        self.throttle.clear_attempts(&self.lockout_keys(&user)).await?;
        self.users.set_admin_lock(user_id, None, self.now(), Some(&event)).await?;
        Ok(())
    }

    /// Ends every session of a user (an administrator's action).
    pub async fn end_all_sessions(&self, user_id: i64, origin: &Origin) -> Result<u64, AppError> {
        let user = self.user(user_id).await?;
        let event = self.event(origin, "admin.sessions", Some(user.id), Some(&user.username), None);
        Ok(self.sessions.delete_user_sessions(user.id, None, Some(&event)).await?)
    }

    /// Deletes a user, their posts and sessions; never the last admin.
    pub async fn delete_user(&self, user_id: i64, origin: &Origin) -> Result<(), AppError> {
        let user = self.user(user_id).await?;
        let event = self.event(origin, "admin.delete", Some(user.id), Some(&user.username), None);
        self.delete_recorded(user_id, &event).await
    }
}
