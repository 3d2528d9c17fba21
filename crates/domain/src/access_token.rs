//! The shape of a personal access token: `pcat_` + id + secret + checksum,
//! all base62. The prefix and the checksum (CRC-32 of everything before
//! it) let secret scanners recognise a leaked token without asking us,
//! and let a mistyped one be refused without a lookup.

/// What every token starts with.
pub const PREFIX: &str = "pcat_";
/// Characters of the id.
pub const ID_LEN: usize = 16;
/// Characters of the secret.
pub const SECRET_LEN: usize = 32;
/// Characters of the checksum.
pub const CHECKSUM_LEN: usize = 6;
/// Characters of a whole token.
pub const TOKEN_LEN: usize = PREFIX.len() + ID_LEN + SECRET_LEN + CHECKSUM_LEN;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// CRC-32 (IEEE 802.3, as zlib's).
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

/// `n` in base62, left-padded with `0` to [`CHECKSUM_LEN`] characters.
fn base62_checksum(mut n: u32) -> String {
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    out.iter().map(|&b| char::from(b)).collect()
}

/// Whether every character is base62.
pub fn is_base62(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The base62 character for `n % 62` (for minting random parts).
pub fn base62_char(n: u8) -> char {
    char::from(BASE62[usize::from(n % 62)])
}

/// The whole token for an id and a secret (each base62 of the right length).
pub fn format(id: &str, secret: &str) -> String {
    let body = format!("{PREFIX}{id}{secret}");
    let sum = base62_checksum(crc32(body.as_bytes()));
    format!("{body}{sum}")
}

/// The id and the secret of a well-formed token; `None` for anything else:
/// wrong prefix or length, a character outside base62, a checksum that does
/// not match.
pub fn parse(token: &str) -> Option<(&str, &str)> {
    if token.len() != TOKEN_LEN || !token.starts_with(PREFIX) {
        return None;
    }
    let rest = &token[PREFIX.len()..];
    if !is_base62(rest) {
        return None;
    }
    let (body, sum) = token.split_at(TOKEN_LEN - CHECKSUM_LEN);
    if base62_checksum(crc32(body.as_bytes())) != sum {
        return None;
    }
    Some((&rest[..ID_LEN], &rest[ID_LEN..ID_LEN + SECRET_LEN]))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "AbCdEfGh01234567";
    const SECRET: &str = "0123456789abcdefghijklmnopqrstuv";

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn a_formatted_token_parses_back() {
        let t = format(ID, SECRET);
        assert!(t.starts_with("pcat_"));
        assert_eq!(t.len(), TOKEN_LEN);
        assert_eq!(parse(&t), Some((ID, SECRET)));
    }

    #[test]
    fn any_changed_character_is_refused() {
        let t = format(ID, SECRET);
        for i in PREFIX.len()..t.len() {
            let mut b = t.clone().into_bytes();
            b[i] = if b[i] == b'x' { b'y' } else { b'x' };
            let changed = String::from_utf8(b).expect("ascii");
            assert_eq!(parse(&changed), None, "changed at {i}");
        }
    }

    #[test]
    fn wrong_shapes_are_refused() {
        let t = format(ID, SECRET);
        assert_eq!(parse(&t[..t.len() - 1]), None);
        assert_eq!(parse(&format!("{t}0")), None);
        assert_eq!(parse(&t.replacen("pcat_", "pcax_", 1)), None);
        assert_eq!(parse(""), None);
        assert_eq!(parse(&"é".repeat(TOKEN_LEN / 2)), None);
        assert_eq!(parse(&format(ID, &SECRET.replace('a', "-"))), None, "not base62");
    }
}
