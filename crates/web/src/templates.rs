//! Rendering pages into responses. The pages themselves are the askama
//! templates of [`crate::pages`], compiled into the binary.

use askama::Template;
use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header::CONTENT_TYPE};
use axum::response::{IntoResponse, Response};

use crate::context::RequestCtx;
use crate::pages::ErrorPage;

/// A response with `status` and `body` that starts with the security
/// headers and has room for the rest.
pub fn response(status: StatusCode, body: Body) -> Response {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    *r.headers_mut() = crate::headers::response_headers();
    r
}

const HTML: &str = "text/html; charset=utf-8";

/// What a page is written into at first: the larger pages (the dashboard,
/// the login form) fit.
const PAGE_ROOM: usize = 4 * 1024;

/// Marks an error response whose body is already a page of ours.
#[derive(Clone, Copy, Debug)]
pub struct Rendered;

/// Renders pages; has no state of its own, since every template is compiled in.
#[derive(Clone, Copy, Debug, Default)]
pub struct Templates;

impl Templates {
    /// `page` as a 200 response.
    pub fn render(&self, page: &impl Template) -> Response {
        self.render_status(StatusCode::OK, page)
    }

    /// `page` as a response with `status`.
    pub fn render_status<T: Template>(&self, status: StatusCode, page: &T) -> Response {
        // Room for the whole page at once: askama's own estimate counts the
        // template's text, not what the values and the base layout add, and
        // the page would grow, and be copied, while it is written.
        let mut html = String::with_capacity(PAGE_ROOM.max(T::SIZE_HINT));
        match page.render_into(&mut html) {
            Ok(()) => {
                let mut r = response(status, Body::from(html));
                r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(HTML));
                // Only error responses are looked at for the mark.
                if status.is_client_error() || status.is_server_error() {
                    r.extensions_mut().insert(Rendered);
                }
                r
            }
            Err(e) => {
                tracing::error!(error = %e, "template failed");
                self.fallback(StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }

    /// The site's error page for `status`.
    pub fn error_page(&self, ctx: &RequestCtx, status: StatusCode, message: Option<&str>) -> Response {
        let (title, default_msg) = match status.as_u16() {
            400 => ("Bad request", "The request could not be understood."),
            401 => ("Sign-in required", "Please sign in to continue."),
            403 => ("Forbidden", "You are not allowed to do that."),
            404 => ("Page not found", "There is nothing at this address."),
            405 => ("Method not allowed", "This page does not accept that kind of request."),
            408 => ("Request timeout", "The request took too long."),
            413 => ("Request too large", "What you sent is larger than this site accepts."),
            415 => ("Unsupported content", "This page does not accept that kind of content."),
            422 => ("Invalid form", "The form was incomplete or malformed."),
            429 => ("Too many requests", "Slow down a little and try again in a minute."),
            503 => ("Service unavailable", "The site is busy. Please try again shortly."),
            _ if status.is_server_error() => {
                ("Something went wrong", "An unexpected error occurred. It has been logged; please try again.")
            }
            _ => ("Error", "The request could not be completed."),
        };
        let ctx = RequestCtx { flashes: Vec::new(), ..ctx.clone() };
        let page = ErrorPage { ctx: &ctx, status: status.as_u16(), title, message: message.unwrap_or(default_msg) };
        let mut r = self.render_status(status, &page);
        if r.status() != status {
            r = self.fallback(status);
        }
        r
    }

    /// A bare page for when templates themselves fail.
    fn fallback(&self, status: StatusCode) -> Response {
        let body = format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{0}</title>\
             <link rel=\"stylesheet\" href=\"/static/app.css\"></head><body><main class=\"container\">\
             <h1>{0}</h1><p><a href=\"/\">Home</a></p></main></body></html>",
            status
        );
        let mut r = (status, body).into_response();
        r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(HTML));
        r.extensions_mut().insert(Rendered);
        r
    }
}
