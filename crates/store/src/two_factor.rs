//! `TwoFactorStore` on SQL. None of these rows is in the read cache, and
//! none of these writes changes a user's row or sessions, so every write
//! reaches nothing cached.

use async_trait::async_trait;
use sqlx::Row as _;

use portcullis_app::model::{PendingSignIn, TwoFactorRecord};
use portcullis_app::ports::{StoreResult, TwoFactorChange, TwoFactorStore};

use crate::audit::record_in;
use crate::outbox::enqueue_in;
use crate::{Reach, SqlStore, backend_err};

/// Queues the change's mails and records its event on an open transaction.
async fn write_change(conn: &mut sqlx::AnyConnection, change: &TwoFactorChange<'_>) -> Result<(), sqlx::Error> {
    enqueue_in(conn, change.mails, change.now).await?;
    record_in(conn, change.audit, None).await
}

async fn insert_codes(conn: &mut sqlx::AnyConnection, user_id: i64, hashes: &[String]) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1").bind(user_id).execute(&mut *conn).await?;
    for h in hashes {
        sqlx::query("INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2)")
            .bind(user_id)
            .bind(h)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

fn pending_from(r: &sqlx::any::AnyRow) -> Result<PendingSignIn, sqlx::Error> {
    Ok(PendingSignIn {
        id: r.try_get("id")?,
        secret_hash: r.try_get("secret_hash")?,
        user_id: r.try_get("user_id")?,
        attempt_key: r.try_get("attempt_key")?,
        known_device: r.try_get::<i64, _>("known_device")? != 0,
        remember: r.try_get::<i64, _>("remember")? != 0,
        next: r.try_get("next")?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
    })
}

#[async_trait]
impl TwoFactorStore for SqlStore {
    async fn two_factor(&self, user_id: i64) -> StoreResult<Option<TwoFactorRecord>> {
        let row = sqlx::query(
            "SELECT user_id, secret, enabled_at, last_step, pending_secret, pending_at, \
             (SELECT COUNT(*) FROM recovery_codes c WHERE c.user_id = t.user_id AND c.used_at IS NULL) AS recovery_left \
             FROM two_factor t WHERE user_id = $1",
        )
        .bind(user_id)
        .fetch_optional(&mut *self.read().await?)
        .await
        .map_err(backend_err)?;
        row.map(|r| {
            Ok(TwoFactorRecord {
                user_id: r.try_get("user_id")?,
                secret: r.try_get("secret")?,
                enabled_at: r.try_get("enabled_at")?,
                last_step: r.try_get("last_step")?,
                pending_secret: r.try_get("pending_secret")?,
                pending_at: r.try_get("pending_at")?,
                recovery_left: r.try_get("recovery_left")?,
            })
        })
        .transpose()
        .map_err(|e: sqlx::Error| backend_err(e))
    }

    async fn two_factor_users(&self, user_ids: &[i64]) -> StoreResult<Vec<i64>> {
        if user_ids.is_empty() {
            return Ok(Vec::new());
        }
        let marks: Vec<String> = (1..=user_ids.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT user_id FROM two_factor WHERE secret IS NOT NULL AND user_id IN ({}) ORDER BY user_id",
            marks.join(", ")
        );
        let mut q = sqlx::query(&sql);
        for id in user_ids {
            q = q.bind(*id);
        }
        let rows = q.fetch_all(&mut *self.read().await?).await.map_err(backend_err)?;
        rows.iter().map(|r| r.try_get("user_id")).collect::<Result<_, _>>().map_err(backend_err)
    }

    async fn start_enrolment(&self, user_id: i64, sealed: &str, now: i64) -> StoreResult<bool> {
        let done = sqlx::query(
            "INSERT INTO two_factor (user_id, pending_secret, pending_at) VALUES ($1, $2, $3) \
             ON CONFLICT (user_id) DO UPDATE SET pending_secret = excluded.pending_secret, \
             pending_at = excluded.pending_at WHERE two_factor.secret IS NULL",
        )
        .bind(user_id)
        .bind(sealed)
        .bind(now)
        .execute(&mut *self.write(Reach::Uncached).await?)
        .await
        .map_err(backend_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn confirm_enrolment(
        &self,
        user_id: i64,
        sealed: &str,
        step: i64,
        code_hashes: &[String],
        change: &TwoFactorChange<'_>,
    ) -> StoreResult<bool> {
        let mut conn = self.write(Reach::Uncached).await?;
        let mut tx = conn.begin().await.map_err(backend_err)?;
        let done = sqlx::query(
            "UPDATE two_factor SET secret = pending_secret, pending_secret = NULL, pending_at = NULL, \
             enabled_at = $1, last_step = $2 WHERE user_id = $3 AND pending_secret = $4 AND secret IS NULL",
        )
        .bind(change.now)
        .bind(step)
        .bind(user_id)
        .bind(sealed)
        .execute(&mut *tx)
        .await
        .map_err(backend_err)?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        insert_codes(&mut tx, user_id, code_hashes).await.map_err(backend_err)?;
        write_change(&mut tx, change).await.map_err(backend_err)?;
        tx.commit().await.map_err(backend_err)?;
        Ok(true)
    }

    async fn accept_step(&self, user_id: i64, step: i64) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE two_factor SET last_step = $1 \
             WHERE user_id = $2 AND secret IS NOT NULL AND (last_step IS NULL OR last_step < $1)",
        )
        .bind(step)
        .bind(user_id)
        .execute(&mut *self.write(Reach::Uncached).await?)
        .await
        .map_err(backend_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn use_recovery_code(
        &self,
        user_id: i64,
        code_hash: &str,
        change: &TwoFactorChange<'_>,
    ) -> StoreResult<Option<i64>> {
        let mut conn = self.write(Reach::Uncached).await?;
        let mut tx = conn.begin().await.map_err(backend_err)?;
        let done = sqlx::query(
            "UPDATE recovery_codes SET used_at = $1 WHERE user_id = $2 AND code_hash = $3 AND used_at IS NULL \
             AND EXISTS (SELECT 1 FROM two_factor t WHERE t.user_id = $2 AND t.secret IS NOT NULL)",
        )
        .bind(change.now)
        .bind(user_id)
        .bind(code_hash)
        .execute(&mut *tx)
        .await
        .map_err(backend_err)?;
        if done.rows_affected() != 1 {
            return Ok(None);
        }
        let left: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL")
                .bind(user_id)
                .fetch_one(&mut *tx)
                .await
                .map_err(backend_err)?;
        write_change(&mut tx, change).await.map_err(backend_err)?;
        tx.commit().await.map_err(backend_err)?;
        Ok(Some(left))
    }

    async fn replace_recovery_codes(
        &self,
        user_id: i64,
        code_hashes: &[String],
        change: &TwoFactorChange<'_>,
    ) -> StoreResult<bool> {
        let mut conn = self.write(Reach::Uncached).await?;
        let mut tx = conn.begin().await.map_err(backend_err)?;
        let on: Option<i64> =
            sqlx::query_scalar("SELECT user_id FROM two_factor WHERE user_id = $1 AND secret IS NOT NULL")
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend_err)?;
        if on.is_none() {
            return Ok(false);
        }
        insert_codes(&mut tx, user_id, code_hashes).await.map_err(backend_err)?;
        write_change(&mut tx, change).await.map_err(backend_err)?;
        tx.commit().await.map_err(backend_err)?;
        Ok(true)
    }

    async fn disable_two_factor(&self, user_id: i64, change: &TwoFactorChange<'_>) -> StoreResult<bool> {
        let mut conn = self.write(Reach::Uncached).await?;
        let mut tx = conn.begin().await.map_err(backend_err)?;
        let done = sqlx::query("DELETE FROM two_factor WHERE user_id = $1 AND secret IS NOT NULL")
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .map_err(backend_err)?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        for sql in ["DELETE FROM recovery_codes WHERE user_id = $1", "DELETE FROM pending_sign_ins WHERE user_id = $1"]
        {
            sqlx::query(sql).bind(user_id).execute(&mut *tx).await.map_err(backend_err)?;
        }
        write_change(&mut tx, change).await.map_err(backend_err)?;
        tx.commit().await.map_err(backend_err)?;
        Ok(true)
    }

    async fn insert_pending_sign_in(&self, p: &PendingSignIn) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO pending_sign_ins (id, secret_hash, user_id, attempt_key, known_device, remember, next, \
             created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&p.id)
        .bind(&p.secret_hash)
        .bind(p.user_id)
        .bind(&p.attempt_key)
        .bind(i64::from(p.known_device))
        .bind(i64::from(p.remember))
        .bind(p.next.as_deref())
        .bind(p.created_at)
        .bind(p.expires_at)
        .execute(&mut *self.write(Reach::Uncached).await?)
        .await
        .map_err(backend_err)?;
        Ok(())
    }

    async fn pending_sign_in(&self, id: &str) -> StoreResult<Option<PendingSignIn>> {
        let row = sqlx::query(
            "SELECT id, secret_hash, user_id, attempt_key, known_device, remember, next, created_at, expires_at \
             FROM pending_sign_ins WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *self.read().await?)
        .await
        .map_err(backend_err)?;
        row.as_ref().map(pending_from).transpose().map_err(backend_err)
    }

    async fn delete_pending_sign_in(&self, id: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM pending_sign_ins WHERE id = $1")
            .bind(id)
            .execute(&mut *self.write(Reach::Uncached).await?)
            .await
            .map_err(backend_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn purge_pending_sign_ins(&self, now: i64) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM pending_sign_ins WHERE expires_at <= $1")
            .bind(now)
            .execute(&mut *self.write(Reach::Uncached).await?)
            .await
            .map_err(backend_err)?;
        Ok(done.rows_affected())
    }
}
