//! The second step of a sign-in: after a right password, an account with
//! 2FA gets no session but a pending sign-in, kept on the server for five
//! minutes and bound to the browser by a cookie (`id.secret`, the secret
//! stored hashed). A right code opens the session as a password sign-in
//! does ([`Accounts::sign_in`]); wrong codes count on the login's lockout
//! counter, and at the threshold the pending sign-in is dropped.

use std::time::Duration;

use super::Accounts;
use super::sign_in::Login;
use super::two_factor::CodeUsed;
use crate::audit::Origin;
use crate::clock::ms;
use crate::error::AppError;
use crate::model::{ClientInfo, PendingSignIn};
use crate::tokens;

use super::sessions::NewSession;

/// How long a pending sign-in waits for its code.
pub const PENDING_SIGN_IN_TTL: Duration = Duration::from_secs(5 * 60);

/// What a right password leads to.
#[derive(Debug)]
pub enum FirstStep {
    /// No second factor: open the session with [`Accounts::sign_in`].
    Open(Login),
    /// A code is needed: the browser gets `cookie` (`id.secret`) and is
    /// sent to the second step. No session exists yet.
    SecondFactor {
        /// The pending sign-in's cookie value.
        cookie: String,
    },
}

/// A completed second step.
#[derive(Debug)]
pub struct SecondStep {
    /// The session opened.
    pub session: NewSession,
    /// "Remember me", as ticked at the first step.
    pub remember: bool,
    /// Where to go, as asked at the first step (a local path).
    pub next: Option<String>,
    /// Whose.
    pub user_id: i64,
    /// Which kind of code did it.
    pub used: CodeUsed,
}

impl Accounts {
    /// After a right password: an account with 2FA on gets a pending
    /// sign-in instead of a session; any other login goes on to be opened.
    /// `next` must already be a checked local path.
    pub async fn first_step(&self, login: Login, remember: bool, next: Option<&str>) -> Result<FirstStep, AppError> {
        if !self.has_two_factor(login.user.id).await? {
            return Ok(FirstStep::Open(login));
        }
        let minted = tokens::mint();
        let now = self.now();
        let pending = PendingSignIn {
            id: minted.id.clone(),
            secret_hash: minted.secret_hash.clone(),
            user_id: login.user.id,
            attempt_key: login.attempt_key().to_owned(),
            known_device: login.known_device,
            remember,
            next: next.map(str::to_owned),
            created_at: now,
            expires_at: now.saturating_add(ms(PENDING_SIGN_IN_TTL)),
        };
        self.two_factor.insert_pending_sign_in(&pending).await?;
        Ok(FirstStep::SecondFactor { cookie: minted.value() })
    }

    /// The live pending sign-in behind a cookie value, if any; an expired
    /// one is deleted.
    pub async fn pending_sign_in(&self, cookie: &str) -> Result<Option<PendingSignIn>, AppError> {
        let Some((id, secret)) = tokens::parse(cookie) else { return Ok(None) };
        let Some(pending) = self.two_factor.pending_sign_in(id).await? else { return Ok(None) };
        if !tokens::secret_matches(secret, &pending.secret_hash) {
            return Ok(None);
        }
        if self.now() >= pending.expires_at {
            self.two_factor.delete_pending_sign_in(&pending.id).await?;
            return Ok(None);
        }
        Ok(Some(pending))
    }

    /// The second step: checks `code` for the pending sign-in behind
    /// `cookie` and opens the session. `NotFound` if there is no live
    /// pending sign-in; `Locked` (and the pending sign-in gone) at the
    /// lockout threshold; a field error for a wrong code.
    pub async fn second_step(
        &self,
        cookie: &str,
        code: &str,
        client: ClientInfo,
        device: &str,
        origin: &Origin,
    ) -> Result<SecondStep, AppError> {
        let pending = self.pending_sign_in(cookie).await?.ok_or(AppError::NotFound)?;
        let user = self.user(pending.user_id).await?;
        if portcullis_domain::lockout::admin_lock_holds(user.admin_locked_until, self.now()) {
            self.two_factor.delete_pending_sign_in(&pending.id).await?;
            return Err(AppError::AdminLocked);
        }
        let place = self.hasher.admit_check(user.id, origin.client.ip)?;
        let rec = self.two_factor.two_factor(user.id).await?.filter(|r| r.enabled());
        let Some(rec) = rec else {
            // 2FA was turned off meanwhile: the password alone is no longer
            // the question asked, so start again.
            self.two_factor.delete_pending_sign_in(&pending.id).await?;
            return Err(AppError::NotFound);
        };
        let used = match self.check_second_factor(&user, &rec, code, &pending.attempt_key, origin).await {
            Ok(used) => used,
            Err(AppError::Locked) => {
                self.two_factor.delete_pending_sign_in(&pending.id).await?;
                return Err(AppError::Locked);
            }
            Err(e) => return Err(e),
        };
        // One pending sign-in opens one session, however many right codes arrive.
        if !self.two_factor.delete_pending_sign_in(&pending.id).await? {
            return Err(AppError::NotFound);
        }
        let login = Login::checked(user, pending.known_device, pending.attempt_key.clone(), place);
        let session = self.sign_in(login, pending.remember, client, device, origin).await?;
        Ok(SecondStep { session, remember: pending.remember, next: pending.next, user_id: pending.user_id, used })
    }

    /// Deletes pending sign-ins that ran out; answers how many.
    pub async fn purge_pending_sign_ins(&self) -> Result<u64, AppError> {
        Ok(self.two_factor.purge_pending_sign_ins(self.now()).await?)
    }
}
