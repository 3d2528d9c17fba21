//! Liveness and readiness.

use crate::routes::RouteTable;
use axum::extract::State;
use axum::http::StatusCode;

use crate::state::AppState;

/// `/healthz`, `/readyz`.
pub fn routes(t: RouteTable) -> RouteTable {
    t.get("/healthz", get_healthz).get("/readyz", get_readyz)
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
