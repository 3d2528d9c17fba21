//! `TokenStore` on SQL: each change that a token or a mail goes with runs in
//! one transaction with it.

use async_trait::async_trait;
use sqlx::Row as _;

use portcullis_app::audit::AuditEvent;
use portcullis_app::mail::OutgoingMail;
use portcullis_app::ports::{NewCredentials, StoreResult};
use portcullis_app::{NewToken, NewUser, TokenPurpose, TokenRecord, TokenStore, User};

use crate::audit::record_in;
use crate::outbox::enqueue_in;
use crate::users::{insert_user_in, map_insert_error};
use crate::{Reach, SqlStore, backend_err};

async fn insert_token(conn: &mut sqlx::AnyConnection, user_id: i64, t: &NewToken) -> Result<(), sqlx::Error> {
    // An older link of the same kind stops working when a new one is sent.
    sqlx::query("UPDATE tokens SET used_at = $1 WHERE user_id = $2 AND purpose = $3 AND used_at IS NULL")
        .bind(t.created_at)
        .bind(user_id)
        .bind(t.purpose.as_str())
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO tokens (id, secret_hash, purpose, user_id, email, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&t.id)
    .bind(&t.secret_hash)
    .bind(t.purpose.as_str())
    .bind(user_id)
    .bind(t.email.as_deref())
    .bind(t.created_at)
    .bind(t.expires_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Marks an unused token used; `false` if it was used already.
async fn consume(conn: &mut sqlx::AnyConnection, id: &str, user_id: i64, now: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("UPDATE tokens SET used_at = $1 WHERE id = $2 AND user_id = $3 AND used_at IS NULL")
        .bind(now)
        .bind(id)
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Sets the new hash and stamp, queues the mails that announce them and records the event.
async fn set_credentials(conn: &mut sqlx::AnyConnection, c: &NewCredentials<'_>) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET password_hash = $1, security_stamp = $2, updated_at = $3 WHERE id = $4")
        .bind(c.hash)
        .bind(c.new_stamp)
        .bind(c.now)
        .bind(c.user_id)
        .execute(&mut *conn)
        .await?;
    enqueue_in(conn, c.mails, c.now).await?;
    record_in(conn, c.audit, None).await
}

#[async_trait]
impl TokenStore for SqlStore {
    async fn insert_user_with_token(
        &self,
        user: &NewUser,
        token: &NewToken,
        mails: &[OutgoingMail],
        audit: Option<&AuditEvent>,
    ) -> StoreResult<User> {
        let mut conn = self.write(Reach::Uncached).await?;
        let mut tx = conn.begin().await.map_err(backend_err)?;
        let created = insert_user_in(&mut tx, user).await.map_err(map_insert_error)?;
        insert_token(&mut tx, created.id, token).await.map_err(backend_err)?;
        enqueue_in(&mut tx, mails, user.now).await.map_err(backend_err)?;
        record_in(&mut tx, audit, Some(created.id)).await.map_err(backend_err)?;
        tx.commit().await.map_err(backend_err)?;
        Ok(created)
    }

    async fn issue_token(
        &self,
        user_id: i64,
        token: &NewToken,
        mails: &[OutgoingMail],
        audit: Option<&AuditEvent>,
    ) -> StoreResult<()> {
        let mut conn = self.write(Reach::Uncached).await?;
        let mut tx = conn.begin().await.map_err(backend_err)?;
        insert_token(&mut tx, user_id, token).await.map_err(backend_err)?;
        enqueue_in(&mut tx, mails, token.created_at).await.map_err(backend_err)?;
        record_in(&mut tx, audit, None).await.map_err(backend_err)?;
        tx.commit().await.map_err(backend_err)
    }

    async fn token(&self, id: &str) -> StoreResult<Option<TokenRecord>> {
        let row = sqlx::query(
            "SELECT id, secret_hash, purpose, user_id, email, expires_at, used_at FROM tokens WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *self.read().await?)
        .await
        .map_err(backend_err)?;
        row.map(|r| {
            Ok(TokenRecord {
                id: r.try_get("id")?,
                secret_hash: r.try_get("secret_hash")?,
                purpose: TokenPurpose::parse(&r.try_get::<String, _>("purpose")?),
                user_id: r.try_get("user_id")?,
                email: r.try_get("email")?,
                expires_at: r.try_get("expires_at")?,
                used_at: r.try_get("used_at")?,
            })
        })
        .transpose()
        .map_err(|e: sqlx::Error| backend_err(e))
    }

    async fn verify_email_with_token(
        &self,
        token_id: &str,
        user_id: i64,
        email: &str,
        now: i64,
        audit: Option<&AuditEvent>,
    ) -> StoreResult<bool> {
        let mut conn = self.write(Reach::User(user_id)).await?;
        let mut tx = conn.begin().await.map_err(backend_err)?;
        if !consume(&mut tx, token_id, user_id, now).await.map_err(backend_err)? {
            return Ok(false);
        }
        // The address the link was sent to becomes the account's, verified
        // (the same one at registration; the new one after a change).
        sqlx::query(
            "UPDATE users SET email = $1, email_normalized = $2, email_verified = 1, updated_at = $3 WHERE id = $4",
        )
        .bind(email)
        .bind(email.to_lowercase())
        .bind(now)
        .bind(user_id)
        .execute(&mut *tx)
        .await
        .map_err(map_insert_error)?;
        record_in(&mut tx, audit, None).await.map_err(backend_err)?;
        tx.commit().await.map_err(backend_err)?;
        Ok(true)
    }

    async fn reset_password_with_token(
        &self,
        token_id: &str,
        lockout_keys: &[String],
        change: &NewCredentials<'_>,
    ) -> StoreResult<bool> {
        let mut conn = self.write(Reach::User(change.user_id)).await?;
        let mut tx = conn.begin().await.map_err(backend_err)?;
        if !consume(&mut tx, token_id, change.user_id, change.now).await.map_err(backend_err)? {
            return Ok(false);
        }
        set_credentials(&mut tx, change).await.map_err(backend_err)?;
        sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(change.user_id)
            .execute(&mut *tx)
            .await
            .map_err(backend_err)?;
        // A reset means someone else may have had the password: API tokens go too.
        crate::access_tokens::delete_user_tokens_in(&mut tx, change.user_id).await.map_err(backend_err)?;
        for key in lockout_keys {
            sqlx::query("DELETE FROM login_attempts WHERE key = $1")
                .bind(key)
                .execute(&mut *tx)
                .await
                .map_err(backend_err)?;
        }
        tx.commit().await.map_err(backend_err)?;
        Ok(true)
    }

    async fn change_password_with_mail(&self, change: &NewCredentials<'_>) -> StoreResult<()> {
        let mut conn = self.write(Reach::User(change.user_id)).await?;
        let mut tx = conn.begin().await.map_err(backend_err)?;
        set_credentials(&mut tx, change).await.map_err(backend_err)?;
        tx.commit().await.map_err(backend_err)
    }
}
