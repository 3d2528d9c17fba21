//! Times on pages: a `<time>` element in UTC.

use std::fmt;

/// A `<time>` element for Unix milliseconds:
/// `<time datetime="2023-11-14T22:13:20Z">2023-11-14 22:13 UTC</time>`,
/// written without allocating. Only digits, separators and the tag itself:
/// templates mark it `|safe`.
pub struct TimeTag(pub i64);

/// [`TimeTag`], from whatever reference a template holds.
pub fn time_tag(ms: impl std::borrow::Borrow<i64>) -> TimeTag {
    TimeTag(*ms.borrow())
}

/// A UTC calendar time, to the second.
struct Utc {
    year: i64,
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
    second: u8,
}

impl Utc {
    /// From Unix milliseconds (proleptic Gregorian calendar; H. Hinnant's
    /// `civil_from_days`).
    fn from_ms(ms: i64) -> Self {
        let secs = ms.div_euclid(1000);
        let (days, in_day) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        // Every value below is in range by construction (day 1..=31, month 1..=12…).
        let small = |v: i64| u8::try_from(v).unwrap_or(0);
        Self {
            year,
            month: small(month),
            day: small(day),
            hour: small(in_day / 3600),
            minute: small(in_day / 60 % 60),
            second: small(in_day % 60),
        }
    }

    /// `YYYY-MM-DDTHH:MM:SS` in ASCII, or `None` for a year outside four digits.
    fn ascii(&self) -> Option<[u8; 19]> {
        let year @ 0..=9999 = u16::try_from(self.year).ok()? else {
            return None;
        };
        let two = |v: u8| [b'0' + v / 10, b'0' + v % 10];
        // Every part is below 100 by construction.
        let (y1, y2) = (two((year / 100) as u8), two((year % 100) as u8));
        let (mo, d, h, mi, s) = (two(self.month), two(self.day), two(self.hour), two(self.minute), two(self.second));
        Some([
            y1[0], y1[1], y2[0], y2[1], b'-', mo[0], mo[1], b'-', d[0], d[1], b'T', h[0], h[1], b':', mi[0], mi[1],
            b':', s[0], s[1],
        ])
    }
}

impl TimeTag {
    fn write(&self, f: &mut dyn fmt::Write) -> fmt::Result {
        const OPEN: &[u8] = b"<time datetime=\"";
        const MID: &[u8] = b"Z\">";
        const CLOSE: &[u8] = b" UTC</time>";
        let t = Utc::from_ms(self.0);
        let Some(iso) = t.ascii() else {
            // Outside four-digit years: the slow, general way.
            let (y, mo, d, h, mi, s) = (t.year, t.month, t.day, t.hour, t.minute, t.second);
            return write!(
                f,
                "<time datetime=\"{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z\">{y:04}-{mo:02}-{d:02} {h:02}:{mi:02} UTC</time>"
            );
        };
        // The element in one buffer, written at once: the shown time is the
        // ISO one to the minute, with a space for the `T`.
        let mut buf = [0u8; OPEN.len() + 19 + MID.len() + 16 + CLOSE.len()];
        let mut at = 0;
        for part in [OPEN, &iso, MID, &iso[..16], CLOSE] {
            buf[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        }
        buf[OPEN.len() + 19 + MID.len() + 10] = b' ';
        f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
    }
}

/// The UTC date `YYYY-MM-DD` of unix ms.
pub(crate) fn date(ms: i64) -> String {
    let t = Utc::from_ms(ms);
    format!("{:04}-{:02}-{:02}", t.year, t.month, t.day)
}

impl fmt::Display for TimeTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f)
    }
}

// Templates write these through `FastWritable` when they can: straight into
// the page, without a formatter in between.
impl askama::FastWritable for TimeTag {
    fn write_into(&self, dest: &mut dyn fmt::Write, _: &dyn askama::Values) -> askama::Result<()> {
        Ok(self.write(dest)?)
    }
}

#[cfg(test)]
mod tests {
    use super::TimeTag;

    /// The `datetime` value alone.
    fn iso(ms: i64) -> String {
        let tag = TimeTag(ms).to_string();
        let value = tag.strip_prefix("<time datetime=\"").and_then(|t| t.split_once('"')).expect("a datetime");
        value.0.to_owned()
    }

    #[test]
    fn times_are_utc() {
        assert_eq!(
            TimeTag(1_700_000_000_000).to_string(),
            "<time datetime=\"2023-11-14T22:13:20Z\">2023-11-14 22:13 UTC</time>"
        );
        assert_eq!(TimeTag(0).to_string(), "<time datetime=\"1970-01-01T00:00:00Z\">1970-01-01 00:00 UTC</time>");
        assert_eq!(iso(-1), "1969-12-31T23:59:59Z");
        // Leap days, century rules and the four-digit edges, against the `time` crate:
        // every day of 1600–2500 at drifting times, then the whole range coarsely.
        let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
        let check = |ms: i64| {
            let t = time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000)).expect("in range");
            assert_eq!(iso(ms), t.format(&fmt).expect("format"), "at {ms}");
        };
        let first: i64 = -62_167_219_200_000; // 0000-01-01T00:00:00Z
        let last: i64 = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z
        let mut ms: i64 = -11_676_096_000_000; // 1600-01-01
        while ms < 16_725_225_600_000 {
            check(ms);
            ms += 86_399_937;
        }
        let mut ms = first;
        while ms <= last {
            check(ms);
            ms += 3_989_999_999_937;
        }
        check(first);
        check(last);
        assert_eq!(iso(last + 1), "10000-01-01T00:00:00Z");
        assert_eq!(
            TimeTag(last + 1).to_string(),
            "<time datetime=\"10000-01-01T00:00:00Z\">10000-01-01 00:00 UTC</time>"
        );
    }

    #[test]
    fn templates_write_what_display_shows() {
        use askama::FastWritable;
        for ms in [-62_167_219_200_000, -1, 0, 1_700_000_000_000, 253_402_300_799_999, 253_402_300_800_000] {
            let mut out = String::new();
            TimeTag(ms).write_into(&mut out, &()).expect("write");
            assert_eq!(out, TimeTag(ms).to_string());
        }
    }
}
