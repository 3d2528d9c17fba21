//! The router: one module per resource, assembled here with the middleware.

pub mod account;
pub mod admin;
pub mod auth;
pub mod health;
pub mod pages;
pub mod posts;
pub mod recovery;

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::http::HeaderValue;
use axum::http::header::{HeaderName, LOCATION};
use axum::http::{Method, StatusCode};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::classify::ServerErrorsFailureClass;
use tower_http::compression::CompressionLayer;
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::context::{Flash, FlashOut};
use crate::error::WebError;
use crate::state::AppState;

/// The path as logs may show it: the secret half of a link's token is cut.
fn loggable_path(path: &str) -> std::borrow::Cow<'_, str> {
    for prefix in ["/verify-email/", "/reset-password/"] {
        if let Some(token) = path.strip_prefix(prefix) {
            let id = token.split('.').next().unwrap_or("");
            return format!("{prefix}{id}.…").into();
        }
    }
    path.into()
}

/// Request ids for requests that come without one: a random prefix per
/// process and a counter. Unique across nodes and restarts like a random
/// UUID, without asking the kernel for randomness on every request.
#[derive(Clone)]
struct RequestIds {
    prefix: std::sync::Arc<str>,
    next: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl RequestIds {
    fn new() -> Self {
        Self {
            prefix: portcullis_app::tokens::random_b64(12).into(),
            next: std::sync::Arc::new(std::sync::atomic::AtomicU64::new(1)),
        }
    }
}

impl MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        HeaderValue::from_str(&format!("{}-{n:x}", self.prefix)).ok().map(RequestId::new)
    }
}

/// A 303 to `to` (post/redirect/get).
pub fn see_other(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(LOCATION, v);
    }
    r
}

/// A 303 to `to` carrying flash messages.
pub fn see_other_with(to: &str, flashes: Vec<Flash>) -> Response {
    let mut r = see_other(to);
    r.extensions_mut().insert(FlashOut(flashes));
    r
}

async fn not_found() -> WebError {
    WebError::NotFound
}

/// Builds the router and, with it, the list of every route it serves, so
/// tests can check that each route is classified (who may use it).
pub struct RouteTable {
    router: Router<AppState>,
    entries: Vec<(Method, &'static str)>,
}

impl RouteTable {
    fn new() -> Self {
        Self { router: Router::new(), entries: Vec::new() }
    }

    /// Adds a GET (and HEAD) route.
    pub fn get<H, T>(self, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.add(Method::GET, path, axum::routing::get(handler))
    }

    /// Adds a POST route.
    pub fn post<H, T>(self, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.add(Method::POST, path, axum::routing::post(handler))
    }

    fn add(mut self, method: Method, path: &'static str, route: MethodRouter<AppState>) -> Self {
        self.router = self.router.route(path, route);
        self.entries.push((method, path));
        self
    }
}

fn table() -> RouteTable {
    let t = RouteTable::new();
    let t = pages::routes(t);
    let t = auth::routes(t);
    let t = posts::routes(t);
    let t = account::routes(t);
    let t = admin::routes(t);
    let t = recovery::routes(t);
    health::routes(t)
}

/// Every (method, path pattern) the router serves.
pub fn route_list() -> Vec<(Method, &'static str)> {
    table().entries
}

/// Logs a server error, except the 503s that refuse logins while the
/// hashing pool is full: those are expected under load, answered with
/// `Retry-After`, and one line each would cost more than the answer.
fn log_failure(class: ServerErrorsFailureClass, latency: Duration, _span: &tracing::Span) {
    match class {
        ServerErrorsFailureClass::StatusCode(StatusCode::SERVICE_UNAVAILABLE) => {}
        class => tracing::error!(classification = %class, latency_ms = latency.as_millis(), "response failed"),
    }
}

/// Every route and the middleware around them.
///
/// The middleware wraps the router as one stack, outermost first, rather
/// than being layered onto each route with `Router::layer`: axum boxes every
/// route once per layer and clones those boxes on every request.
pub fn router(state: AppState) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    let timeout = state.config.request_timeout;
    let limit = state.config.body_limit;
    let routes = table().router.fallback(not_found).with_state(state.clone());
    let stack = ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(request_id.clone(), RequestIds::new()))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &axum::http::Request<_>| {
                    let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
                    tracing::info_span!("request", method = %req.method(), path = %loggable_path(req.uri().path()), request_id = %id)
                })
                .on_failure(log_failure),
        )
        .layer(PropagateRequestIdLayer::new(request_id))
        .layer(CompressionLayer::new())
        .layer(from_fn_with_state(state, crate::context::request_context))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            if timeout.is_zero() { Duration::from_secs(30) } else { timeout },
        ))
        .layer(CatchPanicLayer::new())
        .layer(DefaultBodyLimit::max(limit))
        .service(routes);
    Router::new().fallback_service(stack)
}
