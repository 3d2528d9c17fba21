//! Mail templates (`templates/mail/*.txt` and `*.html`): the renderer the
//! account use cases write their mails with. `part.txt` and `part.html`
//! pick the template of each kind of mail; all are compiled in.

use askama::Template;
use portcullis_app::mail::{Mail, MailKind, MailRenderer, MailVars};

/// What a mail's templates may show.
struct Part<'a> {
    kind: MailKind,
    username: &'a str,
    link: &'a str,
    valid_for: &'a str,
    base_url: &'a str,
    ip: &'a str,
    device: &'a str,
    new_email: &'a str,
}

/// The plain-text part.
#[derive(Template)]
#[template(path = "mail/part.txt")]
struct TextPart<'a>(&'a Part<'a>);

/// The HTML part.
#[derive(Template)]
#[template(path = "mail/part.html")]
struct HtmlPart<'a>(&'a Part<'a>);

impl<'a> std::ops::Deref for TextPart<'a> {
    type Target = Part<'a>;
    fn deref(&self) -> &Part<'a> {
        self.0
    }
}

impl<'a> std::ops::Deref for HtmlPart<'a> {
    type Target = Part<'a>;
    fn deref(&self) -> &Part<'a> {
        self.0
    }
}

/// Renders each mail's text and HTML parts.
#[derive(Clone, Copy, Debug, Default)]
pub struct MailTemplates;

fn subject(kind: MailKind) -> &'static str {
    match kind {
        MailKind::VerifyEmail => "Confirm your email address",
        MailKind::ResetPassword => "Reset your password",
        MailKind::PasswordChanged => "Your password was changed",
        MailKind::NewDevice => "New sign-in to your account",
        MailKind::EmailChangeNotice => "Your email address is being changed",
        MailKind::TwoFactorEnabled => "Two-factor sign-in is on",
        MailKind::TwoFactorDisabled => "Two-factor sign-in is off",
        MailKind::RecoveryCodeUsed => "A recovery code was used to sign in",
        MailKind::TwoFactorReset => "An administrator turned two-factor sign-in off",
        MailKind::PasskeyAdded => "A passkey was added to your account",
        MailKind::PasskeyRemoved => "A passkey was removed from your account",
    }
}

impl MailRenderer for MailTemplates {
    fn render(&self, kind: MailKind, to: &str, vars: &MailVars) -> Result<Mail, String> {
        let part = Part {
            kind,
            username: &vars.username,
            link: vars.link.as_deref().unwrap_or(""),
            valid_for: vars.valid_for.as_deref().unwrap_or(""),
            base_url: &vars.base_url,
            ip: vars.ip.as_deref().unwrap_or("unknown"),
            device: vars.device.as_deref().unwrap_or(""),
            new_email: vars.new_email.as_deref().unwrap_or(""),
        };
        let failed = |e: askama::Error| format!("mail template {}: {e}", kind.name());
        let text = TextPart(&part).render().map_err(failed)?;
        let html = HtmlPart(&part).render().map_err(failed)?;
        Ok(Mail { to: to.to_owned(), subject: subject(kind).to_owned(), text, html })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_renders_its_own_template_escaped_in_html_only() {
        let vars = MailVars {
            username: "o'brien<b>".into(),
            link: Some("https://example.com/verify-email/a.b".into()),
            valid_for: Some("1 hour".into()),
            base_url: "https://example.com".into(),
            ip: None,
            device: Some("Firefox on Linux".into()),
            new_email: Some("new@example.com".into()),
        };
        let verify = MailTemplates.render(MailKind::VerifyEmail, "a@example.com", &vars).expect("verify");
        assert_eq!(verify.subject, "Confirm your email address");
        assert!(
            verify.text.contains("Hello o'brien<b>,") && verify.text.contains("https://example.com/verify-email/a.b")
        );
        assert!(verify.html.contains("o&#x27;brien&lt;b&gt;") && !verify.html.contains("<b>"));
        let notice = MailTemplates.render(MailKind::NewDevice, "a@example.com", &vars).expect("notice");
        assert!(notice.text.contains("Firefox on Linux") && notice.text.contains("IP address: unknown"));
        assert!(!notice.text.contains("verify-email"), "another kind's template");
        let change = MailTemplates.render(MailKind::EmailChangeNotice, "a@example.com", &vars).expect("change");
        assert!(change.text.contains("new@example.com") && change.html.contains("new@example.com"));
    }

    #[test]
    fn the_two_factor_mails_say_what_happened_and_link_the_page() {
        let vars = MailVars {
            username: "alice".into(),
            link: None,
            valid_for: None,
            base_url: "https://example.com".into(),
            ip: Some("192.0.2.7".into()),
            device: None,
            new_email: None,
        };
        for (kind, says) in [
            (MailKind::TwoFactorEnabled, "turned on"),
            (MailKind::TwoFactorDisabled, "turned off"),
            (MailKind::RecoveryCodeUsed, "192.0.2.7"),
            (MailKind::TwoFactorReset, "An administrator"),
        ] {
            let m = MailTemplates.render(kind, "a@example.com", &vars).expect("render");
            assert!(m.text.contains(says) && m.html.contains(says), "{kind:?}: {}", m.text);
            assert!(m.text.contains("https://example.com/account/two-factor"), "{kind:?}");
        }
    }
}
