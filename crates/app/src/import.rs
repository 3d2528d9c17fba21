//! Moving in: accounts (and their posts) from another app, in batches. A
//! row is taken as it is or skipped with its reason: names that break our
//! rules are never changed, a username or email that is taken (without
//! regard to case) is never overwritten, and only password hashes we can
//! verify are taken. Each batch is written in one transaction, users with
//! their posts, so an interrupted import leaves whole batches behind and a
//! second run of the same import finds every row it wrote taken.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use portcullis_domain::import::{UNKNOWN_HASH, exact_names, hash_format};
use portcullis_domain::{PostContent, PostTitle};

use crate::audit::Origin;
use crate::clock::Clock;
use crate::error::AppError;
use crate::ports::{AuditStore, StoreResult};
use crate::tokens;

/// A user as read from the other app.
#[derive(Clone, Debug, Default)]
pub struct ImportUser {
    /// Where the row is, for messages: `line 7`, `user id 12`.
    pub source: String,
    /// As stored there.
    pub username: String,
    /// As stored there.
    pub email: String,
    /// As stored there.
    pub password_hash: String,
    /// Administrator there.
    pub is_admin: bool,
    /// Address confirmed there.
    pub email_verified: bool,
    /// Unix ms; `None`: now.
    pub created_at: Option<i64>,
    /// A failed-login lock there until this time (unix ms), if any.
    pub locked_until: Option<i64>,
    /// The user's posts.
    pub posts: Vec<ImportPost>,
}

/// A post as read from the other app.
#[derive(Clone, Debug, Default)]
pub struct ImportPost {
    /// Where the row is, for messages.
    pub source: String,
    /// As stored there.
    pub title: String,
    /// As stored there.
    pub content: String,
    /// Unix ms.
    pub created_at: i64,
}

/// A user the store is to write, checked.
#[derive(Clone, Debug)]
pub struct ImportedUser {
    /// As it was.
    pub username: String,
    /// Lower case: what uniqueness is decided on.
    pub username_normalized: String,
    /// As it was.
    pub email: String,
    /// Lower case.
    pub email_normalized: String,
    /// Taken over as it was.
    pub password_hash: String,
    /// Administrator.
    pub is_admin: bool,
    /// Address confirmed.
    pub email_verified: bool,
    /// Fresh random stamp.
    pub security_stamp: String,
    /// Unix ms.
    pub created_at: i64,
    /// Kept as a failed-login lock until this time: the account's counter
    /// stands at the threshold until then (see [`ImportStore`]).
    pub locked_until: Option<i64>,
    /// Checked posts: title, content, unix ms.
    pub posts: Vec<(String, String, i64)>,
}

/// What an import needs from storage.
#[async_trait]
pub trait ImportStore: Send + Sync {
    /// Which of these normalized usernames and emails some account has.
    async fn taken_names(
        &self,
        usernames: &[String],
        emails: &[String],
    ) -> StoreResult<(HashSet<String>, HashSet<String>)>;
    /// Writes `users` with their posts in one transaction, skipping any
    /// whose username or email an account has by then; a user's lock
    /// becomes their failed-login counter at `threshold` attempts, locked
    /// until that time. Answers, for each user, whether it was written.
    async fn insert_imported(&self, users: &[ImportedUser], threshold: i64, now: i64) -> StoreResult<Vec<bool>>;
}

/// Counts so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Users written (or, in a dry run, that would be).
    pub users: u64,
    /// Posts written (or that would be).
    pub posts: u64,
    /// Rows skipped: users and posts.
    pub skipped: u64,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "imported {} users, {} posts; skipped {}", self.users, self.posts, self.skipped)
    }
}

/// One import run: feed it batches, then [`Import::finish`].
pub struct Import {
    store: Arc<dyn ImportStore>,
    audit: Arc<dyn AuditStore>,
    clock: Arc<dyn Clock>,
    threshold: i64,
    dry_run: bool,
    what: String,
    /// Normalized usernames and emails of this run's rows taken so far.
    seen_names: HashSet<String>,
    seen_emails: HashSet<String>,
    summary: Summary,
}

impl Import {
    /// An import of `what` (for the audit log: `flask-sqlite app.db`).
    /// A lock kept from the other app holds like one reached by
    /// `lockout_threshold` failed logins here; a dry run writes nothing.
    pub fn new(
        store: Arc<dyn ImportStore>,
        audit: Arc<dyn AuditStore>,
        clock: Arc<dyn Clock>,
        lockout_threshold: u32,
        dry_run: bool,
        what: &str,
    ) -> Self {
        Self {
            store,
            audit,
            clock,
            threshold: i64::from(lockout_threshold.max(1)),
            dry_run,
            what: what.to_owned(),
            seen_names: HashSet::new(),
            seen_emails: HashSet::new(),
            summary: Summary::default(),
        }
    }

    /// The counts so far.
    pub fn summary(&self) -> Summary {
        self.summary
    }

    /// Checks and writes one batch (one transaction). `skipped` is told the
    /// reason for every row left out.
    pub async fn batch(&mut self, rows: Vec<ImportUser>, skipped: &mut dyn FnMut(String)) -> Result<(), AppError> {
        let now = self.clock.now_ms();
        let mut checked: Vec<(ImportedUser, String, u64)> = Vec::with_capacity(rows.len());
        for row in rows {
            let n_posts = row.posts.len() as u64;
            match self.check(row, now, skipped) {
                Ok(c) => checked.push(c),
                Err((reason, source)) => {
                    self.skip_user(&source, &reason, n_posts, skipped);
                }
            }
        }
        let usernames: Vec<String> = checked.iter().map(|(u, ..)| u.username_normalized.clone()).collect();
        let emails: Vec<String> = checked.iter().map(|(u, ..)| u.email_normalized.clone()).collect();
        let (taken_names, taken_emails) = self.store.taken_names(&usernames, &emails).await?;
        let mut fresh = Vec::with_capacity(checked.len());
        for (user, source, post_rows) in checked {
            if taken_names.contains(&user.username_normalized) {
                self.skip_user(&source, &format!("username {:?} is taken", user.username), post_rows, skipped);
            } else if taken_emails.contains(&user.email_normalized) {
                self.skip_user(&source, &format!("email {:?} is taken", user.email), post_rows, skipped);
            } else {
                fresh.push((user, source, post_rows));
            }
        }
        if fresh.is_empty() {
            return Ok(());
        }
        let users: Vec<ImportedUser> = fresh.iter().map(|(u, ..)| u.clone()).collect();
        let written = if self.dry_run {
            vec![true; users.len()]
        } else {
            self.store.insert_imported(&users, self.threshold, now).await?
        };
        for ((user, source, post_rows), ok) in fresh.into_iter().zip(written) {
            if ok {
                self.summary.users += 1;
                self.summary.posts += user.posts.len() as u64;
            } else {
                let reason = format!("username {:?} or email {:?} was taken meanwhile", user.username, user.email);
                self.skip_user(&source, &reason, post_rows, skipped);
            }
        }
        Ok(())
    }

    /// Counts `rows` the source could not even read as rows (their reason
    /// told by the caller).
    pub fn skipped_at_source(&mut self, rows: u64) {
        self.summary.skipped += rows;
    }

    /// Records the run in the audit log (unless a dry run) and answers the counts.
    pub async fn finish(self) -> Result<Summary, AppError> {
        if !self.dry_run {
            let detail = format!("{} from {}", self.summary, self.what);
            let event = Origin::command_line().event(self.clock.now_ms(), "import", None, None, Some(detail));
            self.audit.insert_audit(&event).await?;
        }
        Ok(self.summary)
    }

    fn skip_user(&mut self, source: &str, reason: &str, posts: u64, skipped: &mut dyn FnMut(String)) {
        self.summary.skipped += 1 + posts;
        let also = match posts {
            0 => String::new(),
            1 => "; its 1 post skipped too".into(),
            n => format!("; its {n} posts skipped too"),
        };
        skipped(format!("{source}: {reason}{also}"));
    }

    /// A row made ready to write, with its source and how many of its posts
    /// are kept; or why not. Bad posts of a good user are skipped here.
    #[allow(clippy::type_complexity)]
    fn check(
        &mut self,
        row: ImportUser,
        now: i64,
        skipped: &mut dyn FnMut(String),
    ) -> Result<(ImportedUser, String, u64), (String, String)> {
        let source = row.source;
        let (username, email) = exact_names(&row.username, &row.email).map_err(|e| (e, source.clone()))?;
        if hash_format(&row.password_hash).is_none() {
            return Err((UNKNOWN_HASH.to_owned(), source));
        }
        let (name_n, email_n) = (username.normalized(), email.normalized());
        if self.seen_names.contains(&name_n) {
            return Err((format!("username {:?} appears twice in the file", row.username), source));
        }
        if self.seen_emails.contains(&email_n) {
            return Err((format!("email {:?} appears twice in the file", row.email), source));
        }
        self.seen_names.insert(name_n.clone());
        self.seen_emails.insert(email_n.clone());
        let mut posts = Vec::with_capacity(row.posts.len());
        for p in row.posts {
            match (PostTitle::parse(&p.title), PostContent::parse(&p.content)) {
                (Ok(t), Ok(c)) => posts.push((t.as_str().to_owned(), c.as_str().to_owned(), p.created_at)),
                (Err(e), _) | (_, Err(e)) => {
                    self.summary.skipped += 1;
                    skipped(format!("{}: {e}", p.source));
                }
            }
        }
        let kept = posts.len() as u64;
        let user = ImportedUser {
            username: username.as_str().to_owned(),
            username_normalized: name_n,
            email: email.as_str().to_owned(),
            email_normalized: email_n,
            password_hash: row.password_hash,
            is_admin: row.is_admin,
            email_verified: row.email_verified,
            security_stamp: tokens::random_b64(16),
            created_at: row.created_at.unwrap_or(now),
            locked_until: row.locked_until.filter(|t| *t > now),
            posts,
        };
        Ok((user, source, kept))
    }
}
