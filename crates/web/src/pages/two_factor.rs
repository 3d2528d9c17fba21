//! Two-factor sign-in: the account's page, enrolment, recovery codes, and
//! the second step of a sign-in.

use askama::Template;
use portcullis_app::accounts::TwoFactorStatus;

use crate::context::RequestCtx;

/// `/account/two-factor`.
#[derive(Template)]
#[template(path = "two_factor.html")]
pub struct TwoFactor<'a> {
    /// The request.
    pub ctx: &'a RequestCtx,
    /// On or off, and the codes left.
    pub status: TwoFactorStatus,
}

/// The enrolment page: QR code, URI, secret, and the confirmation form.
#[derive(Template)]
#[template(path = "two_factor_setup.html")]
pub struct TwoFactorSetup<'a> {
    /// The request.
    pub ctx: &'a RequestCtx,
    /// The secret in base32.
    pub secret: &'a str,
    /// The `otpauth://` URI.
    pub uri: &'a str,
    /// The QR code of the URI, as SVG markup made here (no script, no style).
    pub qr_svg: &'a str,
    /// Whether a code was just refused.
    pub failed: bool,
}

/// Recovery codes, shown once.
#[derive(Template)]
#[template(path = "two_factor_codes.html")]
pub struct RecoveryCodes<'a> {
    /// The request.
    pub ctx: &'a RequestCtx,
    /// The codes.
    pub codes: &'a [String],
    /// A `data:` URL of the codes as a text file.
    pub download_href: &'a str,
}

/// `/login/two-factor`.
#[derive(Template)]
#[template(path = "login_two_factor.html")]
pub struct LoginTwoFactor<'a> {
    /// The request.
    pub ctx: &'a RequestCtx,
    /// Whether a code was just refused.
    pub failed: bool,
}
