//! `RateLimitStore` on SQL: one upsert per request, so every node counts
//! against the same window.

use async_trait::async_trait;
use sqlx::Row as _;

use portcullis_app::ports::{RateLimitStore, StoreResult};

use crate::{Reach, SqlStore, backend_err};

#[async_trait]
impl RateLimitStore for SqlStore {
    async fn hit(&self, key: &str, window_start: i64) -> StoreResult<i64> {
        let row = sqlx::query(
            "INSERT INTO rate_limits (key, window_start, count) VALUES ($1, $2, 1) \
             ON CONFLICT (key) DO UPDATE SET \
               count = CASE WHEN rate_limits.window_start = $2 THEN rate_limits.count + 1 ELSE 1 END, \
               window_start = $2 \
             RETURNING count",
        )
        .bind(key)
        .bind(window_start)
        .fetch_one(&mut *self.write(Reach::Uncached).await?)
        .await
        .map_err(backend_err)?;
        row.try_get("count").map_err(backend_err)
    }

    async fn purge_rate_limits(&self, before: i64) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM rate_limits WHERE window_start < $1")
            .bind(before)
            .execute(&mut *self.write(Reach::Uncached).await?)
            .await
            .map_err(backend_err)?;
        Ok(done.rows_affected())
    }
}
