//! `AccessTokenStore` on SQL. Tokens are not kept by the read cache: each
//! request reads its token's row, so a revoked token is refused on the
//! next request, on every node.

use async_trait::async_trait;
use sqlx::Row as _;
use sqlx::any::AnyRow;

use portcullis_app::access_tokens::AccessToken;
use portcullis_app::audit::AuditEvent;
use portcullis_app::ports::{AccessTokenStore, StoreResult};
use portcullis_app::{StoreError, User};
use portcullis_domain::Scope;

use crate::audit::record_in;
use crate::users::{USER_COLUMNS, user_from_row};
use crate::{Reach, SqlStore, backend_err};

const TOKEN_COLUMNS: &str = "t.id AS t_id, t.secret_hash AS t_secret_hash, t.user_id AS t_user_id, t.name AS t_name, \
     t.scope AS t_scope, t.created_at AS t_created_at, t.expires_at AS t_expires_at, \
     t.last_used_at AS t_last_used_at, t.last_used_ip AS t_last_used_ip";

fn token_from_row(r: &AnyRow) -> Result<AccessToken, sqlx::Error> {
    let scope: String = r.try_get("t_scope")?;
    Ok(AccessToken {
        id: r.try_get("t_id")?,
        secret_hash: r.try_get("t_secret_hash")?,
        user_id: r.try_get("t_user_id")?,
        name: r.try_get("t_name")?,
        // An unknown scope (written by a later version) reads as the weakest.
        scope: Scope::parse(&scope).unwrap_or(Scope::Read),
        created_at: r.try_get("t_created_at")?,
        expires_at: r.try_get("t_expires_at")?,
        last_used_at: r.try_get("t_last_used_at")?,
        last_used_ip: r.try_get("t_last_used_ip")?,
    })
}

/// Deletes every token of a user on an open transaction (password reset, admin lock).
pub(crate) async fn delete_user_tokens_in(conn: &mut sqlx::AnyConnection, user_id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM access_tokens WHERE user_id = $1").bind(user_id).execute(&mut *conn).await?;
    Ok(())
}

#[async_trait]
impl AccessTokenStore for SqlStore {
    async fn insert_access_token(&self, t: &AccessToken, audit: Option<&AuditEvent>) -> StoreResult<()> {
        let mut conn = self.write(Reach::Uncached).await?;
        let mut tx = conn.begin().await.map_err(backend_err)?;
        sqlx::query(
            "INSERT INTO access_tokens (id, secret_hash, user_id, name, scope, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&t.id)
        .bind(&t.secret_hash)
        .bind(t.user_id)
        .bind(&t.name)
        .bind(t.scope.as_str())
        .bind(t.created_at)
        .bind(t.expires_at)
        .execute(&mut *tx)
        .await
        .map_err(backend_err)?;
        record_in(&mut tx, audit, None).await.map_err(backend_err)?;
        tx.commit().await.map_err(backend_err)
    }

    async fn access_token_with_user(&self, id: &str) -> StoreResult<Option<(AccessToken, User)>> {
        let sql = format!(
            "SELECT {TOKEN_COLUMNS}, {USER_COLUMNS} FROM access_tokens t JOIN users u ON u.id = t.user_id WHERE t.id = $1"
        );
        let row = sqlx::query(&sql).bind(id).fetch_optional(&mut *self.read().await?).await.map_err(backend_err)?;
        row.map(|r| Ok((token_from_row(&r)?, user_from_row(&r)?))).transpose().map_err(|e: sqlx::Error| backend_err(e))
    }

    async fn user_access_tokens(&self, user_id: i64) -> StoreResult<Vec<AccessToken>> {
        let sql = format!(
            "SELECT {TOKEN_COLUMNS} FROM access_tokens t WHERE t.user_id = $1 ORDER BY t.created_at DESC, t.id"
        );
        let rows = sqlx::query(&sql).bind(user_id).fetch_all(&mut *self.read().await?).await.map_err(backend_err)?;
        rows.iter().map(token_from_row).collect::<Result<_, _>>().map_err(backend_err)
    }

    async fn delete_access_token(&self, user_id: i64, id: &str, audit: Option<&AuditEvent>) -> StoreResult<bool> {
        // The read cache keeps tokens by their user's mark.
        let mut conn = self.write(Reach::User(user_id)).await?;
        let mut tx = conn.begin().await.map_err(backend_err)?;
        let done = sqlx::query("DELETE FROM access_tokens WHERE id = $1 AND user_id = $2")
            .bind(id)
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .map_err(backend_err)?;
        let deleted = done.rows_affected() == 1;
        if deleted {
            record_in(&mut tx, audit, None).await.map_err(backend_err)?;
        }
        tx.commit().await.map_err(backend_err)?;
        Ok(deleted)
    }

    async fn touch_access_token(
        &self,
        id: &str,
        seen: Option<i64>,
        now: i64,
        ip: Option<&str>,
        audit: Option<&AuditEvent>,
    ) -> StoreResult<bool> {
        let mut conn = self.write(Reach::Uncached).await?;
        let mut tx = conn.begin().await.map_err(backend_err)?;
        let done = sqlx::query(
            "UPDATE access_tokens SET last_used_at = $1, last_used_ip = $2 \
             WHERE id = $3 AND COALESCE(last_used_at, -1) = $4",
        )
        .bind(now)
        .bind(ip)
        .bind(id)
        .bind(seen.unwrap_or(-1))
        .execute(&mut *tx)
        .await
        .map_err(backend_err)?;
        let changed = done.rows_affected() == 1;
        if changed {
            record_in(&mut tx, audit, None).await.map_err(backend_err)?;
        }
        tx.commit().await.map_err(backend_err)?;
        Ok(changed)
    }

    async fn reveal_access_token(&self, user_id: i64, id: &str) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE access_tokens SET revealed = 1 WHERE id = $1 AND user_id = $2 AND revealed = 0")
            .bind(id)
            .bind(user_id)
            .execute(&mut *self.write(Reach::Uncached).await?)
            .await
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        Ok(done.rows_affected() == 1)
    }
}
