//! Password reset and the links sent by mail.

use askama::Template;

use super::form_errors::Errors;
use crate::context::RequestCtx;

/// `/forgot-password`.
#[derive(Template)]
#[template(path = "forgot_password.html")]
pub struct ForgotPassword<'a> {
    /// The request.
    pub ctx: &'a RequestCtx,
}

/// `/reset-password/{token}`.
#[derive(Template)]
#[template(path = "reset_password.html")]
pub struct ResetPassword<'a> {
    /// The request.
    pub ctx: &'a RequestCtx,
    /// The link's token.
    pub token: &'a str,
    /// The password policy's minimum length.
    pub min_length: usize,
    /// What to fix.
    pub errors: Errors<'a>,
}

/// Why a verification or reset link did not work.
#[derive(Template)]
#[template(path = "link_problem.html")]
pub struct LinkProblem<'a> {
    /// The request.
    pub ctx: &'a RequestCtx,
    /// What went wrong.
    pub message: &'a str,
    /// `reset` or `verify`: what to offer instead.
    pub retry: &'a str,
}
