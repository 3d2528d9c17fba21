//! Getting back in and proving an address: email verification, password
//! reset by mailed link, and changing a password one knows.

use portcullis_domain::Password;

use super::{Accounts, NewSession, invalid};
use crate::audit::Origin;
use crate::error::{AppError, StoreError, TokenProblem};
use crate::mail::MailKind;
use crate::model::{ClientInfo, Session, TokenPurpose, User};
use crate::ports::NewCredentials;
use crate::tokens;

impl Accounts {
    /// Sends (again) the verification mail; `false` if already verified,
    /// [`AppError::SentRecently`] (nothing sent) over the hourly allowance
    /// of the address or of the account.
    pub async fn resend_verification(&self, user: &User) -> Result<bool, AppError> {
        if user.email_verified {
            return Ok(false);
        }
        if !self.mail_allowed(&user.email, Some(user.id)).await? {
            return Err(AppError::SentRecently);
        }
        let (token, value) =
            self.new_token(TokenPurpose::VerifyEmail, Some(user.email.clone()), self.settings.verify_token_ttl);
        let vars = self.vars(user, Some(self.link("verify-email", &value)), Some(self.settings.verify_token_ttl));
        let mail = self.mailer.compose(MailKind::VerifyEmail, &user.email, &vars)?;
        self.tokens.issue_token(user.id, &token, &[mail], None).await?;
        self.mailer.queued();
        Ok(true)
    }

    /// The new address a verification link would give its account, when
    /// it is an email change's link rather than a confirmation of the
    /// address the account has; the link is checked, not spent.
    pub async fn email_change_of_link(&self, value: &str) -> Result<Option<String>, AppError> {
        let rec = self.check_token(value, TokenPurpose::VerifyEmail).await?;
        let user = self.user(rec.user_id).await?;
        Ok(rec.email.filter(|new| !new.eq_ignore_ascii_case(&user.email)))
    }

    /// Follows a verification link.
    pub async fn verify_email(&self, value: &str, origin: &Origin) -> Result<User, AppError> {
        let rec = self.check_token(value, TokenPurpose::VerifyEmail).await?;
        let user = self.user(rec.user_id).await?;
        let email = rec.email.clone().unwrap_or_else(|| user.email.clone());
        let event = self.event(origin, "email.verified", Some(user.id), Some(&email), None);
        match self.tokens.verify_email_with_token(&rec.id, user.id, &email, self.now(), Some(&event)).await {
            Ok(true) => {}
            Ok(false) => return Err(AppError::Token(TokenProblem::Used)),
            Err(StoreError::EmailTaken) => {
                return Err(AppError::Refused("That email address now belongs to another account.".into()));
            }
            Err(e) => return Err(e.into()),
        }
        self.user(user.id).await
    }

    /// Starts a password reset for the account with this email, if there is
    /// one. The answer does not depend on whether there is: the hourly
    /// allowance is counted per address whoever has it
    /// ([`AppError::SentRecently`] over it), and the rest happens after
    /// this returns, so the time taken says nothing either.
    pub async fn request_password_reset(&self, email: &str) -> Result<(), AppError> {
        let normalized = email.trim().to_lowercase();
        if !normalized.contains('@') || normalized.len() > 254 {
            return Ok(());
        }
        if !self.mail_allowed(&normalized, None).await? {
            return Err(AppError::SentRecently);
        }
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(e) = this.send_reset_mail(&normalized).await {
                tracing::warn!(error = %e, "password reset request failed");
            }
        });
        Ok(())
    }

    async fn send_reset_mail(&self, normalized_email: &str) -> Result<(), AppError> {
        let Some(user) = self.users.user_by_login(normalized_email).await? else { return Ok(()) };
        if user.email.to_lowercase() != normalized_email {
            return Ok(());
        }
        let (token, value) = self.new_token(TokenPurpose::ResetPassword, None, self.settings.reset_token_ttl);
        let vars = self.vars(&user, Some(self.link("reset-password", &value)), Some(self.settings.reset_token_ttl));
        let mail = self.mailer.compose(MailKind::ResetPassword, &user.email, &vars)?;
        self.tokens.issue_token(user.id, &token, &[mail], None).await?;
        self.mailer.queued();
        Ok(())
    }

    /// Whether a reset link can still be used.
    pub async fn check_reset_token(&self, value: &str) -> Result<(), AppError> {
        self.check_token(value, TokenPurpose::ResetPassword).await.map(|_| ())
    }

    /// Follows a reset link: sets the new password, ends every session of
    /// the user, clears any lockout, and mails a notice.
    pub async fn reset_password(&self, value: &str, new_password: &str, origin: &Origin) -> Result<User, AppError> {
        let rec = self.check_token(value, TokenPurpose::ResetPassword).await?;
        let password =
            Password::parse(new_password, self.password_policy()).map_err(|e| invalid("password", e.to_string()))?;
        let user = self.user(rec.user_id).await?;
        let hash = self.hasher.hash(password.expose()).await?;
        let vars = self.vars(&user, None, None);
        let notice = self.mailer.compose(MailKind::PasswordChanged, &user.email, &vars)?;
        let keys = self.lockout_keys(&user);
        let event = self.event(origin, "password.reset", Some(user.id), Some(&user.username), None);
        let done = self
            .tokens
            .reset_password_with_token(
                &rec.id,
                &keys,
                &NewCredentials {
                    user_id: user.id,
                    hash: &hash,
                    new_stamp: &tokens::random_b64(16),
                    mails: &[notice],
                    audit: Some(&event),
                    now: self.now(),
                },
            )
            .await?;
        if !done {
            return Err(AppError::Token(TokenProblem::Used));
        }
        self.mailer.queued();
        self.user(user.id).await
    }

    /// Changes the password after checking the current one. Every session of
    /// the user ends (the security stamp changes) and the caller gets a fresh
    /// one in place of `current`.
    pub async fn change_password(
        &self,
        current: &Session,
        current_password: &str,
        new: &Password,
        origin: &Origin,
    ) -> Result<NewSession, AppError> {
        let user = self.user(current.user_id).await?;
        let place = self.check_current_password(&user, current_password, origin).await?;
        let hash = self.hasher.hash_admitted(&place, new.expose()).await?;
        drop(place);
        let stamp = tokens::random_b64(16);
        let notice = self.mailer.compose(MailKind::PasswordChanged, &user.email, &self.vars(&user, None, None))?;
        let event = self.event(origin, "password.changed", Some(user.id), Some(&user.username), None);
        let change = NewCredentials {
            user_id: user.id,
            hash: &hash,
            new_stamp: &stamp,
            mails: &[notice],
            audit: Some(&event),
            now: self.now(),
        };
        self.tokens.change_password_with_mail(&change).await?;
        self.mailer.queued();
        self.sessions.delete_user_sessions(user.id, None, None).await?;
        let user = self.user(user.id).await?;
        let client = ClientInfo {
            ip: current.ip.as_deref().and_then(|ip| ip.parse().ok()),
            user_agent: current.user_agent.clone(),
        };
        self.start_session(&user, current.remember, client).await
    }
}
