//! The administrators' pages: users and the audit log.

use askama::Template;
use portcullis_app::User;

use super::account::EventRow;
use crate::context::RequestCtx;

/// One row of `/admin/users`.
pub struct UserRow<'a> {
    /// The account.
    pub user: &'a User,
    /// Locked by an administrator or by failed logins.
    pub locked: bool,
    /// Locked by an administrator (until one unlocks it), not only by failed logins.
    pub locked_by_admin: bool,
    /// Two-factor sign-in is on.
    pub two_factor: bool,
    /// How many passkeys the account holds.
    pub passkeys: i64,
}

/// `/admin/users`.
#[derive(Template)]
#[template(path = "admin_users.html")]
pub struct AdminUsers<'a> {
    /// The request.
    pub ctx: &'a RequestCtx,
    /// This page of users.
    pub users: Vec<UserRow<'a>>,
    /// The search.
    pub q: &'a str,
    /// The `after` of the next page.
    pub next_after: Option<i64>,
    /// Whether this is not the first page.
    pub paged: bool,
}

/// The confirmation before an administrator's action.
#[derive(Template)]
#[template(path = "admin_confirm.html")]
pub struct AdminConfirm<'a> {
    /// The request.
    pub ctx: &'a RequestCtx,
    /// The account acted on.
    pub user: &'a User,
    /// The action's path segment.
    pub action: &'a str,
    /// The action in words.
    pub label: &'a str,
    /// What it does.
    pub consequence: &'a str,
    /// Whether it takes something away.
    pub danger: bool,
}

/// `/admin/audit`.
#[derive(Template)]
#[template(path = "admin_audit.html")]
pub struct AdminAudit<'a> {
    /// The request.
    pub ctx: &'a RequestCtx,
    /// Newest first.
    pub events: Vec<EventRow<'a>>,
    /// The `before` of the next page.
    pub next_before: Option<i64>,
    /// Whether this is not the first page.
    pub paged: bool,
    /// The user filter as typed.
    pub user: &'a str,
    /// The kind filter.
    pub kind: &'a str,
    /// Every kind of event.
    pub kinds: &'a [&'a str],
}
