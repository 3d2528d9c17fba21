//! `UserStore` on SQL.

use std::sync::LazyLock;

use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::{Any, Row as _, Transaction};

use portcullis_app::audit::AuditEvent;
use portcullis_app::ports::{SignIn, StoreResult};
use portcullis_app::{NewUser, Session, StoreError, User, UserStore, UserSummary};

use crate::audit::{INSERT_EVENT, event_args, record_in};
use crate::outbox::{INSERT_MAIL, mail_args};
use crate::script::{Arg, Script};
use crate::sessions::{INSERT_SESSION, session_args};
use crate::{Backend, Reach, SqlStore, WriteConn, backend_err, flag};

pub(crate) const USER_COLUMNS: &str = "u.id, u.username, u.email, u.password_hash, u.is_admin, u.email_verified, \
     u.security_stamp, u.created_at, u.updated_at, u.last_login_at, u.admin_locked_until";

pub(crate) fn user_from_row(row: &AnyRow) -> Result<User, sqlx::Error> {
    Ok(User {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        email: row.try_get("email")?,
        password_hash: row.try_get("password_hash")?,
        is_admin: row.try_get::<i64, _>("is_admin")? != 0,
        email_verified: row.try_get::<i64, _>("email_verified")? != 0,
        security_stamp: row.try_get("security_stamp")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        last_login_at: row.try_get("last_login_at")?,
        admin_locked_until: row.try_get("admin_locked_until")?,
    })
}

/// Maps a unique-constraint violation to the field it concerns.
pub(crate) fn map_insert_error(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e
        && db.is_unique_violation()
    {
        let text = format!("{} {}", db.message(), db.constraint().unwrap_or_default());
        if text.contains("username") {
            return StoreError::UsernameTaken;
        }
        if text.contains("email") {
            return StoreError::EmailTaken;
        }
    }
    backend_err(e)
}

/// `%`, `_` and `\` matched literally in a LIKE pattern.
fn like_pattern(query: &str) -> String {
    let mut p = String::with_capacity(query.len() + 2);
    p.push('%');
    for c in query.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// Inserts a user on an open transaction or connection.
pub(crate) async fn insert_user_in(conn: &mut sqlx::AnyConnection, u: &NewUser) -> Result<User, sqlx::Error> {
    let sql = format!(
        "INSERT INTO users (username, username_normalized, email, email_normalized, password_hash, is_admin, \
         email_verified, security_stamp, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) RETURNING {}",
        USER_COLUMNS.replace("u.", "")
    );
    let row = sqlx::query(&sql)
        .bind(u.username.as_str())
        .bind(u.username.normalized())
        .bind(u.email.as_str())
        .bind(u.email.normalized())
        .bind(&u.password_hash)
        .bind(flag(u.is_admin))
        .bind(flag(u.email_verified))
        .bind(&u.security_stamp)
        .bind(u.now)
        .fetch_one(&mut *conn)
        .await?;
    user_from_row(&row)
}

/// Sets a user's `last_login_at` ($1) by id ($2), answering the row.
fn note_login() -> String {
    format!("UPDATE users SET last_login_at = $1 WHERE id = $2 RETURNING {}", USER_COLUMNS.replace("u.", ""))
}

/// Forgets one failed-login counter.
const FORGET_ATTEMPT: &str = "DELETE FROM login_attempts WHERE key = $1";

/// A successful login's writes (see `SignIn`), indexed by whether they
/// take the session and a mail: `2 * session + mail`.
static SIGN_IN: [LazyLock<Script>; 4] = [
    LazyLock::new(|| sign_in_script(false, false)),
    LazyLock::new(|| sign_in_script(false, true)),
    LazyLock::new(|| sign_in_script(true, false)),
    LazyLock::new(|| sign_in_script(true, true)),
];

fn sign_in_script(session: bool, mail: bool) -> Script {
    let mut statements = vec![FORGET_ATTEMPT.to_owned(), note_login()];
    if session {
        statements.push(INSERT_SESSION.into());
    }
    statements.push(INSERT_EVENT.into());
    if mail {
        statements.push(INSERT_MAIL.into());
    }
    Script::new(statements)
}

/// The user's row a script's `note_login` answered (`None`: no such user).
fn noted(rows: &[AnyRow]) -> StoreResult<Option<User>> {
    rows.first().map(user_from_row).transpose().map_err(backend_err)
}

/// A successful login of user `user_id` at `now` on the writing connection,
/// in one transaction: its attempt forgotten, the login noted, `session`
/// stored (unless it lives elsewhere), the event recorded and the mail
/// queued. Answers the user's row as the login left it.
pub(crate) async fn sign_in_in(
    conn: &mut WriteConn<'_>,
    user_id: i64,
    now: i64,
    session: Option<&Session>,
    login: &SignIn<'_>,
) -> StoreResult<Option<User>> {
    let forget = [Arg::Text(login.attempt_key)];
    let note = [Arg::Int(now), Arg::Int(user_id)];
    let event = event_args(login.audit, None);
    let session_args = session.map(session_args);
    let mail = login.mail.map(|m| mail_args(m, now));
    let mut args: Vec<&[Arg<'_>]> = vec![&forget, &note];
    args.extend(session_args.as_ref().map(|a| &a[..]));
    args.push(&event);
    args.extend(mail.as_ref().map(|a| &a[..]));
    let script = &SIGN_IN[2 * usize::from(session.is_some()) + usize::from(mail.is_some())];
    noted(&script.run(conn, &args).await.map_err(backend_err)?)
}

/// Records `audit` if a guarded change changed its one row, and commits:
/// a change the guard refused records nothing. Answers whether it changed.
async fn record_if_one(
    mut tx: Transaction<'_, Any>,
    changed_rows: u64,
    audit: Option<&AuditEvent>,
) -> StoreResult<bool> {
    let changed = changed_rows == 1;
    if changed {
        record_in(&mut tx, audit, None).await.map_err(backend_err)?;
    }
    tx.commit().await.map_err(backend_err)?;
    Ok(changed)
}

/// Key of the PostgreSQL advisory lock that changes able to remove an admin
/// take first ("pcadmin" in ASCII).
const ADMINS_LOCK_KEY: i64 = 0x0070_6361_646d_696e;

impl SqlStore {
    /// What a successful login of user `user_id` at `now` writes besides a
    /// session kept elsewhere (Redis), in one transaction.
    pub async fn record_sign_in(&self, user_id: i64, now: i64, login: &SignIn<'_>) -> StoreResult<()> {
        sign_in_in(&mut self.write(Reach::User(user_id)).await?, user_id, now, None, login).await.map(drop)
    }

    /// Makes changes that could remove the last admin (a demotion, a deletion)
    /// wait for each other, so that each counts the admins the one before left.
    /// SQLite needs nothing: it runs one writer at a time, and the guarded
    /// statement reads and writes under that one lock. PostgreSQL (read
    /// committed) would let two such statements each count the other's admin as
    /// the one remaining, and both succeed; an advisory lock held until the
    /// transaction ends queues them, and each statement then sees the last.
    async fn lock_admins(&self, tx: &mut Transaction<'_, Any>) -> StoreResult<()> {
        if self.backend == Backend::Postgres {
            // `pg_advisory_xact_lock` returns `void`, which the Any driver
            // cannot decode: select a constant from it instead.
            sqlx::query("SELECT 1 AS locked FROM pg_advisory_xact_lock($1)")
                .bind(ADMINS_LOCK_KEY)
                .execute(&mut **tx)
                .await
                .map_err(backend_err)?;
        }
        Ok(())
    }
}

#[async_trait]
impl UserStore for SqlStore {
    async fn insert_user(&self, u: &NewUser, audit: Option<&AuditEvent>) -> StoreResult<User> {
        let mut conn = self.write(Reach::Uncached).await?;
        let mut tx = conn.begin().await.map_err(backend_err)?;
        let user = insert_user_in(&mut tx, u).await.map_err(map_insert_error)?;
        record_in(&mut tx, audit, Some(user.id)).await.map_err(backend_err)?;
        tx.commit().await.map_err(backend_err)?;
        Ok(user)
    }

    async fn user_by_id(&self, id: i64) -> StoreResult<Option<User>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users u WHERE u.id = $1");
        let row = sqlx::query(&sql).bind(id).fetch_optional(&mut *self.read().await?).await.map_err(backend_err)?;
        row.as_ref().map(user_from_row).transpose().map_err(backend_err)
    }

    async fn user_by_login(&self, normalized: &str) -> StoreResult<Option<User>> {
        // Two indexed lookups; a username can never contain '@', so at most one matches.
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM users u WHERE u.username_normalized = $1 \
             UNION ALL SELECT {USER_COLUMNS} FROM users u WHERE u.email_normalized = $1"
        );
        let row =
            sqlx::query(&sql).bind(normalized).fetch_optional(&mut *self.read().await?).await.map_err(backend_err)?;
        row.as_ref().map(user_from_row).transpose().map_err(backend_err)
    }

    async fn username_taken(&self, normalized: &str) -> StoreResult<bool> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM users WHERE username_normalized = $1")
            .bind(normalized)
            .fetch_one(&mut *self.read().await?)
            .await
            .map_err(backend_err)?;
        Ok(row.try_get::<i64, _>("n").map_err(backend_err)? > 0)
    }

    async fn email_taken(&self, normalized: &str) -> StoreResult<bool> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM users WHERE email_normalized = $1")
            .bind(normalized)
            .fetch_one(&mut *self.read().await?)
            .await
            .map_err(backend_err)?;
        Ok(row.try_get::<i64, _>("n").map_err(backend_err)? > 0)
    }

    async fn list_users(
        &self,
        query: Option<&str>,
        after_id: Option<i64>,
        limit: i64,
        now: i64,
    ) -> StoreResult<Vec<UserSummary>> {
        let sql = format!(
            "SELECT {USER_COLUMNS}, a.locked_until FROM users u \
             LEFT JOIN login_attempts a ON a.key = 'user:' || u.id AND a.locked_until > $4 \
             WHERE u.id > $1 AND ($2 = '' OR u.username_normalized LIKE $3 ESCAPE '\\' OR u.email_normalized LIKE $3 ESCAPE '\\') \
             ORDER BY u.id LIMIT $5"
        );
        let rows = sqlx::query(&sql)
            .bind(after_id.unwrap_or(0))
            .bind(query.unwrap_or(""))
            .bind(like_pattern(query.unwrap_or("")))
            .bind(now)
            .bind(limit)
            .fetch_all(&mut *self.read().await?)
            .await
            .map_err(backend_err)?;
        rows.iter()
            .map(|r| {
                let user = user_from_row(r)?;
                let by_admin = user.admin_locked_until.filter(|t| *t > now);
                let by_failures: Option<i64> = r.try_get("locked_until")?;
                Ok(UserSummary { locked_until: by_admin.max(by_failures), user })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(backend_err)
    }

    async fn update_password_hash(&self, id: i64, hash: &str, now: i64) -> StoreResult<()> {
        sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3")
            .bind(hash)
            .bind(now)
            .bind(id)
            .execute(&mut *self.write(Reach::User(id)).await?)
            .await
            .map_err(backend_err)?;
        Ok(())
    }

    async fn set_admin(
        &self,
        id: i64,
        is_admin: bool,
        new_stamp: &str,
        now: i64,
        audit: Option<&AuditEvent>,
    ) -> StoreResult<bool> {
        let mut conn = self.write(Reach::User(id)).await?;
        let mut tx = conn.begin().await.map_err(backend_err)?;
        self.lock_admins(&mut tx).await?;
        // Granting, or revoking a non-admin, never removes an admin.
        let done = sqlx::query(
            "UPDATE users SET is_admin = $1, security_stamp = $2, updated_at = $3 \
             WHERE id = $4 AND ($1 = 1 OR is_admin = 0 \
               OR (SELECT COUNT(*) FROM users WHERE is_admin = 1 AND id <> $4) > 0)",
        )
        .bind(flag(is_admin))
        .bind(new_stamp)
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(backend_err)?;
        record_if_one(tx, done.rows_affected(), audit).await
    }

    async fn count_admins(&self) -> StoreResult<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM users WHERE is_admin = 1")
            .fetch_one(&mut *self.read().await?)
            .await
            .map_err(backend_err)?;
        row.try_get("n").map_err(backend_err)
    }

    async fn delete_user(&self, id: i64, audit: Option<&AuditEvent>) -> StoreResult<bool> {
        let mut conn = self.write(Reach::UserAndPosts(id)).await?;
        let mut tx = conn.begin().await.map_err(backend_err)?;
        self.lock_admins(&mut tx).await?;
        // Posts and sessions go by ON DELETE CASCADE, in the same statement.
        let done = sqlx::query(
            "DELETE FROM users WHERE id = $1 \
             AND (is_admin = 0 OR (SELECT COUNT(*) FROM users WHERE is_admin = 1 AND id <> $1) > 0)",
        )
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(backend_err)?;
        record_if_one(tx, done.rows_affected(), audit).await
    }

    async fn set_admin_lock(
        &self,
        id: i64,
        until: Option<i64>,
        now: i64,
        audit: Option<&AuditEvent>,
    ) -> StoreResult<bool> {
        let mut conn = self.write(Reach::User(id)).await?;
        let mut tx = conn.begin().await.map_err(backend_err)?;
        self.lock_admins(&mut tx).await?;
        // Unlocking, or locking a non-admin, never leaves no admin unlocked.
        let done = sqlx::query(
            "UPDATE users SET admin_locked_until = $1, updated_at = $2 WHERE id = $3 \
             AND ($4 = 0 OR is_admin = 0 OR (SELECT COUNT(*) FROM users WHERE is_admin = 1 AND id <> $3 \
               AND (admin_locked_until IS NULL OR admin_locked_until <= $2)) > 0)",
        )
        .bind(until)
        .bind(now)
        .bind(id)
        .bind(flag(until.is_some_and(|t| t > now)))
        .execute(&mut *tx)
        .await
        .map_err(backend_err)?;
        if done.rows_affected() == 1 && until.is_some_and(|t| t > now) {
            // A lock by an administrator ends the user's API tokens with it.
            crate::access_tokens::delete_user_tokens_in(&mut tx, id).await.map_err(backend_err)?;
        }
        record_if_one(tx, done.rows_affected(), audit).await
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&mut *self.read().await?).await.map_err(backend_err)?;
        Ok(())
    }
}
