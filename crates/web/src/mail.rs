//! Mail templates (`templates/mail/*.txt` and `*.html`): the renderer the
//! account use cases write their mails with.

use minijinja::Environment;
use portcullis_app::mail::{Mail, MailKind, MailRenderer, MailVars};

/// Renders each mail's text and HTML parts.
pub struct MailTemplates {
    env: Environment<'static>,
}

impl MailTemplates {
    /// Loads and checks the mail templates.
    pub fn load() -> Result<Self, minijinja::Error> {
        let env = crate::templates::environment();
        for kind in [
            MailKind::VerifyEmail,
            MailKind::ResetPassword,
            MailKind::PasswordChanged,
            MailKind::NewDevice,
            MailKind::EmailChangeNotice,
        ] {
            env.get_template(&format!("mail/{}.txt", kind.name()))?;
            env.get_template(&format!("mail/{}.html", kind.name()))?;
        }
        Ok(Self { env })
    }
}

fn subject(kind: MailKind) -> &'static str {
    match kind {
        MailKind::VerifyEmail => "Confirm your email address",
        MailKind::ResetPassword => "Reset your password",
        MailKind::PasswordChanged => "Your password was changed",
        MailKind::NewDevice => "New sign-in to your account",
        MailKind::EmailChangeNotice => "Your email address is being changed",
    }
}

impl MailRenderer for MailTemplates {
    fn render(&self, kind: MailKind, to: &str, vars: &MailVars) -> Result<Mail, String> {
        let part = |ext: &str| {
            self.env
                .get_template(&format!("mail/{}.{ext}", kind.name()))
                .and_then(|t| t.render(vars))
                .map_err(|e| format!("mail template {}.{ext}: {e}", kind.name()))
        };
        Ok(Mail { to: to.to_owned(), subject: subject(kind).to_owned(), text: part("txt")?, html: part("html")? })
    }
}
