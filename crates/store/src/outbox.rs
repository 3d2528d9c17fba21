//! `OutboxStore` on SQL. Claiming is one statement: on PostgreSQL the rows
//! are picked `FOR UPDATE SKIP LOCKED`, on SQLite the single writer lock does
//! the same, so two nodes never claim one mail.

use async_trait::async_trait;
use sqlx::Row as _;

use portcullis_app::OutboxStore;
use portcullis_app::mail::{ClaimedMail, OutgoingMail};
use portcullis_app::ports::StoreResult;

use crate::script::{Arg, bind_all};
use crate::{Backend, Reach, SqlStore, backend_err};

/// Queues a mail.
pub(crate) const INSERT_MAIL: &str = "INSERT INTO outbox (recipient, subject, sealed_body, created_at, attempts, next_attempt_at) \
     VALUES ($1, $2, $3, $4, 0, $4)";

/// [`INSERT_MAIL`]'s parameters for `m`, queued at `now`.
pub(crate) fn mail_args(m: &OutgoingMail, now: i64) -> [Arg<'_>; 4] {
    [Arg::Text(&m.recipient), Arg::Text(&m.subject), Arg::Text(&m.sealed), Arg::Int(now)]
}

/// Queues mails on an open transaction or connection.
pub(crate) async fn enqueue_in(
    conn: &mut sqlx::AnyConnection,
    mails: &[OutgoingMail],
    now: i64,
) -> Result<(), sqlx::Error> {
    for m in mails {
        bind_all(sqlx::query(INSERT_MAIL), &mail_args(m, now)).execute(&mut *conn).await?;
    }
    Ok(())
}

impl SqlStore {
    /// Queues a mail on its own, with no change beside it (for tools and
    /// tests: the use cases queue mail with the change that causes it).
    pub async fn enqueue_mail(&self, mail: &OutgoingMail, now: i64) -> StoreResult<()> {
        let mut conn = self.write(Reach::Uncached).await?;
        enqueue_in(&mut conn, std::slice::from_ref(mail), now).await.map_err(backend_err)
    }

    /// How many mails are not yet sent.
    pub async fn pending_mail_count(&self) -> StoreResult<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM outbox WHERE sent_at IS NULL")
            .fetch_one(&mut *self.read().await?)
            .await
            .map_err(backend_err)?;
        row.try_get("n").map_err(backend_err)
    }
}

#[async_trait]
impl OutboxStore for SqlStore {
    async fn claim_mail(&self, now: i64, lease_until: i64, limit: i64) -> StoreResult<Vec<ClaimedMail>> {
        let lock = match self.backend {
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE outbox SET locked_until = $2 WHERE id IN (\
               SELECT id FROM outbox WHERE sent_at IS NULL AND next_attempt_at <= $1 \
               AND (locked_until IS NULL OR locked_until <= $1) ORDER BY id LIMIT $3 {lock}) \
             RETURNING id, sealed_body, attempts"
        );
        let rows = sqlx::query(&sql)
            .bind(now)
            .bind(lease_until)
            .bind(limit)
            .fetch_all(&mut *self.write(Reach::Uncached).await?)
            .await
            .map_err(backend_err)?;
        rows.iter()
            .map(|r| {
                Ok(ClaimedMail {
                    id: r.try_get("id")?,
                    sealed: r.try_get("sealed_body")?,
                    attempts: r.try_get("attempts")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(backend_err)
    }

    async fn mark_mails_sent(&self, ids: &[i64], now: i64) -> StoreResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        // The bodies held live links: they go once delivered.
        let list = (2..ids.len() + 2).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
        let sql = format!(
            "UPDATE outbox SET sent_at = $1, sealed_body = '', locked_until = NULL, last_error = NULL WHERE id IN ({list})"
        );
        let query = ids.iter().fold(sqlx::query(&sql).bind(now), |q, id| q.bind(*id));
        query.execute(&mut *self.write(Reach::Uncached).await?).await.map_err(backend_err)?;
        Ok(())
    }

    async fn mark_mail_failed(&self, id: i64, attempts: i64, next_attempt_at: i64, error: &str) -> StoreResult<()> {
        let error: String = error.chars().take(500).collect();
        sqlx::query(
            "UPDATE outbox SET attempts = $1, next_attempt_at = $2, locked_until = NULL, last_error = $3 WHERE id = $4",
        )
        .bind(attempts)
        .bind(next_attempt_at)
        .bind(error)
        .bind(id)
        .execute(&mut *self.write(Reach::Uncached).await?)
        .await
        .map_err(backend_err)?;
        Ok(())
    }
}
