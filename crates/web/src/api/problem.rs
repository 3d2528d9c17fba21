//! RFC 9457 problem details: every error on `/api` is one.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use portcullis_app::AppError;
use serde::Serialize;
use utoipa::ToSchema;

/// The media type of a problem document.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// A problem document (RFC 9457).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem; `about:blank` when the status says it all.
    #[serde(rename = "type")]
    pub kind: String,
    /// The status's reason phrase.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong, for a person.
    pub detail: String,
    /// Per field, what is wrong with it (422 only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<BTreeMap<String, Vec<String>>>,
    /// Seconds to wait (429 only; also in `Retry-After`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

impl Problem {
    /// A problem of `status` saying `detail`.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            kind: "about:blank".into(),
            title: status.canonical_reason().unwrap_or("Error").into(),
            status: status.as_u16(),
            detail: detail.into(),
            errors: None,
            retry_after: None,
        }
    }

    /// 401, with `WWW-Authenticate: Bearer`.
    pub fn unauthorized() -> Response {
        let mut r = Self::new(
            StatusCode::UNAUTHORIZED,
            "A valid personal access token is required: send Authorization: Bearer <token>.",
        )
        .into_response();
        r.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"portcullis\""));
        r
    }

    /// 429 with `Retry-After`.
    pub fn too_many(wait: u64) -> Response {
        let mut p =
            Self::new(StatusCode::TOO_MANY_REQUESTS, format!("Too many requests. Try again in {wait} seconds."));
        p.retry_after = Some(wait);
        let mut r = p.into_response();
        if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
            r.headers_mut().insert(RETRY_AFTER, v);
        }
        r
    }

    /// 422 listing each field's problems.
    pub fn invalid(errors: &portcullis_app::FieldErrors) -> Self {
        let mut p = Self::new(StatusCode::UNPROCESSABLE_ENTITY, "The request's fields are not valid.");
        let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (field, message) in &errors.0 {
            map.entry((*field).to_owned()).or_default().push(message.clone());
        }
        p.errors = Some(map);
        p
    }
}

/// Refusals travel boxed: a problem is larger than a `Result` should carry.
impl IntoResponse for Box<Problem> {
    fn into_response(self) -> Response {
        (*self).into_response()
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut r = Response::new(Body::from(body));
        *r.status_mut() = status;
        r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        r
    }
}

/// A use case's error as a problem.
pub fn from_app(e: AppError) -> Response {
    match e {
        AppError::NotFound => Problem::new(StatusCode::NOT_FOUND, "No such resource.").into_response(),
        AppError::Forbidden(m) => Problem::new(StatusCode::FORBIDDEN, m).into_response(),
        AppError::Refused(m) => Problem::new(StatusCode::FORBIDDEN, m).into_response(),
        AppError::Invalid(f) => Problem::invalid(&f).into_response(),
        AppError::TooMany { retry_after } => Problem::too_many(retry_after),
        AppError::SentRecently => Problem::too_many(3600),
        AppError::Busy => {
            let mut r = Problem::new(StatusCode::SERVICE_UNAVAILABLE, "Busy; try again shortly.").into_response();
            r.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("2"));
            r
        }
        AppError::Token(p) => Problem::new(StatusCode::BAD_REQUEST, p.to_string()).into_response(),
        e @ (AppError::InvalidCredentials | AppError::Locked | AppError::AdminLocked) => {
            Problem::new(StatusCode::FORBIDDEN, e.to_string()).into_response()
        }
        AppError::Store(s) => internal(&s.to_string()),
        AppError::Internal(s) => internal(&s),
    }
}

fn internal(detail: &str) -> Response {
    tracing::error!(error = %detail, "API request failed");
    Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong on our side.").into_response()
}

/// Whether `res` is a problem document already.
fn is_problem(res: &Response) -> bool {
    res.headers().get(CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()))
}

/// Any error answer on `/api` that is not a problem document yet (an axum
/// rejection, a 405, a timeout) becomes one, its text as the detail; every
/// answer is marked not to be cached.
pub async fn finish(res: Response) -> Response {
    let mut res = if (res.status().is_client_error() || res.status().is_server_error()) && !is_problem(&res) {
        let status = res.status();
        let (mut parts, body) = res.into_parts();
        let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
        let text = String::from_utf8_lossy(&text).trim().to_owned();
        let detail = if text.is_empty() {
            match status {
                StatusCode::METHOD_NOT_ALLOWED => "This method is not allowed on this resource.".to_owned(),
                StatusCode::NOT_FOUND => "No such resource.".to_owned(),
                _ => status.canonical_reason().unwrap_or("Error").to_owned(),
            }
        } else {
            text
        };
        let problem = Problem::new(status, detail).into_response();
        parts.headers.remove(CONTENT_LENGTH);
        parts.headers.insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        Response::from_parts(parts, problem.into_body())
    } else {
        res
    };
    res.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}
