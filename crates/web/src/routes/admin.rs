//! The admin area: users, searchable and paginated, and actions on them.
//! Every action is a POST behind a confirmation page.

use crate::routes::RouteTable;
use axum::extract::{Path, Query, State};
use axum::response::Response;

use portcullis_app::Origin;
use serde::Deserialize;

use crate::context::Flash;
use crate::error::WebError;
use crate::extract::AdminUser;
use crate::pages;
use crate::routes::see_other_with;
use crate::state::AppState;

/// Users per page.
const PAGE_SIZE: i64 = 25;

/// `/admin/*`.
pub fn routes(t: RouteTable) -> RouteTable {
    t.get("/admin", get_admin)
        .get("/admin/users", get_users)
        .get("/admin/audit", get_audit)
        .get("/admin/users/{id}/{action}", get_confirm)
        .post("/admin/users/{id}/{action}", post_action)
}

/// `?q=&after=`.
#[derive(Debug, Default, Deserialize)]
pub struct UserQuery {
    #[serde(default)]
    q: String,
    after: Option<i64>,
}

/// What an admin can do to a user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Lock,
    Unlock,
    GrantAdmin,
    RevokeAdmin,
    RevokeSessions,
    RemovePasskeys,
    Delete,
}

impl Action {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "lock" => Self::Lock,
            "unlock" => Self::Unlock,
            "grant-admin" => Self::GrantAdmin,
            "revoke-admin" => Self::RevokeAdmin,
            "revoke-sessions" => Self::RevokeSessions,
            "remove-passkeys" => Self::RemovePasskeys,
            "delete" => Self::Delete,
            _ => return None,
        })
    }

    fn label(self) -> &'static str {
        match self {
            Self::Lock => "Lock account",
            Self::Unlock => "Unlock account",
            Self::GrantAdmin => "Make administrator",
            Self::RevokeAdmin => "Remove administrator",
            Self::RevokeSessions => "Sign out everywhere",
            Self::RemovePasskeys => "Remove passkeys",
            Self::Delete => "Delete user",
        }
    }

    fn consequence(self) -> &'static str {
        match self {
            Self::Lock => {
                "The user cannot log in until an administrator unlocks the account, and all their sessions end."
            }
            Self::Unlock => "The user can log in again.",
            Self::GrantAdmin => {
                "The user gets full access to the admin area. Their sessions end, so they sign in again."
            }
            Self::RevokeAdmin => "The user loses access to the admin area at once. Their sessions end.",
            Self::RevokeSessions => "Every session of this user ends.",
            Self::RemovePasskeys => {
                "Every passkey of this user is removed; they sign in with their password until they add one again."
            }
            Self::Delete => "The user and all their posts are deleted. This cannot be undone.",
        }
    }
}

/// The overview: sign-ins, failures and lockouts of the last 30 days,
/// user counts, sessions and the mail outbox.
async fn get_admin(State(state): State<AppState>, AdminUser(admin): AdminUser) -> Result<Response, WebError> {
    let overview = state.overview.as_ref().ok_or(WebError::NotFound)?;
    let report = overview.report().await?;
    let oldest_mail = report.outbox.oldest_at.map(|at| pages::age(report.now - at));
    let charts = pages::charts(&report.days);
    Ok(state.templates.render(&pages::AdminOverview { ctx: &admin.ctx, report: &report, charts, oldest_mail }))
}

/// The user list with search and keyset pagination.
async fn get_users(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    Query(q): Query<UserQuery>,
) -> Result<Response, WebError> {
    let query = q.q.trim().chars().take(100).collect::<String>();
    let mut rows = state.accounts.list_users(Some(&query), q.after, PAGE_SIZE + 1).await?;
    let more = rows.len() as i64 > PAGE_SIZE;
    rows.truncate(PAGE_SIZE as usize);
    let next_after = if more { rows.last().map(|r| r.user.id) } else { None };
    let now = state.accounts.clock().now_ms();
    let ids: Vec<i64> = rows.iter().map(|r| r.user.id).collect();
    let with_two_factor = state.accounts.two_factor_users(&ids).await?;
    let passkeys = state.passkeys.counts(&ids).await?;
    let users = rows
        .iter()
        .map(|r| pages::UserRow {
            user: &r.user,
            locked: r.locked_until.is_some(),
            locked_by_admin: portcullis_domain::lockout::admin_lock_holds(r.user.admin_locked_until, now),
            two_factor: with_two_factor.contains(&r.user.id),
            passkeys: passkeys.iter().find(|(id, _)| *id == r.user.id).map_or(0, |(_, n)| *n),
        })
        .collect();
    Ok(state.templates.render(&pages::AdminUsers {
        ctx: &admin.ctx,
        users,
        q: &query,
        next_after,
        paged: q.after.is_some(),
    }))
}

/// The confirmation step before an action.
async fn get_confirm(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    Path((id, action)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let action_enum = Action::parse(&action).ok_or(WebError::NotFound)?;
    let user = state.accounts.user(id.parse().map_err(|_| WebError::NotFound)?).await?;
    Ok(state.templates.render(&pages::AdminConfirm {
        ctx: &admin.ctx,
        user: &user,
        action: &action,
        label: action_enum.label(),
        consequence: action_enum.consequence(),
        danger: matches!(action_enum, Action::Delete | Action::Lock | Action::RevokeAdmin | Action::RemovePasskeys),
    }))
}

/// Carries out an action.
async fn post_action(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    Path((id, action)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let action = Action::parse(&action).ok_or(WebError::NotFound)?;
    let id: i64 = id.parse().map_err(|_| WebError::NotFound)?;
    let user = state.accounts.user(id).await?;
    let accounts = &state.accounts;
    let me = &admin.auth.user;
    let origin = Origin::admin(&admin.ctx.client, me.id, &me.username);
    let result = match action {
        Action::Lock => accounts
            .lock_user(id, &origin)
            .await
            .map(|()| format!("{} is locked until an administrator unlocks the account", user.username)),
        Action::Unlock => accounts.unlock_user(id, &origin).await.map(|()| format!("{} is unlocked", user.username)),
        Action::GrantAdmin => {
            accounts.set_admin(id, true, &origin).await.map(|u| format!("{} is now an administrator", u.username))
        }
        Action::RevokeAdmin => accounts
            .set_admin(id, false, &origin)
            .await
            .map(|u| format!("{} is no longer an administrator", u.username)),
        Action::RevokeSessions => {
            accounts.end_all_sessions(id, &origin).await.map(|n| format!("Ended {n} session(s) of {}", user.username))
        }
        Action::RemovePasskeys => {
            state.passkeys.remove_all(id, &origin).await.map(|n| format!("Removed {n} passkey(s) of {}", user.username))
        }
        Action::Delete => accounts.delete_user(id, &origin).await.map(|()| format!("{} was deleted", user.username)),
    };
    let flash = match result {
        Ok(msg) => Flash::success(msg),
        Err(portcullis_app::AppError::Refused(msg)) => Flash::error(msg),
        Err(e) => return Err(e.into()),
    };
    // An admin who demoted or deleted themselves has no admin page to return to.
    let to = if id == admin.auth.user.id
        && matches!(action, Action::RevokeAdmin | Action::Delete | Action::RevokeSessions | Action::Lock)
        && flash.category == "success"
    {
        "/"
    } else {
        "/admin/users"
    };
    Ok(see_other_with(to, vec![flash]))
}

/// `?user=&kind=&before=`.
#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    user: String,
    #[serde(default)]
    kind: String,
    before: Option<i64>,
}

/// Everyone's security record, filterable by user and kind.
async fn get_audit(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    Query(q): Query<AuditQuery>,
) -> Result<Response, WebError> {
    let user_filter = q.user.trim();
    let user_id = if user_filter.is_empty() {
        None
    } else {
        // An unknown name matches nothing rather than everything.
        Some(state.accounts.find_user(user_filter).await.map(|u| u.id).unwrap_or(-1))
    };
    let kind = Some(q.kind.trim().to_owned()).filter(|k| portcullis_app::audit::KINDS.contains(&k.as_str()));
    let filter = portcullis_app::audit::AuditFilter { user_id, kind: kind.clone(), before_id: q.before };
    let mut events = state.audit.list(&filter, PAGE_SIZE + 1).await?;
    let more = events.len() as i64 > PAGE_SIZE;
    events.truncate(PAGE_SIZE as usize);
    let next_before = if more { events.last().map(|e| e.id) } else { None };
    let events = events.iter().map(crate::routes::account::event_row).collect();
    Ok(state.templates.render(&pages::AdminAudit {
        ctx: &admin.ctx,
        events,
        next_before,
        paged: q.before.is_some(),
        user: user_filter,
        kind: kind.as_deref().unwrap_or(""),
        kinds: portcullis_app::audit::KINDS,
    }))
}
