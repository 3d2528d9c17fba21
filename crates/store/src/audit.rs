//! `AuditStore` on SQL.

use async_trait::async_trait;
use sqlx::Row as _;

use portcullis_app::audit::{AuditEvent, AuditFilter};
use portcullis_app::ports::{AuditStore, StoreResult};

use crate::{SqlStore, backend_err};

/// Appends `event`, if any, on an open transaction: the change it records
/// commits with it or not at all. `user_id` stands in for the event's own
/// when the user was created in the same transaction.
pub(crate) async fn record_in(
    conn: &mut sqlx::AnyConnection,
    event: Option<&AuditEvent>,
    user_id: Option<i64>,
) -> Result<(), sqlx::Error> {
    let Some(e) = event else { return Ok(()) };
    sqlx::query(
        "INSERT INTO audit_events (at, kind, user_id, actor_id, subject, ip, user_agent, detail) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(e.at)
    .bind(&e.kind)
    .bind(user_id.or(e.user_id))
    .bind(e.actor_id)
    .bind(e.subject.as_deref())
    .bind(e.ip.as_deref())
    .bind(e.user_agent.as_deref())
    .bind(e.detail.as_deref())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[async_trait]
impl AuditStore for SqlStore {
    async fn insert_audit(&self, e: &AuditEvent) -> StoreResult<()> {
        let mut conn = self.wconn().await?;
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
        .fetch_all(&mut *self.conn().await?)
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
            .execute(&mut *self.wconn().await?)
            .await
            .map_err(backend_err)?;
        Ok(done.rows_affected())
    }
}
