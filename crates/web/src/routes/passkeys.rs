//! Passkeys: the account page that lists, adds, renames and removes them,
//! and sign-in with one. The ceremonies are JSON, driven by
//! `static/passkeys.js`, with the CSRF token in the `X-CSRF-Token` header.

use axum::Form;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header::{CONTENT_TYPE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use portcullis_app::AppError;
use portcullis_app::accounts::{Proof, Started};
use portcullis_domain::safe_next;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::context::{Flash, SessionChange};
use crate::device;
use crate::error::WebError;
use crate::extract::{Ctx, CurrentUser};
use crate::pages::{PasskeyRow, PasskeysPage};
use crate::routes::account::describe_agent;
use crate::routes::{RouteTable, see_other_with};
use crate::state::AppState;

/// `/account/passkeys…`, `/login/passkey/…`.
pub fn routes(t: RouteTable) -> RouteTable {
    t.get("/account/passkeys", get_passkeys)
        .post("/account/passkeys/register/start", post_register_start)
        .post("/account/passkeys/register/finish", post_register_finish)
        .post("/account/passkeys/confirm/start", post_confirm_start)
        .post("/account/passkeys/{id}/rename", post_rename_passkey)
        .post("/account/passkeys/{id}/delete", post_delete_passkey)
        .post("/login/passkey/start", post_login_start)
        .post("/login/passkey/finish", post_login_finish)
}

/// A JSON answer; one with an error status keeps its JSON body (it is not
/// replaced by the site's error page).
fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.extensions_mut().insert(crate::templates::Rendered);
    r
}

/// A refusal the script can show: `{"error": "…"}`.
fn json_error(status: StatusCode, message: &str) -> Response {
    json_response(status, &json!({ "error": message }))
}

/// The JSON answer to a use case's error: what the user can act on is
/// said; anything else takes the site's error path.
fn json_failure(e: AppError) -> Result<Response, WebError> {
    Ok(match e {
        AppError::Refused(m) => json_error(StatusCode::BAD_REQUEST, &m),
        AppError::Invalid(f) => json_error(StatusCode::UNPROCESSABLE_ENTITY, &f.to_string()),
        e @ (AppError::Locked | AppError::AdminLocked) => json_error(StatusCode::FORBIDDEN, &e.to_string()),
        AppError::NotFound => json_error(StatusCode::NOT_FOUND, "Not found"),
        e => return Err(e.into()),
    })
}

fn started(s: Started) -> Response {
    json_response(StatusCode::OK, &json!({ "handle": s.handle, "options": s.options }))
}

/// A JSON body, if it is one of the shape expected.
fn parse_body<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Option<T> {
    serde_json::from_slice(body).ok()
}

/// The answer to a body [`parse_body`] could not read.
fn bad_body() -> Response {
    json_error(StatusCode::BAD_REQUEST, "The request was not the JSON expected.")
}

/// `{"name": …}`.
#[derive(Debug, Default, Deserialize)]
struct StartRegistration {
    #[serde(default)]
    name: String,
}

/// `{"handle": …, "response": {…}}`, and for a sign-in `remember_me` and `next`.
#[derive(Debug, Deserialize)]
struct Finish {
    handle: String,
    response: Value,
    #[serde(default)]
    remember_me: Option<Value>,
    #[serde(default)]
    next: Option<String>,
}

/// The rename form.
#[derive(Debug, Default, Deserialize)]
struct RenameForm {
    #[serde(default)]
    name: String,
}

/// The remove form: the password, or another passkey's assertion.
#[derive(Debug, Default, Deserialize)]
struct DeleteForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    passkey_handle: String,
    #[serde(default)]
    passkey_response: String,
}

/// The user's passkeys.
async fn get_passkeys(State(state): State<AppState>, user: CurrentUser) -> Result<Response, WebError> {
    let list = state.passkeys.list(&user.auth.user).await?;
    let rows = list
        .into_iter()
        .map(|p| PasskeyRow {
            id: p.id,
            name: p.name,
            created_at: p.created_at,
            last_used_at: p.last_used_at,
            backed_up: p.backed_up,
        })
        .collect();
    Ok(state.templates.render(&PasskeysPage { ctx: &user.ctx, passkeys: rows, available: state.passkeys.available() }))
}

/// Begins adding a passkey.
async fn post_register_start(
    State(state): State<AppState>,
    user: CurrentUser,
    body: Bytes,
) -> Result<Response, WebError> {
    let Some(req) = parse_body::<StartRegistration>(&body) else {
        return Ok(bad_body());
    };
    match state.passkeys.start_registration(&user.auth.user, &req.name).await {
        Ok(s) => Ok(started(s)),
        Err(e) => json_failure(e),
    }
}

/// Finishes adding a passkey.
async fn post_register_finish(
    State(state): State<AppState>,
    user: CurrentUser,
    body: Bytes,
) -> Result<Response, WebError> {
    let Some(req) = parse_body::<Finish>(&body) else {
        return Ok(bad_body());
    };
    let origin = user.ctx.origin();
    match state.passkeys.finish_registration(&user.auth.user, &req.handle, &req.response.to_string(), &origin).await {
        Ok(p) => {
            let mut r =
                json_response(StatusCode::OK, &json!({ "id": p.id, "name": p.name, "redirect": "/account/passkeys" }));
            r.extensions_mut().insert(crate::context::FlashOut(vec![Flash::success("Passkey added.")]));
            Ok(r)
        }
        Err(e) => json_failure(e),
    }
}

/// Begins confirming a removal with another passkey.
async fn post_confirm_start(State(state): State<AppState>, user: CurrentUser) -> Result<Response, WebError> {
    match state.passkeys.start_confirmation(&user.auth.user).await {
        Ok(s) => Ok(started(s)),
        Err(e) => json_failure(e),
    }
}

/// Renames one of the user's passkeys.
async fn post_rename_passkey(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    Form(form): Form<RenameForm>,
) -> Result<Response, WebError> {
    let id = id.parse::<i64>().map_err(|_| WebError::NotFound)?;
    match state.passkeys.rename(&user.auth.user, id, &form.name, &user.ctx.origin()).await {
        Ok(()) => Ok(see_other_with("/account/passkeys", vec![Flash::success("Passkey renamed.")])),
        Err(AppError::Invalid(f)) => Ok(see_other_with("/account/passkeys", vec![Flash::error(f.to_string())])),
        Err(e) => Err(e.into()),
    }
}

/// Removes one of the user's passkeys, given the password or another passkey.
async fn post_delete_passkey(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    Form(form): Form<DeleteForm>,
) -> Result<Response, WebError> {
    let id = id.parse::<i64>().map_err(|_| WebError::NotFound)?;
    let proof = if form.password.is_empty() && !form.passkey_handle.is_empty() {
        Proof::Passkey { handle: form.passkey_handle, response: form.passkey_response }
    } else {
        Proof::Password(form.password)
    };
    match state.passkeys.remove(&user.auth.user, id, proof, &user.ctx.origin()).await {
        Ok(()) => Ok(see_other_with("/account/passkeys", vec![Flash::success("Passkey removed.")])),
        Err(e @ (AppError::InvalidCredentials | AppError::Locked | AppError::AdminLocked)) => {
            let message = match e {
                AppError::InvalidCredentials => "Your password was not right; the passkey was kept.".to_owned(),
                e => e.to_string(),
            };
            Ok(see_other_with("/account/passkeys", vec![Flash::error(message)]))
        }
        Err(AppError::Refused(m)) => Ok(see_other_with("/account/passkeys", vec![Flash::error(m)])),
        Err(e) => Err(e.into()),
    }
}

/// Begins a sign-in with a passkey.
async fn post_login_start(State(state): State<AppState>, Ctx(ctx): Ctx) -> Result<Response, WebError> {
    if ctx.auth.is_some() {
        return Ok(json_error(StatusCode::CONFLICT, "You are signed in already."));
    }
    // Every login page a script runs on begins one (autofill): counted
    // apart from sign-in attempts, so that reading the page costs no attempt.
    state.rate_limit("passkey", &ctx.client).await?;
    match state.passkeys.start_sign_in().await {
        Ok(s) => Ok(started(s)),
        Err(e) => json_failure(e),
    }
}

/// Finishes a sign-in with a passkey: a fresh session, as a password
/// sign-in opens, and where to go next.
async fn post_login_finish(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebError> {
    if ctx.auth.is_some() {
        return Ok(json_error(StatusCode::CONFLICT, "You are signed in already."));
    }
    state.rate_limit("login", &ctx.client).await?;
    let Some(req) = parse_body::<Finish>(&body) else {
        return Ok(bad_body());
    };
    let https = state.config.is_https();
    let device_cookie = device::read(&state.signer, &headers, https);
    let origin = ctx.origin();
    let login = match state
        .passkeys
        .finish_sign_in(&req.handle, &req.response.to_string(), device_cookie.as_ref(), &origin)
        .await
    {
        Ok(login) => login,
        Err(e) => return json_failure(e),
    };
    let user_id = login.user.id;
    let remember = req.remember_me.as_ref().is_some_and(|v| match v {
        Value::Bool(b) => *b,
        Value::String(s) => !s.is_empty() && s != "0" && s != "off" && s != "false",
        _ => false,
    });
    let agent =
        if login.known_device { String::new() } else { describe_agent(ctx.client.user_agent.as_deref().unwrap_or("")) };
    let new = state.accounts.sign_in(login, remember, ctx.client.clone(), &agent, &origin).await?;
    let to = req.next.as_deref().and_then(safe_next).unwrap_or("/dashboard");
    let mut r = json_response(StatusCode::OK, &json!({ "redirect": to }));
    r.extensions_mut().insert(SessionChange::Start { cookie: new.cookie, remember });
    if let Ok(v) = HeaderValue::try_from(device::set_cookie(&state.signer, user_id, https)) {
        r.headers_mut().append(SET_COOKIE, v);
    }
    Ok(r)
}
