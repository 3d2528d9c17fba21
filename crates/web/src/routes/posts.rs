//! Posts: anyone reads, the author writes, the author or an admin deletes.

use crate::routes::RouteTable;
use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, State};
use axum::response::Response;
use portcullis_app::{AppError, Post};
use serde::Deserialize;

use crate::context::Flash;
use crate::error::WebError;
use crate::extract::{CurrentUser, MaybeUser};
use crate::pages::{self, Errors};
use crate::routes::see_other_with;
use crate::state::AppState;

/// Posts per page.
pub const PAGE_SIZE: i64 = 10;

/// `/posts/*`.
pub fn routes(t: RouteTable) -> RouteTable {
    t.get("/posts/new", get_new_post)
        .post("/posts/new", post_new_post)
        .get("/posts/{id}", get_post)
        .get("/posts/{id}/edit", get_edit_post)
        .post("/posts/{id}/edit", post_edit_post)
        .post("/posts/{id}/delete", post_delete_post)
}

/// The post form.
#[derive(Debug, Default, Deserialize)]
pub struct PostForm {
    #[serde(default)]
    title: String,
    #[serde(default)]
    content: String,
}

/// One page of posts (of one author when given), and one more when there
/// is a next page: [`pages::PostList::page`] shows the page and links the next.
pub async fn post_list(state: &AppState, author: Option<i64>, before: Option<i64>) -> Result<Arc<[Post]>, WebError> {
    Ok(state.posts.list(author, before, PAGE_SIZE + 1).await?)
}

/// Path ids that are not numbers are simply not found.
fn parse_id(raw: &str) -> Result<i64, WebError> {
    raw.parse::<i64>().ok().filter(|id| *id > 0).ok_or(WebError::NotFound)
}

/// The form for a new post.
async fn get_new_post(State(state): State<AppState>, user: CurrentUser) -> Response {
    let page = pages::PostForm { ctx: &user.ctx, editing: None, title: "", content: "", errors: Errors::default() };
    state.templates.render(&page)
}

/// Publishes a new post.
async fn post_new_post(
    State(state): State<AppState>,
    user: CurrentUser,
    Form(form): Form<PostForm>,
) -> Result<Response, WebError> {
    match state.posts.create(user.actor(), &form.title, &form.content).await {
        Ok(id) => Ok(see_other_with(&format!("/posts/{id}"), vec![Flash::success("Post created successfully")])),
        Err(AppError::Invalid(errors)) => Ok(form_errors(&state, user, None, form, errors)),
        Err(e) => Err(e.into()),
    }
}

fn form_errors(
    state: &AppState,
    user: CurrentUser,
    id: Option<i64>,
    form: PostForm,
    errors: portcullis_app::FieldErrors,
) -> Response {
    let mut ctx = user.ctx;
    std::sync::Arc::make_mut(&mut ctx).flashes.extend(errors.0.iter().map(|(_, m)| Flash::error(m.clone())));
    let page = pages::PostForm {
        ctx: &ctx,
        editing: id,
        title: &form.title,
        content: &form.content,
        errors: Errors::of(&errors),
    };
    state.templates.render(&page)
}

/// One post.
async fn get_post(
    State(state): State<AppState>,
    MaybeUser(auth, ctx): MaybeUser,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let post = state.posts.get(parse_id(&id)?).await?;
    let actor = auth.as_ref().map(|a| portcullis_domain::Actor { user_id: a.user.id, is_admin: a.user.is_admin });
    let can_edit = actor.is_some_and(|a| a.can_edit_post(post.author_id));
    let can_delete = actor.is_some_and(|a| a.can_delete_post(post.author_id));
    Ok(state.templates.render(&pages::PostPage { ctx: &ctx, post: &post, can_edit, can_delete }))
}

/// The edit form, for the author only.
async fn get_edit_post(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let post = state.posts.get_for_edit(user.actor(), parse_id(&id)?).await?;
    let page = pages::PostForm {
        ctx: &user.ctx,
        editing: Some(post.id),
        title: &post.title,
        content: &post.content,
        errors: Errors::default(),
    };
    Ok(state.templates.render(&page))
}

/// Saves an edit, for the author only.
async fn post_edit_post(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    Form(form): Form<PostForm>,
) -> Result<Response, WebError> {
    let id = parse_id(&id)?;
    match state.posts.update(user.actor(), id, &form.title, &form.content).await {
        Ok(()) => Ok(see_other_with(&format!("/posts/{id}"), vec![Flash::success("Post updated successfully")])),
        Err(AppError::Invalid(errors)) => Ok(form_errors(&state, user, Some(id), form, errors)),
        Err(e) => Err(e.into()),
    }
}

/// Deletes a post, for its author or an admin.
async fn post_delete_post(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    state.posts.delete(user.actor(), parse_id(&id)?).await?;
    Ok(see_other_with("/dashboard", vec![Flash::success("Post deleted")]))
}
