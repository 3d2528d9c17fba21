//! CSRF tokens bound to the session (or, for anonymous visitors, to the
//! random secret in their cookie): a token is an HMAC of its binding under
//! the site's key, so nobody without the key can make one for a binding. Each
//! page gets a freshly masked copy, so the token in a compressed page never
//! repeats (BREACH).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use subtle::ConstantTimeEq;

use crate::cookies::Signer;

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

/// Whether `token` was minted for `binding` under this key.
pub fn check(signer: &Signer, binding: Binding<'_>, token: &str) -> bool {
    let Ok(bytes) = URL_SAFE_NO_PAD.decode(token.trim()) else {
        return false;
    };
    if bytes.len() != 64 {
        return false;
    }
    let (mask, masked) = bytes.split_at(32);
    let raw: Vec<u8> = mask.iter().zip(masked).map(|(m, x)| m ^ x).collect();
    raw.ct_eq(&binding.mac(signer)).into()
}

#[cfg(test)]
mod tests {
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
        assert!(!check(&s, one, &URL_SAFE_NO_PAD.encode(bytes)), "altered");
    }

    #[test]
    fn the_mac_covers_the_binding_as_one_text() {
        // Tokens minted before bindings were passed in parts stay valid.
        let s = Signer::new(b"secret");
        assert_eq!(Binding::Session("Yk3l").mac(&s), s.mac(PURPOSE, b"session:Yk3l"));
        assert_eq!(Binding::Anon("q-9_").mac(&s), s.mac(PURPOSE, b"anon:q-9_"));
    }
}
