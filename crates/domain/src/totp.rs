//! Time-based one-time codes (RFC 6238: HMAC-SHA-1, 6 digits, 30-second
//! steps) and the rule for accepting one: a code for the current step or
//! one step either side, never for a step at or before the last one
//! accepted, so that a code works once. The algorithm is `totp-rs`'s; the
//! acceptance rule is ours.

use totp_rs::{Algorithm, Builder, Totp};

/// Seconds per step.
pub const STEP_SECONDS: u64 = 30;
/// Digits per code.
pub const DIGITS: usize = 6;
/// Steps accepted on either side of the current one.
pub const SKEW: i64 = 1;
/// Bytes of a new secret (160 bits, as RFC 4226 recommends).
pub const SECRET_BYTES: usize = 20;

/// The step a time (unix ms) falls in.
pub fn step_at(unix_ms: i64) -> i64 {
    unix_ms.div_euclid(1000 * STEP_SECONDS as i64)
}

/// The steps a code may be for at `now_step`, given the last step accepted
/// before: the current one and `SKEW` either side, less any at or before
/// `last_step`. Oldest first.
pub fn acceptable_steps(now_step: i64, last_step: Option<i64>) -> impl Iterator<Item = i64> {
    (now_step - SKEW..=now_step + SKEW).filter(move |s| last_step.is_none_or(|last| *s > last) && *s >= 0)
}

fn generator(secret: &[u8], digits: u8) -> Totp {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(digits)
        .with_skew(0)
        .with_step_duration(STEP_SECONDS)
        .with_secret(secret.to_vec())
        .build_noncompliant()
}

/// The code for `step`, with `digits` digits (6 here; the RFC's vectors use 8).
pub fn code_for_step(secret: &[u8], step: i64, digits: u8) -> String {
    let step = u64::try_from(step).unwrap_or(0);
    generator(secret, digits).generate(step * STEP_SECONDS).to_string()
}

/// Whether `code` is the code for `step` (compared in constant time).
fn matches_step(totp: &Totp, code: &str, step: i64) -> bool {
    u64::try_from(step).is_ok_and(|s| totp.check(code, s * STEP_SECONDS).is_some())
}

/// The step `code` is accepted for at `now_ms`, if any: see
/// [`acceptable_steps`]. The caller stores the answer as the new last step,
/// on the condition that it is still greater than the stored one.
pub fn accept(secret: &[u8], code: &str, now_ms: i64, last_step: Option<i64>) -> Option<i64> {
    let code = normalize_code(code);
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let totp = generator(secret, DIGITS as u8);
    // Every candidate is checked, so the time taken does not say which matched.
    acceptable_steps(step_at(now_ms), last_step).fold(None, |found, s| {
        let hit = matches_step(&totp, &code, s);
        found.or(hit.then_some(s))
    })
}

/// A code as typed, without spaces.
pub fn normalize_code(input: &str) -> String {
    input.chars().filter(|c| !c.is_whitespace()).collect()
}

/// Whether typed input looks like an authenticator code (six digits)
/// rather than a recovery code.
pub fn looks_like_totp(input: &str) -> bool {
    let c = normalize_code(input);
    c.len() == DIGITS && c.bytes().all(|b| b.is_ascii_digit())
}

/// The secret in base32 (no padding), as people type it into an app.
pub fn base32(secret: &[u8]) -> String {
    totp_rs::Secret::from(secret.to_vec()).to_base32()
}

/// A base32 secret as typed (spaces and case ignored), if it is one.
pub fn secret_from_base32(text: &str) -> Option<Vec<u8>> {
    let clean: String = text.chars().filter(|c| !c.is_whitespace()).map(|c| c.to_ascii_uppercase()).collect();
    totp_rs::Secret::try_from_base32(clean).ok().map(|s| s.as_ref().to_vec())
}

/// The `otpauth://totp/ISSUER:ACCOUNT?secret=…&issuer=…` URI an
/// authenticator app reads from the QR code. A colon in either name
/// (which the format forbids) becomes a space.
pub fn otpauth_uri(secret: &[u8], issuer: &str, account: &str) -> Option<String> {
    let clean = |s: &str| s.replace(':', " ");
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(DIGITS as u8)
        .with_step_duration(STEP_SECONDS)
        .with_secret(secret.to_vec())
        .with_issuer(Some(clean(issuer)))
        .with_account_name(clean(account))
        .build()
        .ok()?
        .to_url()
        .ok()
}

/// A recovery code as typed, in the form it is hashed in: lower case,
/// without spaces or dashes.
pub fn normalize_recovery_code(input: &str) -> String {
    input.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_lowercase()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238, appendix B: the SHA-1 seed.
    const RFC_SEED: &[u8] = b"12345678901234567890";

    #[test]
    fn the_rfc_6238_sha1_vectors() {
        let vectors: [(i64, &str); 6] = [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ];
        for (t, want) in vectors {
            let step = step_at(t * 1000);
            assert_eq!(code_for_step(RFC_SEED, step, 8), want, "T = {t}");
            // Six digits are the last six of eight: the same truncation, mod 10^6.
            assert_eq!(code_for_step(RFC_SEED, step, 6), want[2..], "T = {t}, six digits");
            assert_eq!(accept(RFC_SEED, &want[2..], t * 1000, None), Some(step), "T = {t} accepted");
        }
    }

    #[test]
    fn one_step_of_skew_either_way_and_no_more() {
        let now = 1_234_567_890_000;
        let step = step_at(now);
        for (offset, ok) in [(-2, false), (-1, true), (0, true), (1, true), (2, false)] {
            let code = code_for_step(RFC_SEED, step + offset, 6);
            assert_eq!(accept(RFC_SEED, &code, now, None).is_some(), ok, "offset {offset}");
        }
    }

    #[test]
    fn a_step_at_or_before_the_last_accepted_is_refused() {
        let now = 1_234_567_890_000;
        let step = step_at(now);
        let code = code_for_step(RFC_SEED, step, 6);
        assert_eq!(accept(RFC_SEED, &code, now, None), Some(step));
        assert_eq!(accept(RFC_SEED, &code, now, Some(step)), None, "the same code again");
        assert_eq!(accept(RFC_SEED, &code, now, Some(step + 1)), None, "a later step was used");
        let previous = code_for_step(RFC_SEED, step - 1, 6);
        assert_eq!(accept(RFC_SEED, &previous, now, Some(step - 1)), None);
        let next = code_for_step(RFC_SEED, step + 1, 6);
        assert_eq!(accept(RFC_SEED, &next, now, Some(step)), Some(step + 1), "the next step is still good");
        assert_eq!(acceptable_steps(step, Some(step)).collect::<Vec<_>>(), vec![step + 1]);
        assert_eq!(acceptable_steps(step, None).collect::<Vec<_>>(), vec![step - 1, step, step + 1]);
    }

    #[test]
    fn malformed_codes_are_refused() {
        let now = 59_000;
        assert_eq!(accept(RFC_SEED, "287082", now, None), Some(1));
        assert_eq!(accept(RFC_SEED, " 287 082 ", now, None), Some(1), "spaces are ignored");
        for bad in ["", "28708", "2870822", "28708a", "-28708", "２８７０８２"] {
            assert_eq!(accept(RFC_SEED, bad, now, None), None, "{bad:?}");
        }
        assert_eq!(accept(b"another secret of twenty", "287082", now, None), None, "another secret");
    }

    #[test]
    fn the_uri_names_issuer_account_and_secret() {
        let uri = otpauth_uri(RFC_SEED, "Portcullis", "alice").expect("a uri");
        assert!(uri.starts_with("otpauth://totp/Portcullis:alice?"), "{uri}");
        assert!(uri.contains(&format!("secret={}", base32(RFC_SEED))), "{uri}");
        assert!(uri.contains("issuer=Portcullis"), "{uri}");
        assert_eq!(base32(RFC_SEED), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert_eq!(secret_from_base32("gezd gnbv gy3t qojq gezd gnbv gy3t qojq").as_deref(), Some(RFC_SEED));
        assert!(otpauth_uri(RFC_SEED, "A:B", "c:d").is_some(), "colons are replaced");
    }

    #[test]
    fn typed_codes_are_told_apart() {
        assert!(looks_like_totp("123 456"));
        assert!(!looks_like_totp("abcde-12345"));
        assert_eq!(normalize_recovery_code(" AbCdE-12345 "), "abcde12345");
    }
}
