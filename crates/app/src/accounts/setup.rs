//! The first administrator, made in the browser. While no administrator
//! exists, a serving process may open one setup link: its token is 256
//! random bits, and only the token's SHA-256 is kept, in this process's
//! memory (so only the node that printed the link answers it, and a restart
//! prints a new one). The link works until an administrator exists or
//! [`SETUP_TTL`] passes, whichever comes first.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;

use super::Accounts;
use super::registration::Registration;
use crate::audit::Origin;
use crate::clock::ms;
use crate::error::AppError;
use crate::model::User;
use crate::tokens;

/// How long a setup link lives.
pub const SETUP_TTL: Duration = Duration::from_secs(3600);

/// The one setup link this process may hold.
#[derive(Clone, Default)]
pub(super) struct SetupSlot(Arc<Mutex<Option<OpenSetup>>>);

/// A setup link's token hash and end.
struct OpenSetup {
    secret_hash: String,
    expires_at: i64,
}

/// What the setup form carries.
#[derive(Debug, Default, Clone)]
pub struct FirstAdmin {
    /// Raw username.
    pub username: String,
    /// Raw email.
    pub email: String,
    /// Raw password.
    pub password: String,
}

impl Accounts {
    /// Opens the setup link when no administrator exists: the token its
    /// path carries, or `None` when an administrator exists. A new call
    /// replaces the link a previous one opened.
    pub async fn open_setup(&self) -> Result<Option<String>, AppError> {
        let mut slot = self.setup.0.lock().await;
        if self.has_admin().await? {
            *slot = None;
            return Ok(None);
        }
        let token = tokens::random_b64(32);
        let expires_at = self.now().saturating_add(ms(SETUP_TTL));
        *slot = Some(OpenSetup { secret_hash: tokens::hash_secret(&token), expires_at });
        Ok(Some(token))
    }

    /// Whether `token` opens the setup page now: it is this process's
    /// link, unexpired, and no administrator exists yet.
    pub async fn setup_open(&self, token: &str) -> Result<bool, AppError> {
        let mut slot = self.setup.0.lock().await;
        self.check_setup(&mut slot, token).await
    }

    /// Creates the first administrator (verified) through the link, with the
    /// rules of registration; the link is gone afterwards. `NotFound` when
    /// the link does not open the page (wrong, expired, or an administrator
    /// exists).
    pub async fn complete_setup(&self, token: &str, form: FirstAdmin, origin: &Origin) -> Result<User, AppError> {
        // Held to the end: two submissions of the form make one administrator.
        let mut slot = self.setup.0.lock().await;
        if !self.check_setup(&mut slot, token).await? {
            return Err(AppError::NotFound);
        }
        let reg = Registration {
            username: form.username,
            email: form.email,
            password: form.password,
            is_admin: true,
            email_verified: true,
        };
        let user = self.register_as(reg, origin, "setup.admin").await?;
        *slot = None;
        Ok(user)
    }

    /// Checks `token` against the slot, closing the slot for good once an
    /// administrator exists or the link has expired.
    async fn check_setup(&self, slot: &mut Option<OpenSetup>, token: &str) -> Result<bool, AppError> {
        let Some(open) = slot.as_ref() else {
            return Ok(false);
        };
        if self.now() >= open.expires_at || self.has_admin().await? {
            *slot = None;
            return Ok(false);
        }
        Ok(tokens::secret_matches(token, &open.secret_hash))
    }
}
