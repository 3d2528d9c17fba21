//! The web layer's one error type. Client errors say what to fix; a 500 says
//! nothing to the user and logs everything. The page itself is rendered by
//! the request-context middleware, which knows who is asking.

use axum::http::header::{LOCATION, RETRY_AFTER};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use portcullis_app::AppError;

/// A message for the error page, carried as a response extension.
#[derive(Clone, Debug)]
pub struct ErrorInfo {
    /// Shown to the user.
    pub message: String,
}

/// What can go wrong in a handler.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// 400.
    #[error("{0}")]
    BadRequest(String),
    /// Not signed in: to the login page, then back to `next`.
    #[error("login required")]
    LoginRequired {
        /// Path and query to come back to.
        next: String,
    },
    /// 403 with a reason.
    #[error("{0}")]
    Forbidden(String),
    /// 403: missing, foreign or altered CSRF token, or a cross-site request.
    #[error("CSRF check failed")]
    Csrf,
    /// 404.
    #[error("not found")]
    NotFound,
    /// 413.
    #[error("payload too large")]
    PayloadTooLarge,
    /// 408: the request (its body included) took longer than the request timeout.
    #[error("request timeout")]
    Timeout,
    /// 429 with Retry-After (seconds).
    #[error("too many requests")]
    TooManyRequests(u64),
    /// 503 with Retry-After: the password pool is full.
    #[error("busy")]
    Busy,
    /// 500: logged, never shown.
    #[error("internal: {0}")]
    Internal(String),
}

impl From<AppError> for WebError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::NotFound => WebError::NotFound,
            AppError::Forbidden(m) => WebError::Forbidden(m.into()),
            AppError::Busy => WebError::Busy,
            AppError::TooMany { retry_after } => WebError::TooManyRequests(retry_after),
            AppError::SentRecently => WebError::TooManyRequests(3600),
            AppError::Invalid(f) => WebError::BadRequest(f.to_string()),
            AppError::Refused(m) => WebError::Forbidden(m),
            AppError::InvalidCredentials | AppError::Locked | AppError::AdminLocked => {
                WebError::Forbidden(e.to_string())
            }
            AppError::Token(p) => WebError::BadRequest(p.to_string()),
            AppError::Store(s) => WebError::Internal(s.to_string()),
            AppError::Internal(s) => WebError::Internal(s),
        }
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (status, message) = match &self {
            WebError::BadRequest(m) => (StatusCode::BAD_REQUEST, m.clone()),
            WebError::LoginRequired { next } => {
                let to =
                    format!("/login?next={}", form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>());
                let mut r = StatusCode::SEE_OTHER.into_response();
                if let Ok(v) = HeaderValue::from_str(&to) {
                    r.headers_mut().insert(LOCATION, v);
                }
                return r;
            }
            WebError::Forbidden(m) => (StatusCode::FORBIDDEN, m.clone()),
            WebError::Csrf => (
                StatusCode::FORBIDDEN,
                "The form was stale or did not come from this site. Go back, reload the page and try again.".into(),
            ),
            WebError::NotFound => (StatusCode::NOT_FOUND, String::new()),
            WebError::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, String::new()),
            WebError::Timeout => (StatusCode::REQUEST_TIMEOUT, String::new()),
            WebError::TooManyRequests(wait) => {
                let mut r = StatusCode::TOO_MANY_REQUESTS.into_response();
                if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
                    r.headers_mut().insert(RETRY_AFTER, v);
                }
                r.extensions_mut().insert(ErrorInfo {
                    message: format!("Too many attempts from your network. Please wait {wait} seconds and try again."),
                });
                return r;
            }
            WebError::Busy => {
                let mut r = StatusCode::SERVICE_UNAVAILABLE.into_response();
                r.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("2"));
                r.extensions_mut().insert(ErrorInfo {
                    message: "Too many sign-ins at once. Please try again in a few seconds.".into(),
                });
                return r;
            }
            WebError::Internal(detail) => {
                tracing::error!(error = %detail, "request failed");
                (StatusCode::INTERNAL_SERVER_ERROR, String::new())
            }
        };
        let mut r = status.into_response();
        if !message.is_empty() {
            r.extensions_mut().insert(ErrorInfo { message });
        }
        r
    }
}
