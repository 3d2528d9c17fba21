//! `OverviewStore` on SQL: counts for the administrators' overview and
//! the metrics scrape, each one statement on an index (migrations 0009 and
//! 0013).

use async_trait::async_trait;
use sqlx::Row as _;

use portcullis_app::overview::{DAY_MS, DailyCount, OutboxHealth, UserCounts};
use portcullis_app::ports::{OverviewStore, StoreResult};

use crate::{SqlStore, backend_err};

#[async_trait]
impl OverviewStore for SqlStore {
    async fn daily_events(&self, kinds: &[&str], since: i64) -> StoreResult<Vec<DailyCount>> {
        // Per kind, one count of a range of the (kind, at) index per day,
        // from `since`'s day to the last event's (a year at most): the rows
        // are never read, and no grouping sorts a month of events.
        let sql = format!(
            "WITH RECURSIVE days(d) AS ( \
               SELECT $2 / {DAY_MS} \
               UNION ALL SELECT d + 1 FROM days \
               WHERE d < (SELECT MAX(at) FROM audit_events WHERE kind = $1) / {DAY_MS} AND d < $2 / {DAY_MS} + 366) \
             SELECT d AS day, (SELECT COUNT(*) FROM audit_events \
               WHERE kind = $1 AND at >= d * {DAY_MS} AND at < (d + 1) * {DAY_MS} AND at >= $2) AS n \
             FROM days"
        );
        let mut conn = self.read().await?;
        let mut out = Vec::new();
        for kind in kinds {
            let rows = sqlx::query(&sql).bind(*kind).bind(since).fetch_all(&mut *conn).await.map_err(backend_err)?;
            for row in rows {
                let day: i64 = row.try_get("day").map_err(backend_err)?;
                let count: i64 = row.try_get("n").map_err(backend_err)?;
                if count > 0 {
                    out.push(DailyCount { kind: (*kind).to_owned(), day, count });
                }
            }
        }
        Ok(out)
    }

    async fn user_counts(&self) -> StoreResult<UserCounts> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM users) AS total, \
             (SELECT COUNT(*) FROM users WHERE email_verified = 1) AS verified, \
             (SELECT COUNT(*) FROM users WHERE is_admin = 1) AS admins, \
             (SELECT COUNT(*) FROM two_factor WHERE secret IS NOT NULL) AS two_factor, \
             (SELECT COUNT(*) FROM (SELECT DISTINCT user_id FROM passkeys) AS p) AS passkeys",
        )
        .fetch_one(&mut *self.read().await?)
        .await
        .map_err(backend_err)?;
        Ok(UserCounts {
            total: row.try_get("total").map_err(backend_err)?,
            verified: row.try_get("verified").map_err(backend_err)?,
            admins: row.try_get("admins").map_err(backend_err)?,
            two_factor: row.try_get("two_factor").map_err(backend_err)?,
            passkeys: row.try_get("passkeys").map_err(backend_err)?,
        })
    }

    async fn active_sessions(&self, now: i64, idle_cutoff: i64) -> StoreResult<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM sessions WHERE last_seen_at > $1 AND expires_at > $2")
            .bind(idle_cutoff)
            .bind(now)
            .fetch_one(&mut *self.read().await?)
            .await
            .map_err(backend_err)?;
        row.try_get("n").map_err(backend_err)
    }

    async fn outbox_health(&self) -> StoreResult<OutboxHealth> {
        let row = sqlx::query("SELECT COUNT(*) AS n, MIN(created_at) AS oldest FROM outbox WHERE sent_at IS NULL")
            .fetch_one(&mut *self.read().await?)
            .await
            .map_err(backend_err)?;
        Ok(OutboxHealth {
            pending: row.try_get("n").map_err(backend_err)?,
            oldest_at: row.try_get("oldest").map_err(backend_err)?,
        })
    }
}
