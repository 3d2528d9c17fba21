//! The URLs of the outside services some tests need (PostgreSQL, Redis).
//! Without one, such a test is built ignored (`build_support/services.rs`
//! sets the cfg each names), so `cargo test` counts it as ignored and says
//! which variable to set; run anyway (`--ignored`), it skips, saying so on
//! stderr. When `PORTCULLIS_TEST_REQUIRE_SERVICES` is set, as CI sets it,
//! a missing URL fails the test instead, so that a run meant to test a
//! backend cannot pass having tested nothing.
//!
//! Shared by every test binary of the workspace that needs a service (each
//! includes this file with `#[path]`), so that all of them read the same
//! variables the same way.

/// Set to anything but empty or `0`, a missing service URL fails the test.
const REQUIRE_VAR: &str = "PORTCULLIS_TEST_REQUIRE_SERVICES";
/// The PostgreSQL server to test against.
pub const POSTGRES_URL_VAR: &str = "PORTCULLIS_TEST_POSTGRES_URL";
/// The Redis server to test against.
pub const REDIS_URL_VAR: &str = "PORTCULLIS_TEST_REDIS_URL";

/// The PostgreSQL URL, or `None` when the test is to be skipped.
pub fn postgres_url() -> Option<String> {
    url(POSTGRES_URL_VAR, "postgres://postgres@127.0.0.1:5432/test")
}

/// The Redis URL, or `None` when the test is to be skipped.
pub fn redis_url() -> Option<String> {
    url(REDIS_URL_VAR, "redis://127.0.0.1:6379")
}

fn url(var: &str, example: &str) -> Option<String> {
    if let Some(url) = std::env::var(var).ok().filter(|u| !u.is_empty()) {
        return Some(url);
    }
    let required = std::env::var(REQUIRE_VAR).is_ok_and(|v| !v.is_empty() && v != "0");
    assert!(!required, "{var} is not set, but {REQUIRE_VAR} requires this test to run (set {var}={example})");
    eprintln!("skipped: set {var} (e.g. {var}={example}) to run this test");
    None
}
