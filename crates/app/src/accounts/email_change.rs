//! Changing the account's email address: confirmed from the new address,
//! announced to the old one.

use portcullis_domain::Email;

use super::{Accounts, invalid};
use crate::audit::Origin;
use crate::error::{AppError, StoreError};
use crate::mail::MailKind;
use crate::model::TokenPurpose;

impl Accounts {
    /// Asks to change the account's email: the current password is required;
    /// a confirmation link goes to the new address (the change happens when
    /// it is followed) and a notice to the old one. Over the hourly mail
    /// allowance of the new address or of the account, nothing is sent
    /// ([`AppError::SentRecently`]).
    pub async fn request_email_change(
        &self,
        user_id: i64,
        current_password: &str,
        new_email: &str,
        origin: &Origin,
    ) -> Result<(), AppError> {
        let user = self.user(user_id).await?;
        let email = Email::parse(new_email).map_err(|e| invalid("new_email", e.to_string()))?;
        self.check_current_password(&user, current_password, origin).await?;
        if email.normalized() == user.email.to_lowercase() {
            return Err(invalid("new_email", "That is already your email address".into()));
        }
        if self.users.email_taken(&email.normalized()).await? {
            return Err(invalid("new_email", StoreError::EmailTaken.to_string()));
        }
        if !self.mail_allowed(email.as_str(), Some(user.id)).await? {
            return Err(AppError::SentRecently);
        }
        let (token, value) =
            self.new_token(TokenPurpose::VerifyEmail, Some(email.as_str().to_owned()), self.settings.verify_token_ttl);
        let confirm_vars =
            self.vars(&user, Some(self.link("verify-email", &value)), Some(self.settings.verify_token_ttl));
        let confirm = self.mailer.compose(MailKind::VerifyEmail, email.as_str(), &confirm_vars)?;
        let mut notice_vars = self.vars(&user, None, None);
        notice_vars.new_email = Some(email.as_str().to_owned());
        let notice = self.mailer.compose(MailKind::EmailChangeNotice, &user.email, &notice_vars)?;
        let detail = Some(format!("to {email}"));
        let event = self.event(origin, "email.change", Some(user.id), Some(&user.username), detail);
        self.tokens.issue_token(user.id, &token, &[confirm, notice], Some(&event)).await?;
        self.mailer.queued();
        Ok(())
    }
}
