//! Templates: embedded in the binary; in debug builds read from `templates/`
//! on disk when it is there, so a page can be edited without a rebuild.

use axum::http::{HeaderValue, StatusCode, header::CONTENT_TYPE};
use axum::response::{Html, IntoResponse, Response};
use minijinja::{Environment, Value, context};

use crate::context::RequestCtx;

/// Marks a response whose body is already a page of ours.
#[derive(Clone, Copy, Debug)]
pub struct Rendered;

/// The compiled templates.
pub struct Templates {
    env: Environment<'static>,
}

/// `1700000000000` → `2023-11-14 22:13 UTC`.
fn datetime(ms: i64) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_default()
}

/// `1700000000000` → `2023-11-14T22:13:20Z`, for `<time datetime>`.
fn iso(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

/// The first `n` characters of `text`, cut at a word boundary, with an ellipsis.
fn excerpt(text: &str, n: usize) -> String {
    // The byte offset of character `n`; none when the text is no longer.
    let Some((end, _)) = text.char_indices().nth(n) else {
        return text.to_owned();
    };
    let cut = &text[..end];
    let cut = match cut.rfind(char::is_whitespace) {
        Some(i) if i > n / 2 => &cut[..i],
        _ => cut,
    };
    format!("{}…", cut.trim_end())
}

/// The template environment: embedded templates, or in debug builds the
/// `templates/` folder when it is there; our filters.
pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../templates");
    if cfg!(debug_assertions) && std::path::Path::new(dir).is_dir() {
        env.set_loader(minijinja::path_loader(dir));
    } else {
        minijinja_embed::load_templates!(&mut env);
    }
    env.add_filter("datetime", datetime);
    env.add_filter("iso", iso);
    env.add_filter("excerpt", excerpt);
    env
}

impl Templates {
    /// Loads and checks every template.
    pub fn load() -> Result<Self, minijinja::Error> {
        let env = environment();
        // Fail at start-up, not on the first visitor.
        for name in ["base.html", "home.html", "login.html", "register.html", "dashboard.html", "error.html"] {
            env.get_template(name)?;
        }
        Ok(Self { env })
    }

    /// Renders `name` with the request's context (user, CSRF token, flashes) and `extra`.
    pub fn render(&self, ctx: &RequestCtx, name: &str, extra: Value) -> Response {
        self.render_status(ctx, StatusCode::OK, name, extra)
    }

    /// As [`Templates::render`], with a status.
    pub fn render_status(&self, ctx: &RequestCtx, status: StatusCode, name: &str, extra: Value) -> Response {
        let base = context! {
            current_user => ctx.auth.as_ref().map(|a| context! {
                id => a.user.id,
                username => a.user.username.clone(),
                email => a.user.email.clone(),
                is_admin => a.user.is_admin,
                email_verified => a.user.email_verified,
            }),
            csrf_token => ctx.csrf_token.clone(),
            flashes => ctx.flashes.iter().map(|f| context! { category => f.category.clone(), message => f.message.clone() }).collect::<Vec<_>>(),
            request_path => ctx.path_and_query.clone(),
        };
        let merged = context! { ..extra, ..base };
        match self.env.get_template(name).and_then(|t| t.render(merged)) {
            Ok(html) => {
                let mut r = (status, Html(html)).into_response();
                r.extensions_mut().insert(Rendered);
                r
            }
            Err(e) => {
                tracing::error!(template = name, error = %e, "template failed");
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
        let extra = context! {
            status => status.as_u16(),
            title => title,
            message => message.unwrap_or(default_msg),
        };
        let ctx = RequestCtx { flashes: Vec::new(), ..ctx.clone() };
        let mut r = self.render_status(&ctx, status, "error.html", extra);
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
        r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
        r.extensions_mut().insert(Rendered);
        r
    }
}

#[cfg(test)]
mod tests {
    use super::excerpt;

    #[test]
    fn excerpts_cut_at_a_word_within_the_limit() {
        assert_eq!(excerpt("short text", 240), "short text");
        assert_eq!(excerpt("exactly10!", 10), "exactly10!");
        assert_eq!(excerpt("one two three four", 12), "one two…");
        // No space in the second half: cut mid-word rather than lose most of it.
        assert_eq!(excerpt("a verylongwordindeed", 10), "a verylong…");
        // Characters, not bytes: never splits a multi-byte character.
        assert_eq!(excerpt("ééééé ééééé", 8), "ééééé…");
        assert_eq!(excerpt("ééé", 3), "ééé");
    }
}
