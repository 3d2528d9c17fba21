//! `/setup/{token}`: the first administrator, made in the browser through
//! the one-time link `serve` prints while no administrator exists. Every
//! other path under `/setup/`, and this one once an administrator exists,
//! is 404.

use axum::Form;
use axum::extract::{Path, State};
use axum::response::Response;
use portcullis_app::AppError;
use portcullis_app::accounts::FirstAdmin;
use serde::Deserialize;

use crate::context::Flash;
use crate::error::WebError;
use crate::extract::Ctx;
use crate::pages::{self, Errors};
use crate::routes::RouteTable;
use crate::routes::auth::sign_in_new_account;
use crate::state::AppState;

/// `/setup/{token}`.
pub fn routes(t: RouteTable) -> RouteTable {
    t.get("/setup/{token}", get_setup).post("/setup/{token}", post_setup)
}

/// The setup form. Like registration's, it never reads other fields.
#[derive(Debug, Default, Deserialize)]
pub struct SetupForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

/// The form, while the link opens it.
async fn get_setup(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(token): Path<String>,
) -> Result<Response, WebError> {
    state.rate_limit("setup", &ctx.client).await?;
    if !state.accounts.setup_open(&token).await? {
        return Err(WebError::NotFound);
    }
    let action = format!("/setup/{token}");
    Ok(state.templates.render(&pages::Setup {
        ctx: &ctx,
        action: &action,
        min_length: state.accounts.settings().min_password_length,
        username: "",
        email: "",
        errors: Errors::default(),
    }))
}

/// Creates the first administrator and signs them in.
async fn post_setup(
    State(state): State<AppState>,
    Ctx(mut ctx): Ctx,
    Path(token): Path<String>,
    Form(form): Form<SetupForm>,
) -> Result<Response, WebError> {
    state.rate_limit("setup", &ctx.client).await?;
    let first = FirstAdmin { username: form.username.clone(), email: form.email.clone(), password: form.password };
    match state.accounts.complete_setup(&token, first, &ctx.origin()).await {
        Ok(user) => {
            let flash = "You are the administrator. The setup link is gone for good.";
            sign_in_new_account(&state, &ctx, &user, "/admin/users", flash).await
        }
        Err(AppError::Invalid(errors)) => {
            std::sync::Arc::make_mut(&mut ctx).flashes.extend(errors.0.iter().map(|(_, m)| Flash::error(m.clone())));
            let action = format!("/setup/{token}");
            Ok(state.templates.render(&pages::Setup {
                ctx: &ctx,
                action: &action,
                min_length: state.accounts.settings().min_password_length,
                username: &form.username,
                email: &form.email,
                errors: Errors::of(&errors),
            }))
        }
        Err(e) => Err(e.into()),
    }
}
