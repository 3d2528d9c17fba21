//! Email verification and password reset: the pages behind the links in mails.

use axum::Form;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;

use portcullis_app::AppError;
use serde::Deserialize;

use crate::context::Flash;
use crate::error::WebError;
use crate::extract::{Ctx, CurrentUser};
use crate::pages::{self, Errors};
use crate::routes::{RouteTable, see_other_with};
use crate::state::AppState;

/// `/verify-email/*`, `/forgot-password`, `/reset-password/*`.
pub fn routes(t: RouteTable) -> RouteTable {
    t.get_with_head("/verify-email/{token}", get_verify_email, head_link)
        .post("/verify-email/{token}", post_verify_email)
        .post("/verify-email/resend", post_resend_verification)
        .get("/forgot-password", get_forgot_password)
        .post("/forgot-password", post_forgot_password)
        .get_with_head("/reset-password/{token}", get_reset_password, head_link)
        .post("/reset-password/{token}", post_reset_password)
}

/// The forgot-password form.
#[derive(Debug, Default, Deserialize)]
pub struct ForgotForm {
    #[serde(default)]
    email: String,
}

/// The reset form.
#[derive(Debug, Default, Deserialize)]
pub struct ResetForm {
    #[serde(default)]
    password: String,
}

/// A page explaining why a link did not work.
fn link_problem(state: &AppState, ctx: &crate::context::RequestCtx, message: String, retry: &str) -> Response {
    let mut ctx = ctx.clone();
    ctx.flashes.push(Flash::error(message.clone()));
    state.templates.render_status(StatusCode::BAD_REQUEST, &pages::LinkProblem { ctx: &ctx, message: &message, retry })
}

/// `HEAD` on a link from a mail: the headers of a page and nothing else.
/// Mail scanners and link previews probe links; following one must be a
/// person's `GET`, so the token is neither checked (no rate-limit count)
/// nor spent.
async fn head_link() -> Response {
    let mut r = crate::templates::response(StatusCode::OK, Body::empty());
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    no_referrer(r)
}

/// Follows a verification link. A link that confirms the account's own
/// address does so at once; an email change's link shows the new address
/// and a button, so that a mail scanner's `GET` does not move the account
/// to an address its owner has not looked at.
async fn get_verify_email(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(token): Path<String>,
) -> Result<Response, WebError> {
    state.rate_limit("verify", &ctx.client).await?;
    match state.accounts.email_change_of_link(&token).await {
        Ok(Some(email)) => {
            let page = pages::ConfirmEmailChange { ctx: &ctx, email: &email, token: &token };
            Ok(no_referrer(state.templates.render(&page)))
        }
        Ok(None) => verify(&state, &ctx, &token).await,
        Err(AppError::Token(p)) => Ok(link_problem(&state, &ctx, p.to_string(), "verify")),
        Err(e) => Err(e.into()),
    }
}

/// The button of an email change's link.
async fn post_verify_email(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(token): Path<String>,
) -> Result<Response, WebError> {
    state.rate_limit("verify", &ctx.client).await?;
    verify(&state, &ctx, &token).await
}

/// Spends a verification link: the address it names becomes the account's, confirmed.
async fn verify(state: &AppState, ctx: &crate::context::RequestCtx, token: &str) -> Result<Response, WebError> {
    match state.accounts.verify_email(token, &ctx.origin()).await {
        Ok(user) => {
            let to = if ctx.auth.is_some() { "/dashboard" } else { "/login" };
            Ok(see_other_with(
                to,
                vec![Flash::success(format!("Thank you, {}: your email address is confirmed.", user.username))],
            ))
        }
        Err(AppError::Token(p)) => Ok(link_problem(state, ctx, p.to_string(), "verify")),
        Err(e) => Err(e.into()),
    }
}

/// Sends the verification mail again.
async fn post_resend_verification(State(state): State<AppState>, user: CurrentUser) -> Result<Response, WebError> {
    let flash = match state.accounts.resend_verification(&user.auth.user).await {
        Ok(true) => Flash::info(format!("We sent a new confirmation link to {}.", user.auth.user.email)),
        Ok(false) => Flash::info("Your email address is already confirmed."),
        Err(e @ AppError::SentRecently) => Flash::info(e.to_string()),
        Err(e) => return Err(e.into()),
    };
    Ok(see_other_with("/dashboard", vec![flash]))
}

/// Asks for the account's email.
async fn get_forgot_password(State(state): State<AppState>, Ctx(ctx): Ctx) -> Response {
    state.templates.render(&pages::ForgotPassword { ctx: &ctx })
}

/// Sends a reset link if the address belongs to an account, and says the same either way.
async fn post_forgot_password(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Form(form): Form<ForgotForm>,
) -> Result<Response, WebError> {
    state.rate_limit("forgot", &ctx.client).await?;
    let said = match state.accounts.request_password_reset(&form.email).await {
        Ok(()) => {
            "If an account uses that address, we have sent it a link to reset the password. It may take a minute to arrive."
        }
        Err(AppError::SentRecently) => {
            "If an account uses that address, we sent it a link to reset the password recently. Check its inbox (and spam folder), or try again later."
        }
        Err(e) => return Err(e.into()),
    };
    Ok(see_other_with("/login", vec![Flash::info(said)]))
}

/// Keeps the reset link out of Referer headers sent from this page.
fn no_referrer(mut r: Response) -> Response {
    r.headers_mut().insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    r
}

/// The new-password form behind a reset link.
async fn get_reset_password(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(token): Path<String>,
) -> Result<Response, WebError> {
    match state.accounts.check_reset_token(&token).await {
        Ok(()) => Ok(no_referrer(state.templates.render(&pages::ResetPassword {
            ctx: &ctx,
            token: &token,
            min_length: state.accounts.settings().min_password_length,
            errors: Errors::default(),
        }))),
        Err(AppError::Token(p)) => Ok(no_referrer(link_problem(&state, &ctx, p.to_string(), "reset"))),
        Err(e) => Err(e.into()),
    }
}

/// Sets the new password; every session of the account ends.
async fn post_reset_password(
    State(state): State<AppState>,
    Ctx(mut ctx): Ctx,
    Path(token): Path<String>,
    Form(form): Form<ResetForm>,
) -> Result<Response, WebError> {
    state.rate_limit("reset", &ctx.client).await?;
    match state.accounts.reset_password(&token, &form.password, &ctx.origin()).await {
        Ok(_) => Ok(no_referrer(see_other_with(
            "/login",
            vec![Flash::success("Your password has been reset. Log in with your new password.")],
        ))),
        Err(AppError::Invalid(errors)) => {
            std::sync::Arc::make_mut(&mut ctx).flashes.extend(errors.0.iter().map(|(_, m)| Flash::error(m.clone())));
            Ok(no_referrer(state.templates.render(&pages::ResetPassword {
                ctx: &ctx,
                token: &token,
                min_length: state.accounts.settings().min_password_length,
                errors: Errors::of(&errors),
            })))
        }
        Err(AppError::Token(p)) => Ok(no_referrer(link_problem(&state, &ctx, p.to_string(), "reset"))),
        Err(e) => Err(e.into()),
    }
}
