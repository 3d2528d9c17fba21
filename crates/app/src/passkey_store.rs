//! The passkey port: users' WebAuthn credentials and the state of the
//! ceremonies in progress, kept in the shared store so that any node can
//! finish a ceremony another started.

use async_trait::async_trait;

use crate::audit::AuditEvent;
use crate::mail::OutgoingMail;
use crate::ports::StoreResult;

/// A passkey as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasskeyRecord {
    /// Row id: what pages and forms name it by.
    pub id: i64,
    /// Owner.
    pub user_id: i64,
    /// base64url of the credential id.
    pub credential_id: String,
    /// Given by the owner ("MacBook Touch ID").
    pub name: String,
    /// The credential as the WebAuthn library serialises it (no secret).
    pub credential: String,
    /// The authenticator's signature counter when last seen.
    pub sign_count: i64,
    /// The credential may be synced to other devices.
    pub backup_eligible: bool,
    /// The credential was synced when last seen.
    pub backed_up: bool,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms of the last sign-in with it.
    pub last_used_at: Option<i64>,
}

/// A passkey about to be stored.
#[derive(Clone, Debug)]
pub struct NewPasskey<'a> {
    /// Owner.
    pub user_id: i64,
    /// base64url of the credential id.
    pub credential_id: &'a str,
    /// Its name.
    pub name: &'a str,
    /// The serialised credential.
    pub credential: &'a str,
    /// Counter at registration.
    pub sign_count: i64,
    /// Backup eligibility at registration.
    pub backup_eligible: bool,
    /// Backup state at registration.
    pub backed_up: bool,
    /// Unix ms.
    pub now: i64,
}

/// A sign-in's news about a credential.
#[derive(Clone, Debug)]
pub struct PasskeyUse<'a> {
    /// Row id.
    pub id: i64,
    /// The credential, updated.
    pub credential: &'a str,
    /// The counter the authenticator sent.
    pub sign_count: i64,
    /// Backup eligibility as sent.
    pub backup_eligible: bool,
    /// Backup state as sent.
    pub backed_up: bool,
    /// Unix ms.
    pub now: i64,
}

/// The server's half of a ceremony in progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ceremony {
    /// SHA-256 (hex) of the handle the browser holds.
    pub id: String,
    /// `register` or `login`.
    pub kind: String,
    /// Who is registering (none for a sign-in).
    pub user_id: Option<i64>,
    /// The name the passkey will get (registration).
    pub name: Option<String>,
    /// The library's state, serialised.
    pub state: String,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms; past it the ceremony is refused.
    pub expires_at: i64,
}

/// Passkeys and ceremonies.
#[async_trait]
pub trait PasskeyStore: Send + Sync {
    /// Stores a ceremony's state.
    async fn insert_ceremony(&self, ceremony: &Ceremony) -> StoreResult<()>;
    /// Removes and answers the ceremony `id` of `kind`: only one caller ever
    /// gets it, however many ask at once.
    async fn take_ceremony(&self, id: &str, kind: &str) -> StoreResult<Option<Ceremony>>;
    /// Deletes ceremonies past `expires_at`; answers how many.
    async fn purge_ceremonies(&self, now: i64) -> StoreResult<u64>;
    /// Stores a passkey with the mail and event that announce it, in one
    /// transaction; `None` (nothing written) if the credential id is
    /// registered already.
    async fn insert_passkey(
        &self,
        passkey: &NewPasskey<'_>,
        mail: Option<&OutgoingMail>,
        audit: Option<&AuditEvent>,
    ) -> StoreResult<Option<i64>>;
    /// A user's passkeys, oldest first.
    async fn user_passkeys(&self, user_id: i64) -> StoreResult<Vec<PasskeyRecord>>;
    /// The passkey with this credential id, whoever owns it.
    async fn passkey_by_credential(&self, credential_id: &str) -> StoreResult<Option<PasskeyRecord>>;
    /// Renames one of the user's passkeys, recording `audit`; `false` if the
    /// user has no passkey `id`.
    async fn rename_passkey(&self, user_id: i64, id: i64, name: &str, audit: Option<&AuditEvent>) -> StoreResult<bool>;
    /// Deletes one of the user's passkeys with the mail and event that
    /// announce it; `false` (nothing written) if the user has no passkey `id`.
    async fn delete_passkey(
        &self,
        user_id: i64,
        id: i64,
        mail: Option<&OutgoingMail>,
        audit: Option<&AuditEvent>,
    ) -> StoreResult<bool>;
    /// Deletes every passkey of the user with the mail and event that
    /// announce it, in one transaction; answers how many went (none: nothing
    /// recorded).
    async fn delete_user_passkeys(
        &self,
        user_id: i64,
        mail: Option<&OutgoingMail>,
        audit: Option<&AuditEvent>,
    ) -> StoreResult<u64>;
    /// Records a sign-in with a passkey: its new counter, flags and credential,
    /// and `last_used_at`. `false` (nothing written) if the stored counter is
    /// not below a non-zero `sign_count` any more, so that two sign-ins with
    /// one counter value cannot both pass.
    async fn record_passkey_use(&self, used: &PasskeyUse<'_>) -> StoreResult<bool>;
    /// How many passkeys each of these users has (users with none are left out).
    async fn passkey_counts(&self, user_ids: &[i64]) -> StoreResult<Vec<(i64, i64)>>;
}
