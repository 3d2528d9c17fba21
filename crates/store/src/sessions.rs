//! `SessionStore` on SQL.

use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use sqlx::Row as _;
use sqlx::any::AnyRow;

use portcullis_app::audit::AuditEvent;
use portcullis_app::ports::{SignIn, StoreResult};
use portcullis_app::{Session, SessionStore, SignedIn, User};

use crate::audit::{INSERT_EVENT_IF_CHANGED, event_args, record_in};
use crate::script::{Arg, Script, bind_all};
use crate::users::{USER_COLUMNS, sign_in_in, user_from_row};
use crate::{Reach, SqlStore, backend_err, flag};

/// Stores a new session.
pub(crate) const INSERT_SESSION: &str = "INSERT INTO sessions (id, secret_hash, user_id, security_stamp, created_at, \
     last_seen_at, expires_at, remember, ip, user_agent) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

/// A session ended and, if it was there, its event recorded: SQLite only
/// (see [`INSERT_EVENT_IF_CHANGED`]), where it is one trip.
static END_SESSION: LazyLock<Script> = LazyLock::new(|| {
    Script::new(vec![
        "DELETE FROM sessions WHERE id = $1 AND user_id = $2 RETURNING id".into(),
        INSERT_EVENT_IF_CHANGED.into(),
    ])
});

/// [`INSERT_SESSION`]'s parameters for `s`.
pub(crate) fn session_args(s: &Session) -> [Arg<'_>; 10] {
    [
        Arg::Text(&s.id),
        Arg::Text(&s.secret_hash),
        Arg::Int(s.user_id),
        Arg::Text(&s.security_stamp),
        Arg::Int(s.created_at),
        Arg::Int(s.last_seen_at),
        Arg::Int(s.expires_at),
        Arg::Int(flag(s.remember)),
        Arg::MaybeText(s.ip.as_deref()),
        Arg::MaybeText(s.user_agent.as_deref()),
    ]
}

const SESSION_COLUMNS: &str = "s.id AS s_id, s.secret_hash, s.user_id, s.security_stamp AS s_stamp, s.created_at AS s_created_at, \
     s.last_seen_at, s.expires_at, s.remember, s.ip, s.user_agent";

fn session_from_row(row: &AnyRow) -> Result<Session, sqlx::Error> {
    Ok(Session {
        id: row.try_get("s_id")?,
        secret_hash: row.try_get("secret_hash")?,
        user_id: row.try_get("user_id")?,
        security_stamp: row.try_get("s_stamp")?,
        created_at: row.try_get("s_created_at")?,
        last_seen_at: row.try_get("last_seen_at")?,
        expires_at: row.try_get("expires_at")?,
        remember: row.try_get::<i64, _>("remember")? != 0,
        ip: row.try_get("ip")?,
        user_agent: row.try_get("user_agent")?,
    })
}

impl SqlStore {
    /// Stores the session a login opens (see `SessionStore::open_session`)
    /// and answers the user's row as the login left it, with the count its
    /// write was marked with (see `WriteConn::finish`).
    pub(crate) async fn open_session_counted(
        &self,
        session: &Session,
        login: &SignIn<'_>,
    ) -> StoreResult<(Option<User>, u64)> {
        let mut conn = self.write(Reach::User(session.user_id)).await?;
        let opened = sign_in_in(&mut conn, session.user_id, session.created_at, Some(session), login).await;
        let count = conn.finish();
        Ok((opened?, count))
    }
}

#[async_trait]
impl SessionStore for SqlStore {
    async fn insert_session(&self, s: &Session) -> StoreResult<()> {
        bind_all(sqlx::query(INSERT_SESSION), &session_args(s))
            .execute(&mut *self.write(Reach::Uncached).await?)
            .await
            .map_err(backend_err)?;
        Ok(())
    }

    async fn open_session(&self, session: &Session, login: &SignIn<'_>) -> StoreResult<()> {
        self.open_session_counted(session, login).await.map(drop)
    }

    async fn session_with_user(&self, id: &str) -> StoreResult<Option<Arc<SignedIn>>> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS}, {USER_COLUMNS} FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = $1"
        );
        let row = sqlx::query(&sql).bind(id).fetch_optional(&mut *self.read().await?).await.map_err(backend_err)?;
        row.map(|r| Ok(Arc::new(SignedIn { session: session_from_row(&r)?, user: user_from_row(&r)? })))
            .transpose()
            .map_err(backend_err)
    }

    async fn touch_session(&self, id: &str, seen: i64, now: i64) -> StoreResult<()> {
        sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id = $2 AND last_seen_at <= $3")
            .bind(now)
            .bind(id)
            .bind(seen)
            .execute(&mut *self.write(Reach::LastSeen).await?)
            .await
            .map_err(backend_err)?;
        Ok(())
    }

    async fn delete_session(&self, user_id: i64, id: &str, audit: Option<&AuditEvent>) -> StoreResult<bool> {
        let mut conn = self.write(Reach::User(user_id)).await?;
        if let (true, Some(e)) = (conn.is_writer(), audit) {
            let args: [&[Arg<'_>]; 2] = [&[Arg::Text(id), Arg::Int(user_id)], &event_args(e, None)];
            let rows = END_SESSION.run(&mut conn, &args).await.map_err(backend_err)?;
            return Ok(!rows.is_empty());
        }
        let mut tx = conn.begin().await.map_err(backend_err)?;
        let done = sqlx::query("DELETE FROM sessions WHERE id = $1 AND user_id = $2")
            .bind(id)
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .map_err(backend_err)?;
        let deleted = done.rows_affected() > 0;
        if deleted {
            record_in(&mut tx, audit, None).await.map_err(backend_err)?;
        }
        tx.commit().await.map_err(backend_err)?;
        Ok(deleted)
    }

    async fn delete_user_sessions(
        &self,
        user_id: i64,
        except: Option<&str>,
        audit: Option<&AuditEvent>,
    ) -> StoreResult<u64> {
        let mut conn = self.write(Reach::User(user_id)).await?;
        let mut tx = conn.begin().await.map_err(backend_err)?;
        let done = sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND id <> $2")
            .bind(user_id)
            .bind(except.unwrap_or(""))
            .execute(&mut *tx)
            .await
            .map_err(backend_err)?;
        record_in(&mut tx, audit, None).await.map_err(backend_err)?;
        tx.commit().await.map_err(backend_err)?;
        Ok(done.rows_affected())
    }

    async fn user_sessions(&self, user_id: i64, now: i64) -> StoreResult<Vec<Session>> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM sessions s WHERE s.user_id = $1 AND s.expires_at > $2 ORDER BY s.created_at DESC"
        );
        let rows =
            sqlx::query(&sql).bind(user_id).bind(now).fetch_all(&mut *self.read().await?).await.map_err(backend_err)?;
        rows.iter().map(session_from_row).collect::<Result<_, _>>().map_err(backend_err)
    }

    async fn purge_sessions(&self, now: i64, idle_cutoff: i64) -> StoreResult<u64> {
        // Two deletes, each on its own index, rather than one `OR` that scans the table.
        let expired = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(&mut *self.write(Reach::Everything).await?)
            .await
            .map_err(backend_err)?;
        let idle = sqlx::query("DELETE FROM sessions WHERE last_seen_at < $1 AND remember = 0")
            .bind(idle_cutoff)
            .execute(&mut *self.write(Reach::Everything).await?)
            .await
            .map_err(backend_err)?;
        Ok(expired.rows_affected() + idle.rows_affected())
    }
}
