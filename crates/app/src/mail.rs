//! Mail: what a message is, the ports that render and send it, sealing for
//! the durable outbox, and the worker that drains the outbox with retries.
//!
//! A mail is written to the outbox in the same transaction as the change
//! that causes it. Its body holds live links (reset, verification), so it is
//! stored sealed (XChaCha20-Poly1305 under a key derived from the site's
//! secret) and emptied once sent: the database never holds a usable token.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use crate::clock::{Clock, ms};
use crate::error::AppError;
use crate::ports::OutboxStore;

/// A rendered message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mail {
    /// Recipient address.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text part.
    pub text: String,
    /// HTML part.
    pub html: String,
}

/// Which message to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MailKind {
    /// "Confirm your email address" with a link.
    VerifyEmail,
    /// "Reset your password" with a link.
    ResetPassword,
    /// "Your password was changed".
    PasswordChanged,
    /// "New sign-in to your account".
    NewDevice,
    /// To the old address: "your email address is being changed".
    EmailChangeNotice,
    /// "Two-factor sign-in is on".
    TwoFactorEnabled,
    /// "Two-factor sign-in is off".
    TwoFactorDisabled,
    /// "A recovery code was used to sign in".
    RecoveryCodeUsed,
    /// "An administrator turned two-factor sign-in off".
    TwoFactorReset,
    /// "A passkey was added to your account" (`device` names it).
    PasskeyAdded,
    /// "A passkey was removed from your account" (`device` names it).
    PasskeyRemoved,
}

impl MailKind {
    /// The template name, e.g. `verify_email`.
    pub fn name(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::ResetPassword => "reset_password",
            Self::PasswordChanged => "password_changed",
            Self::NewDevice => "new_device",
            Self::EmailChangeNotice => "email_change_notice",
            Self::TwoFactorEnabled => "two_factor_enabled",
            Self::TwoFactorDisabled => "two_factor_disabled",
            Self::RecoveryCodeUsed => "recovery_code_used",
            Self::TwoFactorReset => "two_factor_reset",
            Self::PasskeyAdded => "passkey_added",
            Self::PasskeyRemoved => "passkey_removed",
        }
    }
}

/// What a mail template gets.
#[derive(Clone, Debug, Serialize)]
pub struct MailVars {
    /// Recipient's username.
    pub username: String,
    /// Absolute link, when the mail carries one.
    pub link: Option<String>,
    /// How long the link works, in words ("1 hour").
    pub valid_for: Option<String>,
    /// The site's public URL.
    pub base_url: String,
    /// Client IP (sign-in notices).
    pub ip: Option<String>,
    /// Browser and system (sign-in notices).
    pub device: Option<String>,
    /// The new address (email change notices).
    pub new_email: Option<String>,
}

/// Renders mails from templates (implemented by the web layer).
pub trait MailRenderer: Send + Sync {
    /// Subject, text and HTML for `kind`, to `to`.
    fn render(&self, kind: MailKind, to: &str, vars: &MailVars) -> Result<Mail, String>;
}

/// Delivers a mail (SMTP, or files in the dev outbox).
#[async_trait]
pub trait MailTransport: Send + Sync {
    /// Sends one mail; an error means "try again later".
    async fn send(&self, mail: &Mail) -> Result<(), String>;
}

/// A mail ready for the outbox table.
#[derive(Clone, Debug)]
pub struct OutgoingMail {
    /// Recipient (kept in clear for operators).
    pub recipient: String,
    /// Subject (kept in clear for operators).
    pub subject: String,
    /// The sealed [`Mail`].
    pub sealed: String,
}

/// A mail claimed from the outbox for sending.
#[derive(Clone, Debug)]
pub struct ClaimedMail {
    /// Outbox row id.
    pub id: i64,
    /// The sealed [`Mail`].
    pub sealed: String,
    /// Attempts made before this one.
    pub attempts: i64,
}

/// Keeps what the store holds free of secrets: seals and opens outbox
/// bodies, and names identifiers (a name typed at login, a mail's
/// destination) by a keyed hash instead of their text.
#[derive(Clone)]
pub struct Sealer {
    cipher: XChaCha20Poly1305,
    fingerprint_key: [u8; 32],
    second_factor: crate::accounts::SecondFactorKeys,
}

impl Sealer {
    /// A sealer whose keys are derived from the site's secret.
    pub fn new(secret: &[u8]) -> Self {
        let key = Sha256::new().chain_update(b"portcullis outbox v1\0").chain_update(secret).finalize();
        let fingerprint_key =
            Sha256::new().chain_update(b"portcullis identifiers v1\0").chain_update(secret).finalize().into();
        let second_factor = crate::accounts::SecondFactorKeys::new(secret);
        Self { cipher: XChaCha20Poly1305::new(&key), fingerprint_key, second_factor }
    }

    /// The keys that seal TOTP secrets and hash recovery codes.
    pub(crate) fn second_factor(&self) -> &crate::accounts::SecondFactorKeys {
        &self.second_factor
    }

    /// HMAC-SHA256 of `text` under a key derived from the site's secret,
    /// truncated to 128 bits, in hex: the same text gives the same name,
    /// and the name gives nothing back without the secret.
    pub fn fingerprint(&self, text: &str) -> String {
        use hmac::Mac as _;
        type HmacSha256 = hmac::Hmac<Sha256>;
        let Ok(mut mac) = <HmacSha256 as hmac::Mac>::new_from_slice(&self.fingerprint_key) else {
            unreachable!("HMAC takes keys of any length")
        };
        mac.update(text.as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }

    /// Seals a mail for the outbox.
    pub fn seal(&self, mail: &Mail) -> Result<OutgoingMail, String> {
        let plain = serde_json::to_vec(mail).map_err(|e| e.to_string())?;
        let mut nonce = [0u8; 24];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = self.cipher.encrypt(XNonce::from_slice(&nonce), plain.as_slice()).map_err(|e| e.to_string())?;
        let mut out = nonce.to_vec();
        out.extend(sealed);
        Ok(OutgoingMail {
            recipient: mail.to.clone(),
            subject: mail.subject.clone(),
            sealed: URL_SAFE_NO_PAD.encode(out),
        })
    }

    /// Opens a sealed mail; `None` if it was altered or sealed under another key.
    pub fn open(&self, sealed: &str) -> Option<Mail> {
        let bytes = URL_SAFE_NO_PAD.decode(sealed).ok()?;
        if bytes.len() < 24 {
            return None;
        }
        let (nonce, body) = bytes.split_at(24);
        let plain = self.cipher.decrypt(XNonce::from_slice(nonce), body).ok()?;
        serde_json::from_slice(&plain).ok()
    }
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

    /// Renders and seals a mail for the outbox.
    pub(crate) fn compose(&self, kind: MailKind, to: &str, vars: &MailVars) -> Result<OutgoingMail, AppError> {
        let mail = self.renderer.render(kind, to, vars).map_err(AppError::Internal)?;
        self.sealer.seal(&mail).map_err(AppError::Internal)
    }

    /// The keys that seal TOTP secrets and hash recovery codes.
    pub(crate) fn second_factor(&self) -> &crate::accounts::SecondFactorKeys {
        self.sealer.second_factor()
    }

    /// See [`Sealer::fingerprint`].
    pub(crate) fn fingerprint(&self, text: &str) -> String {
        self.sealer.fingerprint(text)
    }

    /// Wakes the worker: a mail was queued.
    pub(crate) fn queued(&self) {
        self.wake.notify_one();
    }
}

/// Mails claimed at a time.
const BATCH: i64 = 20;

/// How long a claimed mail is reserved for one node.
const LEASE: Duration = Duration::from_secs(60);

/// How long the worker, once woken, waits for more mails to send with the
/// first: mails come in bursts (a sign-in, a password change, many people
/// at once), and a batch takes one claim and one mark however many it holds.
const GATHER: Duration = Duration::from_millis(100);

/// The wait before attempt `n + 1` after `n` failures: 1 s, 2 s, 4 s … at most 10 minutes.
pub fn backoff(failures: i64) -> Duration {
    let exp = u32::try_from(failures.saturating_sub(1).clamp(0, 20)).unwrap_or(20);
    Duration::from_secs(2u64.saturating_pow(exp)).min(Duration::from_secs(600))
}

/// Drains the outbox: claims due mails (no two nodes claim the same one),
/// sends them, and schedules retries with backoff.
pub struct OutboxWorker {
    store: Arc<dyn OutboxStore>,
    transport: Arc<dyn MailTransport>,
    sealer: Sealer,
    wake: Arc<Notify>,
    poll: Duration,
    gather: Duration,
    clock: Arc<dyn Clock>,
}

impl OutboxWorker {
    /// A worker; `wake` is poked when this node queues a mail, `poll` catches
    /// the rest. Leases and retries are dated by `clock`.
    pub fn new(
        store: Arc<dyn OutboxStore>,
        transport: Arc<dyn MailTransport>,
        sealer: Sealer,
        wake: Arc<Notify>,
        poll: Duration,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { store, transport, sealer, wake, poll, gather: GATHER, clock }
    }

    /// Sets how long the worker, once woken, waits for more mails (default [`GATHER`]).
    pub fn gathering(mut self, gather: Duration) -> Self {
        self.gather = gather;
        self
    }

    /// Sends up to [`BATCH`] due mails; answers whether the batch was full
    /// (so more may be waiting).
    async fn batch(&self) -> bool {
        let claimed_at = Instant::now();
        let now = self.clock.now_ms();
        let claimed = match self.store.claim_mail(now, now + ms(LEASE), BATCH).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "outbox claim failed");
                return false;
            }
        };
        let full = claimed.len() >= BATCH as usize;
        let mut sent = Vec::with_capacity(claimed.len());
        for item in claimed {
            let Some(mail) = self.sealer.open(&item.sealed) else {
                tracing::error!(id = item.id, "outbox mail cannot be opened (secret key changed?); giving up on it");
                let _ = self.store.mark_mail_failed(item.id, i64::MAX / 2, i64::MAX / 2, "cannot be opened").await;
                continue;
            };
            // A transport that panics must not take the worker down with it.
            let transport = self.transport.clone();
            let result = tokio::spawn(async move { transport.send(&mail).await })
                .await
                .unwrap_or_else(|e| Err(format!("mail transport failed: {e}")));
            match result {
                Ok(()) => sent.push(item.id),
                Err(e) => {
                    let failures = item.attempts + 1;
                    let next = self.clock.now_ms() + ms(backoff(failures));
                    tracing::warn!(id = item.id, attempts = failures, error = %e, "mail not delivered; will retry");
                    if let Err(e) = self.store.mark_mail_failed(item.id, failures, next, &e).await {
                        tracing::error!(id = item.id, error = %e, "could not schedule retry");
                    }
                }
            }
            // A slow server must not keep sent mails unmarked until their
            // lease runs out and another node sends them again.
            if claimed_at.elapsed() > LEASE / 2 {
                self.mark_sent(&mut sent).await;
            }
        }
        self.mark_sent(&mut sent).await;
        full
    }

    /// Marks `sent` sent, in one statement, and empties it.
    async fn mark_sent(&self, sent: &mut Vec<i64>) {
        if sent.is_empty() {
            return;
        }
        if let Err(e) = self.store.mark_mails_sent(sent, self.clock.now_ms()).await {
            tracing::error!(ids = ?sent, error = %e, "mails sent but not marked");
        }
        sent.clear();
    }

    /// Runs until `stop` turns true; a batch in progress is finished first,
    /// so a graceful shutdown leaves no mail reserved by a node that is gone.
    pub async fn run(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        while !*stop.borrow() {
            // A batch that was not full took every mail then due: no
            // second claim to find the outbox empty.
            while !*stop.borrow() && self.batch().await {}
            tokio::select! {
                () = self.wake.notified() => {
                    tokio::select! {
                        () = tokio::time::sleep(self.gather) => {},
                        _ = stop.changed() => {},
                    }
                },
                () = tokio::time::sleep(self.poll) => {},
                _ = stop.changed() => {},
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail() -> Mail {
        Mail {
            to: "a@example.com".into(),
            subject: "Hi".into(),
            text: "link https://x/reset-password/abc.def".into(),
            html: "<p>x</p>".into(),
        }
    }

    #[test]
    fn sealed_mail_opens_only_under_its_key_and_hides_the_body() {
        let s = Sealer::new(b"secret one");
        let out = s.seal(&mail()).expect("seal");
        assert!(!out.sealed.contains("reset-password"));
        assert_eq!(s.open(&out.sealed), Some(mail()));
        assert_eq!(Sealer::new(b"secret two").open(&out.sealed), None);
        let mut altered = out.sealed.clone();
        altered.replace_range(40..41, if &altered[40..41] == "A" { "B" } else { "A" });
        assert_eq!(s.open(&altered), None);
    }

    #[test]
    fn fingerprints_are_keyed_and_stable() {
        let (one, two) = (Sealer::new(b"secret one"), Sealer::new(b"secret two"));
        let f = one.fingerprint("alice@example.com");
        assert_eq!(f.len(), 32);
        assert!(f.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(f, one.fingerprint("alice@example.com"));
        assert_ne!(f, one.fingerprint("bob@example.com"));
        assert_ne!(f, two.fingerprint("alice@example.com"), "another site's secret, another name");
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(4), Duration::from_secs(8));
        assert_eq!(backoff(100), Duration::from_secs(600));
    }
}
