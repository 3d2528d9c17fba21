//! Registering, signing in and signing out.

use askama::Template;

use super::form_errors::Errors;
use crate::context::RequestCtx;

/// `/login`.
#[derive(Template)]
#[template(path = "login.html")]
pub struct Login<'a> {
    /// The request.
    pub ctx: &'a RequestCtx,
    /// Where to go after signing in (already checked as a local path).
    pub next: Option<&'a str>,
    /// The name typed, after a failed attempt.
    pub username: &'a str,
    /// Whether an attempt just failed.
    pub failed: bool,
    /// Whether passkeys can be used on this site (offered only then).
    pub passkeys: bool,
}

/// `/register`.
#[derive(Template)]
#[template(path = "register.html")]
pub struct Register<'a> {
    /// The request.
    pub ctx: &'a RequestCtx,
    /// The password policy's minimum length.
    pub min_length: usize,
    /// The name typed.
    pub username: &'a str,
    /// The address typed.
    pub email: &'a str,
    /// What to fix.
    pub errors: Errors<'a>,
}

/// `/logout`, the question before logging out.
#[derive(Template)]
#[template(path = "logout.html")]
pub struct Logout<'a> {
    /// The request.
    pub ctx: &'a RequestCtx,
}

/// `GET /verify-email/{token}` of an email change: the new address and a button.
#[derive(Template)]
#[template(path = "confirm_email_change.html")]
pub struct ConfirmEmailChange<'a> {
    /// The request.
    pub ctx: &'a RequestCtx,
    /// The address the account will have.
    pub email: &'a str,
    /// The link's token, posted back.
    pub token: &'a str,
}
