//! The first administrator's setup page.

use askama::Template;

use super::form_errors::Errors;
use crate::context::RequestCtx;

/// `/setup/{token}`.
#[derive(Template)]
#[template(path = "setup.html")]
pub struct Setup<'a> {
    /// The request.
    pub ctx: &'a RequestCtx,
    /// Where the form posts: the link's own path.
    pub action: &'a str,
    /// The password policy's minimum length.
    pub min_length: usize,
    /// The name typed.
    pub username: &'a str,
    /// The address typed.
    pub email: &'a str,
    /// What to fix.
    pub errors: Errors<'a>,
}
