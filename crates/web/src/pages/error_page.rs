//! The site's error page.

use askama::Template;

use crate::context::RequestCtx;

/// The site's error page.
#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage<'a> {
    /// The request.
    pub ctx: &'a RequestCtx,
    /// HTTP status.
    pub status: u16,
    /// Headline.
    pub title: &'a str,
    /// What happened.
    pub message: &'a str,
}
