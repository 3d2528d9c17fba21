//! The security record: who did what, when, from where. Users read their
//! own; administrators read everyone's.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, ms};
use crate::error::AppError;
use crate::model::ClientInfo;
use crate::ports::AuditStore;

/// One event as stored.
#[derive(Clone, Debug, Default)]
pub struct AuditEvent {
    /// Row id (0 before insert).
    pub id: i64,
    /// Unix ms.
    pub at: i64,
    /// `login.success`, `login.failure`, `admin.lock`…
    pub kind: String,
    /// The account concerned, if known.
    pub user_id: Option<i64>,
    /// Who acted, when not the user (an administrator).
    pub actor_id: Option<i64>,
    /// The name typed or the account's username, for reading.
    pub subject: Option<String>,
    /// Client IP.
    pub ip: Option<String>,
    /// User agent.
    pub user_agent: Option<String>,
    /// Anything else worth knowing.
    pub detail: Option<String>,
}

/// Which events to list.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    /// Only this account's.
    pub user_id: Option<i64>,
    /// Only this kind.
    pub kind: Option<String>,
    /// Ids below this (keyset pagination).
    pub before_id: Option<i64>,
}

/// Every kind of event, for filters.
pub const KINDS: &[&str] = &[
    "register",
    "setup.admin",
    "login.success",
    "login.failure",
    "login.locked",
    "login.lockout",
    "logout",
    "password.changed",
    "password.reset",
    "email.verified",
    "email.change",
    "account.deleted",
    "session.revoked",
    "admin.lock",
    "admin.unlock",
    "admin.grant",
    "admin.revoke",
    "admin.sessions",
    "admin.delete",
    "two_factor.enabled",
    "two_factor.disabled",
    "two_factor.recovery_used",
    "two_factor.recovery_codes",
    "two_factor.reset",
    "account.export",
    "import",
    "passkey.added",
    "passkey.renamed",
    "passkey.removed",
    "passkey.refused",
];

/// Who made a change and from where: what every audit event of that change carries.
#[derive(Clone, Debug, Default)]
pub struct Origin {
    /// The client's IP and user agent.
    pub client: ClientInfo,
    /// The administrator acting, when not the account's owner: id and username.
    pub actor: Option<(i64, String)>,
}

impl Origin {
    /// The account's owner, from this client.
    pub fn user(client: &ClientInfo) -> Self {
        Self { client: client.clone(), actor: None }
    }

    /// An administrator, from this client.
    pub fn admin(client: &ClientInfo, id: i64, username: &str) -> Self {
        Self { client: client.clone(), actor: Some((id, username.to_owned())) }
    }

    /// The command line on the server.
    pub fn command_line() -> Self {
        let client = ClientInfo { ip: None, user_agent: Some("portcullis command line".into()) };
        Self { client, actor: None }
    }

    /// An event of `kind` about `user_id`, at `at` (unix ms). An administrator's events say who acted.
    pub fn event(
        &self,
        at: i64,
        kind: &str,
        user_id: Option<i64>,
        subject: Option<&str>,
        detail: Option<String>,
    ) -> AuditEvent {
        let detail = match (&self.actor, detail) {
            (Some((_, name)), None) => Some(format!("by {name}")),
            (_, detail) => detail,
        };
        AuditEvent {
            id: 0,
            at,
            kind: kind.to_owned(),
            user_id,
            actor_id: self.actor.as_ref().map(|(id, _)| *id),
            subject: subject.map(|s| s.chars().take(254).collect()),
            ip: self.client.ip.map(|ip| ip.to_string()),
            user_agent: self.client.user_agent.as_ref().map(|u| u.chars().take(256).collect()),
            detail,
        }
    }
}

/// Reads the security log and keeps it to its retention. Events are written
/// by the use cases, in the same transaction as the change they record.
#[derive(Clone)]
pub struct Audit {
    store: Arc<dyn AuditStore>,
    retention: Duration,
    clock: Arc<dyn Clock>,
}

impl Audit {
    /// A log kept for `retention`, as `clock` measures it.
    pub fn new(store: Arc<dyn AuditStore>, retention: Duration, clock: Arc<dyn Clock>) -> Self {
        Self { store, retention, clock }
    }

    /// Events newest first, `limit` at a time.
    pub async fn list(&self, filter: &AuditFilter, limit: i64) -> Result<Vec<AuditEvent>, AppError> {
        Ok(self.store.list_audit(filter, limit).await?)
    }

    /// Deletes events older than the retention.
    pub async fn purge(&self) -> Result<u64, AppError> {
        Ok(self.store.purge_audit(self.clock.now_ms() - ms(self.retention)).await?)
    }
}
