//! Posts: anyone reads, the author edits, the author or an admin deletes.

use std::sync::Arc;

use portcullis_domain::{Actor, PostContent, PostTitle};

use crate::clock::Clock;
use crate::error::{AppError, FieldErrors};
use crate::model::Post;
use crate::ports::PostStore;

/// Message shown when someone edits a post that is not theirs.
pub const NOT_YOUR_POST: &str = "You can only edit your own posts";
/// Message shown when someone deletes a post they may not.
pub const NOT_YOUR_POST_DELETE: &str = "You can only delete your own posts";

/// The post use cases.
#[derive(Clone)]
pub struct Posts {
    store: Arc<dyn PostStore>,
    clock: Arc<dyn Clock>,
}

fn parse(title: &str, content: &str) -> Result<(PostTitle, PostContent), AppError> {
    let mut errors = FieldErrors::default();
    let t = PostTitle::parse(title).map_err(|e| errors.add("title", e.to_string())).ok();
    let c = PostContent::parse(content).map_err(|e| errors.add("content", e.to_string())).ok();
    match (t, c) {
        (Some(t), Some(c)) => Ok((t, c)),
        _ => Err(AppError::Invalid(errors)),
    }
}

impl Posts {
    /// Wires the use cases to their port; posts are dated by `clock`.
    pub fn new(store: Arc<dyn PostStore>, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }

    /// One post.
    pub async fn get(&self, id: i64) -> Result<Post, AppError> {
        self.store.post_by_id(id).await?.ok_or(AppError::NotFound)
    }

    /// A post the actor may edit.
    pub async fn get_for_edit(&self, actor: Actor, id: i64) -> Result<Post, AppError> {
        let post = self.get(id).await?;
        if actor.can_edit_post(post.author_id) { Ok(post) } else { Err(AppError::Forbidden(NOT_YOUR_POST)) }
    }

    /// Writes a new post; answers its id.
    pub async fn create(&self, actor: Actor, title: &str, content: &str) -> Result<i64, AppError> {
        let (t, c) = parse(title, content)?;
        Ok(self.store.insert_post(actor.user_id, t.as_str(), c.as_str(), self.clock.now_ms()).await?)
    }

    /// Changes a post; only its author may.
    pub async fn update(&self, actor: Actor, id: i64, title: &str, content: &str) -> Result<(), AppError> {
        self.get_for_edit(actor, id).await?;
        let (t, c) = parse(title, content)?;
        Ok(self.store.update_post(id, t.as_str(), c.as_str(), self.clock.now_ms()).await?)
    }

    /// Deletes a post; its author or an admin may.
    pub async fn delete(&self, actor: Actor, id: i64) -> Result<(), AppError> {
        let post = self.get(id).await?;
        if !actor.can_delete_post(post.author_id) {
            return Err(AppError::Forbidden(NOT_YOUR_POST_DELETE));
        }
        Ok(self.store.delete_post(id).await?)
    }

    /// Newest posts (of one author when given), `limit` at a time before `before_id`.
    pub async fn list(
        &self,
        author_id: Option<i64>,
        before_id: Option<i64>,
        limit: i64,
    ) -> Result<std::sync::Arc<[Post]>, AppError> {
        Ok(self.store.list_posts(author_id, before_id, limit).await?)
    }
}
