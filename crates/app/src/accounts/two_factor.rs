//! Two-factor sign-in, the account side: enrolling an authenticator app,
//! recovery codes, turning it off, and an administrator's reset. The
//! second step of a sign-in is in `two_factor_sign_in.rs`.
//!
//! The TOTP secret is stored sealed (XChaCha20-Poly1305 under a key derived
//! from the site's secret, bound to its user), recovery codes as keyed
//! hashes. Every check of a code counts on the account's lockout counter
//! before it is made, like a password.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::Mac as _;
use portcullis_domain::lockout;
use portcullis_domain::totp;
use rand::RngCore as _;
use sha2::Sha256;

use super::Accounts;
use crate::audit::Origin;
use crate::error::AppError;
use crate::mail::MailKind;
use crate::model::{TwoFactorRecord, User};
use crate::ports::TwoFactorChange;

type HmacSha256 = hmac::Hmac<Sha256>;

/// Recovery codes made at a time.
pub const RECOVERY_CODES: usize = 10;

/// The characters of a recovery code (no 0/o, 1/l/i to misread).
const CODE_ALPHABET: &[u8] = b"23456789abcdefghjkmnpqrstuvwxyz";

/// Keys derived from the site's secret for the second factor: one seals
/// TOTP secrets, one hashes recovery codes. Each is an HMAC of the secret
/// under its own label, so neither says anything of the other or of the
/// keys the rest of the site derives.
#[derive(Clone)]
pub struct SecondFactorKeys {
    cipher: XChaCha20Poly1305,
    code_key: [u8; 32],
}

fn derive(secret: &[u8], label: &[u8]) -> [u8; 32] {
    let Ok(mut mac) = <HmacSha256 as hmac::Mac>::new_from_slice(secret) else {
        unreachable!("HMAC takes keys of any length")
    };
    mac.update(label);
    mac.finalize().into_bytes().into()
}

impl SecondFactorKeys {
    /// The keys for a site secret.
    pub fn new(secret: &[u8]) -> Self {
        let seal = derive(secret, b"portcullis totp secrets v1");
        Self { cipher: XChaCha20Poly1305::new(&seal.into()), code_key: derive(secret, b"portcullis recovery codes v1") }
    }

    /// Seals a TOTP secret for `user_id` (the id is bound in: a sealed
    /// secret moved to another user's row does not open).
    pub fn seal(&self, user_id: i64, secret: &[u8]) -> Result<String, AppError> {
        let mut nonce = [0u8; 24];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let aad = user_id.to_be_bytes();
        let sealed = self
            .cipher
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: secret, aad: &aad })
            .map_err(|e| AppError::Internal(e.to_string()))?;
        let mut out = nonce.to_vec();
        out.extend(sealed);
        Ok(URL_SAFE_NO_PAD.encode(out))
    }

    /// Opens a sealed TOTP secret of `user_id`; `None` if altered, moved or sealed under another key.
    pub fn open(&self, user_id: i64, sealed: &str) -> Option<Vec<u8>> {
        let bytes = URL_SAFE_NO_PAD.decode(sealed).ok()?;
        if bytes.len() < 24 {
            return None;
        }
        let (nonce, body) = bytes.split_at(24);
        let aad = user_id.to_be_bytes();
        self.cipher.decrypt(XNonce::from_slice(nonce), Payload { msg: body, aad: &aad }).ok()
    }

    /// The stored form of a recovery code of `user_id`: a keyed hash of the
    /// code as normalized (recovery codes carry 50 random bits, so a fast
    /// keyed hash is enough; without the key a leaked table gives nothing).
    pub fn code_hash(&self, user_id: i64, code: &str) -> String {
        let Ok(mut mac) = <HmacSha256 as hmac::Mac>::new_from_slice(&self.code_key) else {
            unreachable!("HMAC takes keys of any length")
        };
        mac.update(&user_id.to_be_bytes());
        mac.update(totp::normalize_recovery_code(code).as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

/// New recovery codes, as shown: `xxxxx-xxxxx`.
fn new_recovery_codes() -> Vec<String> {
    let mut rng = rand::rngs::OsRng;
    (0..RECOVERY_CODES)
        .map(|_| {
            let mut code = String::with_capacity(11);
            for i in 0..10 {
                if i == 5 {
                    code.push('-');
                }
                let n = (rng.next_u32() as usize) % CODE_ALPHABET.len();
                code.push(char::from(CODE_ALPHABET[n]));
            }
            code
        })
        .collect()
}

/// An enrolment in progress: what the setup page shows.
#[derive(Clone, Debug)]
pub struct Enrolment {
    /// The secret in base32, for typing.
    pub secret_base32: String,
    /// The `otpauth://` URI the QR code holds.
    pub uri: String,
}

/// A user's two-factor state, for their page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TwoFactorStatus {
    /// 2FA is on.
    pub enabled: bool,
    /// Recovery codes left.
    pub recovery_left: i64,
}

/// Which kind of code was accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeUsed {
    /// A code from the authenticator app.
    Totp,
    /// A recovery code; this many are left.
    Recovery {
        /// Unused codes left.
        left: i64,
    },
}

/// Said when a code is wrong, used, or neither kind.
pub const WRONG_CODE: &str = "That code is not right, or it was used already. Try the next code from your app.";

fn wrong_code() -> AppError {
    super::invalid("code", WRONG_CODE.into())
}

impl Accounts {
    /// Whether `user_id` has 2FA on.
    pub async fn has_two_factor(&self, user_id: i64) -> Result<bool, AppError> {
        Ok(self.two_factor.two_factor(user_id).await?.is_some_and(|r| r.enabled()))
    }

    /// Those of `user_ids` who have 2FA on.
    pub async fn two_factor_users(&self, user_ids: &[i64]) -> Result<Vec<i64>, AppError> {
        Ok(self.two_factor.two_factor_users(user_ids).await?)
    }

    /// A user's 2FA state.
    pub async fn two_factor_status(&self, user_id: i64) -> Result<TwoFactorStatus, AppError> {
        let rec = self.two_factor.two_factor(user_id).await?.unwrap_or_default();
        Ok(TwoFactorStatus { enabled: rec.enabled(), recovery_left: if rec.enabled() { rec.recovery_left } else { 0 } })
    }

    fn enrolment_of(&self, user: &User, secret: &[u8]) -> Result<Enrolment, AppError> {
        let uri = totp::otpauth_uri(secret, &self.settings.totp_issuer, &user.username)
            .ok_or_else(|| AppError::Internal("otpauth URI".into()))?;
        Ok(Enrolment { secret_base32: totp::base32(secret), uri })
    }

    /// Starts (again) an enrolment: a new secret, kept sealed on the server
    /// until a code confirms it. Refused while 2FA is on.
    pub async fn start_two_factor(&self, user: &User) -> Result<Enrolment, AppError> {
        let mut secret = [0u8; totp::SECRET_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        let sealed = self.mailer.second_factor().seal(user.id, &secret)?;
        if !self.two_factor.start_enrolment(user.id, &sealed, self.now()).await? {
            return Err(AppError::Refused("Two-factor sign-in is on already.".into()));
        }
        self.enrolment_of(user, &secret)
    }

    /// The enrolment in progress, if any (to show the page again after a wrong code).
    pub async fn pending_enrolment(&self, user: &User) -> Result<Option<Enrolment>, AppError> {
        let Some(rec) = self.two_factor.two_factor(user.id).await? else { return Ok(None) };
        if rec.enabled() {
            return Ok(None);
        }
        let Some(secret) = rec.pending_secret.as_deref().and_then(|s| self.mailer.second_factor().open(user.id, s))
        else {
            return Ok(None);
        };
        self.enrolment_of(user, &secret).map(Some)
    }

    /// Confirms an enrolment with a code from the app: 2FA is on, and the
    /// answer is the recovery codes, shown once and stored only hashed.
    pub async fn confirm_two_factor(&self, user: &User, code: &str, origin: &Origin) -> Result<Vec<String>, AppError> {
        let rec = self.two_factor.two_factor(user.id).await?.unwrap_or_default();
        if rec.enabled() {
            return Err(AppError::Refused("Two-factor sign-in is on already.".into()));
        }
        let keys = self.mailer.second_factor();
        let Some((sealed, secret)) =
            rec.pending_secret.as_deref().and_then(|s| keys.open(user.id, s).map(|secret| (s, secret)))
        else {
            return Err(AppError::Refused("Start the set-up again: no enrolment is waiting.".into()));
        };
        let Some(step) = totp::accept(&secret, code, self.now(), None) else {
            return Err(wrong_code());
        };
        let codes = new_recovery_codes();
        let hashes: Vec<String> = codes.iter().map(|c| keys.code_hash(user.id, c)).collect();
        let mail = self.mailer.compose(MailKind::TwoFactorEnabled, &user.email, &self.vars(user, None, None))?;
        let event = self.event(origin, "two_factor.enabled", Some(user.id), Some(&user.username), None);
        let change = TwoFactorChange { mails: std::slice::from_ref(&mail), audit: Some(&event), now: self.now() };
        if !self.two_factor.confirm_enrolment(user.id, sealed, step, &hashes, &change).await? {
            return Err(AppError::Refused("Start the set-up again: this enrolment was replaced.".into()));
        }
        self.mailer.queued();
        Ok(codes)
    }

    /// Checks a code (TOTP or recovery) of a user with 2FA on, counted on
    /// `attempt_key` before it is checked, like a password: at the
    /// threshold the answer is `Locked` and nothing is checked. A TOTP code
    /// is accepted once (its step is stored); a recovery code is used up,
    /// mailed about and recorded.
    pub(super) async fn check_second_factor(
        &self,
        user: &User,
        rec: &TwoFactorRecord,
        code: &str,
        attempt_key: &str,
        origin: &Origin,
    ) -> Result<CodeUsed, AppError> {
        let rule = self.lockout_rule();
        let r = rule.reserve(self.now());
        let attempts =
            self.throttle.reserve_attempt(attempt_key, r.now, r.threshold, r.lock_until, r.window_start).await?;
        let refused =
            |kind: &str| self.event(origin, kind, Some(user.id), Some(&user.username), Some("second factor".into()));
        if !rule.admits(attempts) {
            self.audit.insert_audit(&refused("login.locked")).await?;
            return Err(AppError::Locked);
        }
        let keys = self.mailer.second_factor();
        let used = if totp::looks_like_totp(code) {
            let secret = rec.secret.as_deref().and_then(|s| keys.open(user.id, s));
            match secret.and_then(|s| totp::accept(&s, code, self.now(), rec.last_step)) {
                Some(step) if self.two_factor.accept_step(user.id, step).await? => Some(CodeUsed::Totp),
                _ => None,
            }
        } else if totp::normalize_recovery_code(code).len() == 10 {
            let mut vars = self.vars(user, None, None);
            vars.ip = origin.client.ip.map(|ip| ip.to_string());
            let mail = self.mailer.compose(MailKind::RecoveryCodeUsed, &user.email, &vars)?;
            let left = (rec.recovery_left - 1).max(0);
            let event = self.event(
                origin,
                "two_factor.recovery_used",
                Some(user.id),
                Some(&user.username),
                Some(format!("{left} recovery code(s) left")),
            );
            let change = TwoFactorChange { mails: std::slice::from_ref(&mail), audit: Some(&event), now: self.now() };
            let hash = keys.code_hash(user.id, code);
            let used = self.two_factor.use_recovery_code(user.id, &hash, &change).await?;
            if used.is_some() {
                self.mailer.queued();
            }
            used.map(|left| CodeUsed::Recovery { left })
        } else {
            None
        };
        match used {
            Some(used) => Ok(used),
            None => {
                self.audit.insert_audit(&refused("login.failure")).await?;
                Err(wrong_code())
            }
        }
    }

    /// Turns 2FA off: the password and a code (TOTP or recovery) are needed.
    pub async fn disable_two_factor(
        &self,
        user_id: i64,
        password: &str,
        code: &str,
        origin: &Origin,
    ) -> Result<(), AppError> {
        let user = self.user(user_id).await?;
        let place = self.check_current_password(&user, password, origin).await?;
        let rec = self.two_factor.two_factor(user.id).await?.filter(TwoFactorRecord::enabled);
        let Some(rec) = rec else {
            return Err(AppError::Refused("Two-factor sign-in is off already.".into()));
        };
        self.check_second_factor(&user, &rec, code, &lockout::account_key(user.id), origin).await?;
        drop(place);
        self.throttle.clear_attempts(&[lockout::account_key(user.id)]).await?;
        self.turn_off(&user, "two_factor.disabled", MailKind::TwoFactorDisabled, origin).await
    }

    /// New recovery codes (the password is needed); the old ones die.
    pub async fn new_recovery_codes(
        &self,
        user_id: i64,
        password: &str,
        origin: &Origin,
    ) -> Result<Vec<String>, AppError> {
        let user = self.user(user_id).await?;
        let _place = self.check_current_password(&user, password, origin).await?;
        let keys = self.mailer.second_factor();
        let codes = new_recovery_codes();
        let hashes: Vec<String> = codes.iter().map(|c| keys.code_hash(user.id, c)).collect();
        let event = self.event(origin, "two_factor.recovery_codes", Some(user.id), Some(&user.username), None);
        let change = TwoFactorChange { mails: &[], audit: Some(&event), now: self.now() };
        if !self.two_factor.replace_recovery_codes(user.id, &hashes, &change).await? {
            return Err(AppError::Refused("Two-factor sign-in is off: there are no recovery codes to replace.".into()));
        }
        Ok(codes)
    }

    /// An administrator turns a user's 2FA off (mailed to the user, recorded).
    pub async fn reset_two_factor(&self, user_id: i64, origin: &Origin) -> Result<User, AppError> {
        let user = self.user(user_id).await?;
        self.turn_off(&user, "two_factor.reset", MailKind::TwoFactorReset, origin).await?;
        Ok(user)
    }

    async fn turn_off(&self, user: &User, kind: &str, mail: MailKind, origin: &Origin) -> Result<(), AppError> {
        let mail = self.mailer.compose(mail, &user.email, &self.vars(user, None, None))?;
        let event = self.event(origin, kind, Some(user.id), Some(&user.username), None);
        let change = TwoFactorChange { mails: std::slice::from_ref(&mail), audit: Some(&event), now: self.now() };
        if !self.two_factor.disable_two_factor(user.id, &change).await? {
            return Err(AppError::Refused(format!("Two-factor sign-in is off for {} already.", user.username)));
        }
        self.mailer.queued();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_for_its_user_and_key() {
        let keys = SecondFactorKeys::new(b"one site secret");
        let sealed = keys.seal(7, b"twenty bytes secret!").expect("seal");
        assert_eq!(keys.open(7, &sealed).as_deref(), Some(&b"twenty bytes secret!"[..]));
        assert_eq!(keys.open(8, &sealed), None, "moved to another user");
        assert_eq!(SecondFactorKeys::new(b"another secret").open(7, &sealed), None);
        assert!(!sealed.contains("twenty"));
    }

    #[test]
    fn recovery_codes_are_ten_distinct_and_hash_as_typed() {
        let codes = new_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        let distinct: std::collections::HashSet<_> = codes.iter().collect();
        assert_eq!(distinct.len(), RECOVERY_CODES);
        let keys = SecondFactorKeys::new(b"one site secret");
        let c = &codes[0];
        assert_eq!(c.len(), 11);
        assert_eq!(keys.code_hash(1, c), keys.code_hash(1, &format!(" {} ", c.to_uppercase())));
        assert_ne!(keys.code_hash(1, c), keys.code_hash(2, c), "bound to the user");
    }
}
