//! The router: one module per resource, assembled here with the middleware.

pub mod account;
pub mod admin;
pub mod auth;
pub mod export;
pub mod health;
pub mod pages;
pub mod passkeys;
pub mod posts;
pub mod recovery;
pub mod setup;
pub mod tokens;
pub mod two_factor;

use axum::Router;
use axum::body::Body;
use axum::handler::Handler;
use axum::http::HeaderValue;
use axum::http::header::LOCATION;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use axum::routing::MethodRouter;

use crate::context::{Flash, FlashOut};
use crate::error::WebError;
use crate::state::AppState;

/// A 303 to `to` (post/redirect/get).
pub fn see_other(to: &str) -> Response {
    let mut r = crate::templates::response(StatusCode::SEE_OTHER, Body::empty());
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

    /// Adds a GET route whose `HEAD` is `head` rather than the GET handler
    /// run without its body: for a GET that changes something, which a
    /// mail scanner's `HEAD` must not.
    pub fn get_with_head<H, T, HH, HT>(self, path: &'static str, handler: H, head: HH) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
        HH: Handler<HT, AppState>,
        HT: 'static,
    {
        self.add(Method::GET, path, axum::routing::get(handler).head(head))
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
        // Every answer of the route says which route it was, for the metrics.
        let matched = crate::metrics::MatchedRoute { template: path, index: self.entries.len() };
        let route = route.layer(axum::middleware::map_response(move |mut res: Response| async move {
            res.extensions_mut().insert(matched);
            res
        }));
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
    let t = passkeys::routes(t);
    let t = admin::routes(t);
    let t = recovery::routes(t);
    let t = setup::routes(t);
    let t = two_factor::routes(t);
    let t = tokens::routes(t);
    health::routes(t)
}

/// Every (method, path pattern) the router serves.
pub fn route_list() -> Vec<(Method, &'static str)> {
    table().entries
}

/// Every route, with the page for paths that match none. The request
/// context and the layers around the routes are in `crate::site`.
pub fn router(state: AppState) -> Router {
    let t = table();
    let api = crate::api::router(state.clone(), t.entries.len());
    t.router.nest("/api", api).fallback(not_found).with_state(state)
}
