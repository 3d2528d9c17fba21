//! The router: one module per resource, assembled here with the middleware.

pub mod account;
pub mod admin;
pub mod auth;
pub mod health;
pub mod pages;
pub mod posts;
pub mod recovery;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::http::HeaderValue;
use axum::http::header::LOCATION;
use axum::http::{Method, StatusCode};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::predicate::{NotForContentType, Predicate as _, SizeAbove};
use tower_http::compression::{CompressionLayer, CompressionLevel};

use crate::context::{Flash, FlashOut};
use crate::error::WebError;
use crate::state::AppState;

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

/// Responses larger than this are gzipped, at the fastest level (nginx's
/// default). A smaller one fits in TCP's first flight (ten segments, about
/// 14 KB with the headers), so it arrives no sooner compressed, while
/// setting up a compressor costs many times what rendering the page does.
pub const COMPRESS_ABOVE: u16 = 12 * 1024;

/// Every route and the middleware around them.
///
/// The middleware wraps the router as one stack, outermost first, rather
/// than being layered onto each route with `Router::layer`: axum boxes every
/// route once per layer and clones those boxes on every request.
pub fn router(state: AppState) -> Router {
    let limit = state.config.body_limit;
    let routes = table().router.fallback(not_found).with_state(state.clone());
    // The request id, the log span and the time limit are part of the
    // request context (see `trace`): one layer instead of four.
    let stack = ServiceBuilder::new()
        .layer(
            CompressionLayer::new()
                .quality(CompressionLevel::Fastest)
                .compress_when(SizeAbove::new(COMPRESS_ABOVE).and(NotForContentType::IMAGES)),
        )
        .layer(from_fn_with_state(state, crate::context::request_context))
        .layer(CatchPanicLayer::new())
        .layer(DefaultBodyLimit::max(limit))
        .service(routes);
    Router::new().fallback_service(stack)
}
