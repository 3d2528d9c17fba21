//! A user's own account: settings, sessions and activity.

use askama::Template;
use portcullis_app::audit::AuditEvent;

use crate::context::RequestCtx;

/// `/account`.
#[derive(Template)]
#[template(path = "account.html")]
pub struct Account<'a> {
    /// The request.
    pub ctx: &'a RequestCtx,
    /// The password policy's minimum length.
    pub min_length: usize,
}

/// One row of `/account/sessions`.
pub struct SessionRow {
    /// Session id.
    pub id: String,
    /// Browser and system, in words.
    pub device: String,
    /// Client IP.
    pub ip: String,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub last_seen_at: i64,
    /// "Remember me".
    pub remember: bool,
    /// The session of this request.
    pub current: bool,
}

/// `/account/sessions`.
#[derive(Template)]
#[template(path = "sessions.html")]
pub struct Sessions<'a> {
    /// The request.
    pub ctx: &'a RequestCtx,
    /// Newest first.
    pub sessions: Vec<SessionRow>,
}

/// An audit event with its device in words.
pub struct EventRow<'a> {
    /// The event.
    pub e: &'a AuditEvent,
    /// Browser and system, in words.
    pub device: String,
}

/// `/account/activity`.
#[derive(Template)]
#[template(path = "activity.html")]
pub struct Activity<'a> {
    /// The request.
    pub ctx: &'a RequestCtx,
    /// Newest first.
    pub events: Vec<EventRow<'a>>,
    /// The `before` of the next page.
    pub next_before: Option<i64>,
    /// Whether this is not the first page.
    pub paged: bool,
}
