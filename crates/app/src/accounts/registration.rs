//! Opening an account, and its owner closing it.

use portcullis_domain::{Email, Password, Username};

use super::{Accounts, in_words, invalid};
use crate::audit::{AuditEvent, Origin};
use crate::error::{AppError, FieldErrors, StoreError};
use crate::mail::{MailKind, MailVars};
use crate::model::{NewUser, TokenPurpose, User};
use crate::tokens;

/// What the registration form carries.
#[derive(Debug, Default, Clone)]
pub struct Registration {
    /// Raw username.
    pub username: String,
    /// Raw email.
    pub email: String,
    /// Raw password.
    pub password: String,
    /// Make an administrator (command line only).
    pub is_admin: bool,
    /// Mark the email verified (command line only).
    pub email_verified: bool,
}

impl Accounts {
    /// Creates an account. Every field is checked and every problem reported at once.
    pub async fn register(&self, form: Registration, origin: &Origin) -> Result<User, AppError> {
        self.register_as(form, origin, "register").await
    }

    /// [`Accounts::register`], recorded in the audit log as `kind`.
    pub(super) async fn register_as(&self, form: Registration, origin: &Origin, kind: &str) -> Result<User, AppError> {
        let mut errors = FieldErrors::default();
        let username = Username::parse(&form.username).map_err(|e| errors.add("username", e.to_string())).ok();
        let email = Email::parse(&form.email).map_err(|e| errors.add("email", e.to_string())).ok();
        let password = Password::parse(&form.password, self.password_policy())
            .map_err(|e| errors.add("password", e.to_string()))
            .ok();
        if let Some(u) = &username
            && self.users.username_taken(&u.normalized()).await?
        {
            errors.add("username", StoreError::UsernameTaken.to_string());
        }
        if let Some(e) = &email
            && self.users.email_taken(&e.normalized()).await?
        {
            errors.add("email", StoreError::EmailTaken.to_string());
        }
        let (Some(username), Some(email), Some(password)) = (username, email, password) else {
            return Err(AppError::Invalid(errors));
        };
        if !errors.is_empty() {
            return Err(AppError::Invalid(errors));
        }
        let password_hash = self.hasher.hash(password.expose()).await?;
        let new = NewUser {
            username,
            email,
            password_hash,
            is_admin: form.is_admin,
            email_verified: form.email_verified,
            security_stamp: tokens::random_b64(16),
            now: self.now(),
        };
        let event = self.event(origin, kind, None, Some(new.username.as_str()), None);
        // The unique indexes decide races the lookups above could not.
        let inserted = if new.email_verified {
            self.users.insert_user(&new, Some(&event)).await
        } else {
            let (token, value) = self.new_token(
                TokenPurpose::VerifyEmail,
                Some(new.email.as_str().to_owned()),
                self.settings.verify_token_ttl,
            );
            let vars = MailVars {
                username: new.username.as_str().to_owned(),
                link: Some(self.link("verify-email", &value)),
                valid_for: Some(in_words(self.settings.verify_token_ttl)),
                base_url: self.settings.base_url.clone(),
                ip: None,
                device: None,
                new_email: None,
            };
            let mail = self.mailer.compose(MailKind::VerifyEmail, new.email.as_str(), &vars)?;
            let user = self.tokens.insert_user_with_token(&new, &token, &[mail], Some(&event)).await;
            self.mailer.queued();
            user
        };
        inserted.map_err(|e| match e {
            StoreError::UsernameTaken => invalid("username", e.to_string()),
            StoreError::EmailTaken => invalid("email", e.to_string()),
            other => other.into(),
        })
    }

    /// Deletes the user's own account (password required); never the last admin.
    pub async fn delete_own_account(
        &self,
        user_id: i64,
        current_password: &str,
        origin: &Origin,
    ) -> Result<(), AppError> {
        let user = self.user(user_id).await?;
        self.check_current_password(&user, current_password, origin).await?;
        let event = self.event(origin, "account.deleted", Some(user.id), Some(&user.username), None);
        self.delete_recorded(user.id, &event).await
    }

    /// Deletes a user with their posts and sessions, recording `event`; never the last admin.
    pub(super) async fn delete_recorded(&self, user_id: i64, event: &AuditEvent) -> Result<(), AppError> {
        if self.users.delete_user(user_id, Some(event)).await? {
            Ok(())
        } else {
            Err(AppError::Refused("The last administrator cannot be deleted".into()))
        }
    }
}
