//! Cookie names, flags and signing. With an https base URL every cookie is
//! `Secure` and carries the `__Host-` prefix (bound to this host, path `/`).

use axum::http::HeaderMap;
use axum::http::header::COOKIE;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cookie::{Cookie, SameSite};
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The session cookie: `id.secret` of a server-side session.
pub const SESSION: &str = "portcullis_session";
/// The anonymous visitor's random CSRF secret.
pub const ANON: &str = "portcullis_anon";
/// A browser's signed note that it signed in to an account before.
pub const DEVICE: &str = "portcullis_device";
/// Signed flash messages waiting to be shown.
pub const FLASH: &str = "portcullis_flash";

/// The name a cookie goes by on this site.
pub fn name(base: &'static str, https: bool) -> std::borrow::Cow<'static, str> {
    if https { format!("__Host-{base}").into() } else { base.into() }
}

/// A cookie with our flags: HttpOnly, SameSite=Lax, Path=/, Secure on https.
/// `max_age` of `None` makes a browser-session cookie. Written out directly
/// (one is set on every anonymous first visit); `value` must be a cookie
/// octet string, as our base64url values are.
pub fn build(base: &'static str, value: &str, https: bool, max_age: Option<std::time::Duration>) -> String {
    use std::fmt::Write as _;
    let mut c = String::with_capacity(base.len() + value.len() + 72);
    if https {
        c.push_str("__Host-");
    }
    c.push_str(base);
    c.push('=');
    c.push_str(value);
    c.push_str("; HttpOnly; SameSite=Lax");
    if https {
        c.push_str("; Secure");
    }
    c.push_str("; Path=/");
    if let Some(age) = max_age {
        let _ = write!(c, "; Max-Age={}", age.as_secs());
    }
    c
}

/// A header that deletes the cookie.
pub fn clear(base: &'static str, https: bool) -> String {
    let c = Cookie::build((name(base, https), ""))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(https)
        .max_age(cookie::time::Duration::ZERO)
        .expires(cookie::time::OffsetDateTime::UNIX_EPOCH);
    c.build().to_string()
}

/// The value of cookie `full_name` in the request, if present (first wins).
pub fn get<'a>(headers: &'a HeaderMap, full_name: &str) -> Option<&'a str> {
    headers.get_all(COOKIE).iter().find_map(|v| find_in(v.as_bytes(), full_name.as_bytes()))
}

/// `name`'s value in one `Cookie` header (`a=1; b=2`), pair by pair: a
/// cookie whose name or value merely contains `name` does not count.
fn find_in<'a>(header: &'a [u8], name: &[u8]) -> Option<&'a str> {
    let mut rest = header;
    loop {
        let end = memchr::memchr(b';', rest).unwrap_or(rest.len());
        let pair = rest[..end].trim_ascii_start();
        if let Some(value) = pair.strip_prefix(name).and_then(|r| r.strip_prefix(b"=")) {
            return std::str::from_utf8(value.trim_ascii()).ok().map(|v| v.trim_matches('"'));
        }
        rest = rest.get(end + 1..)?;
    }
}

/// HMAC-SHA256 under a key derived from the site's secret, one purpose each.
#[derive(Clone)]
pub struct Signer {
    /// The MAC with the key already absorbed: each use clones it, which
    /// saves hashing the key's two padded blocks on every request.
    keyed: HmacSha256,
}

impl Signer {
    /// A signer for `secret`.
    pub fn new(secret: &[u8]) -> Self {
        let keyed = <HmacSha256 as Mac>::new_from_slice(secret).expect("HMAC accepts keys of any length");
        Self { keyed }
    }

    fn start(&self, purpose: &str) -> HmacSha256 {
        let mut m = self.keyed.clone();
        m.update(purpose.as_bytes());
        m.update(b"\0");
        m
    }

    /// The MAC of `data` for `purpose`.
    pub fn mac(&self, purpose: &str, data: &[u8]) -> [u8; 32] {
        self.mac_parts(purpose, &[data])
    }

    /// The MAC of `parts`, one after the other, for `purpose`: the same as
    /// [`Signer::mac`] of their concatenation, without making it.
    pub fn mac_parts(&self, purpose: &str, parts: &[&[u8]]) -> [u8; 32] {
        let mut m = self.start(purpose);
        for p in parts {
            m.update(p);
        }
        m.finalize().into_bytes().into()
    }

    /// `payload.mac`, both base64url.
    pub fn sign(&self, purpose: &str, payload: &[u8]) -> String {
        let mut out = String::with_capacity(payload.len().div_ceil(3) * 4 + 44);
        URL_SAFE_NO_PAD.encode_string(payload, &mut out);
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(self.mac(purpose, payload), &mut out);
        out
    }

    /// The payload of a value made by [`Signer::sign`] for `purpose`, if untouched.
    pub fn verify(&self, purpose: &str, value: &str) -> Option<Vec<u8>> {
        let (p, m) = value.split_once('.')?;
        let payload = URL_SAFE_NO_PAD.decode(p).ok()?;
        let mac = URL_SAFE_NO_PAD.decode(m).ok()?;
        let mut check = self.start(purpose);
        check.update(&payload);
        check.verify_slice(&mac).ok()?;
        Some(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_whole_name_only() {
        let headers = |values: &[&str]| {
            let mut h = HeaderMap::new();
            for v in values {
                h.append(COOKIE, v.parse().expect("header"));
            }
            h
        };
        let h = headers(&["a=1; portcullis_session=s1; b=2"]);
        assert_eq!(get(&h, "portcullis_session"), Some("s1"));
        assert_eq!(get(&h, "a"), Some("1"));
        assert_eq!(get(&h, "b"), Some("2"));
        assert_eq!(get(&h, "c"), None);
        // The name inside another cookie's value or name does not count.
        let h = headers(&["x=portcullis_session=evil; my_portcullis_session=no; portcullis_session_2=no"]);
        assert_eq!(get(&h, "portcullis_session"), None);
        let h = headers(&["x=a;portcullis_session=s; portcullis_session=later"]);
        assert_eq!(get(&h, "portcullis_session"), Some("s"), "first wins, with or without a space");
        // Spaces around pairs, quotes, an empty value, several headers.
        let h = headers(&["  k =1;k2=\"q\" ;  e=", "late=1; k2=second"]);
        assert_eq!(get(&h, "k"), None, "a space before `=` is another name");
        assert_eq!(get(&h, "k2"), Some("q"));
        assert_eq!(get(&h, "e"), Some(""));
        assert_eq!(get(&h, "late"), Some("1"));
        assert_eq!(get(&h, "__Host-portcullis_session"), None);
    }

    #[test]
    fn signed_values_resist_tampering() {
        let s = Signer::new(b"k1");
        let v = s.sign("flash", b"hello");
        assert_eq!(s.verify("flash", &v).as_deref(), Some(&b"hello"[..]));
        assert!(s.verify("anon", &v).is_none(), "purpose is bound");
        assert!(Signer::new(b"k2").verify("flash", &v).is_none(), "key is bound");
        let mut t = v.clone();
        t.replace_range(0..1, if v.starts_with('a') { "b" } else { "a" });
        assert!(s.verify("flash", &t).is_none());
    }

    #[test]
    fn flags_follow_the_scheme() {
        // Read back by the cookie crate, as a browser would read the header.
        let http = build(SESSION, "id.s3cr3t-_", false, None);
        let c = Cookie::parse(http.as_str()).expect("a valid Set-Cookie value");
        assert_eq!((c.name(), c.value()), ("portcullis_session", "id.s3cr3t-_"));
        assert_eq!((c.http_only(), c.same_site(), c.path()), (Some(true), Some(SameSite::Lax), Some("/")));
        assert_eq!((c.secure(), c.max_age()), (None, None), "{http}");
        let https = build(SESSION, "v", true, Some(std::time::Duration::from_secs(60)));
        let c = Cookie::parse(https.as_str()).expect("a valid Set-Cookie value");
        assert_eq!((c.name(), c.value()), ("__Host-portcullis_session", "v"));
        assert_eq!((c.http_only(), c.same_site(), c.path()), (Some(true), Some(SameSite::Lax), Some("/")));
        assert_eq!((c.secure(), c.max_age()), (Some(true), Some(cookie::time::Duration::seconds(60))), "{https}");
        // Deleting mirrors the flags, so the browser replaces the same cookie.
        let gone = Cookie::parse(clear(SESSION, true)).expect("a valid Set-Cookie value");
        assert_eq!((gone.name(), gone.value(), gone.path()), ("__Host-portcullis_session", "", Some("/")));
        assert_eq!((gone.secure(), gone.max_age()), (Some(true), Some(cookie::time::Duration::ZERO)));
    }
}
