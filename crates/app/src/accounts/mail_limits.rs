//! How many mails with links the site sends: per destination address and
//! per account, `mail_per_hour` in an hour, so that neither a signed-in user
//! nor a stranger can turn the site into a mail cannon aimed at someone.

use portcullis_domain::LockoutRule;

use super::Accounts;
use crate::error::AppError;

pub(super) const HOUR_MS: i64 = 3_600_000;

impl Accounts {
    /// Counts one mail to `to` (and, when given, one asked for by the
    /// account `user_id`) and answers whether it may go: `false` once the
    /// address or the account had its hourly allowance. The counters are
    /// the race-free ones failed logins use; the address is kept as a
    /// keyed hash, never as text.
    pub(super) async fn mail_allowed(&self, to: &str, user_id: Option<i64>) -> Result<bool, AppError> {
        if self.settings.mail_per_hour == 0 {
            return Ok(true);
        }
        let rule = LockoutRule { threshold: self.settings.mail_per_hour, window_ms: HOUR_MS };
        let mut keys = vec![format!("mail-to:{}", self.mailer.fingerprint(&to.trim().to_lowercase()))];
        keys.extend(user_id.map(|id| format!("mail-from:{id}")));
        let r = rule.reserve(self.now());
        let mut allowed = true;
        for key in keys {
            let n = self.throttle.reserve_attempt(&key, r.now, r.threshold, r.lock_until, r.window_start).await?;
            allowed &= rule.admits(n);
        }
        Ok(allowed)
    }
}
