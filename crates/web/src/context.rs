//! The request context middleware: one place that, for every request,
//! resolves the session cookie (one indexed read), checks CSRF on every
//! state-changing request, reads flash messages, and afterwards writes the
//! cookies the handler asked for and renders error pages.

use std::convert::Infallible;
use std::net::IpAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, to_bytes};
use axum::extract::Request;
use axum::http::header::{
    ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, HOST, ORIGIN, SET_COOKIE, USER_AGENT,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt as _;
use portcullis_app::SignedIn;
use portcullis_app::model::ClientInfo;
use serde::{Deserialize, Serialize};
use tower::{Service, ServiceExt as _};

use crate::cookies::{self, ANON, FLASH, SESSION};
use crate::csrf;
use crate::error::{ErrorInfo, WebError};
use crate::state::AppState;
use crate::templates::Rendered;
use crate::trace;

/// A message shown once on the next page.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Flash {
    /// `error`, `success` or `info`.
    pub category: String,
    /// The text.
    pub message: String,
}

impl Flash {
    /// An error message.
    pub fn error(m: impl Into<String>) -> Self {
        Self { category: "error".into(), message: m.into() }
    }
    /// A success message.
    pub fn success(m: impl Into<String>) -> Self {
        Self { category: "success".into(), message: m.into() }
    }
    /// An informational message.
    pub fn info(m: impl Into<String>) -> Self {
        Self { category: "info".into(), message: m.into() }
    }
}

/// Everything a handler and a template need about the request.
#[derive(Clone, Debug)]
pub struct RequestCtx {
    /// The signed-in user and session, if any (shared: every copy of the
    /// context points at the one read).
    pub auth: Option<Arc<SignedIn>>,
    /// A CSRF token for the forms of this page.
    pub csrf_token: String,
    /// Flash messages waiting to be shown.
    pub flashes: Vec<Flash>,
    /// The client's address (after trusted proxies).
    pub client: ClientInfo,
    /// Path and query of this request.
    pub path_and_query: String,
}

impl RequestCtx {
    /// This client acting on its own account, for audit events.
    pub fn origin(&self) -> portcullis_app::Origin {
        portcullis_app::Origin::user(&self.client)
    }
}

/// What a handler asks of the session cookie, as a response extension.
#[derive(Clone, Debug)]
pub enum SessionChange {
    /// Set a new session cookie (`remember` gives it a Max-Age).
    Start {
        /// `id.secret`.
        cookie: String,
        /// Persistent cookie.
        remember: bool,
    },
    /// Delete the session cookie.
    End,
}

/// Flash messages for the next page, as a response extension.
#[derive(Clone, Debug, Default)]
pub struct FlashOut(pub Vec<Flash>);

const FLASH_PURPOSE: &str = "flash";

fn is_state_changing(m: &Method) -> bool {
    !matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE)
}

/// Requests that hash or verify a password: under a login flood these are
/// refused before any other work while the hashing pool is full.
fn needs_a_hash(method: &Method, path: &str) -> bool {
    *method == Method::POST
        && (matches!(path, "/login" | "/register" | "/account/password" | "/account/email" | "/account/delete")
            || path.starts_with("/reset-password/"))
}

/// The client's IP: the peer, or, when the peer is a trusted proxy, the
/// right-most address in `X-Forwarded-For` that is not itself trusted.
pub fn client_ip(state: &AppState, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
    let peer = peer?;
    let trusted = |ip: &IpAddr| state.config.trusted_proxies.iter().any(|n| n.contains(ip));
    if !trusted(&peer) {
        return Some(peer);
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    Some(forwarded.into_iter().rev().find(|ip| !trusted(ip)).unwrap_or(peer))
}

/// Refuses requests a browser marks as coming from another site.
/// `Sec-Fetch-Site` decides when the browser sends it (pages can't forge
/// it); it is the only signal on pages with `Referrer-Policy: no-referrer`,
/// where browsers send `Origin: null` for same-origin forms. Older clients
/// are judged by `Origin`.
fn cross_site(state: &AppState, headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return !matches!(site, "same-origin" | "none");
    }
    let Some(origin) = headers.get(ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let base = state.config.base_url.origin().ascii_serialization();
    if origin == base {
        return false;
    }
    // The origin a browser would send for the Host it talked to.
    let host = headers.get(HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    let same_host = url::Url::parse(origin)
        .ok()
        .and_then(|u| {
            u.host_str().map(|h| match u.port() {
                Some(p) => format!("{h}:{p}"),
                None => h.to_owned(),
            })
        })
        .is_some_and(|h| !host.is_empty() && h.eq_ignore_ascii_case(host));
    !same_host
}

fn binding<'a>(auth: Option<&'a SignedIn>, anon: &'a str) -> csrf::Binding<'a> {
    match auth {
        Some(a) => csrf::Binding::Session(&a.session.id),
        None => csrf::Binding::Anon(anon),
    }
}

/// Reads the CSRF token from the header or the urlencoded body, giving back
/// a request whose body can be read again.
async fn take_token(req: Request, limit: usize) -> Result<(Request, Option<String>), WebError> {
    let header_token = req.headers().get("x-csrf-token").and_then(|v| v.to_str().ok()).map(str::to_owned);
    if let Some(t) = header_token {
        return Ok((req, Some(t)));
    }
    let is_form = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Ok((req, None));
    }
    let declared =
        req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(WebError::PayloadTooLarge);
    }
    let (parts, body) = req.into_parts();
    let bytes = to_bytes(body, limit).await.map_err(|_| WebError::PayloadTooLarge)?;
    let token = form_urlencoded::parse(&bytes).find(|(k, _)| k == "csrf_token").map(|(_, v)| v.into_owned());
    Ok((Request::from_parts(parts, Body::from(bytes)), token))
}

/// A new anonymous CSRF secret: 24 bytes from the thread's CSPRNG (seeded
/// from the OS; visitors without a cookie arrive on every page, so no system
/// call), in base64url.
fn anon_secret() -> String {
    use base64::Engine as _;
    use rand::RngCore as _;
    let mut buf = [0u8; ANON_SECRET_BYTES];
    rand::thread_rng().fill_bytes(&mut buf);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

const ANON_SECRET_BYTES: usize = 24;

/// Whether a cookie value has the shape of an anonymous secret; any other
/// value is replaced by a new secret.
fn is_anon_secret(value: &str) -> bool {
    value.len() == ANON_SECRET_BYTES / 3 * 4
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The request context around the routes: names the request for its log
/// lines, builds the context and runs the routes within it, then puts
/// the request id and the security headers on whatever answer comes back.
/// `peer` is the address of the connection's other end. Always an answer.
pub async fn request_context<R>(
    state: AppState,
    peer: Option<IpAddr>,
    req: Request,
    routes: R,
) -> Result<Response, Infallible>
where
    R: Service<Request, Response = Response, Error = Infallible>,
{
    let state = &state;
    let started = Instant::now();
    let id = state.request_ids.for_request(req.headers().get(trace::REQUEST_ID));
    let (method, uri) = (req.method().clone(), req.uri().clone());
    let mut res = trace::serving(id.clone(), async {
        let res = with_context(state, peer, started, req, routes).await;
        trace::finished(&method, uri.path(), res.status(), started);
        res
    })
    .await;
    let h = res.headers_mut();
    h.insert(trace::REQUEST_ID, id);
    crate::headers::complete(h, state.config.is_https());
    Ok(res)
}

async fn with_context<R>(
    state: &AppState,
    peer: Option<IpAddr>,
    started: Instant,
    mut req: Request,
    routes: R,
) -> Response
where
    R: Service<Request, Response = Response, Error = Infallible>,
{
    let https = state.config.is_https();
    let headers = req.headers();
    if needs_a_hash(req.method(), req.uri().path()) && state.accounts.hasher().is_full() {
        // No session lookup, body, CSRF check or attempt count: a flood of
        // these costs as little as an answer can. The use case would refuse
        // the same way; this only refuses sooner.
        let client = ClientInfo { ip: None, user_agent: None };
        return finish_error(state, WebError::Busy, None, &client, &req);
    }
    let client = ClientInfo {
        ip: client_ip(state, peer, headers),
        user_agent: headers.get(USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_owned),
    };

    // The session, if the cookie names a live one.
    let session_cookie = cookies::get(headers, &cookies::name(SESSION, https));
    let mut clear_session_cookie = false;
    let auth = match session_cookie {
        Some(value) => match state.accounts.resolve_session(value).await {
            Ok(Some(signed_in)) => Some(signed_in),
            Ok(None) => {
                clear_session_cookie = true;
                None
            }
            Err(e) => return finish_error(state, WebError::from(e), None, &client, &req),
        },
        None => None,
    };
    let headers = req.headers();

    // Anonymous visitors carry a random secret in a cookie, and their forms'
    // tokens are MACs of it (no database write for them). The cookie needs
    // no signature of its own: a secret someone chose, or planted in a
    // browser, gets tokens only from pages served to that cookie. Signed-in
    // forms are bound to the session instead.
    let mut new_anon = None;
    let anon = if auth.is_some() {
        String::new()
    } else {
        match cookies::get(headers, &cookies::name(ANON, https)).filter(|v| is_anon_secret(v)) {
            Some(secret) => secret.to_owned(),
            None => {
                let secret = anon_secret();
                new_anon = Some(secret.clone());
                secret
            }
        }
    };

    let flashes: Vec<Flash> = cookies::get(headers, &cookies::name(FLASH, https))
        .and_then(|v| state.signer.verify(FLASH_PURPOSE, v))
        .and_then(|p| serde_json::from_slice(&p).ok())
        .unwrap_or_default();

    let bind = binding(auth.as_deref(), &anon);
    if is_state_changing(req.method()) {
        if cross_site(state, req.headers()) {
            return finish_error(state, WebError::Csrf, auth.as_ref(), &client, &req);
        }
        // Boxed: reading the body takes a future of nearly a kilobyte, and
        // every request, most of which read none, would carry its room.
        let (r, token) = match Box::pin(take_token(req, state.config.body_limit)).await {
            Ok(x) => x,
            Err(e) => {
                let bare = Request::new(Body::empty());
                return finish_error(state, e, auth.as_ref(), &client, &bare);
            }
        };
        req = r;
        // No page can have been served to a secret made just now.
        let ok = new_anon.is_none() && token.as_deref().is_some_and(|t| csrf::check(&state.signer, bind, t));
        if !ok {
            return finish_error(state, WebError::Csrf, auth.as_ref(), &client, &req);
        }
    }

    let had_flashes = !flashes.is_empty();
    let signed_in = auth.is_some();
    let csrf_token = csrf::mint(&state.signer, bind);
    let ctx = Arc::new(RequestCtx {
        auth,
        csrf_token,
        flashes,
        client,
        path_and_query: req.uri().path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "/".into()),
    });
    req.extensions_mut().insert(Arc::clone(&ctx));
    let accept_encoding = req.headers().get(ACCEPT_ENCODING).cloned();
    let handler = std::pin::pin!(async move {
        match AssertUnwindSafe(routes.oneshot(req)).catch_unwind().await {
            Ok(Ok(res)) => res,
            Err(panic) => {
                // The panic hook has written the message and where; the
                // visitor gets the error page.
                let what = panic
                    .downcast_ref::<&str>()
                    .copied()
                    .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
                    .unwrap_or("a panic");
                tracing::error!(panic = what, "the handler panicked");
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
        }
    });
    let mut res = trace::bounded(started, state.config.request_timeout, handler).await;

    // Error responses that nobody rendered get the site's page.
    if (res.status().is_client_error() || res.status().is_server_error())
        && res.extensions().get::<Rendered>().is_none()
    {
        res = render_error_response(state, res, &ctx);
    }
    if crate::site::worth_compressing(&res) {
        res = crate::site::compress(res, accept_encoding).await;
    }

    let mut set: Vec<String> = Vec::new();
    let change = res.extensions_mut().remove::<SessionChange>();
    let signed_in_now = match &change {
        Some(SessionChange::Start { cookie, remember }) => {
            let age = remember.then_some(state.accounts.settings().remember_duration);
            set.push(cookies::build(SESSION, cookie.clone(), https, age));
            true
        }
        Some(SessionChange::End) => {
            set.push(cookies::clear(SESSION, https));
            false
        }
        None => {
            if clear_session_cookie {
                set.push(cookies::clear(SESSION, https));
            }
            signed_in
        }
    };
    if let Some(anon_value) = new_anon {
        set.push(cookies::build(ANON, anon_value, https, None));
    }
    let out = res.extensions_mut().remove::<FlashOut>().unwrap_or_default();
    if res.status().is_redirection() {
        if !out.0.is_empty() {
            // Messages not yet shown travel on with the new ones.
            let mut all = ctx.flashes.clone();
            all.extend(out.0);
            let payload = serde_json::to_vec(&all).unwrap_or_default();
            set.push(cookies::build(FLASH, state.signer.sign(FLASH_PURPOSE, &payload), https, None));
        }
    } else if had_flashes {
        set.push(cookies::clear(FLASH, https));
    }
    let h = res.headers_mut();
    for c in set {
        if let Ok(v) = HeaderValue::from_str(&c) {
            h.append(SET_COOKIE, v);
        }
    }
    if signed_in_now || signed_in {
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// Answers with an error page before the handler ran.
fn finish_error(
    state: &AppState,
    err: WebError,
    auth: Option<&Arc<SignedIn>>,
    client: &ClientInfo,
    req: &Request,
) -> Response {
    let ctx = RequestCtx {
        auth: auth.cloned(),
        csrf_token: String::new(),
        flashes: Vec::new(),
        client: client.clone(),
        path_and_query: req.uri().path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "/".into()),
    };
    let res = err.into_response();
    let mut res = render_error_response(state, res, &ctx);
    if auth.is_some() {
        res.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// Replaces the body of an error response with the site's error page,
/// keeping its status and headers such as `Allow` and `Retry-After`.
fn render_error_response(state: &AppState, res: Response, ctx: &RequestCtx) -> Response {
    let status = res.status();
    let info = res.extensions().get::<ErrorInfo>().cloned();
    let (mut parts, _) = res.into_parts();
    let page = state.templates.error_page(ctx, status, info.as_ref().map(|i| i.message.as_str()));
    let (page_parts, body) = page.into_parts();
    // The new body is not the old one's length or type. The page's other
    // headers are the security headers, which the response leaves with
    // anyway (`headers::complete`), without replacing a stricter
    // `Referrer-Policy` of the old one's.
    parts.headers.remove(CONTENT_LENGTH);
    if let Some(ct) = page_parts.headers.get(CONTENT_TYPE) {
        parts.headers.insert(CONTENT_TYPE, ct.clone());
    }
    parts.status = status;
    parts.extensions.insert(Rendered);
    Response::from_parts(parts, body)
}
