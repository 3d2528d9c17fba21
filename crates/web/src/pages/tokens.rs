//! `/account/tokens`: personal access tokens.

use askama::Template;

use crate::context::RequestCtx;

/// One row of the token list.
pub struct TokenRow {
    /// Public id.
    pub id: String,
    /// The owner's label.
    pub name: String,
    /// `read`, `write` or `admin`.
    pub scope: &'static str,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms; `None`: never.
    pub expires_at: Option<i64>,
    /// Past its expiry.
    pub expired: bool,
    /// Unix ms of the last noted use.
    pub last_used_at: Option<i64>,
    /// Address of the last noted use.
    pub last_used_ip: String,
}

/// `/account/tokens`.
#[derive(Template)]
#[template(path = "tokens.html")]
pub struct Tokens<'a> {
    /// The request.
    pub ctx: &'a RequestCtx,
    /// Newest first.
    pub tokens: Vec<TokenRow>,
    /// A token just created, shown this once.
    pub new_token: Option<String>,
    /// Whether `admin` may be chosen.
    pub is_admin: bool,
}
