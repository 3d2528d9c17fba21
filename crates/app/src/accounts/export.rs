//! Taking your data: everything stored about a user, for them to download
//! (GDPR art. 15 and 20). Never a password hash, a session's or token's
//! secret, or a security stamp: what is not the user's data but a key to it.

use portcullis_domain::lockout;
use serde::Serialize;

use super::Accounts;
use super::passkeys::Passkeys;
use crate::access_tokens::AccessTokens;
use crate::audit::{AuditFilter, Origin};
use crate::error::AppError;
use crate::posts::Posts;

/// The other use cases that hold a user's data, read for an export.
#[derive(Clone, Copy)]
pub struct ExportSources<'a> {
    /// The user's posts.
    pub posts: &'a Posts,
    /// The user's personal access tokens.
    pub tokens: &'a AccessTokens,
    /// The user's passkeys.
    pub passkeys: &'a Passkeys,
}

/// Rows read at a time.
const PAGE: i64 = 500;

/// Everything stored about one user. Times are Unix milliseconds (UTC).
#[derive(Clone, Debug, Serialize)]
pub struct AccountExport {
    /// What this is.
    pub format: &'static str,
    /// When it was made.
    pub exported_at: i64,
    /// The account.
    pub profile: ExportProfile,
    /// The user's posts, newest first.
    pub posts: Vec<ExportPost>,
    /// Where the user is signed in.
    pub sessions: Vec<ExportSession>,
    /// Two-factor sign-in with an authenticator app.
    pub two_factor: ExportTwoFactor,
    /// Personal access tokens, by name (never their secret).
    pub access_tokens: Vec<ExportToken>,
    /// Passkeys, by name (never the credential).
    pub passkeys: Vec<ExportPasskey>,
    /// The security record about the account, newest first.
    pub audit_events: Vec<ExportEvent>,
}

/// The account's own row.
#[derive(Clone, Debug, Serialize)]
pub struct ExportProfile {
    /// Id.
    pub id: i64,
    /// Username.
    pub username: String,
    /// Email address.
    pub email: String,
    /// Administrator.
    pub is_admin: bool,
    /// Address confirmed.
    pub email_verified: bool,
    /// Created.
    pub created_at: i64,
    /// Last changed.
    pub updated_at: i64,
    /// Last signed in.
    pub last_login_at: Option<i64>,
    /// Locked by an administrator until.
    pub admin_locked_until: Option<i64>,
    /// Locked by failed sign-ins until.
    pub locked_until: Option<i64>,
}

/// A post.
#[derive(Clone, Debug, Serialize)]
pub struct ExportPost {
    /// Id.
    pub id: i64,
    /// Title.
    pub title: String,
    /// Content.
    pub content: String,
    /// Written.
    pub created_at: i64,
    /// Last edited.
    pub updated_at: i64,
}

/// A session and its device.
#[derive(Clone, Debug, Serialize)]
pub struct ExportSession {
    /// Signed in.
    pub created_at: i64,
    /// Last used (to within a minute).
    pub last_seen_at: i64,
    /// Ends at the latest.
    pub expires_at: i64,
    /// Made with "remember me".
    pub remember: bool,
    /// The session of this download.
    pub current: bool,
    /// Client IP at sign-in.
    pub ip: Option<String>,
    /// Browser at sign-in.
    pub user_agent: Option<String>,
}

/// Two-factor sign-in: whether it is on, never its secret or codes.
#[derive(Clone, Debug, Serialize)]
pub struct ExportTwoFactor {
    /// On.
    pub enabled: bool,
    /// Recovery codes not yet used.
    pub recovery_codes_left: i64,
}

/// A personal access token.
#[derive(Clone, Debug, Serialize)]
pub struct ExportToken {
    /// The owner's label.
    pub name: String,
    /// `read`, `write` or `admin`.
    pub scope: String,
    /// Made.
    pub created_at: i64,
    /// Ends; `None`: never.
    pub expires_at: Option<i64>,
    /// Last noted use.
    pub last_used_at: Option<i64>,
    /// Address of the last noted use.
    pub last_used_ip: Option<String>,
}

/// A passkey.
#[derive(Clone, Debug, Serialize)]
pub struct ExportPasskey {
    /// The owner's label.
    pub name: String,
    /// Added.
    pub created_at: i64,
    /// Last sign-in with it.
    pub last_used_at: Option<i64>,
}

/// An audit event about the account.
#[derive(Clone, Debug, Serialize)]
pub struct ExportEvent {
    /// When.
    pub at: i64,
    /// What (`login.success`, `password.changed`…).
    pub kind: String,
    /// The administrator who acted, if not the user.
    pub actor_id: Option<i64>,
    /// The name typed or the username.
    pub subject: Option<String>,
    /// Client IP.
    pub ip: Option<String>,
    /// Browser.
    pub user_agent: Option<String>,
    /// More.
    pub detail: Option<String>,
}

impl Accounts {
    /// Everything stored about `user_id`, read for its owner in the session
    /// `current`; the download is recorded in the audit log.
    pub async fn export_account(
        &self,
        user_id: i64,
        current: &str,
        sources: ExportSources<'_>,
        origin: &Origin,
    ) -> Result<AccountExport, AppError> {
        let user = self.user(user_id).await?;
        let locked_until = self.throttle.locked_until(&lockout::account_key(user.id), self.now()).await?;
        let mut all_posts = Vec::new();
        let mut before = None;
        loop {
            let page = sources.posts.list(Some(user.id), before, PAGE).await?;
            all_posts.extend(page.iter().map(|p| ExportPost {
                id: p.id,
                title: p.title.clone(),
                content: p.content.clone(),
                created_at: p.created_at,
                updated_at: p.updated_at,
            }));
            match page.last() {
                Some(last) if page.len() as i64 == PAGE => before = Some(last.id),
                _ => break,
            }
        }
        let sessions = self
            .sessions_of(user.id)
            .await?
            .into_iter()
            .map(|s| ExportSession {
                created_at: s.created_at,
                last_seen_at: s.last_seen_at,
                expires_at: s.expires_at,
                remember: s.remember,
                current: s.id == current,
                ip: s.ip,
                user_agent: s.user_agent,
            })
            .collect();
        let status = self.two_factor_status(user.id).await?;
        let two_factor = ExportTwoFactor { enabled: status.enabled, recovery_codes_left: status.recovery_left };
        let access_tokens = sources
            .tokens
            .list(user.id)
            .await?
            .into_iter()
            .map(|t| ExportToken {
                name: t.name,
                scope: t.scope.as_str().to_owned(),
                created_at: t.created_at,
                expires_at: t.expires_at,
                last_used_at: t.last_used_at,
                last_used_ip: t.last_used_ip,
            })
            .collect();
        let passkeys = sources
            .passkeys
            .list(&user)
            .await?
            .into_iter()
            .map(|p| ExportPasskey { name: p.name, created_at: p.created_at, last_used_at: p.last_used_at })
            .collect();
        // Recorded before the events are read: the download is in its own record.
        let event = self.event(origin, "account.export", Some(user.id), Some(&user.username), None);
        self.audit.insert_audit(&event).await?;
        let mut audit_events = Vec::new();
        let mut filter = AuditFilter { user_id: Some(user.id), kind: None, before_id: None };
        loop {
            let page = self.audit.list_audit(&filter, PAGE).await?;
            audit_events.extend(page.iter().map(|e| ExportEvent {
                at: e.at,
                kind: e.kind.clone(),
                actor_id: e.actor_id,
                subject: e.subject.clone(),
                ip: e.ip.clone(),
                user_agent: e.user_agent.clone(),
                detail: e.detail.clone(),
            }));
            match page.last() {
                Some(last) if page.len() as i64 == PAGE => filter.before_id = Some(last.id),
                _ => break,
            }
        }
        Ok(AccountExport {
            format: "portcullis-account-export/1",
            exported_at: self.now(),
            profile: ExportProfile {
                id: user.id,
                username: user.username,
                email: user.email,
                is_admin: user.is_admin,
                email_verified: user.email_verified,
                created_at: user.created_at,
                updated_at: user.updated_at,
                last_login_at: user.last_login_at,
                admin_locked_until: user.admin_locked_until,
                locked_until,
            },
            posts: all_posts,
            sessions,
            two_factor,
            access_tokens,
            passkeys,
            audit_events,
        })
    }
}
