//! `/account/passkeys`.

use askama::Template;

use crate::context::RequestCtx;

/// One of the user's passkeys.
pub struct PasskeyRow {
    /// Row id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub last_used_at: Option<i64>,
    /// Synced to other devices when last seen.
    pub backed_up: bool,
}

/// `/account/passkeys`.
#[derive(Template)]
#[template(path = "passkeys.html")]
pub struct PasskeysPage<'a> {
    /// The request.
    pub ctx: &'a RequestCtx,
    /// Oldest first.
    pub passkeys: Vec<PasskeyRow>,
    /// Whether this site can use passkeys (its base URL names a host).
    pub available: bool,
}
