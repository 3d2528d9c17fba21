//! `TwoFactorStore` in memory, keeping the contract the SQL store keeps.

use std::collections::HashMap;

use async_trait::async_trait;
use portcullis_app::model::{PendingSignIn, TwoFactorRecord};
use portcullis_app::ports::{StoreResult, TwoFactorChange, TwoFactorStore};

use super::{Memory, State};

/// Two-factor rows: settings, recovery codes (hash → used at), pending sign-ins.
#[derive(Default)]
pub(super) struct TwoFactorState {
    settings: HashMap<i64, TwoFactorRecord>,
    codes: HashMap<i64, HashMap<String, Option<i64>>>,
    pending: HashMap<String, PendingSignIn>,
}

impl State {
    fn write_change(&mut self, change: &TwoFactorChange<'_>) {
        self.queue(change.mails, change.now);
        self.record(change.audit, None);
    }

    fn enabled(&self, user_id: i64) -> bool {
        self.two_factor.settings.get(&user_id).is_some_and(TwoFactorRecord::enabled)
    }
}

impl Memory {
    /// How many pending sign-ins are stored.
    pub fn pending_sign_in_count(&self) -> usize {
        self.state().two_factor.pending.len()
    }
}

#[async_trait]
impl TwoFactorStore for Memory {
    async fn two_factor(&self, user_id: i64) -> StoreResult<Option<TwoFactorRecord>> {
        let s = self.state();
        let left = s.two_factor.codes.get(&user_id).map_or(0, |c| c.values().filter(|u| u.is_none()).count());
        Ok(s.two_factor.settings.get(&user_id).cloned().map(|mut r| {
            r.recovery_left = i64::try_from(left).unwrap_or(0);
            r
        }))
    }

    async fn two_factor_users(&self, user_ids: &[i64]) -> StoreResult<Vec<i64>> {
        let s = self.state();
        Ok(user_ids.iter().copied().filter(|id| s.enabled(*id)).collect())
    }

    async fn start_enrolment(&self, user_id: i64, sealed: &str, now: i64) -> StoreResult<bool> {
        let mut s = self.state();
        let rec =
            s.two_factor.settings.entry(user_id).or_insert_with(|| TwoFactorRecord { user_id, ..Default::default() });
        if rec.enabled() {
            return Ok(false);
        }
        rec.pending_secret = Some(sealed.to_owned());
        rec.pending_at = Some(now);
        Ok(true)
    }

    async fn confirm_enrolment(
        &self,
        user_id: i64,
        sealed: &str,
        step: i64,
        code_hashes: &[String],
        change: &TwoFactorChange<'_>,
    ) -> StoreResult<bool> {
        let mut s = self.state();
        let Some(rec) = s.two_factor.settings.get_mut(&user_id) else { return Ok(false) };
        if rec.enabled() || rec.pending_secret.as_deref() != Some(sealed) {
            return Ok(false);
        }
        rec.secret = rec.pending_secret.take();
        rec.pending_at = None;
        rec.enabled_at = Some(change.now);
        rec.last_step = Some(step);
        s.two_factor.codes.insert(user_id, code_hashes.iter().map(|h| (h.clone(), None)).collect());
        s.write_change(change);
        Ok(true)
    }

    async fn accept_step(&self, user_id: i64, step: i64) -> StoreResult<bool> {
        let mut s = self.state();
        match s.two_factor.settings.get_mut(&user_id) {
            Some(rec) if rec.enabled() && rec.last_step.is_none_or(|l| l < step) => {
                rec.last_step = Some(step);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn use_recovery_code(
        &self,
        user_id: i64,
        code_hash: &str,
        change: &TwoFactorChange<'_>,
    ) -> StoreResult<Option<i64>> {
        let mut s = self.state();
        if !s.enabled(user_id) {
            return Ok(None);
        }
        let Some(codes) = s.two_factor.codes.get_mut(&user_id) else { return Ok(None) };
        match codes.get_mut(code_hash) {
            Some(used @ None) => *used = Some(change.now),
            _ => return Ok(None),
        }
        let left = i64::try_from(codes.values().filter(|u| u.is_none()).count()).unwrap_or(0);
        s.write_change(change);
        Ok(Some(left))
    }

    async fn replace_recovery_codes(
        &self,
        user_id: i64,
        code_hashes: &[String],
        change: &TwoFactorChange<'_>,
    ) -> StoreResult<bool> {
        let mut s = self.state();
        if !s.enabled(user_id) {
            return Ok(false);
        }
        s.two_factor.codes.insert(user_id, code_hashes.iter().map(|h| (h.clone(), None)).collect());
        s.write_change(change);
        Ok(true)
    }

    async fn disable_two_factor(&self, user_id: i64, change: &TwoFactorChange<'_>) -> StoreResult<bool> {
        let mut s = self.state();
        if !s.enabled(user_id) {
            return Ok(false);
        }
        s.two_factor.settings.remove(&user_id);
        s.two_factor.codes.remove(&user_id);
        s.two_factor.pending.retain(|_, p| p.user_id != user_id);
        s.write_change(change);
        Ok(true)
    }

    async fn insert_pending_sign_in(&self, pending: &PendingSignIn) -> StoreResult<()> {
        self.state().two_factor.pending.insert(pending.id.clone(), pending.clone());
        Ok(())
    }

    async fn pending_sign_in(&self, id: &str) -> StoreResult<Option<PendingSignIn>> {
        Ok(self.state().two_factor.pending.get(id).cloned())
    }

    async fn delete_pending_sign_in(&self, id: &str) -> StoreResult<bool> {
        Ok(self.state().two_factor.pending.remove(id).is_some())
    }

    async fn purge_pending_sign_ins(&self, now: i64) -> StoreResult<u64> {
        let mut s = self.state();
        let before = s.two_factor.pending.len();
        s.two_factor.pending.retain(|_, p| p.expires_at > now);
        Ok(u64::try_from(before - s.two_factor.pending.len()).unwrap_or(0))
    }
}
