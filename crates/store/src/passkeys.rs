//! `PasskeyStore` on SQL. Ceremonies are taken with `DELETE … RETURNING`,
//! so one ceremony is finished once, on whichever node.

use async_trait::async_trait;
use sqlx::Row as _;
use sqlx::any::AnyRow;

use portcullis_app::audit::AuditEvent;
use portcullis_app::mail::OutgoingMail;
use portcullis_app::passkey_store::{Ceremony, NewPasskey, PasskeyRecord, PasskeyStore, PasskeyUse};
use portcullis_app::ports::StoreResult;

use crate::audit::record_in;
use crate::outbox::enqueue_in;
use crate::{Reach, SqlStore, backend_err, flag};

const PASSKEY_COLUMNS: &str = "id, user_id, credential_id, name, credential, sign_count, backup_eligible, \
     backed_up, created_at, last_used_at";

fn passkey(r: &AnyRow) -> Result<PasskeyRecord, sqlx::Error> {
    Ok(PasskeyRecord {
        id: r.try_get("id")?,
        user_id: r.try_get("user_id")?,
        credential_id: r.try_get("credential_id")?,
        name: r.try_get("name")?,
        credential: r.try_get("credential")?,
        sign_count: r.try_get("sign_count")?,
        backup_eligible: r.try_get::<i64, _>("backup_eligible")? != 0,
        backed_up: r.try_get::<i64, _>("backed_up")? != 0,
        created_at: r.try_get("created_at")?,
        last_used_at: r.try_get("last_used_at")?,
    })
}

fn ceremony(r: &AnyRow) -> Result<Ceremony, sqlx::Error> {
    Ok(Ceremony {
        id: r.try_get("id")?,
        kind: r.try_get("kind")?,
        user_id: r.try_get("user_id")?,
        name: r.try_get("name")?,
        state: r.try_get("state")?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
    })
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

#[async_trait]
impl PasskeyStore for SqlStore {
    async fn insert_ceremony(&self, c: &Ceremony) -> StoreResult<()> {
        let mut conn = self.write(Reach::Uncached).await?;
        sqlx::query(
            "INSERT INTO passkey_ceremonies (id, kind, user_id, name, state, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&c.id)
        .bind(&c.kind)
        .bind(c.user_id)
        .bind(c.name.as_deref())
        .bind(&c.state)
        .bind(c.created_at)
        .bind(c.expires_at)
        .execute(&mut *conn)
        .await
        .map_err(backend_err)?;
        Ok(())
    }

    async fn take_ceremony(&self, id: &str, kind: &str) -> StoreResult<Option<Ceremony>> {
        let mut conn = self.write(Reach::Uncached).await?;
        let row = sqlx::query(
            "DELETE FROM passkey_ceremonies WHERE id = $1 AND kind = $2 \
             RETURNING id, kind, user_id, name, state, created_at, expires_at",
        )
        .bind(id)
        .bind(kind)
        .fetch_optional(&mut *conn)
        .await
        .map_err(backend_err)?;
        row.as_ref().map(ceremony).transpose().map_err(backend_err)
    }

    async fn purge_ceremonies(&self, now: i64) -> StoreResult<u64> {
        let mut conn = self.write(Reach::Uncached).await?;
        let done = sqlx::query("DELETE FROM passkey_ceremonies WHERE expires_at <= $1")
            .bind(now)
            .execute(&mut *conn)
            .await
            .map_err(backend_err)?;
        Ok(done.rows_affected())
    }

    async fn insert_passkey(
        &self,
        p: &NewPasskey<'_>,
        mail: Option<&OutgoingMail>,
        audit: Option<&AuditEvent>,
    ) -> StoreResult<Option<i64>> {
        let mut conn = self.write(Reach::Uncached).await?;
        let mut tx = conn.begin().await.map_err(backend_err)?;
        let inserted = sqlx::query(
            "INSERT INTO passkeys (user_id, credential_id, name, credential, sign_count, backup_eligible, \
             backed_up, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(p.user_id)
        .bind(p.credential_id)
        .bind(p.name)
        .bind(p.credential)
        .bind(p.sign_count)
        .bind(flag(p.backup_eligible))
        .bind(flag(p.backed_up))
        .bind(p.now)
        .fetch_one(&mut *tx)
        .await;
        let id: i64 = match inserted {
            Ok(row) => row.try_get("id").map_err(backend_err)?,
            Err(e) if is_unique_violation(&e) => return Ok(None),
            Err(e) => return Err(backend_err(e)),
        };
        enqueue_in(&mut tx, mail.map(std::slice::from_ref).unwrap_or_default(), p.now).await.map_err(backend_err)?;
        record_in(&mut tx, audit, None).await.map_err(backend_err)?;
        tx.commit().await.map_err(backend_err)?;
        Ok(Some(id))
    }

    async fn user_passkeys(&self, user_id: i64) -> StoreResult<Vec<PasskeyRecord>> {
        let sql = format!("SELECT {PASSKEY_COLUMNS} FROM passkeys WHERE user_id = $1 ORDER BY id");
        let rows = sqlx::query(&sql).bind(user_id).fetch_all(&mut *self.read().await?).await.map_err(backend_err)?;
        rows.iter().map(passkey).collect::<Result<_, _>>().map_err(backend_err)
    }

    async fn passkey_by_credential(&self, credential_id: &str) -> StoreResult<Option<PasskeyRecord>> {
        let sql = format!("SELECT {PASSKEY_COLUMNS} FROM passkeys WHERE credential_id = $1");
        let row = sqlx::query(&sql)
            .bind(credential_id)
            .fetch_optional(&mut *self.read().await?)
            .await
            .map_err(backend_err)?;
        row.as_ref().map(passkey).transpose().map_err(backend_err)
    }

    async fn rename_passkey(&self, user_id: i64, id: i64, name: &str, audit: Option<&AuditEvent>) -> StoreResult<bool> {
        let mut conn = self.write(Reach::Uncached).await?;
        let mut tx = conn.begin().await.map_err(backend_err)?;
        let done = sqlx::query("UPDATE passkeys SET name = $1 WHERE id = $2 AND user_id = $3")
            .bind(name)
            .bind(id)
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .map_err(backend_err)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        record_in(&mut tx, audit, None).await.map_err(backend_err)?;
        tx.commit().await.map_err(backend_err)?;
        Ok(true)
    }

    async fn delete_passkey(
        &self,
        user_id: i64,
        id: i64,
        mail: Option<&OutgoingMail>,
        audit: Option<&AuditEvent>,
    ) -> StoreResult<bool> {
        let mut conn = self.write(Reach::Uncached).await?;
        let mut tx = conn.begin().await.map_err(backend_err)?;
        let done = sqlx::query("DELETE FROM passkeys WHERE id = $1 AND user_id = $2")
            .bind(id)
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .map_err(backend_err)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        let now = audit.map_or(0, |a| a.at);
        enqueue_in(&mut tx, mail.map(std::slice::from_ref).unwrap_or_default(), now).await.map_err(backend_err)?;
        record_in(&mut tx, audit, None).await.map_err(backend_err)?;
        tx.commit().await.map_err(backend_err)?;
        Ok(true)
    }

    async fn delete_user_passkeys(
        &self,
        user_id: i64,
        mail: Option<&OutgoingMail>,
        audit: Option<&AuditEvent>,
    ) -> StoreResult<u64> {
        let mut conn = self.write(Reach::Uncached).await?;
        let mut tx = conn.begin().await.map_err(backend_err)?;
        let done = sqlx::query("DELETE FROM passkeys WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .map_err(backend_err)?;
        if done.rows_affected() == 0 {
            return Ok(0);
        }
        let now = audit.map_or(0, |a| a.at);
        enqueue_in(&mut tx, mail.map(std::slice::from_ref).unwrap_or_default(), now).await.map_err(backend_err)?;
        record_in(&mut tx, audit, None).await.map_err(backend_err)?;
        tx.commit().await.map_err(backend_err)?;
        Ok(done.rows_affected())
    }

    async fn record_passkey_use(&self, u: &PasskeyUse<'_>) -> StoreResult<bool> {
        let mut conn = self.write(Reach::Uncached).await?;
        let done = sqlx::query(
            "UPDATE passkeys SET credential = $1, sign_count = $2, backup_eligible = $3, backed_up = $4, \
             last_used_at = $5 WHERE id = $6 AND ($7 = 0 OR sign_count < $8)",
        )
        .bind(u.credential)
        .bind(u.sign_count)
        .bind(flag(u.backup_eligible))
        .bind(flag(u.backed_up))
        .bind(u.now)
        .bind(u.id)
        .bind(u.sign_count)
        .bind(u.sign_count)
        .execute(&mut *conn)
        .await
        .map_err(backend_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn passkey_counts(&self, user_ids: &[i64]) -> StoreResult<Vec<(i64, i64)>> {
        if user_ids.is_empty() {
            return Ok(Vec::new());
        }
        let marks: Vec<String> = (1..=user_ids.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT user_id, COUNT(*) AS n FROM passkeys WHERE user_id IN ({}) GROUP BY user_id",
            marks.join(", ")
        );
        let mut q = sqlx::query(&sql);
        for id in user_ids {
            q = q.bind(*id);
        }
        let rows = q.fetch_all(&mut *self.read().await?).await.map_err(backend_err)?;
        rows.iter()
            .map(|r| Ok((r.try_get::<i64, _>("user_id")?, r.try_get::<i64, _>("n")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(backend_err)
    }
}
