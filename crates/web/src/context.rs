//! The request context middleware: one place that, for every request,
//! resolves the session cookie (one indexed read), checks CSRF on every
//! state-changing request, reads flash messages, and afterwards writes the
//! cookies the handler asked for and renders error pages.
//!
//! [`request_context`] runs the steps in order; each is a function of its
//! own below, in the same order.

use std::convert::Infallible;
use std::net::IpAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::http::header::{ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, SET_COOKIE, USER_AGENT};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt as _;
use portcullis_app::SignedIn;
use portcullis_app::model::ClientInfo;
use serde::{Deserialize, Serialize};
use tower::{Service, ServiceExt as _};

use crate::cookies::{self, ANON, FLASH, SESSION};
use crate::csrf::{self, AnonSecret, Binding};
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
        let written = state.settle.as_ref().map(|s| s.written());
        let res = with_context(state, peer, started, req, routes).await;
        if let (Some(settle), Some(before)) = (&state.settle, written) {
            // A change made here reaches the other nodes' caches before
            // the client can ask them (see `Settle`).
            let now = settle.written();
            if now != before {
                settle.settle(now).await;
            }
        }
        trace::finished(&method, uri.path(), res.status(), started);
        if let Some(metrics) = &state.http_metrics {
            let route = res.extensions().get::<crate::metrics::MatchedRoute>().copied();
            metrics.record(route, &method, res.status(), started.elapsed());
        }
        res
    })
    .await;
    let h = res.headers_mut();
    h.insert(trace::REQUEST_ID, id);
    crate::headers::complete(h, state.config.is_https());
    Ok(res)
}

/// The steps every request goes through, in order. A step that refuses
/// answers with the error page at once.
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
    let signed_in_check = is_signed_in_check(req.method(), req.uri().path());
    if let Some(busy) = shed_load(state, &req) {
        if signed_in_check {
            tokio::time::sleep(REFUSAL_DELAY).await;
        }
        return busy;
    }
    let client = client_info(state, peer, req.headers());
    if crate::api::is_api_path(req.uri().path()) {
        return api_request(state, started, req, routes, client).await;
    }
    let visitor = match visitor(state, req.headers()).await {
        Ok(visitor) => visitor,
        Err(e) => return finish_error(state, e, None, &client, Some(req.uri())),
    };
    if csrf::applies_to(req.method()) {
        // The token is read from the body: the request timeout runs from
        // the headers' arrival, so a client that sends its body slowly is
        // cut there too, not only once the routes run.
        let uri = req.uri().clone();
        let checked = std::pin::pin!(verify_csrf(state, req, &visitor));
        req = match trace::within(started, state.config.request_timeout, checked).await {
            Some(Ok(req)) => req,
            Some(Err(refused)) => {
                let uri = refused.request.as_ref().map(Request::uri);
                return finish_error(state, refused.error, visitor.auth(), &client, uri);
            }
            None => return finish_error(state, WebError::Timeout, visitor.auth(), &client, Some(&uri)),
        };
    }
    let flashes = read_flashes(state, req.headers());
    let (ctx, notes) = request_ctx(state, &req, visitor, flashes, client);
    req.extensions_mut().insert(Arc::clone(&ctx));
    let accept_encoding = req.headers().get(ACCEPT_ENCODING).cloned();
    let res = run_routes(started, state.config.request_timeout, routes, req).await;
    if signed_in_check
        && (matches!(res.status(), StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE)
            || res.extensions().get::<SlowRefusal>().is_some())
    {
        tokio::time::sleep(REFUSAL_DELAY).await;
    }
    finish_response(state, res, &ctx, notes, accept_encoding).await
}

/// How long a refused check of a signed-in user's current password waits
/// before its answer. Such refusals (over the user's or the client's
/// allowance or share of the hashing pool, the pool full, the account
/// locked) cost a little each, and a flood of them from a few signed-in
/// accounts would take that little from everyone's sign-ins many thousand
/// times a second; waiting costs the server nothing and bounds each
/// connection to a few refusals a second. A person sees the same answer a
/// moment later.
pub const REFUSAL_DELAY: Duration = Duration::from_millis(250);

/// Marks an answer as a refused check of a signed-in user's password that
/// does not say so by its status (the account is locked: a redirect with a
/// message), so that it waits [`REFUSAL_DELAY`] like the others.
#[derive(Clone, Copy, Debug)]
pub struct SlowRefusal;

/// The answer `res`, to wait [`REFUSAL_DELAY`] (see [`SlowRefusal`]).
pub fn slow_refusal(mut res: Response) -> Response {
    res.extensions_mut().insert(SlowRefusal);
    res
}

/// A signed-in user's check of their current password.
fn is_signed_in_check(method: &Method, path: &str) -> bool {
    needs_a_hash(method, path) && path.starts_with("/account/")
}

/// A request to `/api`: cookies are not read (no session, no CSRF, no
/// flash); the bearer token is the API's own business (`crate::api`), and
/// every error answer is a problem document.
async fn api_request<R>(state: &AppState, started: Instant, mut req: Request, routes: R, client: ClientInfo) -> Response
where
    R: Service<Request, Response = Response, Error = Infallible>,
{
    let ctx = RequestCtx {
        auth: None,
        csrf_token: String::new(),
        flashes: Vec::new(),
        client,
        path_and_query: path_and_query(req.uri()),
    };
    req.extensions_mut().insert(Arc::new(ctx));
    let res = run_routes(started, state.config.request_timeout, routes, req).await;
    crate::api::problem::finish(res).await
}

/// Load shedding: while the hashing pool is full, a request that would
/// hash or verify a password is refused before any other work (no session
/// lookup, body, CSRF check or attempt count), so a login flood costs as
/// little as an answer can. The use case would refuse the same way; this
/// only refuses sooner.
fn shed_load(state: &AppState, req: &Request) -> Option<Response> {
    if !(needs_a_hash(req.method(), req.uri().path()) && state.accounts.hasher().is_full()) {
        return None;
    }
    state.accounts.hasher().note_refused();
    let client = ClientInfo { ip: None, user_agent: None };
    Some(finish_error(state, WebError::Busy, None, &client, Some(req.uri())))
}

/// Requests that hash or verify a password.
fn needs_a_hash(method: &Method, path: &str) -> bool {
    *method == Method::POST
        && (matches!(
            path,
            "/login"
                | "/register"
                | "/account/password"
                | "/account/email"
                | "/account/delete"
                | "/account/two-factor/disable"
                | "/account/two-factor/recovery-codes"
        ) || path.starts_with("/reset-password/")
            || path.starts_with("/setup/"))
}

/// The client: its IP (see [`client_ip`]) and user agent.
fn client_info(state: &AppState, peer: Option<IpAddr>, headers: &HeaderMap) -> ClientInfo {
    ClientInfo {
        ip: client_ip(state, peer, headers),
        user_agent: headers.get(USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_owned),
    }
}

/// The client's IP: the peer, or, when the peer is a trusted proxy, the
/// right-most address in `X-Forwarded-For` that is not itself trusted. The
/// walk from the right stops at an entry that is not an address: what is
/// left of it came from the client, and a client must not choose its own
/// address; the client is then the peer.
pub fn client_ip(state: &AppState, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
    let peer = peer?;
    let trusted = |ip: &IpAddr| state.config.trusted_proxies.iter().any(|n| n.contains(ip));
    if !trusted(&peer) {
        return Some(peer);
    }
    // The last header is the nearest proxy's; within one, the last entry.
    for value in headers.get_all("x-forwarded-for").iter().rev() {
        let Ok(value) = value.to_str() else { return Some(peer) };
        for entry in value.rsplit(',') {
            match entry.trim().parse::<IpAddr>() {
                Ok(ip) if trusted(&ip) => {}
                Ok(ip) => return Some(ip),
                Err(_) => return Some(peer),
            }
        }
    }
    Some(peer)
}

/// Who is asking, as their cookies say.
enum Visitor {
    /// The session cookie names a live session.
    SignedIn(Arc<SignedIn>),
    /// Anyone else. Their forms' tokens are MACs of a random secret in a
    /// cookie of theirs, so that no database write is needed for them.
    Anonymous {
        /// The secret, from their cookie or new.
        secret: AnonSecret,
        /// Their session cookie names no live session, and is deleted.
        stale_session_cookie: bool,
    },
}

impl Visitor {
    /// The signed-in user and session, if any.
    fn auth(&self) -> Option<&Arc<SignedIn>> {
        match self {
            Visitor::SignedIn(auth) => Some(auth),
            Visitor::Anonymous { .. } => None,
        }
    }

    /// What this visitor's forms are bound to.
    fn binding(&self) -> Binding<'_> {
        match self {
            Visitor::SignedIn(auth) => Binding::Session(&auth.session.id),
            Visitor::Anonymous { secret, .. } => Binding::Anon(secret.as_str()),
        }
    }

    /// The binding of the forms served to this visitor before, if any can
    /// have been: none to a secret made just now.
    fn served_binding(&self) -> Option<Binding<'_>> {
        match self {
            Visitor::Anonymous { secret, .. } if secret.is_new() => None,
            _ => Some(self.binding()),
        }
    }
}

/// The session: the visitor is signed in if the session cookie names a
/// live session (one read, usually from the cache); anyone else is known by
/// their anonymous CSRF secret.
async fn visitor(state: &AppState, headers: &HeaderMap) -> Result<Visitor, WebError> {
    let https = state.config.is_https();
    let mut stale_session_cookie = false;
    if let Some(value) = cookies::get(headers, &cookies::name(SESSION, https)) {
        match state.accounts.resolve_session(value).await? {
            Some(signed_in) => return Ok(Visitor::SignedIn(signed_in)),
            None => stale_session_cookie = true,
        }
    }
    let secret = AnonSecret::from_cookie(cookies::get(headers, &cookies::name(ANON, https)));
    Ok(Visitor::Anonymous { secret, stale_session_cookie })
}

/// CSRF verification of a state-changing request, by the rule in
/// [`csrf::verify`].
async fn verify_csrf(state: &AppState, req: Request, visitor: &Visitor) -> Result<Request, csrf::Refused> {
    let config = &state.config;
    csrf::verify(req, &state.signer, visitor.served_binding(), &config.base_url, config.body_limit).await
}

/// The flash messages the previous answer left, if their cookie is one
/// this site signed.
fn read_flashes(state: &AppState, headers: &HeaderMap) -> Vec<Flash> {
    cookies::get(headers, &cookies::name(FLASH, state.config.is_https()))
        .and_then(|v| state.signer.verify(FLASH_PURPOSE, v))
        .and_then(|p| serde_json::from_slice(&p).ok())
        .unwrap_or_default()
}

/// What the answer's cookies must say besides what the handler asks.
struct CookieNotes {
    /// The session cookie named no live session.
    stale_session_cookie: bool,
    /// An anonymous secret made for this request, whose cookie is set.
    new_anon: Option<AnonSecret>,
}

/// The context handlers and pages read, with a CSRF token for this page's
/// forms; and what the answer's cookies must say.
fn request_ctx(
    state: &AppState,
    req: &Request,
    visitor: Visitor,
    flashes: Vec<Flash>,
    client: ClientInfo,
) -> (Arc<RequestCtx>, CookieNotes) {
    let csrf_token = csrf::mint(&state.signer, visitor.binding());
    let (auth, notes) = match visitor {
        Visitor::SignedIn(auth) => (Some(auth), CookieNotes { stale_session_cookie: false, new_anon: None }),
        Visitor::Anonymous { secret, stale_session_cookie } => {
            (None, CookieNotes { stale_session_cookie, new_anon: secret.is_new().then_some(secret) })
        }
    };
    let ctx = RequestCtx { auth, csrf_token, flashes, client, path_and_query: path_and_query(req.uri()) };
    (Arc::new(ctx), notes)
}

/// Path and query of `uri`, as the context holds them.
fn path_and_query(uri: &Uri) -> String {
    uri.path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "/".into())
}

/// Runs the routes, answering 408 if they take longer than `limit` since
/// `started`, and the error page if the handler panics.
async fn run_routes<R>(started: Instant, limit: Duration, routes: R, req: Request) -> Response
where
    R: Service<Request, Response = Response, Error = Infallible>,
{
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
    trace::bounded(started, limit, handler).await
}

/// Response finishing: the site's page for an error nobody rendered,
/// compression of a large answer, the cookies, and no caching of a page
/// for a signed-in user.
async fn finish_response(
    state: &AppState,
    mut res: Response,
    ctx: &RequestCtx,
    notes: CookieNotes,
    accept_encoding: Option<HeaderValue>,
) -> Response {
    if (res.status().is_client_error() || res.status().is_server_error())
        && res.extensions().get::<Rendered>().is_none()
    {
        res = render_error_response(state, res, ctx);
    }
    if crate::site::worth_compressing(&res) {
        res = crate::site::compress(res, accept_encoding).await;
    }
    let session_started = write_session_cookie(state, &mut res, notes.stale_session_cookie);
    if let Some(secret) = notes.new_anon {
        set_cookie(&mut res, cookies::build(ANON, secret.as_str(), state.config.is_https(), None));
    }
    write_flash_cookie(state, &mut res, &ctx.flashes);
    if session_started || ctx.auth.is_some() {
        res.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// Sets or deletes the session cookie as the handler asked, or deletes a
/// stale one. Whether a session started.
fn write_session_cookie(state: &AppState, res: &mut Response, stale: bool) -> bool {
    let https = state.config.is_https();
    match res.extensions_mut().remove::<SessionChange>() {
        Some(SessionChange::Start { cookie, remember }) => {
            let age = remember.then_some(state.accounts.settings().remember_duration);
            set_cookie(res, cookies::build(SESSION, &cookie, https, age));
            true
        }
        Some(SessionChange::End) => {
            set_cookie(res, cookies::clear(SESSION, https));
            false
        }
        None => {
            if stale {
                set_cookie(res, cookies::clear(SESSION, https));
            }
            false
        }
    }
}

/// A redirect carries the handler's flash messages on, with any not yet
/// shown, and so does an answer a script follows to the next page (a JSON
/// answer with flash messages); any other answer shows the waiting ones,
/// so their cookie goes.
fn write_flash_cookie(state: &AppState, res: &mut Response, shown: &[Flash]) {
    let https = state.config.is_https();
    let out = res.extensions_mut().remove::<FlashOut>().unwrap_or_default();
    if res.status().is_redirection() || !out.0.is_empty() {
        if !out.0.is_empty() {
            let mut all = shown.to_vec();
            all.extend(out.0);
            let payload = serde_json::to_vec(&all).unwrap_or_default();
            set_cookie(res, cookies::build(FLASH, &state.signer.sign(FLASH_PURPOSE, &payload), https, None));
        }
    } else if !shown.is_empty() {
        set_cookie(res, cookies::clear(FLASH, https));
    }
}

/// Adds a `Set-Cookie` header.
fn set_cookie(res: &mut Response, cookie: String) {
    if let Ok(v) = HeaderValue::try_from(cookie) {
        res.headers_mut().append(SET_COOKIE, v);
    }
}

/// Answers with an error page before the handler ran. `uri` is `None` for
/// a request whose body was lost, whose page is then that of `/`.
fn finish_error(
    state: &AppState,
    err: WebError,
    auth: Option<&Arc<SignedIn>>,
    client: &ClientInfo,
    uri: Option<&Uri>,
) -> Response {
    let ctx = RequestCtx {
        auth: auth.cloned(),
        csrf_token: String::new(),
        flashes: Vec::new(),
        client: client.clone(),
        path_and_query: uri.map_or_else(|| "/".into(), path_and_query),
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
