//! Security headers on every response.
//!
//! The pages and redirects of our handlers start from a copy of a map that
//! already holds them ([`response_headers`]): copying a ready map costs a
//! fraction of inserting each header, which hashes its name, on every
//! response. Answers made elsewhere (axum's, the health checks') get them
//! added at the end ([`complete`]).

use std::sync::LazyLock;

use axum::http::header::{
    CONTENT_SECURITY_POLICY, REFERRER_POLICY, STRICT_TRANSPORT_SECURITY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderName, HeaderValue};

/// No inline script or style anywhere, no framing, nothing from other origins.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

const CROSS_ORIGIN_OPENER_POLICY: HeaderName = HeaderName::from_static("cross-origin-opener-policy");
const PERMISSIONS_POLICY: HeaderName = HeaderName::from_static("permissions-policy");

/// Headers a response has room for from the start: every one it will
/// carry (the security headers, cookies, length, date…), so that none of
/// them makes the map grow.
const RESPONSE_HEADERS: usize = 16;

/// The security headers that do not depend on the configuration, with room
/// for the rest of a response's headers.
static SECURITY_HEADERS: LazyLock<HeaderMap> = LazyLock::new(|| {
    let mut h = HeaderMap::with_capacity(RESPONSE_HEADERS);
    add_security_headers(&mut h);
    h
});

fn add_security_headers(h: &mut HeaderMap) {
    h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(CROSS_ORIGIN_OPENER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(
        PERMISSIONS_POLICY,
        HeaderValue::from_static("camera=(), microphone=(), geolocation=(), interest-cohort=()"),
    );
    if !h.contains_key(REFERRER_POLICY) {
        h.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    }
}

/// The headers a new response starts with: the security headers (a handler
/// may set a stricter `Referrer-Policy` over them). The copy's index has
/// room for the rest; its list of entries grows once, at the first header
/// added.
pub fn response_headers() -> HeaderMap {
    SECURITY_HEADERS.clone()
}

/// Completes a response's headers as it leaves: the security headers if it
/// did not start with them, and HSTS when the site is served over https.
pub fn complete(h: &mut HeaderMap, https: bool) {
    if !h.contains_key(CONTENT_SECURITY_POLICY) {
        h.reserve(RESPONSE_HEADERS);
        add_security_headers(h);
    }
    if https {
        h.insert(STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=63072000; includeSubDomains"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_answer_leaves_with_the_headers_once() {
        let mut made_here = response_headers();
        made_here.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
        let mut made_elsewhere = HeaderMap::new();
        for https in [false, true] {
            for h in [&mut made_here.clone(), &mut made_elsewhere.clone()] {
                complete(h, https);
                for name in [CONTENT_SECURITY_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS, PERMISSIONS_POLICY] {
                    assert_eq!(h.get_all(&name).iter().count(), 1, "{name}");
                }
                assert_eq!(h.contains_key(STRICT_TRANSPORT_SECURITY), https);
            }
        }
        complete(&mut made_here, false);
        assert_eq!(made_here.get(REFERRER_POLICY).map(HeaderValue::as_bytes), Some(&b"no-referrer"[..]), "kept");
        complete(&mut made_elsewhere, false);
        assert_eq!(made_elsewhere.get(REFERRER_POLICY).map(HeaderValue::as_bytes), Some(&b"same-origin"[..]));
    }
}
