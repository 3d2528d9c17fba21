//! `GET /account/export`: the signed-in user's data as a JSON download.

use axum::extract::State;
use axum::http::HeaderValue;
use axum::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse as _, Response};

use portcullis_app::accounts::ExportSources;

use crate::error::WebError;
use crate::extract::CurrentUser;
use crate::state::AppState;

/// Everything stored about the user, as an attachment; never cached.
pub async fn get_export(State(state): State<AppState>, user: CurrentUser) -> Result<Response, WebError> {
    let u = &user.auth.user;
    let export = state
        .accounts
        .export_account(
            u.id,
            &user.auth.session.id,
            ExportSources { posts: &state.posts, tokens: &state.tokens, passkeys: &state.passkeys },
            &user.ctx.origin(),
        )
        .await?;
    let body = serde_json::to_vec_pretty(&export)
        .map_err(|e| WebError::from(portcullis_app::AppError::Internal(e.to_string())))?;
    // Usernames are letters, digits, '_', '-' and '.': safe in the header as they are.
    let disposition = format!("attachment; filename=\"portcullis-export-{}.json\"", u.username);
    let mut r = body.into_response();
    let headers = r.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        headers.insert(CONTENT_DISPOSITION, v);
    }
    Ok(r)
}
