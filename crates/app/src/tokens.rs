//! `id.secret` tokens: the id finds the record, the secret proves possession.
//! Only the SHA-256 of the secret is stored, so a copy of the database holds
//! nothing that opens a session.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A freshly minted token: give `cookie_value()` to the client, store `secret_hash`.
#[derive(Clone, Debug)]
pub struct Minted {
    /// Public, 128 random bits.
    pub id: String,
    /// Private, 256 random bits.
    pub secret: String,
    /// Hex SHA-256 of `secret`.
    pub secret_hash: String,
}

impl Minted {
    /// `id.secret`.
    pub fn value(&self) -> String {
        format!("{}.{}", self.id, self.secret)
    }
}

/// Random bytes, base64url without padding.
pub fn random_b64(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// A new token.
pub fn mint() -> Minted {
    let id = random_b64(16);
    let secret = random_b64(32);
    let secret_hash = hash_secret(&secret);
    Minted { id, secret, secret_hash }
}

/// Hex SHA-256.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Splits `id.secret`, refusing anything that is not two base64url parts of the right size.
pub fn parse(value: &str) -> Option<(&str, &str)> {
    let (id, secret) = value.split_once('.')?;
    let ok =
        |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    (ok(id, 22) && ok(secret, 43)).then_some((id, secret))
}

/// Whether `secret` hashes to `stored_hash`, compared in constant time.
pub fn secret_matches(secret: &str, stored_hash: &str) -> bool {
    let mut hex = [0u8; 64];
    if hex::encode_to_slice(Sha256::digest(secret.as_bytes()), &mut hex).is_err() {
        return false;
    }
    hex.ct_eq(stored_hash.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mint_parse_and_match() {
        let t = mint();
        let v = t.value();
        let (id, secret) = parse(&v).expect("parses");
        assert_eq!(id, t.id);
        assert!(secret_matches(secret, &t.secret_hash));
        assert!(!secret_matches(&mint().secret, &t.secret_hash));
        assert_ne!(t.secret_hash, t.secret);
    }

    #[test]
    fn malformed_values_are_refused() {
        let t = mint();
        for bad in [
            "",
            ".",
            "abc",
            &t.id,
            &format!("{}.", t.id),
            &format!("{}.{}x", t.id, t.secret),
            &format!("{}.{}", t.id, "!".repeat(43)),
        ] {
            assert!(parse(bad).is_none(), "{bad:?}");
        }
    }
}
