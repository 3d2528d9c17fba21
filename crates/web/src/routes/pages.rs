//! The home page and the static assets.

use crate::routes::RouteTable;
use axum::extract::{Query, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::error::WebError;
use crate::extract::Ctx;
use crate::pages::{Home, PostList};
use crate::routes::posts::post_list;
use crate::state::AppState;

const APP_CSS: &str = include_str!("../../../../static/app.css");
const PASSWORD_JS: &str = include_str!("../../../../static/password.js");
const PASSKEYS_JS: &str = include_str!("../../../../static/passkeys.js");

/// Keyset pagination: show items with ids below `before`.
#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    /// Id to continue below.
    pub before: Option<i64>,
}

/// `/`, `/static/*`.
pub fn routes(t: RouteTable) -> RouteTable {
    t.get("/", get_home)
        .get("/static/app.css", get_css)
        .get("/static/password.js", get_js)
        .get("/static/passkeys.js", get_passkeys_js)
}

/// Home: the newest posts.
async fn get_home(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Query(q): Query<PageQuery>,
) -> Result<Response, WebError> {
    let posts = post_list(&state, None, q.before).await?;
    let list = PostList::page(&posts, q.before.is_some());
    Ok(state.templates.render(&Home { ctx: &ctx, list }))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(CONTENT_TYPE, content_type), (CACHE_CONTROL, "public, max-age=3600")], body).into_response()
}

/// The stylesheet.
async fn get_css() -> Response {
    asset("text/css; charset=utf-8", APP_CSS)
}

/// The password field helper.
async fn get_js() -> Response {
    asset("text/javascript; charset=utf-8", PASSWORD_JS)
}

/// The passkey ceremonies' script.
async fn get_passkeys_js() -> Response {
    asset("text/javascript; charset=utf-8", PASSKEYS_JS)
}
