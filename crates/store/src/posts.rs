//! `PostStore` on SQL.

use std::sync::Arc;

use async_trait::async_trait;
use sqlx::Row as _;
use sqlx::any::AnyRow;

use portcullis_app::ports::StoreResult;
use portcullis_app::{Post, PostStore};

use crate::{Reach, SqlStore, backend_err};

const POST_COLUMNS: &str = "p.id, p.author_id, u.username AS author, p.title, p.content, p.created_at, p.updated_at";

fn post_from_row(row: &AnyRow) -> Result<Post, sqlx::Error> {
    Ok(Post {
        id: row.try_get("id")?,
        author_id: row.try_get("author_id")?,
        author: row.try_get("author")?,
        title: row.try_get("title")?,
        content: row.try_get("content")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

#[async_trait]
impl PostStore for SqlStore {
    async fn insert_post(&self, author_id: i64, title: &str, content: &str, now: i64) -> StoreResult<i64> {
        let row = sqlx::query("INSERT INTO posts (author_id, title, content, created_at, updated_at) VALUES ($1, $2, $3, $4, $4) RETURNING id")
            .bind(author_id)
            .bind(title)
            .bind(content)
            .bind(now)
            .fetch_one(&mut *self.write(Reach::Posts).await?)
            .await
            .map_err(backend_err)?;
        row.try_get("id").map_err(backend_err)
    }

    async fn post_by_id(&self, id: i64) -> StoreResult<Option<Post>> {
        let sql = format!("SELECT {POST_COLUMNS} FROM posts p JOIN users u ON u.id = p.author_id WHERE p.id = $1");
        let row = sqlx::query(&sql).bind(id).fetch_optional(&mut *self.read().await?).await.map_err(backend_err)?;
        row.as_ref().map(post_from_row).transpose().map_err(backend_err)
    }

    async fn update_post(&self, id: i64, title: &str, content: &str, now: i64) -> StoreResult<()> {
        sqlx::query("UPDATE posts SET title = $1, content = $2, updated_at = $3 WHERE id = $4")
            .bind(title)
            .bind(content)
            .bind(now)
            .bind(id)
            .execute(&mut *self.write(Reach::Posts).await?)
            .await
            .map_err(backend_err)?;
        Ok(())
    }

    async fn delete_post(&self, id: i64) -> StoreResult<()> {
        sqlx::query("DELETE FROM posts WHERE id = $1")
            .bind(id)
            .execute(&mut *self.write(Reach::Posts).await?)
            .await
            .map_err(backend_err)?;
        Ok(())
    }

    async fn list_posts(&self, author_id: Option<i64>, before_id: Option<i64>, limit: i64) -> StoreResult<Arc<[Post]>> {
        // Two queries, so each walks its own index (an `OR` on the author
        // would make SQLite scan every post).
        let before = before_id.unwrap_or(i64::MAX);
        let rows = match author_id {
            Some(author) => {
                let sql = format!(
                    "SELECT {POST_COLUMNS} FROM posts p JOIN users u ON u.id = p.author_id \
                     WHERE p.author_id = $1 AND p.id < $2 ORDER BY p.id DESC LIMIT $3"
                );
                sqlx::query(&sql).bind(author).bind(before).bind(limit).fetch_all(&mut *self.read().await?).await
            }
            None => {
                let sql = format!(
                    "SELECT {POST_COLUMNS} FROM posts p JOIN users u ON u.id = p.author_id \
                     WHERE p.id < $1 ORDER BY p.id DESC LIMIT $2"
                );
                sqlx::query(&sql).bind(before).bind(limit).fetch_all(&mut *self.read().await?).await
            }
        }
        .map_err(backend_err)?;
        rows.iter().map(post_from_row).collect::<Result<_, _>>().map_err(backend_err)
    }
}
