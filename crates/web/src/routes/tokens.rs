//! `/account/tokens`: the signed-in user's personal access tokens.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::http::HeaderValue;
use axum::http::header::SET_COOKIE;
use axum::response::Response;
use serde::Deserialize;

use portcullis_app::AppError;

use crate::context::Flash;
use crate::cookies;
use crate::error::WebError;
use crate::extract::CurrentUser;
use crate::pages;
use crate::routes::{RouteTable, see_other_with};
use crate::state::AppState;

/// The cookie that carries a new token to the one page that shows it.
const REVEAL: &str = "portcullis_token_reveal";
const REVEAL_PURPOSE: &str = "token-reveal";

/// `/account/tokens*`.
pub fn routes(t: RouteTable) -> RouteTable {
    t.get("/account/tokens", get_tokens)
        .post("/account/tokens", post_token)
        .post("/account/tokens/{id}/revoke", post_revoke_token)
}

/// The new-token form.
#[derive(Debug, Default, Deserialize)]
pub struct TokenForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    expires_in_days: String,
}

/// The user's tokens, and a token just created, shown once.
async fn get_tokens(
    State(state): State<AppState>,
    user: CurrentUser,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let https = state.config.is_https();
    let me = &user.auth.user;
    // The new token travels in a signed cookie bound to this session; the
    // store says whether it was shown already, so a replayed cookie shows nothing.
    let carried = cookies::get(&headers, &cookies::name(REVEAL, https));
    let mut new_token = None;
    if let Some(payload) = carried.and_then(|v| state.signer.verify(REVEAL_PURPOSE, v))
        && let Ok(text) = String::from_utf8(payload)
        && let Some((session, value)) = text.split_once('\n')
        && session == user.auth.session.id
        && let Some((id, _)) = portcullis_domain::access_token::parse(value)
        && state.tokens.reveal(me.id, id).await?
    {
        new_token = Some(value.to_owned());
    }
    let now = state.accounts.clock().now_ms();
    let tokens = state
        .tokens
        .list(me.id)
        .await?
        .into_iter()
        .map(|t| pages::TokenRow {
            expired: t.expired(now),
            id: t.id,
            name: t.name,
            scope: t.scope.as_str(),
            created_at: t.created_at,
            expires_at: t.expires_at,
            last_used_at: t.last_used_at,
            last_used_ip: t.last_used_ip.unwrap_or_default(),
        })
        .collect();
    let page = pages::Tokens { ctx: &user.ctx, tokens, new_token, is_admin: me.is_admin };
    let mut res = state.templates.render(&page);
    if carried.is_some()
        && let Ok(v) = HeaderValue::try_from(cookies::clear(REVEAL, https))
    {
        res.headers_mut().append(SET_COOKIE, v);
    }
    Ok(res)
}

/// Creates a token and shows it once on the next page.
async fn post_token(
    State(state): State<AppState>,
    user: CurrentUser,
    Form(form): Form<TokenForm>,
) -> Result<Response, WebError> {
    let created =
        state.tokens.create(&user.auth.user, &form.name, &form.scope, &form.expires_in_days, &user.ctx.origin()).await;
    match created {
        Ok((_, value)) => {
            let payload = format!("{}\n{value}", user.auth.session.id);
            let signed = state.signer.sign(REVEAL_PURPOSE, payload.as_bytes());
            let mut res = see_other_with("/account/tokens", vec![Flash::success("Token created")]);
            let cookie = cookies::build(REVEAL, &signed, state.config.is_https(), None);
            if let Ok(v) = HeaderValue::try_from(cookie) {
                res.headers_mut().append(SET_COOKIE, v);
            }
            Ok(res)
        }
        Err(AppError::Invalid(errors)) => Ok(see_other_with("/account/tokens", vec![Flash::error(errors.to_string())])),
        Err(e) => Err(e.into()),
    }
}

/// Revokes one of the user's tokens.
async fn post_revoke_token(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    state.tokens.revoke(&user.auth.user, &id, &user.ctx.origin()).await?;
    Ok(see_other_with("/account/tokens", vec![Flash::success("Token revoked")]))
}
