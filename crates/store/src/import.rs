//! `ImportStore` on SQL, and the Flask tutorial app's SQLite database as a
//! source of users and posts.
//!
//! A batch is written with a few multi-row statements in one transaction:
//! users with `ON CONFLICT DO NOTHING … RETURNING`, so that a name taken
//! by a sign-up made meanwhile skips its row instead of failing the batch,
//! then the posts and locks of the users that were written.

use std::collections::{HashMap, HashSet};
use std::str::FromStr as _;

use async_trait::async_trait;
use sqlx::any::AnyConnectOptions;
use sqlx::{AnyConnection, Connection as _, Row as _};

use portcullis_app::import::{ImportPost, ImportStore, ImportUser, ImportedUser};
use portcullis_app::ports::StoreResult;
use portcullis_domain::import::{parse_flag, parse_time};
use portcullis_domain::lockout;

use crate::{Reach, SqlStore, backend_err, flag};

/// Users per `INSERT` (10 parameters each: well under both backends' limits).
const USERS_PER_STATEMENT: usize = 200;
/// Posts per `INSERT` (5 parameters each).
const POSTS_PER_STATEMENT: usize = 400;
/// Names per `IN (…)` lookup.
const NAMES_PER_LOOKUP: usize = 500;

/// `$first, $first+1, …` for `n` parameters.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// `($1, …, $k), ($k+1, …)` for `rows` rows of `k` parameters.
fn value_rows(rows: usize, k: usize) -> String {
    (0..rows).map(|r| format!("({})", placeholders(r * k + 1, k))).collect::<Vec<_>>().join(", ")
}

impl SqlStore {
    /// The values of `column` in `users` among `values`.
    async fn present(&self, column: &str, values: &[String]) -> StoreResult<HashSet<String>> {
        let mut found = HashSet::new();
        for chunk in values.chunks(NAMES_PER_LOOKUP) {
            let sql = format!("SELECT {column} AS v FROM users WHERE {column} IN ({})", placeholders(1, chunk.len()));
            let q = chunk.iter().fold(sqlx::query(&sql), |q, v| q.bind(v.as_str()));
            for row in q.fetch_all(&mut *self.read().await?).await.map_err(backend_err)? {
                found.insert(row.try_get::<String, _>("v").map_err(backend_err)?);
            }
        }
        Ok(found)
    }
}

#[async_trait]
impl ImportStore for SqlStore {
    async fn taken_names(
        &self,
        usernames: &[String],
        emails: &[String],
    ) -> StoreResult<(HashSet<String>, HashSet<String>)> {
        Ok((self.present("username_normalized", usernames).await?, self.present("email_normalized", emails).await?))
    }

    async fn insert_imported(&self, users: &[ImportedUser], threshold: i64, now: i64) -> StoreResult<Vec<bool>> {
        // New users are rows no cache entry names yet, but their posts join
        // the lists the cache keeps, and a name looked up before may exist now.
        let mut conn = self.write(Reach::Everything).await?;
        let mut tx = conn.begin().await.map_err(backend_err)?;
        let mut ids: HashMap<String, i64> = HashMap::with_capacity(users.len());
        for chunk in users.chunks(USERS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO users (username, username_normalized, email, email_normalized, password_hash, is_admin, \
                 email_verified, security_stamp, created_at, updated_at) VALUES {} \
                 ON CONFLICT DO NOTHING RETURNING id, username_normalized",
                value_rows(chunk.len(), 10)
            );
            let mut q = sqlx::query(&sql);
            for u in chunk {
                q = q
                    .bind(u.username.as_str())
                    .bind(u.username_normalized.as_str())
                    .bind(u.email.as_str())
                    .bind(u.email_normalized.as_str())
                    .bind(u.password_hash.as_str())
                    .bind(flag(u.is_admin))
                    .bind(flag(u.email_verified))
                    .bind(u.security_stamp.as_str())
                    .bind(u.created_at)
                    .bind(u.created_at);
            }
            for row in q.fetch_all(&mut *tx).await.map_err(backend_err)? {
                let id: i64 = row.try_get("id").map_err(backend_err)?;
                ids.insert(row.try_get("username_normalized").map_err(backend_err)?, id);
            }
        }
        let posts: Vec<(i64, &(String, String, i64))> = users
            .iter()
            .filter_map(|u| ids.get(&u.username_normalized).map(|id| (*id, &u.posts)))
            .flat_map(|(id, posts)| posts.iter().map(move |p| (id, p)))
            .collect();
        for chunk in posts.chunks(POSTS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO posts (author_id, title, content, created_at, updated_at) VALUES {}",
                value_rows(chunk.len(), 5)
            );
            let q = chunk.iter().fold(sqlx::query(&sql), |q, (id, (title, content, at))| {
                q.bind(*id).bind(title.as_str()).bind(content.as_str()).bind(*at).bind(*at)
            });
            q.execute(&mut *tx).await.map_err(backend_err)?;
        }
        for u in users {
            let (Some(id), Some(until)) = (ids.get(&u.username_normalized), u.locked_until) else { continue };
            sqlx::query(
                "INSERT INTO login_attempts (key, attempts, locked_until, updated_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (key) DO UPDATE SET attempts = $2, locked_until = $3, updated_at = $4",
            )
            .bind(lockout::account_key(*id))
            .bind(threshold)
            .bind(until)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(backend_err)?;
        }
        tx.commit().await.map_err(backend_err)?;
        Ok(users.iter().map(|u| ids.contains_key(&u.username_normalized)).collect())
    }
}

/// Why a Flask database could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SourceError(pub String);

/// The Flask tutorial app's SQLite database, opened read-only.
pub struct FlaskSource {
    conn: AnyConnection,
    after: i64,
}

impl FlaskSource {
    /// Opens `path` read-only and checks that it has the app's tables.
    pub async fn open(path: &std::path::Path) -> Result<Self, SourceError> {
        sqlx::any::install_default_drivers();
        if !path.is_file() {
            return Err(SourceError(format!("cannot read {}: no such file", path.display())));
        }
        let url = format!("sqlite://{}?mode=ro", path.display());
        let options = AnyConnectOptions::from_str(&url).map_err(|e| SourceError(e.to_string()))?;
        let mut conn = AnyConnection::connect_with(&options)
            .await
            .map_err(|e| SourceError(format!("cannot open {}: {e}", path.display())))?;
        // Names every column read later; answers nothing the Any driver
        // cannot decode (it knows no SQLite DATETIME).
        for check in [
            "SELECT COUNT(*) AS n FROM (SELECT id, username, email, password_hash, created_at, is_admin, \
             email_verified, locked_until FROM \"user\" LIMIT 1) AS t",
            "SELECT COUNT(*) AS n FROM (SELECT id, title, content, author_id, created_at FROM post LIMIT 1) AS t",
        ] {
            sqlx::query(check).fetch_all(&mut conn).await.map_err(|e| {
                SourceError(format!("{} is not a database of the Flask tutorial app: {e}", path.display()))
            })?;
        }
        // The app's `post` table has no index on `author_id`: an index of our
        // own, in this connection's temporary database (the file stays
        // untouched), spares a scan of every post for each batch of users.
        for sql in [
            "CREATE TEMP TABLE import_post_authors AS SELECT id, author_id FROM post",
            "CREATE INDEX temp.import_post_authors_by_author ON import_post_authors (author_id, id)",
        ] {
            sqlx::query(sql).execute(&mut conn).await.map_err(|e| SourceError(format!("{}: {e}", path.display())))?;
        }
        Ok(Self { conn, after: 0 })
    }

    /// How many users the database holds.
    pub async fn count_users(&mut self) -> Result<u64, SourceError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM \"user\"")
            .fetch_one(&mut self.conn)
            .await
            .map_err(|e| SourceError(e.to_string()))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Posts whose author is in no row of `user` (never imported).
    pub async fn orphan_posts(&mut self) -> Result<Vec<i64>, SourceError> {
        sqlx::query_scalar("SELECT id FROM post WHERE author_id NOT IN (SELECT id FROM \"user\") ORDER BY id")
            .fetch_all(&mut self.conn)
            .await
            .map_err(|e| SourceError(e.to_string()))
    }

    /// The next `limit` users by id, with their posts; empty at the end. A
    /// row whose time or flag does not read is given as the reason it is
    /// skipped and how many rows that skips (its posts with it).
    pub async fn next_users(&mut self, limit: i64) -> Result<Vec<Result<ImportUser, (String, u64)>>, SourceError> {
        let err = |e: sqlx::Error| SourceError(e.to_string());
        let rows = sqlx::query(
            "SELECT id, CAST(username AS TEXT) AS username, CAST(email AS TEXT) AS email, \
             CAST(COALESCE(password_hash, '') AS TEXT) AS password_hash, \
             CAST(created_at AS TEXT) AS created_at, CAST(COALESCE(is_admin, 0) AS TEXT) AS is_admin, \
             CAST(COALESCE(email_verified, 0) AS TEXT) AS email_verified, \
             CAST(locked_until AS TEXT) AS locked_until \
             FROM \"user\" WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(self.after)
        .bind(limit)
        .fetch_all(&mut self.conn)
        .await
        .map_err(err)?;
        let Some(last) = rows.last() else { return Ok(Vec::new()) };
        let first: i64 = rows[0].try_get("id").map_err(err)?;
        self.after = last.try_get("id").map_err(err)?;
        let mut posts: HashMap<i64, Vec<Result<ImportPost, String>>> = HashMap::new();
        let post_rows = sqlx::query(
            "SELECT p.id, CAST(p.title AS TEXT) AS title, CAST(p.content AS TEXT) AS content, p.author_id, \
             CAST(p.created_at AS TEXT) AS created_at FROM import_post_authors a JOIN post p ON p.id = a.id \
             WHERE a.author_id BETWEEN $1 AND $2 ORDER BY p.id",
        )
        .bind(first)
        .bind(self.after)
        .fetch_all(&mut self.conn)
        .await
        .map_err(err)?;
        for r in post_rows {
            let id: i64 = r.try_get("id").map_err(err)?;
            let author: i64 = r.try_get("author_id").map_err(err)?;
            let text = |c: &str| r.try_get::<Option<String>, _>(c).map(Option::unwrap_or_default).map_err(err);
            let source = format!("post id {id}");
            let created = text("created_at")?;
            let post = match parse_time(&created) {
                Some(at) => Ok(ImportPost { source, title: text("title")?, content: text("content")?, created_at: at }),
                None => Err(format!("{source}: created_at {created:?} is not a time")),
            };
            posts.entry(author).or_default().push(post);
        }
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let id: i64 = r.try_get("id").map_err(err)?;
            let text = |c: &str| r.try_get::<Option<String>, _>(c).map_err(err);
            let source = format!("user id {id}");
            let username = text("username")?.unwrap_or_default();
            let source_named = format!("{source} ({username:?})");
            let time = |c: &str| -> Result<Result<Option<i64>, String>, SourceError> {
                Ok(match text(c)?.filter(|s| !s.is_empty()) {
                    None => Ok(None),
                    Some(s) => parse_time(&s).map(Some).ok_or(format!("{c} {s:?} is not a time")),
                })
            };
            let flag_of = |c: &str| -> Result<Result<bool, String>, SourceError> {
                let s = text(c)?.unwrap_or_default();
                Ok(parse_flag(&s).ok_or(format!("{c} {s:?} is not a flag")))
            };
            let mut user_posts = Vec::new();
            let mut bad_posts = Vec::new();
            for p in posts.remove(&id).unwrap_or_default() {
                match p {
                    Ok(p) => user_posts.push(p),
                    Err(reason) => bad_posts.push(reason),
                }
            }
            let row = (|| -> Result<Result<ImportUser, String>, SourceError> {
                let created_at = match time("created_at")? {
                    Ok(t) => t,
                    Err(e) => return Ok(Err(e)),
                };
                let locked_until = match time("locked_until")? {
                    Ok(t) => t,
                    Err(e) => return Ok(Err(e)),
                };
                let (is_admin, email_verified) = match (flag_of("is_admin")?, flag_of("email_verified")?) {
                    (Ok(a), Ok(v)) => (a, v),
                    (Err(e), _) | (_, Err(e)) => return Ok(Err(e)),
                };
                Ok(Ok(ImportUser {
                    source: source_named.clone(),
                    username: username.clone(),
                    email: text("email")?.unwrap_or_default(),
                    password_hash: text("password_hash")?.unwrap_or_default(),
                    is_admin,
                    email_verified,
                    created_at,
                    locked_until,
                    posts: std::mem::take(&mut user_posts),
                }))
            })()?;
            for reason in bad_posts {
                out.push(Err((reason, 1)));
            }
            let n = user_posts.len() as u64;
            let also = if n == 0 { String::new() } else { format!("; its {n} posts skipped too") };
            out.push(row.map_err(|e| (format!("{source_named}: {e}{also}"), 1 + n)));
        }
        Ok(out)
    }
}
