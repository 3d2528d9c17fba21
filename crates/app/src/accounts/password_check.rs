//! Checking a signed-in user's current password (changing the password or
//! the email, closing the account): the same lockout as a login for that
//! account, and a fair share of the hashing pool.

use portcullis_domain::lockout;

use super::Accounts;
use crate::audit::Origin;
use crate::error::AppError;
use crate::hashing::Admission;
use crate::model::User;

/// Said in the audit log of a failed or refused check, to tell it from a login.
const WHAT: &str = "current password on an account page";

impl Accounts {
    /// Checks `user`'s current password like a login for the account: the
    /// attempt is counted on the account's lockout counter before it is
    /// checked (so no more than the threshold are ever verified, however
    /// many arrive at once), a locked account is refused whatever the
    /// password, and a wrong one is recorded as a failed login. The place
    /// taken in the hashing pool is within the user's and the client's
    /// fair share, and is handed back for the rest of the change.
    pub(super) async fn check_current_password(
        &self,
        user: &User,
        password: &str,
        origin: &Origin,
    ) -> Result<Admission, AppError> {
        let place = self.hasher.admit_check(user.id, origin.client.ip)?;
        let refused = |kind: &str| self.event(origin, kind, Some(user.id), Some(&user.username), Some(WHAT.into()));
        let now = self.now();
        if lockout::admin_lock_holds(user.admin_locked_until, now) {
            self.audit.insert_audit(&refused("login.locked")).await?;
            return Err(AppError::Locked);
        }
        let key = lockout::account_key(user.id);
        let rule = self.lockout_rule();
        let r = rule.reserve(now);
        let attempts = self.throttle.reserve_attempt(&key, r.now, r.threshold, r.lock_until, r.window_start).await?;
        if !rule.admits(attempts) {
            self.audit.insert_audit(&refused("login.locked")).await?;
            return Err(AppError::Locked);
        }
        let too_long = password.chars().count() > portcullis_domain::password::MAX_LEN;
        let verified = if too_long || password.is_empty() {
            self.hasher.verify_dummy_admitted(&place, password).await?;
            false
        } else {
            self.hasher.verify_admitted(&place, password, &user.password_hash).await?.ok
        };
        if !verified {
            self.audit.insert_audit(&refused("login.failure")).await?;
            if attempts >= r.threshold {
                self.audit.insert_audit(&refused(crate::meter::LOCKOUT_EVENT)).await?;
            }
            return Err(AppError::InvalidCredentials);
        }
        self.throttle.clear_attempts(&[key]).await?;
        Ok(place)
    }
}
