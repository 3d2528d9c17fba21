//! Liveness and readiness.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use crate::state::AppState;

/// `/healthz`, `/readyz`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(get_healthz))
        .route("/readyz", get(get_readyz))
}

/// The process answers.
async fn get_healthz() -> &'static str {
    "ok"
}

/// The database answers too.
async fn get_readyz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    match state.accounts.ping().await {
        Ok(()) => (StatusCode::OK, "ready"),
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            (StatusCode::SERVICE_UNAVAILABLE, "database unreachable")
        }
    }
}
