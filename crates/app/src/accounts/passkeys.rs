//! Passkeys (WebAuthn): adding one to an account, listing, renaming and
//! removing them, and signing in with one (discoverable credentials, no
//! name typed). The ceremonies' state lives in the store, single-use and
//! for [`CEREMONY_TTL`], so any node can finish what another started.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use webauthn_rs::prelude::{
    DiscoverableAuthentication, Passkey, PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential, Url,
    Uuid, Webauthn, WebauthnBuilder, WebauthnError,
};

use super::Accounts;
use super::sign_in::{DeviceCookie, Login};
use crate::audit::Origin;
use crate::clock::ms;
use crate::error::AppError;
use crate::mail::MailKind;
use crate::model::User;
use crate::passkey_store::{Ceremony, NewPasskey, PasskeyRecord, PasskeyStore, PasskeyUse};
use crate::tokens;

/// How long a ceremony may take, from its start to its finish.
pub const CEREMONY_TTL: Duration = Duration::from_secs(5 * 60);
/// Longest name a passkey may have, in characters.
pub const MAX_NAME_CHARS: usize = 64;
/// Most passkeys one account may hold.
pub const MAX_PER_USER: usize = 20;

const REGISTER: &str = "register";
const LOGIN: &str = "login";
const CONFIRM: &str = "confirm";

/// The answer to a ceremony whose handle is unknown, used or expired.
pub const CEREMONY_GONE: &str = "This passkey request has expired or was already used. Please try again.";
/// The answer to a response that does not verify.
pub const NOT_VERIFIED: &str = "The passkey could not be verified.";

/// A ceremony begun: the browser keeps `handle` and passes `options` to
/// `navigator.credentials`.
#[derive(Clone, Debug)]
pub struct Started {
    /// Names the ceremony's state; sent back with the response.
    pub handle: String,
    /// The options for `navigator.credentials.create` or `.get`, as JSON.
    pub options: Value,
}

/// What proves the owner wants a passkey removed.
#[derive(Clone, Debug)]
pub enum Proof {
    /// The account's password.
    Password(String),
    /// An assertion by another of the account's passkeys, answering the
    /// ceremony `handle` begun with [`Passkeys::start_confirmation`].
    Passkey {
        /// The ceremony.
        handle: String,
        /// The browser's `PublicKeyCredential`, as JSON.
        response: String,
    },
}

/// The passkey use cases.
#[derive(Clone)]
pub struct Passkeys {
    accounts: Accounts,
    store: Arc<dyn PasskeyStore>,
    webauthn: Option<Arc<Webauthn>>,
}

impl std::fmt::Debug for Passkeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Passkeys").field("available", &self.webauthn.is_some()).finish()
    }
}

/// The relying party for `base_url`: its host is the id, its origin the one
/// origin accepted. `None` when the host is an IP address or missing
/// (WebAuthn needs a domain; `localhost` is one).
pub fn relying_party(base_url: &str) -> Option<Webauthn> {
    let url = Url::parse(base_url).ok()?;
    let host = url.host_str()?.to_owned();
    if host.starts_with('[') || host.parse::<std::net::IpAddr>().is_ok() {
        return None;
    }
    let origin = Url::parse(&url.origin().ascii_serialization()).ok()?;
    WebauthnBuilder::new(&host, &origin).ok()?.rp_name("Portcullis").timeout(CEREMONY_TTL).build().ok()
}

fn refused(message: &str) -> AppError {
    AppError::Refused(message.to_owned())
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The counter and flags a serialised credential holds.
fn flags(credential: &Value) -> (i64, bool, bool) {
    let c = &credential["cred"];
    (
        c["counter"].as_i64().unwrap_or(0),
        c["backup_eligible"].as_bool().unwrap_or(false),
        c["backup_state"].as_bool().unwrap_or(false),
    )
}

/// A passkey's name, trimmed: one to [`MAX_NAME_CHARS`] characters, no control characters.
pub fn parse_name(name: &str) -> Result<String, AppError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(super::invalid("name", format!("Give the passkey a name of 1 to {MAX_NAME_CHARS} characters.")));
    }
    Ok(name.to_owned())
}

impl Passkeys {
    /// The use cases for `accounts`' users, relying party from its base URL.
    pub fn new(accounts: Accounts, store: Arc<dyn PasskeyStore>) -> Self {
        let webauthn = relying_party(&accounts.settings.base_url).map(Arc::new);
        Self { accounts, store, webauthn }
    }

    /// Whether passkeys can be used on this site.
    pub fn available(&self) -> bool {
        self.webauthn.is_some()
    }

    fn webauthn(&self) -> Result<&Webauthn, AppError> {
        self.webauthn.as_deref().ok_or_else(|| refused("Passkeys are not available on this site."))
    }

    fn now(&self) -> i64 {
        self.accounts.now()
    }

    /// The user handle the authenticator keeps: a keyed hash of the
    /// account's id, so it tells nothing and needs no column.
    fn user_handle(&self, user_id: i64) -> Uuid {
        let hex_text = self.accounts.mailer.fingerprint(&format!("webauthn-user:{user_id}"));
        let mut bytes = [0u8; 16];
        if hex::decode_to_slice(&hex_text, &mut bytes).is_err() {
            unreachable!("a fingerprint is 16 bytes in hex");
        }
        Uuid::from_bytes(bytes)
    }

    /// Stores a ceremony's state and answers its handle.
    async fn begin(
        &self,
        kind: &str,
        user_id: Option<i64>,
        name: Option<String>,
        state: String,
        options: Value,
    ) -> Result<Started, AppError> {
        let handle = tokens::random_b64(32);
        let now = self.now();
        let ceremony = Ceremony {
            id: tokens::hash_secret(&handle),
            kind: kind.to_owned(),
            user_id,
            name,
            state,
            created_at: now,
            expires_at: now.saturating_add(ms(CEREMONY_TTL)),
        };
        self.store.insert_ceremony(&ceremony).await?;
        Ok(Started { handle, options })
    }

    /// Takes the ceremony `handle` of `kind`: once, before it expires, and,
    /// when `user_id` is given, only for that user.
    async fn take(&self, handle: &str, kind: &str, user_id: Option<i64>) -> Result<Ceremony, AppError> {
        let id = tokens::hash_secret(handle.trim());
        let ceremony = self.store.take_ceremony(&id, kind).await?.ok_or_else(|| refused(CEREMONY_GONE))?;
        if self.now() >= ceremony.expires_at || (user_id.is_some() && ceremony.user_id != user_id) {
            return Err(refused(CEREMONY_GONE));
        }
        Ok(ceremony)
    }

    /// The user's passkeys, oldest first.
    pub async fn list(&self, user: &User) -> Result<Vec<PasskeyRecord>, AppError> {
        Ok(self.store.user_passkeys(user.id).await?)
    }

    /// How many passkeys each of these users has.
    pub async fn counts(&self, user_ids: &[i64]) -> Result<Vec<(i64, i64)>, AppError> {
        Ok(self.store.passkey_counts(user_ids).await?)
    }

    /// Begins adding a passkey called `name` to `user`'s account. The
    /// authenticator is asked for a discoverable credential with user
    /// verification, and not to make a second one for a device the
    /// account has a passkey on already.
    pub async fn start_registration(&self, user: &User, name: &str) -> Result<Started, AppError> {
        let webauthn = self.webauthn()?;
        let name = parse_name(name)?;
        let existing = self.store.user_passkeys(user.id).await?;
        if existing.len() >= MAX_PER_USER {
            return Err(refused(&format!("An account can hold at most {MAX_PER_USER} passkeys.")));
        }
        let exclude = existing.iter().filter_map(|p| URL_SAFE_NO_PAD.decode(&p.credential_id).ok()).collect::<Vec<_>>();
        let (options, state) = webauthn
            .start_passkey_registration(self.user_handle(user.id), &user.username, &user.username, Some(exclude))
            .map_err(|e| AppError::Internal(format!("passkey registration options: {e}")))?;
        let mut options = serde_json::to_value(&options).map_err(|e| AppError::Internal(e.to_string()))?;
        // A passkey that signs in without a name typed must live on the
        // authenticator (a resident, discoverable credential).
        if let Some(sel) = options["publicKey"]["authenticatorSelection"].as_object_mut() {
            sel.insert("residentKey".into(), Value::from("required"));
            sel.insert("requireResidentKey".into(), Value::from(true));
        }
        let state = serde_json::to_string(&state).map_err(|e| AppError::Internal(e.to_string()))?;
        self.begin(REGISTER, Some(user.id), Some(name), state, options).await
    }

    /// Finishes adding a passkey: the ceremony `handle` (this user's,
    /// unexpired, once) and the browser's `response` (JSON). The owner gets
    /// a mail; the audit log records it.
    pub async fn finish_registration(
        &self,
        user: &User,
        handle: &str,
        response: &str,
        origin: &Origin,
    ) -> Result<PasskeyRecord, AppError> {
        let webauthn = self.webauthn()?;
        let ceremony = self.take(handle, REGISTER, Some(user.id)).await?;
        let state: PasskeyRegistration =
            serde_json::from_str(&ceremony.state).map_err(|e| AppError::Internal(format!("ceremony state: {e}")))?;
        let response: RegisterPublicKeyCredential =
            serde_json::from_str(response).map_err(|_| refused(NOT_VERIFIED))?;
        let passkey = webauthn.finish_passkey_registration(&response, &state).map_err(|e| {
            tracing::info!(user_id = user.id, error = %e, "passkey registration refused");
            refused(NOT_VERIFIED)
        })?;
        let credential = serde_json::to_value(&passkey).map_err(|e| AppError::Internal(e.to_string()))?;
        let (sign_count, backup_eligible, backed_up) = flags(&credential);
        let name = ceremony.name.unwrap_or_else(|| "Passkey".to_owned());
        let credential_id = b64(passkey.cred_id());
        let credential_text = credential.to_string();
        let now = self.now();
        let new = NewPasskey {
            user_id: user.id,
            credential_id: &credential_id,
            name: &name,
            credential: &credential_text,
            sign_count,
            backup_eligible,
            backed_up,
            now,
        };
        let mail = self.mail(MailKind::PasskeyAdded, user, &name, origin);
        let event =
            self.accounts.event(origin, "passkey.added", Some(user.id), Some(&user.username), Some(name.clone()));
        let id = self
            .store
            .insert_passkey(&new, mail.as_ref(), Some(&event))
            .await?
            .ok_or_else(|| refused("This passkey is registered already."))?;
        if mail.is_some() {
            self.accounts.mailer.queued();
        }
        Ok(PasskeyRecord {
            id,
            user_id: user.id,
            credential_id,
            name,
            credential: credential_text,
            sign_count,
            backup_eligible,
            backed_up,
            created_at: now,
            last_used_at: None,
        })
    }

    fn mail(&self, kind: MailKind, user: &User, name: &str, origin: &Origin) -> Option<crate::mail::OutgoingMail> {
        let mut vars = self.accounts.vars(user, None, None);
        vars.device = Some(name.to_owned());
        vars.ip = origin.client.ip.map(|ip| ip.to_string());
        self.accounts
            .mailer
            .compose(kind, &user.email, &vars)
            .inspect_err(|e| tracing::warn!(error = %e, "passkey notice not written"))
            .ok()
    }

    /// Renames one of the user's passkeys.
    pub async fn rename(&self, user: &User, id: i64, name: &str, origin: &Origin) -> Result<(), AppError> {
        let name = parse_name(name)?;
        let event =
            self.accounts.event(origin, "passkey.renamed", Some(user.id), Some(&user.username), Some(name.clone()));
        if self.store.rename_passkey(user.id, id, &name, Some(&event)).await? {
            Ok(())
        } else {
            Err(AppError::NotFound)
        }
    }

    /// Removes one of the user's passkeys, given `proof` that the owner
    /// asks: the password (checked like a login, under the lockout) or
    /// another of their passkeys. The owner gets a mail.
    pub async fn remove(&self, user: &User, id: i64, proof: Proof, origin: &Origin) -> Result<(), AppError> {
        let passkeys = self.store.user_passkeys(user.id).await?;
        let target = passkeys.iter().find(|p| p.id == id).ok_or(AppError::NotFound)?;
        match proof {
            Proof::Password(password) => {
                self.accounts.check_current_password(user, &password, origin).await?;
            }
            Proof::Passkey { handle, response } => {
                let ceremony = self.take(&handle, CONFIRM, Some(user.id)).await?;
                let used = self.verify_assertion(&ceremony, &response, origin).await?;
                if used.user_id != user.id || used.id == target.id {
                    return Err(refused("Confirm with another of your passkeys, or with your password."));
                }
            }
        }
        let mail = self.mail(MailKind::PasskeyRemoved, user, &target.name, origin);
        let event = self.accounts.event(
            origin,
            "passkey.removed",
            Some(user.id),
            Some(&user.username),
            Some(target.name.clone()),
        );
        if !self.store.delete_passkey(user.id, id, mail.as_ref(), Some(&event)).await? {
            return Err(AppError::NotFound);
        }
        if mail.is_some() {
            self.accounts.mailer.queued();
        }
        Ok(())
    }

    /// Removes every passkey of user `user_id`: an administrator's reset of
    /// the account's sign-in methods. The owner gets a mail; answers how
    /// many went.
    pub async fn remove_all(&self, user_id: i64, origin: &Origin) -> Result<u64, AppError> {
        let user = self.accounts.user(user_id).await?;
        let mail = self.mail(MailKind::PasskeyRemoved, &user, "every passkey", origin);
        let event = self.accounts.event(
            origin,
            "passkey.removed",
            Some(user.id),
            Some(&user.username),
            Some("every passkey, by an administrator".to_owned()),
        );
        let n = self.store.delete_user_passkeys(user.id, mail.as_ref(), Some(&event)).await?;
        if n > 0 && mail.is_some() {
            self.accounts.mailer.queued();
        }
        Ok(n)
    }

    /// Begins a sign-in with a passkey: no name, the authenticator offers
    /// the credentials it holds for this site.
    pub async fn start_sign_in(&self) -> Result<Started, AppError> {
        let (options, state) = self.discoverable()?;
        self.begin(LOGIN, None, None, state, options).await
    }

    /// Begins confirming, with one of the user's passkeys, a change to them.
    pub async fn start_confirmation(&self, user: &User) -> Result<Started, AppError> {
        let (options, state) = self.discoverable()?;
        self.begin(CONFIRM, Some(user.id), None, state, options).await
    }

    fn discoverable(&self) -> Result<(Value, String), AppError> {
        let (options, state) = self
            .webauthn()?
            .start_discoverable_authentication()
            .map_err(|e| AppError::Internal(format!("passkey sign-in options: {e}")))?;
        let mut options = serde_json::to_value(&options).map_err(|e| AppError::Internal(e.to_string()))?;
        // The browser's script asks for the mediation it wants (a button
        // press, or the autofill list).
        if let Some(o) = options.as_object_mut() {
            o.remove("mediation");
        }
        let state = serde_json::to_string(&state).map_err(|e| AppError::Internal(e.to_string()))?;
        Ok((options, state))
    }

    /// Verifies an assertion answering `ceremony`: a passkey some account
    /// holds, the user handle that account's, the signature right, the
    /// user verified, the counter moving forward. The passkey's counter,
    /// flags and last use are stored. A counter that went backwards (a
    /// cloned authenticator) is refused and recorded.
    async fn verify_assertion(
        &self,
        ceremony: &Ceremony,
        response: &str,
        origin: &Origin,
    ) -> Result<PasskeyRecord, AppError> {
        let webauthn = self.webauthn()?;
        let state: DiscoverableAuthentication =
            serde_json::from_str(&ceremony.state).map_err(|e| AppError::Internal(format!("ceremony state: {e}")))?;
        let response: PublicKeyCredential = serde_json::from_str(response).map_err(|_| refused(NOT_VERIFIED))?;
        let (handle, credential_id) =
            webauthn.identify_discoverable_authentication(&response).map_err(|_| refused(NOT_VERIFIED))?;
        let record =
            self.store.passkey_by_credential(&b64(credential_id)).await?.ok_or_else(|| refused(NOT_VERIFIED))?;
        if handle != self.user_handle(record.user_id) {
            return Err(refused(NOT_VERIFIED));
        }
        let mut passkey: Passkey =
            serde_json::from_str(&record.credential).map_err(|e| AppError::Internal(format!("stored passkey: {e}")))?;
        let result = match webauthn.finish_discoverable_authentication_v2(&response, state, &passkey) {
            Ok(r) => r,
            Err(WebauthnError::CredentialPossibleCompromise) => {
                self.counter_refused(&record, origin).await?;
                return Err(refused(NOT_VERIFIED));
            }
            Err(e) => {
                tracing::info!(user_id = record.user_id, error = %e, "passkey assertion refused");
                return Err(refused(NOT_VERIFIED));
            }
        };
        if !result.user_verified() {
            return Err(refused(NOT_VERIFIED));
        }
        passkey.update_credential(&result);
        let credential = serde_json::to_string(&passkey).map_err(|e| AppError::Internal(e.to_string()))?;
        let sign_count = i64::from(result.counter());
        let used = PasskeyUse {
            id: record.id,
            credential: &credential,
            sign_count,
            backup_eligible: result.backup_eligible(),
            backed_up: result.backup_state(),
            now: self.now(),
        };
        if !self.store.record_passkey_use(&used).await? {
            // Another sign-in with this counter value got there first.
            self.counter_refused(&record, origin).await?;
            return Err(refused(NOT_VERIFIED));
        }
        Ok(record)
    }

    async fn counter_refused(&self, record: &PasskeyRecord, origin: &Origin) -> Result<(), AppError> {
        let detail = format!("signature counter did not move forward for passkey \"{}\"", record.name);
        let event = self.accounts.event(origin, "passkey.refused", Some(record.user_id), None, Some(detail));
        self.accounts.audit.insert_audit(&event).await?;
        Ok(())
    }

    /// Finishes a sign-in with a passkey: the ceremony `handle` (once,
    /// unexpired) and the browser's `response`. Answers a checked login,
    /// to be opened with [`Accounts::sign_in`] like a password login, under
    /// the same lockout and administrator's lock. A passkey with user
    /// verification is two factors in one, so no second step follows.
    pub async fn finish_sign_in(
        &self,
        handle: &str,
        response: &str,
        device: Option<&DeviceCookie>,
        origin: &Origin,
    ) -> Result<Login, AppError> {
        let ceremony = self.take(handle, LOGIN, None).await?;
        let record = self.verify_assertion(&ceremony, response, origin).await?;
        let user = self.accounts.users.user_by_id(record.user_id).await?.ok_or_else(|| refused(NOT_VERIFIED))?;
        self.accounts.verified_login(user, "passkey", device, origin).await
    }

    /// Forgets ceremonies past their time.
    pub async fn purge(&self) -> Result<u64, AppError> {
        Ok(self.store.purge_ceremonies(self.now()).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_relying_party_needs_a_host_name() {
        assert!(relying_party("http://localhost:8080").is_some());
        assert!(relying_party("https://example.com").is_some());
        assert!(relying_party("http://127.0.0.1:8080").is_none(), "an IPv4 address");
        assert!(relying_party("http://[::1]:8080").is_none(), "an IPv6 address");
        assert!(relying_party("not a url").is_none());
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(parse_name("  MacBook Touch ID ").ok().as_deref(), Some("MacBook Touch ID"));
        assert!(parse_name("   ").is_err());
        assert!(parse_name(&"x".repeat(MAX_NAME_CHARS)).is_ok());
        assert!(parse_name(&"x".repeat(MAX_NAME_CHARS + 1)).is_err());
        assert!(parse_name("tab\there").is_err());
    }
}
