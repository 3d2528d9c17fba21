//! Portcullis over HTTP: the router, the request context (session, CSRF,
//! flash), extractors that decide who may enter, templates and error pages.
//! It never writes SQL and never hashes a password: it calls `portcullis-app`.

pub mod api;
pub mod context;
pub mod cookies;
pub mod csrf;
pub mod device;
pub mod error;
pub mod extract;
pub mod headers;
pub mod mail;
pub mod metrics;
pub mod pages;
pub mod routes;
pub mod site;
pub mod state;
pub mod templates;
pub mod trace;

pub use error::WebError;
pub use site::site;
pub use state::{AppState, WebConfig};
