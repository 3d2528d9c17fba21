//! `AuditStore` on SQL.

use async_trait::async_trait;
use sqlx::Row as _;

use portcullis_app::audit::{AuditEvent, AuditFilter};
use portcullis_app::ports::{AuditStore, StoreResult};

use crate::script::{Arg, bind_all};
use crate::{Reach, SqlStore, backend_err};

/// Appends an audit event.
pub(crate) const INSERT_EVENT: &str = "INSERT INTO audit_events (at, kind, user_id, actor_id, subject, ip, user_agent, detail) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

/// [`INSERT_EVENT`] if the statement before it changed a row (SQLite only:
/// `changes()` is SQLite's).
pub(crate) const INSERT_EVENT_IF_CHANGED: &str = "INSERT INTO audit_events \
     (at, kind, user_id, actor_id, subject, ip, user_agent, detail) \
     SELECT $1, $2, $3, $4, $5, $6, $7, $8 WHERE changes() > 0";

/// [`INSERT_EVENT`]'s parameters for `e`, `user_id` standing in for its own if given.
pub(crate) fn event_args(e: &AuditEvent, user_id: Option<i64>) -> [Arg<'_>; 8] {
    [
        Arg::Int(e.at),
        Arg::Text(&e.kind),
        Arg::MaybeInt(user_id.or(e.user_id)),
        Arg::MaybeInt(e.actor_id),
        Arg::MaybeText(e.subject.as_deref()),
        Arg::MaybeText(e.ip.as_deref()),
        Arg::MaybeText(e.user_agent.as_deref()),
        Arg::MaybeText(e.detail.as_deref()),
    ]
}

/// Appends `event`, if any, on an open transaction: the change it records
/// commits with it or not at all. `user_id` stands in for the event's own
/// when the user was created in the same transaction.
pub(crate) async fn record_in(
    conn: &mut sqlx::AnyConnection,
    event: Option<&AuditEvent>,
    user_id: Option<i64>,
) -> Result<(), sqlx::Error> {
    let Some(e) = event else { return Ok(()) };
    bind_all(sqlx::query(INSERT_EVENT), &event_args(e, user_id)).execute(&mut *conn).await?;
    Ok(())
}

#[async_trait]
impl AuditStore for SqlStore {
    async fn insert_audit(&self, e: &AuditEvent) -> StoreResult<()> {
        let mut conn = self.write(Reach::Uncached).await?;
        record_in(&mut conn, Some(e), None).await.map_err(backend_err)
    }

    async fn list_audit(&self, f: &AuditFilter, limit: i64) -> StoreResult<Vec<AuditEvent>> {
        let rows = sqlx::query(
            "SELECT id, at, kind, user_id, actor_id, subject, ip, user_agent, detail FROM audit_events \
             WHERE id < $1 AND ($2 = 0 OR user_id = $2) AND ($3 = '' OR kind = $3) ORDER BY id DESC LIMIT $4",
        )
        .bind(f.before_id.unwrap_or(i64::MAX))
        .bind(f.user_id.unwrap_or(0))
        .bind(f.kind.as_deref().unwrap_or(""))
        .bind(limit)
        .fetch_all(&mut *self.read().await?)
        .await
        .map_err(backend_err)?;
        rows.iter()
            .map(|r| {
                Ok(AuditEvent {
                    id: r.try_get("id")?,
                    at: r.try_get("at")?,
                    kind: r.try_get("kind")?,
                    user_id: r.try_get("user_id")?,
                    actor_id: r.try_get("actor_id")?,
                    subject: r.try_get("subject")?,
                    ip: r.try_get("ip")?,
                    user_agent: r.try_get("user_agent")?,
                    detail: r.try_get("detail")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(backend_err)
    }

    async fn purge_audit(&self, before: i64) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM audit_events WHERE at < $1")
            .bind(before)
            .execute(&mut *self.write(Reach::Uncached).await?)
            .await
            .map_err(backend_err)?;
        Ok(done.rows_affected())
    }
}
