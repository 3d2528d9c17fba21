//! CSRF protection: the tokens and the rule every state-changing request
//! passes.
//!
//! Tokens are bound to the session (or, for anonymous visitors, to the
//! random secret in their cookie): a token is an HMAC of its binding under
//! the site's key, so nobody without the key can make one for a binding. Each
//! page gets a freshly masked copy, so the token in a compressed page never
//! repeats (BREACH).
//!
//! The rule ([`verify`]): a request whose method [`applies_to`] the check
//! must not come from another site ([`cross_site`]) and must carry a token
//! ([`take_token`]) minted for its binding ([`check`]).

use axum::body::{Body, to_bytes};
use axum::extract::Request;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST, ORIGIN};
use axum::http::{HeaderMap, Method};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use subtle::ConstantTimeEq;
use url::Url;

use crate::cookies::Signer;
use crate::error::WebError;

const PURPOSE: &str = "csrf";

/// What a form's token is bound to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binding<'a> {
    /// A signed-in session, by its id.
    Session(&'a str),
    /// An anonymous visitor, by the secret in their cookie.
    Anon(&'a str),
}

impl Binding<'_> {
    /// The unmasked token: the MAC of `session:<id>` or `anon:<secret>`.
    fn mac(self, signer: &Signer) -> [u8; 32] {
        match self {
            Binding::Session(id) => signer.mac_parts(PURPOSE, &[b"session:", id.as_bytes()]),
            Binding::Anon(secret) => signer.mac_parts(PURPOSE, &[b"anon:", secret.as_bytes()]),
        }
    }
}

/// A token for forms bound to `binding`.
pub fn mint(signer: &Signer, binding: Binding<'_>) -> String {
    let raw = binding.mac(signer);
    let mut mask = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut mask);
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&mask);
    out.extend(mask.iter().zip(raw.iter()).map(|(m, r)| m ^ r));
    URL_SAFE_NO_PAD.encode(out)
}

/// Whether `token` was minted for `binding` under this key, compared in
/// constant time.
pub fn check(signer: &Signer, binding: Binding<'_>, token: &str) -> bool {
    let Ok(bytes) = URL_SAFE_NO_PAD.decode(token.trim()) else {
        return false;
    };
    if bytes.len() != 64 {
        return false;
    }
    let (mask, masked) = bytes.split_at(32);
    let mut raw = [0u8; 32];
    for ((r, m), x) in raw.iter_mut().zip(mask).zip(masked) {
        *r = m ^ x;
    }
    raw.as_slice().ct_eq(binding.mac(signer).as_slice()).into()
}

/// Random bytes in an anonymous visitor's secret.
const ANON_SECRET_BYTES: usize = 24;
/// The secret's length in base64url.
const ANON_SECRET_LEN: usize = ANON_SECRET_BYTES / 3 * 4;

/// An anonymous visitor's secret, which their forms' tokens are bound to,
/// held inline: visitors without a cookie arrive on every page.
///
/// The cookie needs no signature of its own: a secret someone chose, or
/// planted in a browser, gets tokens only from pages served to that cookie.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnonSecret {
    text: [u8; ANON_SECRET_LEN],
    new: bool,
}

impl AnonSecret {
    /// The secret in the visitor's cookie, or a new one when there is none
    /// or its value does not have the shape of a secret.
    pub fn from_cookie(value: Option<&str>) -> Self {
        value.and_then(Self::parse).unwrap_or_else(Self::generate)
    }

    fn parse(value: &str) -> Option<Self> {
        let text: [u8; ANON_SECRET_LEN] = value.as_bytes().try_into().ok()?;
        let shaped = text.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_');
        shaped.then_some(Self { text, new: false })
    }

    /// 24 bytes from the thread's CSPRNG, in base64url: seeded from the OS,
    /// without a system call per visitor.
    fn generate() -> Self {
        let mut buf = [0u8; ANON_SECRET_BYTES];
        rand::thread_rng().fill_bytes(&mut buf);
        let mut text = [0u8; ANON_SECRET_LEN];
        let written = URL_SAFE_NO_PAD.encode_slice(buf, &mut text);
        debug_assert_eq!(written, Ok(ANON_SECRET_LEN));
        Self { text, new: true }
    }

    /// The secret as the cookie holds it.
    pub fn as_str(&self) -> &str {
        // Base64url or checked to be: always ASCII.
        std::str::from_utf8(&self.text).unwrap_or_default()
    }

    /// Whether it was made for this request: no page can have been served
    /// to it, and the answer must set its cookie.
    pub fn is_new(&self) -> bool {
        self.new
    }
}

/// Whether requests with `method` are checked: every method but the safe ones.
pub fn applies_to(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE)
}

/// Whether a browser marks the request as coming from another site than
/// `base_url`. `Sec-Fetch-Site` decides when the browser sends it (pages
/// can't forge it); it is the only signal on pages with
/// `Referrer-Policy: no-referrer`, where browsers send `Origin: null` for
/// same-origin forms. Older clients are judged by `Origin`: the site's own,
/// or the one a browser would send for the `Host` it talked to.
pub fn cross_site(headers: &HeaderMap, base_url: &Url) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return !matches!(site, "same-origin" | "none");
    }
    let Some(origin) = headers.get(ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    if origin == base_url.origin().ascii_serialization() {
        return false;
    }
    let host = headers.get(HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    let same_host = Url::parse(origin)
        .ok()
        .and_then(|u| {
            u.host_str().map(|h| match u.port() {
                Some(p) => format!("{h}:{p}"),
                None => h.to_owned(),
            })
        })
        .is_some_and(|h| !host.is_empty() && h.eq_ignore_ascii_case(host));
    !same_host
}

/// The request's token: the `X-CSRF-Token` header, else the `csrf_token`
/// field of a urlencoded form body of at most `limit` bytes. Gives back a
/// request whose body can be read again.
pub async fn take_token(req: Request, limit: usize) -> Result<(Request, Option<String>), WebError> {
    let header_token = req.headers().get("x-csrf-token").and_then(|v| v.to_str().ok()).map(str::to_owned);
    if let Some(t) = header_token {
        return Ok((req, Some(t)));
    }
    let is_form = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Ok((req, None));
    }
    let declared =
        req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(WebError::PayloadTooLarge);
    }
    let (parts, body) = req.into_parts();
    let bytes = to_bytes(body, limit).await.map_err(|_| WebError::PayloadTooLarge)?;
    let token = form_urlencoded::parse(&bytes).find(|(k, _)| k == "csrf_token").map(|(_, v)| v.into_owned());
    Ok((Request::from_parts(parts, Body::from(bytes)), token))
}

/// A request [`verify`] refused.
#[derive(Debug)]
pub struct Refused {
    /// [`WebError::Csrf`], or [`WebError::PayloadTooLarge`] for a form body
    /// over the limit.
    pub error: WebError,
    /// The request, unless its body was lost in the reading.
    pub request: Option<Request>,
}

/// The rule for a request the check [`applies_to`]: it must not come from
/// another site than `base_url`, and must carry a token minted for
/// `binding`. `binding` is `None` when no page can have been served to the
/// visitor (their secret was made just now), and then no token passes.
/// Gives back the request, whose body can be read again.
pub async fn verify(
    req: Request,
    signer: &Signer,
    binding: Option<Binding<'_>>,
    base_url: &Url,
    body_limit: usize,
) -> Result<Request, Refused> {
    if cross_site(req.headers(), base_url) {
        return Err(Refused { error: WebError::Csrf, request: Some(req) });
    }
    // Boxed: reading the body takes a future of nearly a kilobyte, and every
    // request, most of which read none, would carry its room.
    let (req, token) = Box::pin(take_token(req, body_limit)).await.map_err(|error| Refused { error, request: None })?;
    if binding.zip(token).is_some_and(|(b, t)| check(signer, b, &t)) {
        Ok(req)
    } else {
        Err(Refused { error: WebError::Csrf, request: Some(req) })
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn tokens_are_bound_masked_and_tamper_evident() {
        let s = Signer::new(b"secret");
        let one = Binding::Session("1");
        let a = mint(&s, one);
        let b = mint(&s, one);
        assert_ne!(a, b, "masked afresh each time");
        assert!(check(&s, one, &a) && check(&s, one, &b));
        assert!(!check(&s, Binding::Session("2"), &a), "foreign binding");
        assert!(!check(&s, Binding::Anon("1"), &a), "an anonymous secret equal to a session id");
        assert!(!check(&Signer::new(b"other"), one, &a), "other key");
        assert!(!check(&s, one, ""));
        assert!(!check(&s, one, "not base64!"));
        let mut bytes = URL_SAFE_NO_PAD.decode(&a).expect("b64");
        bytes[40] ^= 1;
        assert!(!check(&s, one, &URL_SAFE_NO_PAD.encode(&bytes)), "altered");
        bytes.truncate(63);
        assert!(!check(&s, one, &URL_SAFE_NO_PAD.encode(bytes)), "short");
    }

    #[test]
    fn the_mac_covers_the_binding_as_one_text() {
        // Tokens minted before bindings were passed in parts stay valid.
        let s = Signer::new(b"secret");
        assert_eq!(Binding::Session("Yk3l").mac(&s), s.mac(PURPOSE, b"session:Yk3l"));
        assert_eq!(Binding::Anon("q-9_").mac(&s), s.mac(PURPOSE, b"anon:q-9_"));
    }

    #[test]
    fn anonymous_secrets_are_kept_when_well_formed_and_made_otherwise() {
        let made = AnonSecret::from_cookie(None);
        assert!(made.is_new());
        assert_eq!(made.as_str().len(), 32);
        assert_eq!(URL_SAFE_NO_PAD.decode(made.as_str()).map(|b| b.len()), Ok(24));
        assert_ne!(AnonSecret::from_cookie(None).as_str(), made.as_str(), "random");
        let kept = AnonSecret::from_cookie(Some(made.as_str()));
        assert_eq!((kept.as_str(), kept.is_new()), (made.as_str(), false));
        let shaped = "abcdefghijklmnopqrstuvwxyz-_0123";
        assert_eq!(AnonSecret::from_cookie(Some(shaped)).as_str(), shaped);
        for bad in ["", "short", "abcdefghijklmnopqrstuvwxyz-_01234", "abcdefghijklmnopqrstuvwxyz-_01.3", "é"] {
            let replaced = AnonSecret::from_cookie(Some(bad));
            assert!(replaced.is_new() && replaced.as_str() != bad, "{bad:?}");
        }
    }

    #[test]
    fn only_unsafe_methods_are_checked() {
        for m in [Method::GET, Method::HEAD, Method::OPTIONS, Method::TRACE] {
            assert!(!applies_to(&m), "{m}");
        }
        for m in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE, Method::CONNECT] {
            assert!(applies_to(&m), "{m}");
        }
        assert!(applies_to(&Method::from_bytes(b"PURGE").expect("a method")));
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(*name, HeaderValue::from_static(value));
        }
        h
    }

    #[test]
    fn the_browser_s_word_on_the_site_decides_first() {
        let base = Url::parse("https://example.com").expect("url");
        for (site, cross) in [("same-origin", false), ("none", false), ("same-site", true), ("cross-site", true)] {
            assert_eq!(cross_site(&headers(&[("sec-fetch-site", site)]), &base), cross, "{site}");
            // It wins over whatever Origin says.
            let h = headers(&[("sec-fetch-site", site), ("origin", "null"), ("host", "example.com")]);
            assert_eq!(cross_site(&h, &base), cross, "{site} with Origin: null");
            let h = headers(&[("sec-fetch-site", site), ("origin", "https://evil.example")]);
            assert_eq!(cross_site(&h, &base), cross, "{site} with a foreign Origin");
        }
        assert!(cross_site(&headers(&[("sec-fetch-site", "something-else")]), &base));
    }

    #[test]
    fn without_sec_fetch_site_the_origin_decides() {
        let base = Url::parse("https://example.com").expect("url");
        assert!(!cross_site(&HeaderMap::new(), &base), "neither header: a client that is not a browser");
        assert!(!cross_site(&headers(&[("origin", "https://example.com")]), &base));
        assert!(cross_site(&headers(&[("origin", "https://evil.example")]), &base));
        assert!(cross_site(&headers(&[("origin", "http://example.com:8080")]), &base), "another port");
        assert!(cross_site(&headers(&[("origin", "null")]), &base));
        // The origin of the Host the browser talked to (a proxy's name for the site).
        let h = headers(&[("origin", "http://127.0.0.1:3000"), ("host", "127.0.0.1:3000")]);
        assert!(!cross_site(&h, &base));
        assert!(!cross_site(&headers(&[("origin", "http://Internal"), ("host", "internal")]), &base));
        assert!(cross_site(&headers(&[("origin", "http://127.0.0.1:3000"), ("host", "127.0.0.1")]), &base));
        assert!(cross_site(&headers(&[("origin", "http://a.test"), ("host", "b.test")]), &base));
        assert!(cross_site(&headers(&[("origin", "null"), ("host", "")]), &base));
    }

    const BASE: &str = "http://localhost:3000";
    const LIMIT: usize = 1024;

    fn post(headers: &[(&'static str, &'static str)], body: impl Into<Body>) -> Request {
        let mut req = Request::post("/account/email").body(body.into()).expect("request");
        for (name, value) in headers {
            req.headers_mut().append(*name, HeaderValue::from_static(value));
        }
        req
    }

    fn form(token: &str) -> Request {
        post(&[("content-type", "application/x-www-form-urlencoded")], format!("email=a%40b.c&csrf_token={token}"))
    }

    async fn run(req: Request, binding: Option<Binding<'_>>) -> Result<Request, Refused> {
        let base = Url::parse(BASE).expect("url");
        verify(req, &Signer::new(b"k"), binding, &base, LIMIT).await
    }

    fn refused_for_csrf(r: Result<Request, Refused>) -> bool {
        matches!(r, Err(Refused { error: WebError::Csrf, request: Some(_) }))
    }

    #[tokio::test]
    async fn a_token_for_the_binding_passes_from_a_header_or_the_form() {
        let signer = Signer::new(b"k");
        let me = Binding::Anon("abcdefghijklmnopqrstuvwxyz-_0123");
        let token = mint(&signer, me);
        let mut req = post(&[], "");
        req.headers_mut().insert("x-csrf-token", HeaderValue::from_str(&token).expect("ascii"));
        assert!(run(req, Some(me)).await.is_ok(), "header");
        // The form's body is still there for the handler.
        let req = run(form(&token), Some(me)).await.expect("form field");
        let body = to_bytes(req.into_body(), LIMIT).await.expect("body");
        assert_eq!(body, format!("email=a%40b.c&csrf_token={token}").as_bytes());
        let req = post(
            &[("content-type", "Application/X-WWW-Form-Urlencoded; charset=utf-8")],
            format!("csrf_token={token}"),
        );
        assert!(run(req, Some(me)).await.is_ok(), "content type in any case, with parameters");
        let req = post(&[("sec-fetch-site", "same-origin"), ("origin", "null")], "");
        assert!(refused_for_csrf(run(req, Some(me)).await), "same-origin, but no token");
    }

    #[tokio::test]
    async fn missing_forged_or_foreign_tokens_are_refused() {
        let signer = Signer::new(b"k");
        let me = Binding::Session("s1");
        assert!(refused_for_csrf(run(post(&[], ""), Some(me)).await), "none");
        assert!(refused_for_csrf(run(form(""), Some(me)).await), "empty");
        assert!(refused_for_csrf(run(form("forged"), Some(me)).await), "forged");
        let other_key = mint(&Signer::new(b"other"), me);
        assert!(refused_for_csrf(run(form(&other_key), Some(me)).await), "minted under another key");
        let foreign = mint(&signer, Binding::Session("s2"));
        assert!(refused_for_csrf(run(form(&foreign), Some(me)).await), "another session's");
        // The token in a body that is not a form is not read.
        let token = mint(&signer, me);
        let json = post(&[("content-type", "application/json")], format!("{{\"csrf_token\":\"{token}\"}}"));
        assert!(refused_for_csrf(run(json, Some(me)).await), "json");
        // No page can have been served to a secret made just now.
        let fresh = AnonSecret::from_cookie(None);
        let token = mint(&signer, Binding::Anon(fresh.as_str()));
        assert!(refused_for_csrf(run(form(&token), None).await), "a new secret");
    }

    #[tokio::test]
    async fn cross_site_requests_are_refused_even_with_a_good_token() {
        let signer = Signer::new(b"k");
        let me = Binding::Session("s1");
        let token = mint(&signer, me);
        let mut req = form(&token);
        req.headers_mut().insert("origin", HeaderValue::from_static("https://evil.example"));
        assert!(refused_for_csrf(run(req, Some(me)).await), "foreign Origin");
        let mut req = form(&token);
        req.headers_mut().insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(refused_for_csrf(run(req, Some(me)).await), "Sec-Fetch-Site: cross-site");
        let mut req = form(&token);
        req.headers_mut().insert("origin", HeaderValue::from_static(BASE));
        assert!(run(req, Some(me)).await.is_ok(), "the site's own Origin");
    }

    #[tokio::test]
    async fn form_bodies_over_the_limit_are_refused_as_too_large() {
        let me = Binding::Session("s1");
        let req = post(&[("content-type", "application/x-www-form-urlencoded")], "a".repeat(LIMIT + 1));
        assert!(matches!(run(req, Some(me)).await, Err(Refused { error: WebError::PayloadTooLarge, request: None })));
        // A declared length over the limit is refused before reading.
        let req = post(&[("content-type", "application/x-www-form-urlencoded"), ("content-length", "999999")], "a=1");
        assert!(matches!(run(req, Some(me)).await, Err(Refused { error: WebError::PayloadTooLarge, request: None })));
    }
}
