//! Extractors that decide who may enter, so a handler cannot forget to ask.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use portcullis_domain::Actor;

use portcullis_app::SignedIn;

use axum::response::{IntoResponse, Response};

use crate::context::RequestCtx;
use crate::error::WebError;
use crate::state::AppState;

/// The request context, signed in or not.
#[derive(Clone, Debug)]
pub struct Ctx(pub Arc<RequestCtx>);

/// A signed-in user; anonymous visitors are sent to `/login?next=…`.
#[derive(Clone, Debug)]
pub struct CurrentUser {
    /// Session and user.
    pub auth: Arc<SignedIn>,
    /// The whole request context, for rendering.
    pub ctx: Arc<RequestCtx>,
}

/// A signed-in administrator; other users get 403.
#[derive(Clone, Debug)]
pub struct AdminUser(pub CurrentUser);

/// The user if signed in, for pages anyone may see.
#[derive(Clone, Debug)]
pub struct MaybeUser(pub Option<Arc<SignedIn>>, pub Arc<RequestCtx>);

impl CurrentUser {
    /// The policy's view of this user.
    pub fn actor(&self) -> Actor {
        Actor { user_id: self.auth.user.id, is_admin: self.auth.user.is_admin }
    }
}

fn request_ctx(parts: &Parts) -> Result<Arc<RequestCtx>, WebError> {
    parts
        .extensions
        .get::<Arc<RequestCtx>>()
        .cloned()
        .ok_or_else(|| WebError::Internal("request context middleware missing".into()))
}

impl<S: Send + Sync> FromRequestParts<S> for Ctx {
    type Rejection = WebError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, WebError> {
        request_ctx(parts).map(Ctx)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for MaybeUser {
    type Rejection = WebError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, WebError> {
        let ctx = request_ctx(parts)?;
        Ok(MaybeUser(ctx.auth.clone(), ctx))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for CurrentUser {
    type Rejection = WebError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, WebError> {
        let ctx = request_ctx(parts)?;
        match ctx.auth.clone() {
            Some(auth) => Ok(CurrentUser { auth, ctx }),
            None => Err(WebError::LoginRequired { next: ctx.path_and_query.clone() }),
        }
    }
}

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let user = CurrentUser::from_request_parts(parts, state).await.map_err(IntoResponse::into_response)?;
        if !user.actor().can_administer() {
            return Err(WebError::Forbidden("Administrators only.".into()).into_response());
        }
        // Where the settings ask for it, an administrator enrols before any admin page.
        if state.accounts.settings().require_two_factor_for_admins
            && !state.accounts.has_two_factor(user.auth.user.id).await.map_err(|e| WebError::from(e).into_response())?
        {
            return Err(crate::routes::see_other_with(
                "/account/two-factor",
                vec![crate::context::Flash::info("Administrators need two-factor sign-in: set it up first.")],
            ));
        }
        Ok(AdminUser(user))
    }
}
