//! The JSON API under `/api`: bearer tokens only (cookies are ignored, so
//! there is no CSRF surface), every error a problem document, the same use
//! cases as the pages. The OpenAPI 3.1 document is generated from the
//! annotations on the handlers below.

pub mod bodies;
pub mod docs;
pub mod problem;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, LINK, LOCATION};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get};
use portcullis_app::FieldErrors;
use portcullis_app::access_tokens::{Authenticated, Refusal};
use portcullis_domain::Need;
use serde::Serialize;
use serde_json::Value;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::context::RequestCtx;
use crate::state::AppState;
use bodies::{MeBody, NewPost, PostBody, PostChange, SessionBody, UserBody, rfc3339};
use problem::{Problem, from_app};

/// Whether a path is the API's.
pub fn is_api_path(path: &str) -> bool {
    path == "/api" || path.starts_with("/api/")
}

/// Every route of `/api/v1` (method, path as in the OpenAPI document).
pub fn route_list() -> Vec<(Method, &'static str)> {
    vec![
        (Method::GET, "/api/v1/me"),
        (Method::GET, "/api/v1/posts"),
        (Method::POST, "/api/v1/posts"),
        (Method::GET, "/api/v1/posts/{id}"),
        (Method::PATCH, "/api/v1/posts/{id}"),
        (Method::DELETE, "/api/v1/posts/{id}"),
        (Method::GET, "/api/v1/sessions"),
        (Method::DELETE, "/api/v1/sessions/{id}"),
        (Method::GET, "/api/v1/admin/users"),
    ]
}

/// Every path template under `/api`, as the metrics label them.
pub fn route_templates() -> &'static [&'static str] {
    &[
        "/api/v1/me",
        "/api/v1/posts",
        "/api/v1/posts/{id}",
        "/api/v1/sessions",
        "/api/v1/sessions/{id}",
        "/api/v1/admin/users",
        "/api/openapi.json",
        "/api/docs",
    ]
}

/// `route`, saying which route it is (the metrics' `index` of `template`)
/// to the layers inside (the scope check) and on each of its answers,
/// refusals included (for the metrics).
fn named(template: &'static str, index: usize, route: MethodRouter<AppState>) -> MethodRouter<AppState> {
    let matched = crate::metrics::MatchedRoute { template, index };
    route.layer(axum::middleware::from_fn(move |mut req: Request, next: Next| async move {
        req.extensions_mut().insert(matched);
        let mut res = next.run(req).await;
        res.extensions_mut().insert(matched);
        res
    }))
}

/// The `/api` router, to nest at `/api`; the metrics count its routes after
/// the page routes, from `first_index` on, in the order of
/// [`route_templates`].
pub fn router(state: AppState, first_index: usize) -> Router<AppState> {
    let at = |router: Router<AppState>, template: &'static str, route: MethodRouter<AppState>| {
        let index = route_templates().iter().position(|t| *t == template).map_or(usize::MAX, |i| first_index + i);
        router.route(template.strip_prefix("/api").unwrap_or(template), named(template, index, route))
    };
    let auth = axum::middleware::from_fn_with_state(state, authenticate);
    let token = |route: MethodRouter<AppState>| route.route_layer(auth.clone());
    let mut r = Router::new();
    r = at(r, "/api/v1/me", token(get(get_me)));
    r = at(r, "/api/v1/posts", token(get(list_posts).post(create_post)));
    r = at(r, "/api/v1/posts/{id}", token(get(get_post).patch(update_post).delete(delete_post)));
    r = at(r, "/api/v1/sessions", token(get(list_sessions)));
    r = at(r, "/api/v1/sessions/{id}", token(delete(delete_session)));
    r = at(r, "/api/v1/admin/users", token(get(list_users)));
    r = at(r, "/api/openapi.json", get(get_openapi));
    r = at(r, "/api/docs", get(docs::get_docs));
    r.fallback(|| async { Problem::new(StatusCode::NOT_FOUND, "No such API route.") })
}

/// The bearer scheme in the document.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("pcat_…")
                    .description(Some("A personal access token from /account/tokens."))
                    .build(),
            ),
        );
    }
}

/// The OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(title = "Portcullis API", version = "1", description = "Act for a user with a personal access token."),
    paths(get_me, list_posts, create_post, get_post, update_post, delete_post, list_sessions, delete_session, list_users),
    components(schemas(Problem, MeBody, PostBody, NewPost, PostChange, SessionBody, UserBody)),
    modifiers(&BearerScheme),
    security(("bearer" = [])),
    tags((name = "api", description = "The JSON API"))
)]
pub struct ApiDoc;

static OPENAPI_JSON: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| ApiDoc::openapi().to_pretty_json().unwrap_or_else(|_| "{}".into()));

/// The OpenAPI 3.1 document.
async fn get_openapi() -> Response {
    let mut r = OPENAPI_JSON.as_str().into_response();
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// Resolves the bearer token, applies the scope rule and the per-token
/// limit, and puts the RateLimit headers on the answer.
async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let ip = req.extensions().get::<Arc<RequestCtx>>().and_then(|c| c.client.ip);
    let value = bearer(req.headers());
    let auth = match state.tokens.authenticate(value, ip).await {
        Ok(a) => a,
        Err(Refusal::Unauthorized) => return Problem::unauthorized(),
        Err(Refusal::TooMany(wait, window)) => {
            let mut r = Problem::too_many(wait);
            if let Some(w) = window {
                rate_headers(r.headers_mut(), w);
            }
            return r;
        }
        Err(Refusal::App(e)) => return from_app(e),
    };
    // An unnamed route (none should be) needs the most.
    let admin_route =
        req.extensions().get::<crate::metrics::MatchedRoute>().is_none_or(|m| m.template.starts_with("/api/v1/admin/"));
    let need = Need::of_method(req.method().as_str(), admin_route);
    if !auth.token.scope.allows(need, auth.user.is_admin) {
        let detail = match need {
            Need::Admin => "This route needs an admin token of an administrator.",
            _ => "This token's scope does not allow this request.",
        };
        let mut r = Problem::new(StatusCode::FORBIDDEN, detail);
        r.kind = "about:blank".into();
        return r.into_response();
    }
    let window = auth.limit;
    req.extensions_mut().insert(Arc::new(auth));
    let mut res = next.run(req).await;
    rate_headers(res.headers_mut(), window);
    res
}

fn rate_headers(h: &mut HeaderMap, w: portcullis_app::access_tokens::RateWindow) {
    if w.limit == 0 {
        return;
    }
    for (name, v) in [
        ("ratelimit-limit", u64::from(w.limit)),
        ("ratelimit-remaining", u64::from(w.remaining)),
        ("ratelimit-reset", w.reset),
    ] {
        if let Ok(v) = HeaderValue::from_str(&v.to_string()) {
            h.insert(name, v);
        }
    }
}

/// The token in `Authorization: Bearer <token>`.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The authenticated caller (set by [`authenticate`]).
pub struct Caller(pub Arc<Authenticated>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Caller {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Response> {
        parts.extensions.get::<Arc<Authenticated>>().cloned().map(Caller).ok_or_else(Problem::unauthorized)
    }
}

fn origin(req_ctx: Option<&Arc<RequestCtx>>) -> portcullis_app::Origin {
    let client = req_ctx.map(|c| c.client.clone()).unwrap_or(portcullis_app::ClientInfo { ip: None, user_agent: None });
    portcullis_app::Origin::user(&client)
}

/// The deepest a page may reach (page × per_page).
const MAX_DEPTH: u64 = 10_000;

/// `page` (from 1) and `per_page` (1–100, default 20) from the query.
fn paging(q: &HashMap<String, String>) -> Result<(u64, u64), Box<Problem>> {
    let mut errors = FieldErrors::default();
    let mut num = |name: &'static str, default: u64, max: u64| match q.get(name) {
        None => Some(default),
        Some(v) => match v.parse::<u64>() {
            Ok(n) if (1..=max).contains(&n) => Some(n),
            _ => {
                errors.add(name, format!("{name} must be a whole number from 1 to {max}"));
                None
            }
        },
    };
    let page = num("page", 1, MAX_DEPTH);
    let per_page = num("per_page", 20, 100);
    match (page, per_page) {
        (Some(p), Some(n)) if p * n <= MAX_DEPTH + 100 => Ok((p, n)),
        (Some(_), Some(_)) => {
            errors.add("page", format!("pages reach no deeper than {MAX_DEPTH} items"));
            Err(Box::new(Problem::invalid(&errors)))
        }
        _ => Err(Box::new(Problem::invalid(&errors))),
    }
}

/// The `Link` header for a page, `extra` being the other query parameters.
fn link(state: &AppState, path: &str, extra: &str, page: u64, per_page: u64, has_next: bool) -> Option<HeaderValue> {
    let base = state.config.base_url.as_str().trim_end_matches('/');
    let url = |p: u64| format!("<{base}{path}?{extra}page={p}&per_page={per_page}>");
    let mut parts = vec![format!("{}; rel=\"first\"", url(1))];
    if page > 1 {
        parts.push(format!("{}; rel=\"prev\"", url(page - 1)));
    }
    if has_next {
        parts.push(format!("{}; rel=\"next\"", url(page + 1)));
    }
    HeaderValue::from_str(&parts.join(", ")).ok()
}

/// A page of `items` as JSON with its `Link` header: `items` holds up to
/// one more than the page, which says there is a next one.
fn paged<T: Serialize>(
    state: &AppState,
    path: &str,
    extra: &str,
    page: u64,
    per_page: u64,
    mut items: Vec<T>,
) -> Response {
    let has_next = items.len() as u64 > per_page;
    items.truncate(usize::try_from(per_page).unwrap_or(100));
    let mut r = axum::Json(items).into_response();
    if let Some(v) = link(state, path, extra, page, per_page, has_next) {
        r.headers_mut().insert(LINK, v);
    }
    r
}

/// A JSON object from the body: 415 for another media type, 400 for
/// malformed JSON, 422 for JSON that is not an object.
fn json_object(headers: &HeaderMap, body: &Bytes) -> Result<serde_json::Map<String, Value>, Box<Problem>> {
    let ct = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if !(essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))) {
        return Err(Box::new(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Send a JSON body with Content-Type: application/json.",
        )));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => {
            let mut e = FieldErrors::default();
            e.add("body", "The body must be a JSON object");
            Err(Box::new(Problem::invalid(&e)))
        }
        Err(e) => Err(Box::new(Problem::new(StatusCode::BAD_REQUEST, format!("The body is not valid JSON: {e}")))),
    }
}

/// A string field: `Ok(None)` when absent (or null), 422 entry when of another type.
fn string_field(obj: &serde_json::Map<String, Value>, name: &'static str, errors: &mut FieldErrors) -> Option<String> {
    match obj.get(name) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            errors.add(name, format!("{name} must be a string"));
            None
        }
    }
}

fn post_id(raw: &str) -> Result<i64, Box<Problem>> {
    raw.parse::<i64>().map_err(|_| Box::new(Problem::new(StatusCode::NOT_FOUND, "No such post.")))
}

/// The token's user.
#[utoipa::path(get, path = "/api/v1/me", tag = "api",
    responses((status = 200, body = MeBody), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json")))]
async fn get_me(Caller(c): Caller) -> Response {
    let u = &c.user;
    axum::Json(MeBody {
        id: u.id,
        username: u.username.clone(),
        email: u.email.clone(),
        is_admin: u.is_admin,
        email_verified: u.email_verified,
        created_at: rfc3339(u.created_at),
        token_scope: c.token.scope.as_str().into(),
        token_name: c.token.name.clone(),
    })
    .into_response()
}

/// Posts, newest first.
#[utoipa::path(get, path = "/api/v1/posts", tag = "api",
    params(("page" = Option<u64>, Query, description = "From 1; page × per_page may not pass 10100 (a deeper page is refused with 422)", minimum = 1, maximum = 10000),
        ("per_page" = Option<u64>, Query, description = "1 to 100; 20 by default", minimum = 1, maximum = 100)),
    responses((status = 200, body = Vec<PostBody>, headers(("Link" = String, description = "first, prev, next pages"))),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json")))]
async fn list_posts(State(state): State<AppState>, _c: Caller, Query(q): Query<HashMap<String, String>>) -> Response {
    let (page, per_page) = match paging(&q) {
        Ok(p) => p,
        Err(p) => return p.into_response(),
    };
    let want = i64::try_from(page * per_page + 1).unwrap_or(i64::MAX);
    match state.posts.list(None, None, want).await {
        Ok(posts) => {
            let skip = usize::try_from((page - 1) * per_page).unwrap_or(usize::MAX);
            let items: Vec<PostBody> = posts.iter().skip(skip).map(PostBody::from).collect();
            paged(&state, "/api/v1/posts", "", page, per_page, items)
        }
        Err(e) => from_app(e),
    }
}

/// Writes a new post as the token's user.
#[utoipa::path(post, path = "/api/v1/posts", tag = "api", request_body(content = NewPost, content_type = "application/json"),
    responses((status = 201, body = PostBody, headers(("Location" = String, description = "The new post's URL"))),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json")))]
async fn create_post(State(state): State<AppState>, Caller(c): Caller, headers: HeaderMap, body: Bytes) -> Response {
    let obj = match json_object(&headers, &body) {
        Ok(o) => o,
        Err(p) => return p.into_response(),
    };
    let mut errors = FieldErrors::default();
    let title = string_field(&obj, "title", &mut errors);
    let content = string_field(&obj, "content", &mut errors);
    if !errors.is_empty() {
        return Problem::invalid(&errors).into_response();
    }
    let created = state.posts.create(c.actor(), title.as_deref().unwrap_or(""), content.as_deref().unwrap_or("")).await;
    let id = match created {
        Ok(id) => id,
        Err(e) => return from_app(e),
    };
    match state.posts.get(id).await {
        Ok(post) => {
            let mut r = (StatusCode::CREATED, axum::Json(PostBody::from(&post))).into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("/api/v1/posts/{id}")) {
                r.headers_mut().insert(LOCATION, v);
            }
            r
        }
        Err(e) => from_app(e),
    }
}

/// One post.
#[utoipa::path(get, path = "/api/v1/posts/{id}", tag = "api", params(("id" = i64, Path, description = "Post id")),
    responses((status = 200, body = PostBody), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json")))]
async fn get_post(State(state): State<AppState>, _c: Caller, Path(raw): Path<String>) -> Response {
    let id = match post_id(&raw) {
        Ok(id) => id,
        Err(p) => return p.into_response(),
    };
    match state.posts.get(id).await {
        Ok(p) => axum::Json(PostBody::from(&p)).into_response(),
        Err(e) => from_app(e),
    }
}

/// Changes a post; only its author may.
#[utoipa::path(patch, path = "/api/v1/posts/{id}", tag = "api", params(("id" = i64, Path, description = "Post id")),
    request_body(content = PostChange, content_type = "application/json"),
    responses((status = 200, body = PostBody),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json")))]
async fn update_post(
    State(state): State<AppState>,
    Caller(c): Caller,
    Path(raw): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let id = match post_id(&raw) {
        Ok(id) => id,
        Err(p) => return p.into_response(),
    };
    let obj = match json_object(&headers, &body) {
        Ok(o) => o,
        Err(p) => return p.into_response(),
    };
    let current = match state.posts.get_for_edit(c.actor(), id).await {
        Ok(p) => p,
        Err(e) => return from_app(e),
    };
    let mut errors = FieldErrors::default();
    let title = string_field(&obj, "title", &mut errors).unwrap_or(current.title);
    let content = string_field(&obj, "content", &mut errors).unwrap_or(current.content);
    if !errors.is_empty() {
        return Problem::invalid(&errors).into_response();
    }
    if let Err(e) = state.posts.update(c.actor(), id, &title, &content).await {
        return from_app(e);
    }
    match state.posts.get(id).await {
        Ok(p) => axum::Json(PostBody::from(&p)).into_response(),
        Err(e) => from_app(e),
    }
}

/// Deletes a post: its author, or an administrator with an admin token.
#[utoipa::path(delete, path = "/api/v1/posts/{id}", tag = "api", params(("id" = i64, Path, description = "Post id")),
    responses((status = 204, description = "Deleted"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json")))]
async fn delete_post(State(state): State<AppState>, Caller(c): Caller, Path(raw): Path<String>) -> Response {
    let id = match post_id(&raw) {
        Ok(id) => id,
        Err(p) => return p.into_response(),
    };
    match state.posts.delete(c.actor(), id).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => from_app(e),
    }
}

/// The token's user's live sessions, newest first.
#[utoipa::path(get, path = "/api/v1/sessions", tag = "api",
    responses((status = 200, body = Vec<SessionBody>), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json")))]
async fn list_sessions(State(state): State<AppState>, Caller(c): Caller) -> Response {
    match state.accounts.sessions_of(c.user.id).await {
        Ok(s) => axum::Json(s.iter().map(SessionBody::from).collect::<Vec<_>>()).into_response(),
        Err(e) => from_app(e),
    }
}

/// Ends one of the token's user's sessions.
#[utoipa::path(delete, path = "/api/v1/sessions/{id}", tag = "api", params(("id" = String, Path, description = "Session id")),
    responses((status = 204, description = "Ended"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json")))]
async fn delete_session(
    State(state): State<AppState>,
    Caller(c): Caller,
    Path(id): Path<String>,
    req_ctx: Option<axum::Extension<Arc<RequestCtx>>>,
) -> Response {
    let origin = origin(req_ctx.as_ref().map(|e| &e.0));
    match state.accounts.revoke_session(&c.user, &id, &origin).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => from_app(e),
    }
}

/// Users whose username or email contains `q`, by id (admin token of an admin).
#[utoipa::path(get, path = "/api/v1/admin/users", tag = "api",
    params(("q" = Option<String>, Query, description = "Part of a username or email"),
        ("page" = Option<u64>, Query, description = "From 1; page × per_page may not pass 10100 (a deeper page is refused with 422)", minimum = 1, maximum = 10000),
        ("per_page" = Option<u64>, Query, description = "1 to 100; 20 by default", minimum = 1, maximum = 100)),
    responses((status = 200, body = Vec<UserBody>, headers(("Link" = String, description = "first, prev, next pages"))),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json")))]
async fn list_users(State(state): State<AppState>, _c: Caller, Query(q): Query<HashMap<String, String>>) -> Response {
    let (page, per_page) = match paging(&q) {
        Ok(p) => p,
        Err(p) => return p.into_response(),
    };
    let query = q.get("q").map(String::as_str);
    let want = i64::try_from(page * per_page + 1).unwrap_or(i64::MAX);
    match state.accounts.list_users(query, None, want).await {
        Ok(users) => {
            let skip = usize::try_from((page - 1) * per_page).unwrap_or(usize::MAX);
            let items: Vec<UserBody> = users.iter().skip(skip).map(UserBody::from).collect();
            let extra = query
                .map(|q| format!("q={}&", form_urlencoded::byte_serialize(q.as_bytes()).collect::<String>()))
                .unwrap_or_default();
            paged(&state, "/api/v1/admin/users", &extra, page, per_page, items)
        }
        Err(e) => from_app(e),
    }
}
