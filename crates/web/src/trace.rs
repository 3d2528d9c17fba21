//! What every request carries for the logs: an id, named on every line it
//! causes, a line when it fails, and a time limit.
//!
//! These run inside the request-context middleware rather than as layers of
//! their own: each layer moves the request and the response once more and
//! adds a future to poll, which on a page served from the cache costs more
//! than the work itself.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

/// The header that carries the request id, in and out.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Request ids for requests that come without one: a random prefix per
/// process and a counter. Unique across nodes and restarts like a random
/// UUID, without asking the kernel for randomness on every request.
pub struct RequestIds {
    prefix: String,
    next: AtomicU64,
}

impl Default for RequestIds {
    fn default() -> Self {
        Self { prefix: portcullis_app::tokens::random_b64(12), next: AtomicU64::new(1) }
    }
}

impl RequestIds {
    /// The id a proxy gave the request (`X-Request-Id`), else a new one.
    pub fn for_request(&self, incoming: Option<&HeaderValue>) -> HeaderValue {
        if let Some(id) = incoming {
            return id.clone();
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let mut id = String::with_capacity(self.prefix.len() + 17);
        id.push_str(&self.prefix);
        id.push('-');
        // The counter in lower-case hex, without the formatting machinery.
        let digits = (16 - n.leading_zeros() / 4).max(1);
        for i in (0..digits).rev() {
            id.push(char::from(b"0123456789abcdef"[((n >> (4 * i)) & 0xf) as usize]));
        }
        // Base64url and hex digits: always a valid header value.
        HeaderValue::try_from(id).unwrap_or(HeaderValue::from_static("-"))
    }
}

/// The path as logs may show it: the secret half of a link's token is cut.
pub fn loggable_path(path: &str) -> std::borrow::Cow<'_, str> {
    for prefix in ["/verify-email/", "/reset-password/"] {
        if let Some(token) = path.strip_prefix(prefix) {
            let id = token.split('.').next().unwrap_or("");
            return format!("{prefix}{id}.…").into();
        }
    }
    path.into()
}

tokio::task_local! {
    /// The id of the request the task is serving.
    static SERVING: HeaderValue;
}

/// Runs `fut` as the request `id`: the log formatter (`portcullis::logs`)
/// adds the id to every line written while it runs.
///
/// A task-local rather than a `tracing` span: the subscriber registers a
/// span and formats its fields when it opens, on every request, whether or
/// not a line is ever written in it; a task-local costs a swap per poll,
/// and the id is only read for a line that is written.
pub fn serving<F: Future>(id: HeaderValue, fut: F) -> impl Future<Output = F::Output> {
    SERVING.scope(id, fut)
}

/// The id of the request this task is serving, if it is serving one.
pub fn request_id() -> Option<HeaderValue> {
    SERVING.try_with(HeaderValue::clone).ok()
}

/// Logs the end of a request (with its id): server errors as errors, except
/// the 503s that refuse logins while the hashing pool is full, which are
/// expected under load and answered with `Retry-After`; one line each would
/// cost more than the answer.
pub fn finished(method: &Method, path: &str, status: StatusCode, started: Instant) {
    // Field values are only computed when the line is written.
    let latency_ms = || started.elapsed().as_millis();
    if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
        tracing::error!(%method, path = %loggable_path(path), status = status.as_u16(), latency_ms = latency_ms(), "response failed");
    } else {
        tracing::debug!(%method, path = %loggable_path(path), status = status.as_u16(), latency_ms = latency_ms(), "finished processing request");
    }
}

/// Runs `handler`, answering 408 Request Timeout if it is not done `limit`
/// after `started`. The handler is pinned by the caller, so that it is not
/// moved into this function's future.
pub async fn bounded<F: Future<Output = Response>>(
    started: Instant,
    limit: Duration,
    handler: Pin<&mut F>,
) -> Response {
    within(started, limit, handler).await.unwrap_or_else(|| StatusCode::REQUEST_TIMEOUT.into_response())
}

/// Runs `work`, or gives `None` if it is not done `limit` after `started`.
/// Most work is done at its first poll (the session and the posts come
/// from the cache, the body is already in), so the timer is only set for
/// work that has to wait.
pub async fn within<F: Future>(started: Instant, limit: Duration, mut work: Pin<&mut F>) -> Option<F::Output> {
    if let Poll::Ready(out) = std::future::poll_fn(|cx| Poll::Ready(work.as_mut().poll(cx))).await {
        return Some(out);
    }
    let deadline = tokio::time::Instant::from_std(started) + limit;
    tokio::time::timeout_at(deadline, work).await.ok()
}

#[cfg(test)]
mod tests {
    use std::pin::pin;

    use super::*;

    #[test]
    fn ids_are_kept_or_made_unique() {
        let ids = RequestIds::default();
        let (a, b) = (ids.for_request(None), ids.for_request(None));
        assert_ne!(a, b);
        let (a, b) = (a.to_str().expect("ascii"), b.to_str().expect("ascii"));
        assert!(a.ends_with("-1") && b.ends_with("-2"), "{a} {b}");
        assert_eq!(a.split('-').next(), b.split('-').next(), "one prefix per process");
        let other = RequestIds::default().for_request(None);
        assert_ne!(other.to_str().expect("ascii").split('-').next(), a.split('-').next(), "prefixes differ");
        for (n, hex) in [(0x10, "-10"), (0xa0f, "-a0f"), (u64::MAX, "-ffffffffffffffff")] {
            ids.next.store(n, Ordering::Relaxed);
            let id = ids.for_request(None);
            assert!(id.to_str().expect("ascii").ends_with(hex), "{id:?} for {n:x}");
        }
        let proxy = HeaderValue::from_static("nginx-abc123");
        assert_eq!(ids.for_request(Some(&proxy)), proxy);
    }

    #[tokio::test]
    async fn the_id_is_known_while_the_request_is_served_and_only_then() {
        assert_eq!(request_id(), None);
        let id = HeaderValue::from_static("abc-7");
        let seen = serving(id.clone(), async {
            tokio::task::yield_now().await;
            request_id()
        })
        .await;
        assert_eq!(seen, Some(id));
        assert_eq!(request_id(), None);
        // Another task started meanwhile is not the request's.
        let other = serving(HeaderValue::from_static("x-1"), async { tokio::spawn(async { request_id() }).await })
            .await
            .expect("task");
        assert_eq!(other, None);
    }

    #[test]
    fn link_secrets_stay_out_of_logs() {
        assert_eq!(loggable_path("/reset-password/12.s3cret"), "/reset-password/12.…");
        assert_eq!(loggable_path("/verify-email/7.s3cret"), "/verify-email/7.…");
        assert_eq!(loggable_path("/posts/3"), "/posts/3");
    }

    #[tokio::test(start_paused = true)]
    async fn handlers_that_take_too_long_get_408() {
        let started = Instant::now();
        let quick = bounded(started, Duration::from_secs(1), pin!(async { StatusCode::OK.into_response() })).await;
        assert_eq!(quick.status(), StatusCode::OK);
        let waits = bounded(
            started,
            Duration::from_secs(5),
            pin!(async {
                tokio::time::sleep(Duration::from_secs(2)).await;
                StatusCode::CREATED.into_response()
            }),
        )
        .await;
        assert_eq!(waits.status(), StatusCode::CREATED);
        let slow = bounded(
            Instant::now(),
            Duration::from_secs(1),
            pin!(async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                StatusCode::OK.into_response()
            }),
        )
        .await;
        assert_eq!(slow.status(), StatusCode::REQUEST_TIMEOUT);
    }
}
