//! CSRF tokens bound to the session (or, for anonymous visitors, to the
//! secret in their signed cookie). Each page gets a freshly masked copy, so
//! the token in a compressed page never repeats (BREACH).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use subtle::ConstantTimeEq;

use crate::cookies::Signer;

const PURPOSE: &str = "csrf";

/// A token for forms bound to `binding`.
pub fn mint(signer: &Signer, binding: &str) -> String {
    let raw = signer.mac(PURPOSE, binding.as_bytes());
    let mut mask = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut mask);
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&mask);
    out.extend(mask.iter().zip(raw.iter()).map(|(m, r)| m ^ r));
    URL_SAFE_NO_PAD.encode(out)
}

/// Whether `token` was minted for `binding` under this key.
pub fn check(signer: &Signer, binding: &str, token: &str) -> bool {
    let Ok(bytes) = URL_SAFE_NO_PAD.decode(token.trim()) else {
        return false;
    };
    if bytes.len() != 64 {
        return false;
    }
    let (mask, masked) = bytes.split_at(32);
    let raw: Vec<u8> = mask.iter().zip(masked).map(|(m, x)| m ^ x).collect();
    raw.ct_eq(&signer.mac(PURPOSE, binding.as_bytes())).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_bound_masked_and_tamper_evident() {
        let s = Signer::new(b"secret");
        let a = mint(&s, "session:1");
        let b = mint(&s, "session:1");
        assert_ne!(a, b, "masked afresh each time");
        assert!(check(&s, "session:1", &a) && check(&s, "session:1", &b));
        assert!(!check(&s, "session:2", &a), "foreign binding");
        assert!(!check(&Signer::new(b"other"), "session:1", &a), "other key");
        assert!(!check(&s, "session:1", ""));
        assert!(!check(&s, "session:1", "not base64!"));
        let mut bytes = URL_SAFE_NO_PAD.decode(&a).expect("b64");
        bytes[40] ^= 1;
        assert!(!check(&s, "session:1", &URL_SAFE_NO_PAD.encode(bytes)), "altered");
    }
}
