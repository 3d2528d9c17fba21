//! Rules for moving accounts in from another app: which password hashes we
//! can take as they are, how the other app's times and flags read, and that
//! a name is taken as it is or not at all.

use crate::{Email, Username};

/// A password hash format we verify, and so can take over unchanged: the
/// user signs in with the old password, and the hash is replaced by an
/// Argon2id one at that sign-in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashFormat {
    /// `$argon2id$…` (PHC string).
    Argon2id,
    /// Werkzeug `pbkdf2:sha256:N$salt$hex` (or sha512).
    WerkzeugPbkdf2,
    /// Werkzeug `scrypt:N:r:p$salt$hex`.
    WerkzeugScrypt,
    /// bcrypt `$2b$` (and the `$2a$`, `$2y$` spellings).
    Bcrypt,
}

/// Why a row's password hash is not taken.
pub const UNKNOWN_HASH: &str = "password hash format not supported (Argon2id, Werkzeug pbkdf2/scrypt, bcrypt $2b$)";

/// The format of `hash`, if it is one we verify. Only the shape is checked
/// here; a hash of the right shape that matches no password simply never
/// verifies.
pub fn hash_format(hash: &str) -> Option<HashFormat> {
    let werkzeug_tail = |h: &str| {
        let mut parts = h.splitn(3, '$');
        let (_, salt, hex) = (parts.next(), parts.next()?, parts.next()?);
        (!salt.is_empty()
            && !hex.is_empty()
            && hex.len().is_multiple_of(2)
            && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then_some(())
    };
    if hash.starts_with("$argon2id$") {
        Some(HashFormat::Argon2id)
    } else if hash.starts_with("pbkdf2:sha256:") || hash.starts_with("pbkdf2:sha512:") {
        werkzeug_tail(hash).map(|()| HashFormat::WerkzeugPbkdf2)
    } else if hash.starts_with("scrypt:") {
        werkzeug_tail(hash).map(|()| HashFormat::WerkzeugScrypt)
    } else if ["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p)) && hash.len() == 60 {
        Some(HashFormat::Bcrypt)
    } else {
        None
    }
}

/// A username and email taken exactly as the other app stored them: a name
/// that breaks our rules, or that we would have to trim, is refused with the
/// reason, never changed.
pub fn exact_names(username: &str, email: &str) -> Result<(Username, Email), String> {
    let u = Username::parse(username).map_err(|e| format!("username {username:?}: {e}"))?;
    if u.as_str() != username {
        return Err(format!("username {username:?}: surrounding spaces"));
    }
    let e = Email::parse(email).map_err(|e| format!("email {email:?}: {e}"))?;
    if e.as_str() != email {
        return Err(format!("email {email:?}: surrounding spaces"));
    }
    Ok((u, e))
}

/// A flag as apps write them: `1`/`0`, `true`/`false`, `yes`/`no`, `t`/`f`
/// (any case); empty is false.
pub fn parse_flag(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "t" | "yes" | "y" => Some(true),
        "0" | "false" | "f" | "no" | "n" | "" => Some(false),
        _ => None,
    }
}

/// A time as Unix milliseconds from `YYYY-MM-DD HH:MM:SS[.ffffff]` (how
/// SQLAlchemy stores a `DateTime` in SQLite, in UTC for the Flask app),
/// the same with a `T`, an optional `Z` or `+00:00`, a bare date, or a
/// number of Unix seconds. Other offsets are refused rather than guessed.
pub fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<i64>().ok()?.checked_mul(1000);
    }
    let s = s.strip_suffix('Z').or_else(|| s.strip_suffix("+00:00")).unwrap_or(s);
    let (date, time) = match s.split_once([' ', 'T']) {
        Some((d, t)) => (d, t),
        None => (s, "00:00:00"),
    };
    let mut d = date.split('-');
    let year: i64 = d.next()?.parse().ok()?;
    let month: u32 = d.next()?.parse().ok()?;
    let day: u32 = d.next()?.parse().ok()?;
    if d.next().is_some() || !(1..=12).contains(&month) || !(1..=days_in_month(year, month)).contains(&day) {
        return None;
    }
    let (hms, fraction) = time.split_once('.').unwrap_or((time, ""));
    let mut t = hms.split(':');
    let hour: i64 = t.next()?.parse().ok()?;
    let minute: i64 = t.next()?.parse().ok()?;
    let second: i64 = t.next().map_or(Some(0), |x| x.parse().ok())?;
    if t.next().is_some() || hour > 23 || minute > 59 || second > 59 || hour < 0 || minute < 0 || second < 0 {
        return None;
    }
    if !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let millis: i64 = format!("{fraction:0<3}").get(..3)?.parse().ok()?;
    let days = days_from_civil(year, month, day);
    Some(((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + millis)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_formats_we_verify_are_recognised_and_nothing_else() {
        let cases = [
            ("pbkdf2:sha256:600000$abcdEFGH$0a1b", Some(HashFormat::WerkzeugPbkdf2)),
            ("pbkdf2:sha512:1000$s$ff", Some(HashFormat::WerkzeugPbkdf2)),
            ("scrypt:32768:8:1$saltsalt$00ff", Some(HashFormat::WerkzeugScrypt)),
            ("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA", Some(HashFormat::Argon2id)),
            ("$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW", Some(HashFormat::Bcrypt)),
            ("$2b$12$short", None),
            ("$argon2i$v=19$m=1,t=1,p=1$x$y", None),
            ("pbkdf2:md5:1000$s$ff", None),
            ("pbkdf2:sha256:1000$s$zz", None),
            ("scrypt:32768:8:1$salt$", None),
            ("md5$x$y", None),
            ("plaintext", None),
            ("", None),
        ];
        for (hash, want) in cases {
            assert_eq!(hash_format(hash), want, "{hash}");
        }
    }

    #[test]
    fn names_are_taken_exactly_or_refused() {
        assert!(exact_names("alice", "alice@example.com").is_ok());
        assert!(exact_names("Alice.B", "Alice@Example.com").is_ok());
        assert!(exact_names(" alice", "alice@example.com").expect_err("refused").contains("surrounding spaces"));
        assert!(exact_names("al", "al@example.com").expect_err("refused").starts_with("username \"al\""));
        assert!(exact_names("bob smith", "b@example.com").is_err());
        assert!(exact_names("bob", "not-an-email").expect_err("refused").starts_with("email"));
        assert!(exact_names("bob", "bob@example.com ").is_err());
    }

    #[test]
    fn flags_read_as_apps_write_them() {
        assert_eq!(parse_flag("1"), Some(true));
        assert_eq!(parse_flag("True"), Some(true));
        assert_eq!(parse_flag("0"), Some(false));
        assert_eq!(parse_flag(""), Some(false));
        assert_eq!(parse_flag("maybe"), None);
    }

    #[test]
    fn times_read_as_sqlalchemy_stores_them_in_utc() {
        assert_eq!(parse_time("1970-01-01 00:00:00"), Some(0));
        assert_eq!(parse_time("2024-02-29 12:34:56.789012"), Some(1_709_210_096_789));
        assert_eq!(parse_time("2024-02-29T12:34:56Z"), Some(1_709_210_096_000));
        assert_eq!(parse_time("2024-02-29T12:34:56+00:00"), Some(1_709_210_096_000));
        assert_eq!(parse_time("2024-02-29"), Some(1_709_164_800_000));
        assert_eq!(parse_time("1709210096"), Some(1_709_210_096_000));
        assert_eq!(parse_time("1969-12-31 23:59:59"), Some(-1000));
        for bad in ["2023-02-29 00:00:00", "2024-13-01", "2024-01-01 24:00:00", "2024-01-01T10:00:00+02:00", "soon", ""]
        {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }
}
