//! `/api/docs`: the OpenAPI document as a server-rendered page (no script,
//! nothing from elsewhere, under the site's strict CSP).

use std::fmt::Write as _;

use axum::response::{Html, IntoResponse, Response};
use utoipa::OpenApi as _;

use super::ApiDoc;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The rendered page, made once.
static PAGE: std::sync::LazyLock<String> = std::sync::LazyLock::new(render);

fn render() -> String {
    let doc = ApiDoc::openapi();
    let mut out = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Portcullis API</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <link rel=\"stylesheet\" href=\"/static/app.css\"></head><body><main class=\"container\">\
         <h1>Portcullis API</h1><p>Send a personal access token from <a href=\"/account/tokens\">your tokens page</a> \
         as <code>Authorization: Bearer pcat_…</code>. Errors are <code>application/problem+json</code>. \
         The machine-readable description is <a href=\"/api/openapi.json\">/api/openapi.json</a> (OpenAPI 3.1).</p>",
    );
    for (path, item) in &doc.paths.paths {
        let ops = [
            ("GET", &item.get),
            ("POST", &item.post),
            ("PATCH", &item.patch),
            ("PUT", &item.put),
            ("DELETE", &item.delete),
        ];
        for (method, op) in ops {
            let Some(op) = op else { continue };
            let _ = write!(out, "<section class=\"operation\"><h2><code>{method} {}</code></h2>", esc(path));
            if let Some(s) = op.summary.as_deref().or(op.description.as_deref()) {
                let _ = write!(out, "<p>{}</p>", esc(s));
            }
            if let Some(params) = &op.parameters
                && !params.is_empty()
            {
                out.push_str("<h3>Parameters</h3><ul>");
                for p in params {
                    let _ = write!(
                        out,
                        "<li><code>{}</code> {}</li>",
                        esc(&p.name),
                        esc(p.description.as_deref().unwrap_or(""))
                    );
                }
                out.push_str("</ul>");
            }
            out.push_str("<h3>Responses</h3><ul>");
            for code in op.responses.responses.keys() {
                let _ = write!(out, "<li><code>{}</code></li>", esc(code));
            }
            out.push_str("</ul></section>");
        }
    }
    out.push_str("</main></body></html>");
    out
}

/// The API's documentation page.
pub async fn get_docs() -> Response {
    Html(PAGE.as_str()).into_response()
}
