//! Two-factor sign-in over HTTP: the account's page and enrolment, the
//! second step of a sign-in, and an administrator's reset.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use portcullis_app::accounts::{CodeUsed, PENDING_SIGN_IN_TTL};
use portcullis_app::{AppError, Origin};
use qrcode::QrCode;
use qrcode::render::svg;
use serde::Deserialize;

use crate::context::{Flash, RequestCtx};
use crate::cookies;
use crate::error::WebError;
use crate::extract::{AdminUser, Ctx, CurrentUser};
use crate::pages;
use crate::routes::RouteTable;
use crate::routes::account::{describe_agent, limit_password_check};
use crate::routes::auth::{landing, session_opened};
use crate::routes::{see_other, see_other_with};
use crate::state::AppState;

/// The pending sign-in's cookie: `id.secret` of a row that waits for a code.
pub const PENDING: &str = "portcullis_2fa";

/// `/account/two-factor*`, `/login/two-factor`, `/admin/users/{id}/two-factor/reset`.
pub fn routes(t: RouteTable) -> RouteTable {
    t.get("/account/two-factor", get_two_factor)
        .post("/account/two-factor/setup", post_setup)
        .post("/account/two-factor/confirm", post_confirm)
        .post("/account/two-factor/disable", post_disable)
        .post("/account/two-factor/recovery-codes", post_recovery_codes)
        .get("/login/two-factor", get_login_two_factor)
        .post("/login/two-factor", post_login_two_factor)
        .get("/admin/users/{id}/two-factor/reset", get_admin_reset)
        .post("/admin/users/{id}/two-factor/reset", post_admin_reset)
}

/// A form with a code.
#[derive(Debug, Default, Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    code: String,
}

/// The form that turns 2FA off.
#[derive(Debug, Default, Deserialize)]
pub struct DisableForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    code: String,
}

/// A form with the current password.
#[derive(Debug, Default, Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    password: String,
}

const PAGE: &str = "/account/two-factor";

/// Said when the account is locked: nothing was checked.
const LOCKED: &str = "Too many wrong passwords or codes: this account is temporarily locked and nothing was changed. \
     Try again later.";

/// The QR code of `uri` as inline SVG: no script and no style attribute,
/// so the strict CSP holds.
fn qr_svg(uri: &str) -> Result<String, WebError> {
    let code = QrCode::new(uri.as_bytes()).map_err(|e| WebError::Internal(format!("QR code: {e}")))?;
    let svg = code.render::<svg::Color<'_>>().min_dimensions(200, 200).quiet_zone(true).build();
    let start = svg.find("<svg").unwrap_or(0);
    Ok(svg[start..].replacen("<svg ", "<svg role=\"img\" aria-label=\"QR code for your authenticator app\" ", 1))
}

/// The codes as a text file, in a `data:` URL for the download link (the
/// codes leave the server once, in this page, and nowhere else).
fn download_href(codes: &[String]) -> String {
    let mut text = String::from("Portcullis recovery codes. Each works once.\r\n\r\n");
    for c in codes {
        text.push_str(c);
        text.push_str("\r\n");
    }
    let encoded: String = form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>().replace('+', "%20");
    format!("data:text/plain;charset=utf-8,{encoded}")
}

fn render_codes(state: &AppState, ctx: &RequestCtx, codes: &[String]) -> Response {
    let href = download_href(codes);
    state.templates.render(&pages::RecoveryCodes { ctx, codes, download_href: &href })
}

/// The account's two-factor page.
async fn get_two_factor(State(state): State<AppState>, user: CurrentUser) -> Result<Response, WebError> {
    let status = state.accounts.two_factor_status(user.auth.user.id).await?;
    Ok(state.templates.render(&pages::TwoFactor { ctx: &user.ctx, status }))
}

/// Starts an enrolment: a new secret, its QR code and a form for the first code.
async fn post_setup(State(state): State<AppState>, user: CurrentUser) -> Result<Response, WebError> {
    match state.accounts.start_two_factor(&user.auth.user).await {
        Ok(e) => {
            let qr = qr_svg(&e.uri)?;
            Ok(state.templates.render(&pages::TwoFactorSetup {
                ctx: &user.ctx,
                secret: &e.secret_base32,
                uri: &e.uri,
                qr_svg: &qr,
                failed: false,
            }))
        }
        Err(AppError::Refused(m)) => Ok(see_other_with(PAGE, vec![Flash::info(m)])),
        Err(e) => Err(e.into()),
    }
}

/// Confirms the enrolment with a code; a right one turns 2FA on and shows the recovery codes once.
async fn post_confirm(
    State(state): State<AppState>,
    mut user: CurrentUser,
    Form(form): Form<CodeForm>,
) -> Result<Response, WebError> {
    state.rate_limit("two-factor", &user.ctx.client).await?;
    match state.accounts.confirm_two_factor(&user.auth.user, &form.code, &user.ctx.origin()).await {
        Ok(codes) => {
            std::sync::Arc::make_mut(&mut user.ctx)
                .flashes
                .push(Flash::success("Two-factor sign-in is on. Save your recovery codes now."));
            Ok(render_codes(&state, &user.ctx, &codes))
        }
        Err(AppError::Invalid(_)) => {
            let Some(e) = state.accounts.pending_enrolment(&user.auth.user).await? else {
                return Ok(see_other_with(PAGE, vec![Flash::error("Start the set-up again.")]));
            };
            let qr = qr_svg(&e.uri)?;
            std::sync::Arc::make_mut(&mut user.ctx).flashes.push(Flash::error("That code is not right."));
            Ok(state.templates.render(&pages::TwoFactorSetup {
                ctx: &user.ctx,
                secret: &e.secret_base32,
                uri: &e.uri,
                qr_svg: &qr,
                failed: true,
            }))
        }
        Err(AppError::Refused(m)) => Ok(see_other_with(PAGE, vec![Flash::error(m)])),
        Err(e) => Err(e.into()),
    }
}

/// Turns 2FA off: the password and a code.
async fn post_disable(
    State(state): State<AppState>,
    user: CurrentUser,
    Form(form): Form<DisableForm>,
) -> Result<Response, WebError> {
    limit_password_check(&state, &user).await?;
    let back = |f: Flash| see_other_with(PAGE, vec![f]);
    let u = &user.auth.user;
    match state.accounts.disable_two_factor(u.id, &form.password, &form.code, &user.ctx.origin()).await {
        Ok(()) => Ok(back(Flash::success("Two-factor sign-in is off."))),
        Err(AppError::InvalidCredentials) => Ok(back(Flash::error("Current password is incorrect"))),
        Err(AppError::Locked) => Ok(crate::context::slow_refusal(back(Flash::error(LOCKED)))),
        Err(AppError::Invalid(e)) => Ok(back(Flash::error(e.to_string()))),
        Err(AppError::Refused(m)) => Ok(back(Flash::error(m))),
        Err(e) => Err(e.into()),
    }
}

/// Ten new recovery codes for the password; the old ones die.
async fn post_recovery_codes(
    State(state): State<AppState>,
    user: CurrentUser,
    Form(form): Form<PasswordForm>,
) -> Result<Response, WebError> {
    limit_password_check(&state, &user).await?;
    let back = |f: Flash| see_other_with(PAGE, vec![f]);
    match state.accounts.new_recovery_codes(user.auth.user.id, &form.password, &user.ctx.origin()).await {
        Ok(codes) => Ok(render_codes(&state, &user.ctx, &codes)),
        Err(AppError::InvalidCredentials) => Ok(back(Flash::error("Current password is incorrect"))),
        Err(AppError::Locked) => Ok(crate::context::slow_refusal(back(Flash::error(LOCKED)))),
        Err(AppError::Refused(m)) => Ok(back(Flash::error(m))),
        Err(e) => Err(e.into()),
    }
}

/// After a right password for an account with 2FA: the pending sign-in's
/// cookie and a 303 to the second step. No session cookie.
pub(crate) fn to_second_step(state: &AppState, cookie: &str) -> Response {
    let mut r = see_other("/login/two-factor");
    let c = cookies::build(PENDING, cookie, state.config.is_https(), Some(PENDING_SIGN_IN_TTL));
    if let Ok(v) = HeaderValue::try_from(c) {
        r.headers_mut().append(SET_COOKIE, v);
    }
    r
}

fn pending_cookie<'a>(state: &AppState, headers: &'a HeaderMap) -> Option<&'a str> {
    cookies::get(headers, &cookies::name(PENDING, state.config.is_https()))
}

fn clear_pending(state: &AppState, mut r: Response) -> Response {
    if let Ok(v) = HeaderValue::try_from(cookies::clear(PENDING, state.config.is_https())) {
        r.headers_mut().append(SET_COOKIE, v);
    }
    r
}

/// Back to the login page: the pending sign-in is gone or never was.
fn start_again(state: &AppState, message: &str) -> Response {
    clear_pending(state, see_other_with("/login", vec![Flash::info(message.to_owned())]))
}

const EXPIRED: &str = "Your sign-in expired or was not found. Enter your password again.";

/// The second step's form, while a pending sign-in waits.
async fn get_login_two_factor(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    if ctx.auth.is_some() {
        return Ok(see_other("/dashboard"));
    }
    let live = match pending_cookie(&state, &headers) {
        Some(c) => state.accounts.pending_sign_in(c).await?.is_some(),
        None => false,
    };
    if !live {
        return Ok(start_again(&state, EXPIRED));
    }
    Ok(state.templates.render(&pages::LoginTwoFactor { ctx: &ctx, failed: false }))
}

/// Checks the code and opens the session as a password sign-in does.
async fn post_login_two_factor(
    State(state): State<AppState>,
    Ctx(mut ctx): Ctx,
    headers: HeaderMap,
    Form(form): Form<CodeForm>,
) -> Result<Response, WebError> {
    if ctx.auth.is_some() {
        return Ok(see_other("/dashboard"));
    }
    state.rate_limit("login", &ctx.client).await?;
    let Some(cookie) = pending_cookie(&state, &headers) else {
        return Ok(start_again(&state, EXPIRED));
    };
    let agent = describe_agent(ctx.client.user_agent.as_deref().unwrap_or(""));
    match state.accounts.second_step(cookie, &form.code, ctx.client.clone(), &agent, &ctx.origin()).await {
        Ok(done) => {
            let flashes = match done.used {
                CodeUsed::Totp => vec![],
                CodeUsed::Recovery { left } => vec![Flash::info(format!(
                    "You signed in with a recovery code. {left} recovery code{} left.",
                    if left == 1 { "" } else { "s" }
                ))],
            };
            let to = landing(done.next.as_deref());
            let r = session_opened(&state, done.session, done.remember, done.user_id, see_other_with(&to, flashes));
            Ok(clear_pending(&state, r))
        }
        Err(AppError::NotFound) => Ok(start_again(&state, EXPIRED)),
        Err(e @ (AppError::Locked | AppError::AdminLocked)) => {
            Ok(clear_pending(&state, see_other_with("/login", vec![Flash::error(e.to_string())])))
        }
        Err(AppError::Invalid(errors)) => {
            std::sync::Arc::make_mut(&mut ctx).flashes.push(Flash::error(errors.to_string()));
            Ok(state.templates.render(&pages::LoginTwoFactor { ctx: &ctx, failed: true }))
        }
        Err(e) => Err(e.into()),
    }
}

const RESET_LABEL: &str = "Reset two-factor";

/// The confirmation before an administrator turns a user's 2FA off.
async fn get_admin_reset(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let user = state.accounts.user(id.parse().map_err(|_| WebError::NotFound)?).await?;
    Ok(state.templates.render(&pages::AdminConfirm {
        ctx: &admin.ctx,
        user: &user,
        action: "two-factor/reset",
        label: RESET_LABEL,
        consequence: "Two-factor sign-in is turned off for this user: the password alone signs them in until they \
             set it up again. They are told by mail.",
        danger: true,
    }))
}

/// Turns a user's 2FA off (audited, mailed to them).
async fn post_admin_reset(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let id: i64 = id.parse().map_err(|_| WebError::NotFound)?;
    let me = &admin.auth.user;
    let origin = Origin::admin(&admin.ctx.client, me.id, &me.username);
    let flash = match state.accounts.reset_two_factor(id, &origin).await {
        Ok(u) => Flash::success(format!("Two-factor sign-in is off for {}", u.username)),
        Err(AppError::Refused(m)) => Flash::error(m),
        Err(e) => return Err(e.into()),
    };
    Ok(see_other_with("/admin/users", vec![flash]))
}
