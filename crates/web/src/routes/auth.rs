//! Register, log in, log out, and the dashboard.

use crate::routes::RouteTable;
use axum::Form;
use axum::extract::{Query, State};
use axum::response::Response;

use portcullis_app::accounts::{FirstStep, Login, NewSession, Registration};
use portcullis_app::{AppError, User};
use portcullis_domain::safe_next;
use serde::Deserialize;

use axum::http::HeaderMap;
use axum::http::HeaderValue;
use axum::http::header::SET_COOKIE;

use crate::context::{Flash, RequestCtx, SessionChange};
use crate::device;
use crate::error::WebError;
use crate::extract::{Ctx, CurrentUser};
use crate::pages::{self, Errors};
use crate::routes::account::describe_agent;
use crate::routes::pages::PageQuery;
use crate::routes::posts::post_list;
use crate::routes::{see_other, see_other_with};
use crate::state::AppState;

/// `/register`, `/login`, `/logout`, `/dashboard`.
pub fn routes(t: RouteTable) -> RouteTable {
    t.get("/register", get_register)
        .post("/register", post_register)
        .get("/login", get_login)
        .post("/login", post_login)
        .get("/logout", get_logout)
        .post("/logout", post_logout)
        .get("/dashboard", get_dashboard)
}

/// The registration form. Unknown fields (`is_admin`…) are never read.
#[derive(Debug, Default, Deserialize)]
pub struct RegisterForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

/// The login form.
#[derive(Debug, Default, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    remember_me: Option<String>,
    #[serde(default)]
    next: Option<String>,
}

/// `?next=`.
#[derive(Debug, Default, Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// Where to go after login: `next` if it is a local path, else the dashboard.
pub(crate) fn landing(next: Option<&str>) -> String {
    next.and_then(safe_next).unwrap_or("/dashboard").to_owned()
}

/// The registration page.
async fn get_register(State(state): State<AppState>, Ctx(ctx): Ctx) -> Response {
    if ctx.auth.is_some() {
        return see_other("/dashboard");
    }
    let min_length = state.accounts.settings().min_password_length;
    state.templates.render(&pages::Register {
        ctx: &ctx,
        min_length,
        username: "",
        email: "",
        errors: Errors::default(),
    })
}

/// Creates the account and signs the new user in.
async fn post_register(
    State(state): State<AppState>,
    Ctx(mut ctx): Ctx,
    Form(form): Form<RegisterForm>,
) -> Result<Response, WebError> {
    if ctx.auth.is_some() {
        return Ok(see_other("/dashboard"));
    }
    state.rate_limit("register", &ctx.client).await?;
    let reg = Registration {
        username: form.username.clone(),
        email: form.email.clone(),
        password: form.password,
        ..Default::default()
    };
    match state.accounts.register(reg, &ctx.origin()).await {
        // The dashboard greets by name; the flash only says what happened.
        Ok(user) => sign_in_new_account(&state, &ctx, &user, "/dashboard", "Your account has been created.").await,
        Err(AppError::Invalid(errors)) => {
            std::sync::Arc::make_mut(&mut ctx).flashes.extend(errors.0.iter().map(|(_, m)| Flash::error(m.clone())));
            Ok(state.templates.render(&pages::Register {
                ctx: &ctx,
                min_length: state.accounts.settings().min_password_length,
                username: &form.username,
                email: &form.email,
                errors: Errors::of(&errors),
            }))
        }
        Err(e) => Err(e.into()),
    }
}

/// Signs in the account this browser just made (registration, setup) and
/// sends it `to` with `flash`: a session, and the device cookie, so that its
/// first login from this browser is not a new browser's.
pub(crate) async fn sign_in_new_account(
    state: &AppState,
    ctx: &RequestCtx,
    user: &User,
    to: &str,
    flash: &str,
) -> Result<Response, WebError> {
    let new = state.accounts.start_session(user, false, ctx.client.clone()).await?;
    let mut r = see_other_with(to, vec![Flash::success(flash)]);
    r.extensions_mut().insert(SessionChange::Start { cookie: new.cookie, remember: false });
    device::attach(&mut r, &state.signer, user.id, state.config.is_https());
    Ok(r)
}

/// The login page; a signed-in user goes straight on.
async fn get_login(State(state): State<AppState>, Ctx(ctx): Ctx, Query(q): Query<NextQuery>) -> Response {
    if ctx.auth.is_some() {
        return see_other(&landing(q.next.as_deref()));
    }
    let next = q.next.as_deref().and_then(safe_next);
    state.templates.render(&pages::Login {
        ctx: &ctx,
        next,
        username: "",
        failed: false,
        passkeys: state.passkeys.available(),
    })
}

/// Checks the credentials and opens a fresh session (never reusing one from before login).
async fn post_login(
    State(state): State<AppState>,
    Ctx(mut ctx): Ctx,
    headers: HeaderMap,
    Query(q): Query<NextQuery>,
    Form(form): Form<LoginForm>,
) -> Result<Response, WebError> {
    let next = form.next.clone().filter(|n| !n.is_empty()).or(q.next);
    if ctx.auth.is_some() {
        return Ok(see_other(&landing(next.as_deref())));
    }
    state.rate_limit("login", &ctx.client).await?;
    let https = state.config.is_https();
    let device = device::read(&state.signer, &headers, https);
    match state.accounts.authenticate(&form.username, &form.password, device.as_ref(), &ctx.origin()).await {
        Ok(login) => {
            let remember =
                form.remember_me.as_deref().is_some_and(|v| !v.is_empty() && v != "0" && v != "off" && v != "false");
            let local_next = next.as_deref().and_then(safe_next);
            match state.accounts.first_step(login, remember, local_next).await? {
                FirstStep::Open(login) => open_session(&state, &ctx, login, remember, &landing(next.as_deref())).await,
                FirstStep::SecondFactor { cookie } => Ok(crate::routes::two_factor::to_second_step(&state, &cookie)),
            }
        }
        Err(e @ (AppError::InvalidCredentials | AppError::Locked | AppError::AdminLocked)) => {
            std::sync::Arc::make_mut(&mut ctx).flashes.push(Flash::error(e.to_string()));
            let next = next.as_deref().and_then(safe_next);
            Ok(state.templates.render(&pages::Login {
                ctx: &ctx,
                next,
                username: &form.username,
                failed: true,
                passkeys: state.passkeys.available(),
            }))
        }
        Err(e) => Err(e.into()),
    }
}

/// Opens the session of a checked login (a password, a password and a
/// second factor, or any other way a user is checked) and sends the
/// browser `to`: a fresh session cookie, never one from before, and a fresh
/// device cookie.
pub(crate) async fn open_session(
    state: &AppState,
    ctx: &RequestCtx,
    login: Login,
    remember: bool,
    to: &str,
) -> Result<Response, WebError> {
    let user_id = login.user.id;
    let agent =
        if login.known_device { String::new() } else { describe_agent(ctx.client.user_agent.as_deref().unwrap_or("")) };
    let new = state.accounts.sign_in(login, remember, ctx.client.clone(), &agent, &ctx.origin()).await?;
    Ok(session_opened(state, new, remember, user_id, see_other(to)))
}

/// Puts a session just opened on `r`: its cookie, and a fresh device cookie.
pub(crate) fn session_opened(
    state: &AppState,
    new: NewSession,
    remember: bool,
    user_id: i64,
    mut r: Response,
) -> Response {
    r.extensions_mut().insert(SessionChange::Start { cookie: new.cookie, remember });
    if let Ok(v) = HeaderValue::try_from(device::set_cookie(&state.signer, user_id, state.config.is_https())) {
        r.headers_mut().append(SET_COOKIE, v);
    }
    r
}

/// Asks before logging out: a link must not end a session.
async fn get_logout(State(state): State<AppState>, user: CurrentUser) -> Response {
    state.templates.render(&pages::Logout { ctx: &user.ctx })
}

/// Ends the session on the server and clears the cookie.
async fn post_logout(State(state): State<AppState>, Ctx(ctx): Ctx) -> Result<Response, WebError> {
    if let Some(auth) = &ctx.auth {
        state.accounts.logout(&auth.user, &auth.session, &ctx.origin()).await?;
    }
    let mut r = see_other_with("/", vec![Flash::info("You have been logged out.")]);
    r.extensions_mut().insert(SessionChange::End);
    Ok(r)
}

/// The signed-in user's home: a greeting and their posts.
async fn get_dashboard(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(q): Query<PageQuery>,
) -> Result<Response, WebError> {
    let posts = post_list(&state, Some(user.auth.user.id), q.before).await?;
    let list = pages::PostList::page(&posts, q.before.is_some());
    Ok(state.templates.render(&pages::Dashboard { ctx: &user.ctx, list }))
}

#[cfg(test)]
mod tests {
    use super::landing;

    #[test]
    fn landing_falls_back_to_the_dashboard() {
        assert_eq!(landing(Some("/posts/1?x=2")), "/posts/1?x=2");
        assert_eq!(landing(Some("//evil.com")), "/dashboard");
        assert_eq!(landing(None), "/dashboard");
    }
}
