//! `LoginThrottle` on SQL: one upsert counts an attempt and answers the count,
//! so parallel guesses are serialised by the database, not by us.

use async_trait::async_trait;
use sqlx::Row as _;

use portcullis_app::LoginThrottle;
use portcullis_app::ports::StoreResult;

use crate::{Reach, SqlStore, backend_err};

#[async_trait]
impl LoginThrottle for SqlStore {
    async fn reserve_attempt(
        &self,
        key: &str,
        now: i64,
        threshold: i64,
        lock_until: i64,
        window_start: i64,
    ) -> StoreResult<i64> {
        // A row is stale when its lock has run out, or (unlocked) when its last
        // attempt fell out of the window: then counting starts again at one.
        let row = sqlx::query(
            "INSERT INTO login_attempts (key, attempts, locked_until, updated_at) \
             VALUES ($1, 1, CASE WHEN $3 <= 1 THEN $4 ELSE NULL END, $2) \
             ON CONFLICT (key) DO UPDATE SET \
               attempts = CASE \
                 WHEN (login_attempts.locked_until IS NOT NULL AND login_attempts.locked_until <= $2) \
                   OR (login_attempts.locked_until IS NULL AND login_attempts.updated_at < $5) THEN 1 \
                 ELSE login_attempts.attempts + 1 END, \
               locked_until = CASE \
                 WHEN (login_attempts.locked_until IS NOT NULL AND login_attempts.locked_until <= $2) \
                   OR (login_attempts.locked_until IS NULL AND login_attempts.updated_at < $5) \
                   THEN CASE WHEN $3 <= 1 THEN $4 ELSE NULL END \
                 WHEN login_attempts.locked_until IS NULL AND login_attempts.attempts + 1 >= $3 THEN $4 \
                 ELSE login_attempts.locked_until END, \
               updated_at = $2 \
             RETURNING attempts",
        )
        .bind(key)
        .bind(now)
        .bind(threshold)
        .bind(lock_until)
        .bind(window_start)
        .fetch_one(&mut *self.write(Reach::Uncached).await?)
        .await
        .map_err(backend_err)?;
        row.try_get("attempts").map_err(backend_err)
    }

    async fn clear_attempts(&self, keys: &[String]) -> StoreResult<()> {
        for key in keys {
            sqlx::query("DELETE FROM login_attempts WHERE key = $1")
                .bind(key)
                .execute(&mut *self.write(Reach::Uncached).await?)
                .await
                .map_err(backend_err)?;
        }
        Ok(())
    }

    async fn purge_attempts(&self, now: i64, window_start: i64) -> StoreResult<u64> {
        let done = sqlx::query(
            "DELETE FROM login_attempts WHERE (locked_until IS NOT NULL AND locked_until <= $1) \
             OR (locked_until IS NULL AND updated_at < $2)",
        )
        .bind(now)
        .bind(window_start)
        .execute(&mut *self.write(Reach::Uncached).await?)
        .await
        .map_err(backend_err)?;
        Ok(done.rows_affected())
    }

    async fn locked_until(&self, key: &str, now: i64) -> StoreResult<Option<i64>> {
        let row = sqlx::query("SELECT locked_until FROM login_attempts WHERE key = $1 AND locked_until > $2")
            .bind(key)
            .bind(now)
            .fetch_optional(&mut *self.read().await?)
            .await
            .map_err(backend_err)?;
        row.map(|r| r.try_get("locked_until")).transpose().map_err(backend_err)
    }
}
