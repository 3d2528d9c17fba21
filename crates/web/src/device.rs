//! The device cookie: a browser's signed note that it signed in to an
//! account before (OWASP's device-cookie pattern). Failed logins from a
//! browser that shows one for the account count against that browser alone,
//! so failures from elsewhere do not lock its owner out.
//!
//! The value is `<user id>.<nonce>` signed with the site's key; a login
//! gives the browser a fresh one.

use std::time::Duration;

use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use portcullis_app::accounts::DeviceCookie;

use crate::cookies::{self, DEVICE, Signer};

/// What the device cookie's signature is for.
const PURPOSE: &str = "device";

/// How long a browser is remembered as one that signed in before.
pub const LIFETIME: Duration = Duration::from_secs(365 * 86_400);

/// The device cookie the request carries, if it is one this site signed.
pub fn read(signer: &Signer, headers: &HeaderMap, https: bool) -> Option<DeviceCookie> {
    decode(signer, cookies::get(headers, &cookies::name(DEVICE, https))?)
}

/// A `Set-Cookie` value with a new device cookie for `user_id`.
pub fn set_cookie(signer: &Signer, user_id: i64, https: bool) -> String {
    let nonce = portcullis_app::tokens::random_b64(16);
    cookies::build(DEVICE, &encode(signer, user_id, &nonce), https, Some(LIFETIME))
}

/// Adds a new device cookie for `user_id` to `response`: a browser that
/// made an account, or signed in, is one its owner has seen.
pub fn attach(response: &mut Response, signer: &Signer, user_id: i64, https: bool) {
    if let Ok(v) = HeaderValue::try_from(set_cookie(signer, user_id, https)) {
        response.headers_mut().append(SET_COOKIE, v);
    }
}

/// The cookie's value for `user_id` and `nonce`.
fn encode(signer: &Signer, user_id: i64, nonce: &str) -> String {
    signer.sign(PURPOSE, format!("{user_id}.{nonce}").as_bytes())
}

/// The claim in a cookie's value, if this site signed it.
fn decode(signer: &Signer, value: &str) -> Option<DeviceCookie> {
    let payload = String::from_utf8(signer.verify(PURPOSE, value)?).ok()?;
    let (id, nonce) = payload.split_once('.')?;
    Some(DeviceCookie { user_id: id.parse().ok()?, nonce: nonce.to_owned() })
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;
    use axum::http::header::COOKIE;
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use cookie::Cookie;

    use super::*;

    #[test]
    fn a_signed_claim_reads_back() {
        let s = Signer::new(b"k");
        let value = encode(&s, 42, "bm9uY2U");
        assert_eq!(decode(&s, &value), Some(DeviceCookie { user_id: 42, nonce: "bm9uY2U".into() }));
        // The value as earlier logins wrote it.
        assert_eq!(value, s.sign("device", b"42.bm9uY2U"));
    }

    #[test]
    fn altered_or_foreign_values_are_ignored() {
        let s = Signer::new(b"k");
        let value = encode(&s, 42, "bm9uY2U");
        assert_eq!(decode(&Signer::new(b"other"), &value), None, "another key");
        assert_eq!(decode(&s, &s.sign("flash", b"42.bm9uY2U")), None, "signed for another purpose");
        let signature = value.split_once('.').expect("a dot").1;
        let forged = format!("{}.{signature}", URL_SAFE_NO_PAD.encode("43.bm9uY2U"));
        assert_eq!(decode(&s, &forged), None, "another payload under the same signature");
        let mut flipped = value.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(decode(&s, std::str::from_utf8(&flipped).expect("ascii")), None, "altered signature");
        for bad in ["", ".", "42.bm9uY2U", "no-dot-at-all"] {
            assert_eq!(decode(&s, bad), None, "{bad:?}");
        }
        // Signed, but not a claim.
        for payload in [&b"no-dot"[..], b"x.nonce", b"\xff.nonce", b".nonce"] {
            assert_eq!(decode(&s, &s.sign(PURPOSE, payload)), None, "{payload:?}");
        }
    }

    #[test]
    fn the_cookie_a_login_sets_is_read_on_the_next() {
        let s = Signer::new(b"k");
        for https in [false, true] {
            let header = set_cookie(&s, 7, https);
            let set = Cookie::parse(header.as_str()).expect("a valid Set-Cookie value");
            assert_eq!(set.name(), cookies::name(DEVICE, https));
            assert_eq!(set.max_age(), Some(cookie::time::Duration::days(365)));
            let mut headers = HeaderMap::new();
            let sent = format!("{}={}", set.name(), set.value());
            headers.insert(COOKIE, HeaderValue::from_str(&sent).expect("ascii"));
            let claim = read(&s, &headers, https).expect("a claim");
            assert_eq!(claim.user_id, 7);
            assert_eq!(claim.nonce.len(), 22, "16 random bytes");
            assert_eq!(read(&s, &headers, !https), None, "the other scheme's name");
            let again = decode(&s, Cookie::parse(set_cookie(&s, 7, https)).expect("valid").value());
            assert_ne!(again.map(|c| c.nonce), Some(claim.nonce), "a new nonce each time");
        }
    }
}
