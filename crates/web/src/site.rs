//! The whole site as one service: a maker that gives each connection its
//! own [`Site`], which knows the peer's address, runs the request context
//! (`crate::context`) and then the routes. The binary's accept loop asks
//! for one per connection ([`MakeSite::for_peer`]); the maker is also the
//! shape `axum::serve` takes.
//!
//! Written out rather than assembled from `from_fn` and `Router` layers:
//! each of those boxes the request's future once more and moves the request
//! again, and the peer's address would travel as a request extension. On a
//! page served from the cache that bookkeeping cost more than the page.

use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::net::IpAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, HttpBody as _};
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::header::ACCEPT_ENCODING;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse as _, Response};
use axum::serve::IncomingStream;
use tokio::net::TcpListener;
use tower::{Layer as _, Service, ServiceBuilder, ServiceExt as _, service_fn};
use tower_http::compression::predicate::{NotForContentType, Predicate as _, SizeAbove};
use tower_http::compression::{CompressionLayer, CompressionLevel};

use crate::state::AppState;

/// Responses larger than this are gzipped, at the fastest level (nginx's
/// default). A smaller one fits in TCP's first flight (ten segments, about
/// 14 KB with the headers), so it arrives no sooner compressed, while
/// setting up a compressor costs many times what rendering the page does.
pub const COMPRESS_ABOVE: u16 = 12 * 1024;

/// Whether `res` is large enough to be worth compressing (a body of unknown
/// length may be).
pub fn worth_compressing(res: &Response) -> bool {
    res.body().size_hint().exact().is_none_or(|n| n >= u64::from(COMPRESS_ABOVE))
}

/// `res` gzipped if the client accepts it (`accept` is the request's
/// `Accept-Encoding`), with `Vary` set. Called only for the few responses
/// [`worth_compressing`]: a compression layer around every route would wrap
/// and box every response's body, the small pages' too.
pub async fn compress(res: Response, accept: Option<HeaderValue>) -> Response {
    let mut req = Request::new(());
    if let Some(v) = accept {
        req.headers_mut().insert(ACCEPT_ENCODING, v);
    }
    let mut made = Some(res);
    let answer = service_fn(move |_: Request<()>| {
        ready(Ok::<_, Infallible>(made.take().unwrap_or_else(|| StatusCode::INTERNAL_SERVER_ERROR.into_response())))
    });
    let gzip = CompressionLayer::new()
        .quality(CompressionLevel::Fastest)
        .compress_when(SizeAbove::new(COMPRESS_ABOVE).and(NotForContentType::IMAGES))
        .layer(answer);
    let Ok(res) = gzip.oneshot(req).await;
    res.map(Body::new)
}

/// The routes behind the request context, with the body limit for the
/// extractors. Compression and the answer to a handler that panics are the
/// request context's (`crate::context`).
fn routes(
    state: AppState,
) -> impl Service<Request, Response = Response, Error = Infallible, Future: Send> + Clone + Send + 'static {
    ServiceBuilder::new().layer(DefaultBodyLimit::max(state.config.body_limit)).service(crate::routes::router(state))
}

/// Every page and form of the site, for the accept loop or `axum::serve`.
pub fn site(
    state: AppState,
) -> MakeSite<impl Service<Request, Response = Response, Error = Infallible, Future: Send> + Clone + Send + 'static> {
    let routes = routes(state.clone());
    MakeSite { state, routes }
}

/// Makes one [`Site`] per accepted connection.
#[derive(Clone)]
pub struct MakeSite<S> {
    state: AppState,
    routes: S,
}

impl<S: Clone> MakeSite<S> {
    /// The site for a connection from `peer`.
    pub fn for_peer(&self, peer: IpAddr) -> Site<S> {
        Site { state: self.state.clone(), routes: self.routes.clone(), peer: Some(peer) }
    }
}

impl<S: Clone> Service<IncomingStream<'_, TcpListener>> for MakeSite<S> {
    type Response = Site<S>;
    type Error = Infallible;
    type Future = Ready<Result<Site<S>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, stream: IncomingStream<'_, TcpListener>) -> Self::Future {
        let peer = Some(stream.remote_addr().ip());
        ready(Ok(Site { state: self.state.clone(), routes: self.routes.clone(), peer }))
    }
}

/// The site as one connection sees it.
#[derive(Clone)]
pub struct Site<S> {
    state: AppState,
    routes: S,
    peer: Option<IpAddr>,
}

impl<S> Service<Request> for Site<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        self.serve(req)
    }
}

impl<S> Site<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    /// Answers `req`: the service's call through a shared reference, so
    /// that a connection's server need not clone the site for each request.
    pub fn serve(&self, req: Request) -> Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>> {
        Box::pin(crate::context::request_context(self.state.clone(), self.peer, req, self.routes.clone()))
    }
}
