//! The pages that list and show posts, and the post form.

use askama::Template;
use portcullis_app::Post;

use super::form_errors::Errors;
use crate::context::RequestCtx;

/// A list of posts with its pager (`_post_list.html`).
pub struct PostList<'a> {
    /// This page's posts.
    pub posts: &'a [Post],
    /// The `before` of the next page.
    pub next_before: Option<i64>,
    /// Whether this is not the first page.
    pub paged: bool,
}

impl<'a> PostList<'a> {
    /// A page of `fetched`, which holds one post more than a page when
    /// there is a next one (that post is not shown; the pager links to it).
    pub fn page(fetched: &'a [Post], paged: bool) -> Self {
        let size = crate::routes::posts::PAGE_SIZE as usize;
        let posts = &fetched[..fetched.len().min(size)];
        let next_before = if fetched.len() > size { posts.last().map(|p| p.id) } else { None };
        Self { posts, next_before, paged }
    }
}

/// `/`.
#[derive(Template)]
#[template(path = "home.html")]
pub struct Home<'a> {
    /// The request.
    pub ctx: &'a RequestCtx,
    /// The newest posts.
    pub list: PostList<'a>,
}

/// `/dashboard`.
#[derive(Template)]
#[template(path = "dashboard.html")]
pub struct Dashboard<'a> {
    /// The request.
    pub ctx: &'a RequestCtx,
    /// The user's posts.
    pub list: PostList<'a>,
}

/// `/posts/{id}`.
#[derive(Template)]
#[template(path = "post.html")]
pub struct PostPage<'a> {
    /// The request.
    pub ctx: &'a RequestCtx,
    /// The post.
    pub post: &'a Post,
    /// Whether the viewer may edit it.
    pub can_edit: bool,
    /// Whether the viewer may delete it.
    pub can_delete: bool,
}

/// `/posts/new` and `/posts/{id}/edit`.
#[derive(Template)]
#[template(path = "post_form.html")]
pub struct PostForm<'a> {
    /// The request.
    pub ctx: &'a RequestCtx,
    /// The post being edited; `None` for a new one.
    pub editing: Option<i64>,
    /// Title so far.
    pub title: &'a str,
    /// Content so far.
    pub content: &'a str,
    /// What to fix.
    pub errors: Errors<'a>,
}
