//! The pages: one struct per template in `templates/`, compiled by askama.
//! A template is checked against its struct when the crate builds, and
//! renders as plain Rust: no interpreter and no value maps per request.
//! Every page carries the request context, which `base.html` reads (who is
//! signed in, the CSRF token, flash messages, the current path).
//!
//! The pages live in files by area. What templates call by its path here
//! (`crate::pages::time_tag`, `crate::pages::excerpt`) and the escaper that
//! `askama.toml` names stay reachable at those paths.

mod account;
mod admin;
mod auth;
mod error_page;
mod escape;
mod excerpt;
mod form_errors;
mod overview;
mod passkeys;
mod posts;
mod recovery;
mod setup;
mod time_tag;
mod two_factor;

use portcullis_app::User;

pub use self::account::{Account, Activity, EventRow, SessionRow, Sessions};
pub use self::admin::{AdminAudit, AdminConfirm, AdminUsers, UserRow};
pub use self::auth::{ConfirmEmailChange, Login, Logout, Register};
pub use self::error_page::ErrorPage;
pub use self::escape::Entities;
pub use self::excerpt::{Excerpt, excerpt};
pub use self::form_errors::Errors;
pub use self::overview::{AdminOverview, Chart, age, charts};
pub use self::passkeys::{PasskeyRow, PasskeysPage};
pub use self::posts::{Dashboard, Home, PostForm, PostList, PostPage};
pub use self::recovery::{ForgotPassword, LinkProblem, ResetPassword};
pub use self::setup::Setup;
pub use self::time_tag::{TimeTag, time_tag};
pub use self::two_factor::{LoginTwoFactor, RecoveryCodes, TwoFactor, TwoFactorSetup};
use crate::context::RequestCtx;

/// What `base.html` asks of the request.
impl RequestCtx {
    /// The signed-in user, if any.
    pub fn user(&self) -> Option<&User> {
        self.auth.as_deref().map(|a| &a.user)
    }

    /// `aria-current="page"` when this request is for `path` exactly.
    fn current_if(&self, path: &str) -> &'static str {
        if self.path_and_query == path { " aria-current=\"page\"" } else { "" }
    }

    /// `aria-current="page"` when this request is under `prefix`.
    fn current_under(&self, prefix: &str) -> &'static str {
        if self.path_and_query.starts_with(prefix) { " aria-current=\"page\"" } else { "" }
    }
}
pub mod tokens;
pub use self::tokens::{TokenRow, Tokens};
