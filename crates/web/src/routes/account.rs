//! The signed-in user's own account: password and sessions.

use crate::routes::RouteTable;
use axum::Form;
use axum::extract::{Path, State};
use axum::response::Response;

use portcullis_app::AppError;
use portcullis_domain::Password;
use serde::Deserialize;

use crate::context::{Flash, SessionChange};
use crate::error::WebError;
use crate::extract::CurrentUser;
use crate::pages;
use crate::routes::see_other_with;
use crate::state::AppState;

/// `/account*`.
pub fn routes(t: RouteTable) -> RouteTable {
    t.get("/account", get_account)
        .post("/account/password", post_password)
        .post("/account/email", post_email)
        .post("/account/delete", post_delete_account)
        .get("/account/sessions", get_sessions)
        .get("/account/activity", get_activity)
        .get("/account/export", crate::routes::export::get_export)
        .post("/account/sessions/revoke-others", post_revoke_others)
        .post("/account/sessions/{id}/revoke", post_revoke_session)
}

/// The password change form.
#[derive(Debug, Default, Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
}

/// The email change form.
#[derive(Debug, Default, Deserialize)]
pub struct EmailForm {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_email: String,
}

/// The account deletion form.
#[derive(Debug, Default, Deserialize)]
pub struct DeleteForm {
    #[serde(default)]
    current_password: String,
}

/// Said when the account is locked: the current password was not even checked.
const LOCKED: &str =
    "Too many wrong passwords: this account is temporarily locked and nothing was changed. Try again later.";

/// Counts a current-password check against this user's and this client's
/// allowance (one shared by every account page); 429 over either.
pub(crate) async fn limit_password_check(state: &AppState, user: &CurrentUser) -> Result<(), WebError> {
    let by_user = state.limiter.check("password-check", &format!("user:{}", user.auth.user.id)).await?;
    let by_client = state.rate_limit("password-check", &user.ctx.client).await;
    match by_user {
        Some(wait) => Err(WebError::TooManyRequests(wait)),
        None => by_client,
    }
}

/// Asks to change the email: a link goes to the new address, a notice to the old.
async fn post_email(
    State(state): State<AppState>,
    user: CurrentUser,
    Form(form): Form<EmailForm>,
) -> Result<Response, WebError> {
    limit_password_check(&state, &user).await?;
    let back = |flash: Flash| see_other_with("/account", vec![flash]);
    let u = &user.auth.user;
    match state.accounts.request_email_change(u.id, &form.current_password, &form.new_email, &user.ctx.origin()).await {
        Ok(()) => Ok(back(Flash::info(format!(
            "We sent a confirmation link to {}. Your address changes when you follow it.",
            form.new_email.trim()
        )))),
        Err(AppError::InvalidCredentials) => Ok(back(Flash::error("Current password is incorrect"))),
        Err(AppError::Locked) => Ok(crate::context::slow_refusal(back(Flash::error(LOCKED)))),
        Err(e @ AppError::SentRecently) => Ok(back(Flash::info(e.to_string()))),
        Err(AppError::Invalid(errors)) => Ok(back(Flash::error(errors.to_string()))),
        Err(e) => Err(e.into()),
    }
}

/// Deletes the account and everything in it; the password is required.
async fn post_delete_account(
    State(state): State<AppState>,
    user: CurrentUser,
    Form(form): Form<DeleteForm>,
) -> Result<Response, WebError> {
    limit_password_check(&state, &user).await?;
    let u = &user.auth.user;
    match state.accounts.delete_own_account(u.id, &form.current_password, &user.ctx.origin()).await {
        Ok(()) => {
            let mut r = see_other_with("/", vec![Flash::info("Your account and its posts have been deleted.")]);
            r.extensions_mut().insert(SessionChange::End);
            Ok(r)
        }
        Err(AppError::InvalidCredentials) => {
            Ok(see_other_with("/account", vec![Flash::error("Current password is incorrect")]))
        }
        Err(AppError::Locked) => {
            Ok(crate::context::slow_refusal(see_other_with("/account", vec![Flash::error(LOCKED)])))
        }
        Err(AppError::Refused(msg)) => Ok(see_other_with("/account", vec![Flash::error(msg)])),
        Err(e) => Err(e.into()),
    }
}

/// Account settings.
async fn get_account(State(state): State<AppState>, user: CurrentUser) -> Response {
    state
        .templates
        .render(&pages::Account { ctx: &user.ctx, min_length: state.accounts.settings().min_password_length })
}

/// Changes the password: the current one is required; every other session ends.
async fn post_password(
    State(state): State<AppState>,
    user: CurrentUser,
    Form(form): Form<PasswordForm>,
) -> Result<Response, WebError> {
    limit_password_check(&state, &user).await?;
    let policy = state.accounts.password_policy();
    let back = |flash: Flash| see_other_with("/account", vec![flash]);
    let new = match Password::parse(&form.new_password, policy) {
        Ok(p) => p,
        Err(e) => return Ok(back(Flash::error(e.to_string()))),
    };
    match state.accounts.change_password(&user.auth.session, &form.current_password, &new, &user.ctx.origin()).await {
        Ok(new) => {
            let mut r = back(Flash::success("Your password was changed. Other sessions were signed out."));
            r.extensions_mut().insert(SessionChange::Start { cookie: new.cookie, remember: new.session.remember });
            Ok(r)
        }
        Err(AppError::InvalidCredentials) => Ok(back(Flash::error("Current password is incorrect"))),
        Err(AppError::Locked) => Ok(crate::context::slow_refusal(back(Flash::error(LOCKED)))),
        Err(e) => Err(e.into()),
    }
}

/// The user's sessions.
async fn get_sessions(State(state): State<AppState>, user: CurrentUser) -> Result<Response, WebError> {
    let sessions = state.accounts.sessions_of(user.auth.user.id).await?;
    let current = &user.auth.session.id;
    let sessions = sessions
        .into_iter()
        .map(|s| pages::SessionRow {
            device: describe_agent(s.user_agent.as_deref().unwrap_or("")),
            ip: s.ip.unwrap_or_default(),
            created_at: s.created_at,
            last_seen_at: s.last_seen_at,
            remember: s.remember,
            current: &s.id == current,
            id: s.id,
        })
        .collect();
    Ok(state.templates.render(&pages::Sessions { ctx: &user.ctx, sessions }))
}

/// Ends one of the user's sessions.
async fn post_revoke_session(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    if id == user.auth.session.id {
        return Ok(see_other_with("/account/sessions", vec![Flash::error("To end this session, log out.")]));
    }
    state.accounts.revoke_session(&user.auth.user, &id, &user.ctx.origin()).await?;
    Ok(see_other_with("/account/sessions", vec![Flash::success("Session revoked")]))
}

/// Ends every session but this one.
async fn post_revoke_others(State(state): State<AppState>, user: CurrentUser) -> Result<Response, WebError> {
    let n = state.accounts.revoke_other_sessions(&user.auth.user, &user.auth.session.id, &user.ctx.origin()).await?;
    Ok(see_other_with("/account/sessions", vec![Flash::success(format!("Signed out of {n} other session(s)"))]))
}

/// A short name for a browser from its user agent.
pub fn describe_agent(ua: &str) -> String {
    if ua.is_empty() {
        return "Unknown device".into();
    }
    let browser = [
        ("Edg/", "Edge"),
        ("OPR/", "Opera"),
        ("Firefox/", "Firefox"),
        ("Chrome/", "Chrome"),
        ("Chromium/", "Chromium"),
        ("Safari/", "Safari"),
        ("curl/", "curl"),
    ]
    .iter()
    .find(|(k, _)| ua.contains(k))
    .map(|(_, v)| *v);
    let os = [
        ("Android", "Android"),
        ("iPhone", "iPhone"),
        ("iPad", "iPad"),
        ("Windows", "Windows"),
        ("Mac OS X", "macOS"),
        ("Linux", "Linux"),
    ]
    .iter()
    .find(|(k, _)| ua.contains(k))
    .map(|(_, v)| *v);
    match (browser, os) {
        (Some(b), Some(o)) => format!("{b} on {o}"),
        (Some(b), None) => b.into(),
        (None, Some(o)) => o.into(),
        (None, None) => ua.chars().take(40).collect(),
    }
}

/// `?before=` for the activity list.
#[derive(Debug, Default, Deserialize)]
pub struct ActivityQuery {
    before: Option<i64>,
}

/// An audit event as the tables show it.
pub fn event_row(e: &portcullis_app::audit::AuditEvent) -> pages::EventRow<'_> {
    pages::EventRow { e, device: describe_agent(e.user_agent.as_deref().unwrap_or("")) }
}

/// The user's own security record.
async fn get_activity(
    State(state): State<AppState>,
    user: CurrentUser,
    axum::extract::Query(q): axum::extract::Query<ActivityQuery>,
) -> Result<Response, WebError> {
    let filter =
        portcullis_app::audit::AuditFilter { user_id: Some(user.auth.user.id), kind: None, before_id: q.before };
    let mut events = state.audit.list(&filter, 51).await?;
    let more = events.len() > 50;
    events.truncate(50);
    let next_before = if more { events.last().map(|e| e.id) } else { None };
    let events = events.iter().map(event_row).collect();
    Ok(state.templates.render(&pages::Activity { ctx: &user.ctx, events, next_before, paged: q.before.is_some() }))
}
