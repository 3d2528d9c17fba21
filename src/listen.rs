//! The accept loop: each connection served by hyper's HTTP/1.1 connection
//! with the site's peer-aware service, within the limits a slow or greedy
//! client must not get around.
//!
//! - A request's headers must arrive within `PORTCULLIS_HEADER_TIMEOUT`, and
//!   a kept-alive connection must start its next request within it too (the
//!   same timer runs while hyper waits for a request head), so an idle
//!   connection does not keep its slot.
//! - At most `PORTCULLIS_MAX_CONNECTIONS` connections are open; one more is
//!   accepted and closed at once, without an answer: refusing must cost less
//!   than serving, and writing a 503 to a client that may not read it would
//!   not.
//! - On shutdown no connection is accepted any more, idle ones are closed and
//!   requests in flight finish.
//!
//! HTTP/1.1 only: browsers speak HTTP/2 over TLS, which the proxy in front
//! ends; a connection of cleartext HTTP/2 would have no timer for its idle
//! time.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use portcullis_web::AppState;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// How often at most the refusal of connections over the limit is logged.
const REFUSALS_LOGGED_EVERY: Duration = Duration::from_secs(60);

/// Serves `listener` until `shutdown` completes, then waits for the
/// requests in flight.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(state.config.header_timeout).keep_alive(true);
    let slots = Arc::new(Semaphore::new(state.config.max_connections));
    let max_connections = state.config.max_connections;
    let make = portcullis_web::site(state);
    let graceful = GracefulShutdown::new();
    let mut last_refusal_logged: Option<Instant> = None;
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // Out of file descriptors, most likely: retrying at once
                // would spin; some connection will end meanwhile.
                tracing::error!(error = %e, "cannot accept connections");
                tokio::select! {
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            drop(stream);
            if last_refusal_logged.is_none_or(|at| at.elapsed() >= REFUSALS_LOGGED_EVERY) {
                last_refusal_logged = Some(Instant::now());
                tracing::warn!(max_connections, "connections over PORTCULLIS_MAX_CONNECTIONS are being refused");
            }
            continue;
        };
        let site = make.for_peer(peer.ip());
        let service = hyper::service::service_fn(move |req: Request<Incoming>| site.serve(req.map(Body::new)));
        let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            // An error here is the client's doing (gone, too slow, not
            // HTTP): nothing for the logs.
            let _ = conn.await;
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Errors of one connection that was never ours, not of the listener.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}
