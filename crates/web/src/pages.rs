//! The pages: one struct per template in `templates/`, compiled by askama.
//! A template is checked against its struct when the crate builds, and
//! renders as plain Rust: no interpreter and no value maps per request.
//! Every page carries the request context, which `base.html` reads (who is
//! signed in, the CSRF token, flash messages, the current path).

use std::collections::BTreeMap;
use std::fmt;

use askama::Template;
use portcullis_app::audit::AuditEvent;
use portcullis_app::{FieldErrors, Post, User};

use crate::context::RequestCtx;

/// The HTML escaper of every page (see `askama.toml`): `&`, `<`, `>`, `"`
/// and `'` become entities, so text is safe in element content and in
/// quoted attributes alike.
#[derive(Clone, Copy, Debug, Default)]
pub struct Entities;

impl askama::filters::Escaper for Entities {
    fn write_escaped_str<W: fmt::Write>(&self, mut dest: W, string: &str) -> fmt::Result {
        let bytes = string.as_bytes();
        let mut last = 0;
        while let Some(offset) = next_special(&bytes[last..]) {
            let at = last + offset;
            let entity = match bytes[at] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#x27;",
            };
            dest.write_str(&string[last..at])?;
            dest.write_str(entity)?;
            last = at + 1;
        }
        dest.write_str(&string[last..])
    }
}

/// The offset of the first byte that needs an entity. `memchr` searches
/// with vector instructions, so long text without any costs little; short
/// text (names, tokens) is quicker to walk than a vector search is to set up.
fn next_special(bytes: &[u8]) -> Option<usize> {
    if bytes.len() < 32 {
        return bytes.iter().position(|b| matches!(b, b'&' | b'<' | b'>' | b'"' | b'\''));
    }
    let first = memchr::memchr3(b'&', b'<', b'>', bytes);
    memchr::memchr2(b'"', b'\'', &bytes[..first.unwrap_or(bytes.len())]).or(first)
}

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

/// The first `n` characters of a text, cut at a word boundary, with an
/// ellipsis when cut; written without a copy of the text.
pub struct Excerpt<'a> {
    text: &'a str,
    cut: bool,
}

impl Excerpt<'_> {
    fn write(&self, f: &mut dyn fmt::Write) -> fmt::Result {
        f.write_str(self.text)?;
        if self.cut { f.write_str("…") } else { Ok(()) }
    }
}

impl fmt::Display for Excerpt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f)
    }
}

impl askama::FastWritable for Excerpt<'_> {
    fn write_into(&self, dest: &mut dyn fmt::Write, _: &dyn askama::Values) -> askama::Result<()> {
        Ok(self.write(dest)?)
    }
}

/// The first `n` characters of `text`, cut at a word boundary, with an ellipsis.
pub fn excerpt(text: &str, n: usize) -> Excerpt<'_> {
    // The byte offset of character `n`; none when the text is no longer.
    // At most `n` bytes is at most `n` characters, and when the first `n`
    // bytes are ASCII, character `n` starts at byte `n`.
    let end = if text.len() <= n {
        None
    } else if text.as_bytes()[..n].is_ascii() {
        Some(n)
    } else {
        text.char_indices().nth(n).map(|(i, _)| i)
    };
    let Some(end) = end else {
        return Excerpt { text, cut: false };
    };
    let cut = &text[..end];
    let cut = match cut.rfind(char::is_whitespace) {
        Some(i) if i > n / 2 => &cut[..i],
        _ => cut,
    };
    Excerpt { text: cut.trim_end(), cut: true }
}

/// A form's errors by field name, the first message of each.
#[derive(Debug, Default)]
pub struct Errors<'a>(BTreeMap<&'a str, &'a str>);

impl<'a> Errors<'a> {
    /// The errors of a use case's answer.
    pub fn of(errors: &'a FieldErrors) -> Self {
        let mut map = BTreeMap::new();
        for (field, message) in &errors.0 {
            map.entry(*field).or_insert(message.as_str());
        }
        Self(map)
    }

    /// The message for `field`, if any.
    pub fn get(&self, field: &str) -> Option<&'a str> {
        self.0.get(field).copied()
    }
}

impl RequestCtx {
    /// The signed-in user, if any.
    pub fn user(&self) -> Option<&User> {
        self.auth.as_deref().map(|a| &a.user)
    }

    /// `aria-current="page"` when this request is for `path` exactly.
    fn current_if(&self, path: &str) -> &'static str {
        if self.path_and_query == path { " aria-current=\"page\"" } else { "" }
    }

    /// `aria-current="page"` when this request is under `prefix`.
    fn current_under(&self, prefix: &str) -> &'static str {
        if self.path_and_query.starts_with(prefix) { " aria-current=\"page\"" } else { "" }
    }
}

/// A list of posts with its pager (`_post_list.html`).
pub struct PostList<'a> {
    /// This page's posts.
    pub posts: &'a [Post],
    /// The `before` of the next page.
    pub next_before: Option<i64>,
    /// Whether this is not the first page.
    pub paged: bool,
}

impl<'a> PostList<'a> {
    /// A page of `fetched`, which holds one post more than a page when
    /// there is a next one (that post is not shown; the pager links to it).
    pub fn page(fetched: &'a [Post], paged: bool) -> Self {
        let size = crate::routes::posts::PAGE_SIZE as usize;
        let posts = &fetched[..fetched.len().min(size)];
        let next_before = if fetched.len() > size { posts.last().map(|p| p.id) } else { None };
        Self { posts, next_before, paged }
    }
}

/// `/`.
#[derive(Template)]
#[template(path = "home.html")]
pub struct Home<'a> {
    /// The request.
    pub ctx: &'a RequestCtx,
    /// The newest posts.
    pub list: PostList<'a>,
}

/// `/dashboard`.
#[derive(Template)]
#[template(path = "dashboard.html")]
pub struct Dashboard<'a> {
    /// The request.
    pub ctx: &'a RequestCtx,
    /// The user's posts.
    pub list: PostList<'a>,
}

/// `/login`.
#[derive(Template)]
#[template(path = "login.html")]
pub struct Login<'a> {
    /// The request.
    pub ctx: &'a RequestCtx,
    /// Where to go after signing in (already checked as a local path).
    pub next: Option<&'a str>,
    /// The name typed, after a failed attempt.
    pub username: &'a str,
    /// Whether an attempt just failed.
    pub failed: bool,
}

/// `/register`.
#[derive(Template)]
#[template(path = "register.html")]
pub struct Register<'a> {
    /// The request.
    pub ctx: &'a RequestCtx,
    /// The password policy's minimum length.
    pub min_length: usize,
    /// The name typed.
    pub username: &'a str,
    /// The address typed.
    pub email: &'a str,
    /// What to fix.
    pub errors: Errors<'a>,
}

/// `/logout`, the question before logging out.
#[derive(Template)]
#[template(path = "logout.html")]
pub struct Logout<'a> {
    /// The request.
    pub ctx: &'a RequestCtx,
}

/// `/posts/{id}`.
#[derive(Template)]
#[template(path = "post.html")]
pub struct PostPage<'a> {
    /// The request.
    pub ctx: &'a RequestCtx,
    /// The post.
    pub post: &'a Post,
    /// Whether the viewer may edit it.
    pub can_edit: bool,
    /// Whether the viewer may delete it.
    pub can_delete: bool,
}

/// `/posts/new` and `/posts/{id}/edit`.
#[derive(Template)]
#[template(path = "post_form.html")]
pub struct PostForm<'a> {
    /// The request.
    pub ctx: &'a RequestCtx,
    /// The post being edited; `None` for a new one.
    pub editing: Option<i64>,
    /// Title so far.
    pub title: &'a str,
    /// Content so far.
    pub content: &'a str,
    /// What to fix.
    pub errors: Errors<'a>,
}

/// `/account`.
#[derive(Template)]
#[template(path = "account.html")]
pub struct Account<'a> {
    /// The request.
    pub ctx: &'a RequestCtx,
    /// The password policy's minimum length.
    pub min_length: usize,
}

/// One row of `/account/sessions`.
pub struct SessionRow {
    /// Session id.
    pub id: String,
    /// Browser and system, in words.
    pub device: String,
    /// Client IP.
    pub ip: String,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub last_seen_at: i64,
    /// "Remember me".
    pub remember: bool,
    /// The session of this request.
    pub current: bool,
}

/// `/account/sessions`.
#[derive(Template)]
#[template(path = "sessions.html")]
pub struct Sessions<'a> {
    /// The request.
    pub ctx: &'a RequestCtx,
    /// Newest first.
    pub sessions: Vec<SessionRow>,
}

/// An audit event with its device in words.
pub struct EventRow<'a> {
    /// The event.
    pub e: &'a AuditEvent,
    /// Browser and system, in words.
    pub device: String,
}

/// `/account/activity`.
#[derive(Template)]
#[template(path = "activity.html")]
pub struct Activity<'a> {
    /// The request.
    pub ctx: &'a RequestCtx,
    /// Newest first.
    pub events: Vec<EventRow<'a>>,
    /// The `before` of the next page.
    pub next_before: Option<i64>,
    /// Whether this is not the first page.
    pub paged: bool,
}

/// One row of `/admin/users`.
pub struct UserRow<'a> {
    /// The account.
    pub user: &'a User,
    /// Locked by an administrator or by failed logins.
    pub locked: bool,
}

/// `/admin/users`.
#[derive(Template)]
#[template(path = "admin_users.html")]
pub struct AdminUsers<'a> {
    /// The request.
    pub ctx: &'a RequestCtx,
    /// This page of users.
    pub users: Vec<UserRow<'a>>,
    /// The search.
    pub q: &'a str,
    /// The `after` of the next page.
    pub next_after: Option<i64>,
    /// Whether this is not the first page.
    pub paged: bool,
}

/// The confirmation before an administrator's action.
#[derive(Template)]
#[template(path = "admin_confirm.html")]
pub struct AdminConfirm<'a> {
    /// The request.
    pub ctx: &'a RequestCtx,
    /// The account acted on.
    pub user: &'a User,
    /// The action's path segment.
    pub action: &'a str,
    /// The action in words.
    pub label: &'a str,
    /// What it does.
    pub consequence: &'a str,
    /// Whether it takes something away.
    pub danger: bool,
}

/// `/admin/audit`.
#[derive(Template)]
#[template(path = "admin_audit.html")]
pub struct AdminAudit<'a> {
    /// The request.
    pub ctx: &'a RequestCtx,
    /// Newest first.
    pub events: Vec<EventRow<'a>>,
    /// The `before` of the next page.
    pub next_before: Option<i64>,
    /// Whether this is not the first page.
    pub paged: bool,
    /// The user filter as typed.
    pub user: &'a str,
    /// The kind filter.
    pub kind: &'a str,
    /// Every kind of event.
    pub kinds: &'a [&'a str],
}

/// `/forgot-password`.
#[derive(Template)]
#[template(path = "forgot_password.html")]
pub struct ForgotPassword<'a> {
    /// The request.
    pub ctx: &'a RequestCtx,
}

/// `/reset-password/{token}`.
#[derive(Template)]
#[template(path = "reset_password.html")]
pub struct ResetPassword<'a> {
    /// The request.
    pub ctx: &'a RequestCtx,
    /// The link's token.
    pub token: &'a str,
    /// The password policy's minimum length.
    pub min_length: usize,
    /// What to fix.
    pub errors: Errors<'a>,
}

/// Why a verification or reset link did not work.
#[derive(Template)]
#[template(path = "link_problem.html")]
pub struct LinkProblem<'a> {
    /// The request.
    pub ctx: &'a RequestCtx,
    /// What went wrong.
    pub message: &'a str,
    /// `reset` or `verify`: what to offer instead.
    pub retry: &'a str,
}

/// The site's error page.
#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage<'a> {
    /// The request.
    pub ctx: &'a RequestCtx,
    /// HTTP status.
    pub status: u16,
    /// Headline.
    pub title: &'a str,
    /// What happened.
    pub message: &'a str,
}

#[cfg(test)]
mod tests {
    use super::{TimeTag, excerpt};

    /// The `datetime` value alone.
    fn iso(ms: i64) -> String {
        let tag = TimeTag(ms).to_string();
        let value = tag.strip_prefix("<time datetime=\"").and_then(|t| t.split_once('"')).expect("a datetime");
        value.0.to_owned()
    }

    fn excerpt_s(text: &str, n: usize) -> String {
        excerpt(text, n).to_string()
    }

    #[test]
    fn excerpts_cut_at_a_word_within_the_limit() {
        assert_eq!(excerpt_s("short text", 240), "short text");
        assert_eq!(excerpt_s("exactly10!", 10), "exactly10!");
        assert_eq!(excerpt_s("one two three four", 12), "one two…");
        // No space in the second half: cut mid-word rather than lose most of it.
        assert_eq!(excerpt_s("a verylongwordindeed", 10), "a verylong…");
        // Characters, not bytes: never splits a multi-byte character.
        assert_eq!(excerpt_s("ééééé ééééé", 8), "ééééé…");
        assert_eq!(excerpt_s("ééé", 3), "ééé");
        assert_eq!(excerpt_s("ééé", 2), "éé…");
        assert_eq!(excerpt_s("abcé", 3), "abc…");
        assert_eq!(excerpt_s("ab é", 3), "ab…");
    }

    #[test]
    fn text_is_escaped_with_named_entities() {
        use askama::filters::Escaper as _;
        let mut out = String::new();
        super::Entities.write_escaped_str(&mut out, "<a href=\"x\">Tom & Jerry's</a> é").expect("write");
        assert_eq!(out, "&lt;a href=&quot;x&quot;&gt;Tom &amp; Jerry&#x27;s&lt;/a&gt; é");
        // Each special character at every position of texts of several lengths.
        for (c, entity) in [('&', "&amp;"), ('<', "&lt;"), ('>', "&gt;"), ('"', "&quot;"), ('\'', "&#x27;")] {
            for len in [15, 16, 17, 33, 48] {
                for at in 0..len {
                    let text: String = (0..len).map(|i| if i == at { c } else { 'x' }).collect();
                    let mut out = String::new();
                    super::Entities.write_escaped_str(&mut out, &text).expect("write");
                    assert_eq!(out, format!("{}{entity}{}", "x".repeat(at), "x".repeat(len - at - 1)));
                }
            }
        }
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
        let fast = |w: &dyn FastWritable| {
            let mut out = String::new();
            w.write_into(&mut out, &()).expect("write");
            out
        };
        for ms in [-62_167_219_200_000, -1, 0, 1_700_000_000_000, 253_402_300_799_999, 253_402_300_800_000] {
            assert_eq!(fast(&TimeTag(ms)), TimeTag(ms).to_string());
        }
        for (text, n) in [("short", 240), ("one two three four", 12), ("ééééé ééééé", 8)] {
            assert_eq!(fast(&excerpt(text, n)), excerpt_s(text, n));
        }
    }
}
