//! The JSON bodies of the API's answers and requests, as the OpenAPI
//! document describes them.

use portcullis_app::User;
use portcullis_app::model::{Post, Session, UserSummary};
use serde::Serialize;
use utoipa::ToSchema;

/// An RFC 3339 time for unix ms.
pub(super) fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

/// The token's user.
#[derive(Serialize, ToSchema)]
pub struct MeBody {
    /// User id.
    pub id: i64,
    /// Username.
    pub username: String,
    /// Email address.
    pub email: String,
    /// Whether an administrator.
    pub is_admin: bool,
    /// Whether the email address is verified.
    pub email_verified: bool,
    /// RFC 3339.
    pub created_at: String,
    /// The token's scope: `read`, `write` or `admin`.
    pub token_scope: String,
    /// The token's name.
    pub token_name: String,
}

/// A post.
#[derive(Serialize, ToSchema)]
pub struct PostBody {
    /// Post id.
    pub id: i64,
    /// Title.
    pub title: String,
    /// Content.
    pub content: String,
    /// The author's id.
    pub author_id: i64,
    /// The author's username.
    pub author: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

impl From<&Post> for PostBody {
    fn from(p: &Post) -> Self {
        Self {
            id: p.id,
            title: p.title.clone(),
            content: p.content.clone(),
            author_id: p.author_id,
            author: p.author.clone(),
            created_at: rfc3339(p.created_at),
            updated_at: rfc3339(p.updated_at),
        }
    }
}

/// A new post.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct NewPost {
    /// Title: up to 200 characters once trimmed; control characters are
    /// dropped, and at least one other character that is not white space must stay.
    #[schema(min_length = 1, max_length = 200, pattern = r"[^\s\x00-\x1f\x7f-\x9f]")]
    title: String,
    /// Content: up to 20000 characters; NUL characters are dropped, and at
    /// least one other character that is not white space must stay.
    #[schema(min_length = 1, max_length = 20000, pattern = r"[^\s\x00\u0085]")]
    content: String,
}

/// Changes to a post; a field left out (or null) stays as it is.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct PostChange {
    /// Title: up to 200 characters once trimmed; control characters are
    /// dropped, and at least one other character that is not white space must stay.
    #[schema(min_length = 1, max_length = 200, pattern = r"[^\s\x00-\x1f\x7f-\x9f]")]
    title: Option<String>,
    /// Content: up to 20000 characters; NUL characters are dropped, and at
    /// least one other character that is not white space must stay.
    #[schema(min_length = 1, max_length = 20000, pattern = r"[^\s\x00\u0085]")]
    content: Option<String>,
}

/// A login session.
#[derive(Serialize, ToSchema)]
pub struct SessionBody {
    /// Session id.
    pub id: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub last_seen_at: String,
    /// RFC 3339.
    pub expires_at: String,
    /// "Remember me".
    pub remember: bool,
    /// Address it signed in from.
    pub ip: Option<String>,
    /// Browser.
    pub user_agent: Option<String>,
}

impl From<&Session> for SessionBody {
    fn from(s: &Session) -> Self {
        Self {
            id: s.id.clone(),
            created_at: rfc3339(s.created_at),
            last_seen_at: rfc3339(s.last_seen_at),
            expires_at: rfc3339(s.expires_at),
            remember: s.remember,
            ip: s.ip.clone(),
            user_agent: s.user_agent.clone(),
        }
    }
}

/// A user, as an administrator sees them.
#[derive(Serialize, ToSchema)]
pub struct UserBody {
    /// User id.
    pub id: i64,
    /// Username.
    pub username: String,
    /// Email.
    pub email: String,
    /// Administrator.
    pub is_admin: bool,
    /// Email verified.
    pub email_verified: bool,
    /// Locked now (failed logins or an administrator).
    pub locked: bool,
    /// RFC 3339.
    pub created_at: String,
}

impl From<&UserSummary> for UserBody {
    fn from(s: &UserSummary) -> Self {
        let u: &User = &s.user;
        Self {
            id: u.id,
            username: u.username.clone(),
            email: u.email.clone(),
            is_admin: u.is_admin,
            email_verified: u.email_verified,
            locked: s.locked_until.is_some(),
            created_at: rfc3339(u.created_at),
        }
    }
}
