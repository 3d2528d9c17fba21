//! Mail transports: SMTP through lettre, or `.eml` files in the dev outbox.

use std::path::PathBuf;

use async_trait::async_trait;
use lettre::message::header::ContentTransferEncoding;
use lettre::message::{Body, Mailbox, MultiPart, SinglePart, header::ContentType};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use portcullis_app::mail::{Mail, MailTransport};

/// The part as written, with CRLF line ends, so that a long link stays on
/// one line (RFC 5322 allows 998 characters; lettre would otherwise wrap it
/// as quoted-printable at 76). Text that does not fit those rules is left to
/// lettre's own choice of encoding.
fn body(text: &str) -> Body {
    let crlf = text.replace("\r\n", "\n").replace('\n', "\r\n");
    let fits = !crlf.contains('\0') && crlf.split("\r\n").all(|line| line.len() < 990 && !line.contains('\r'));
    if !fits {
        return Body::new(crlf);
    }
    let encoding = if crlf.is_ascii() { ContentTransferEncoding::SevenBit } else { ContentTransferEncoding::EightBit };
    Body::dangerous_pre_encoded(crlf.into_bytes(), encoding)
}

/// Builds the MIME message: text and HTML alternatives. Parts are 8bit so
/// that long links stay on one line.
fn message(from: &Mailbox, mail: &Mail) -> Result<Message, String> {
    let to: Mailbox = mail.to.parse().map_err(|e| format!("recipient {:?}: {e}", mail.to))?;
    let text = SinglePart::builder().header(ContentType::TEXT_PLAIN).body(body(&mail.text));
    let html = SinglePart::builder().header(ContentType::TEXT_HTML).body(body(&mail.html));
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(mail.subject.clone())
        .multipart(MultiPart::alternative().singlepart(text).singlepart(html))
        .map_err(|e| e.to_string())
}

/// Delivers over SMTP (`PORTCULLIS_SMTP_URL`).
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl SmtpMailer {
    /// A transport for `url` in lettre's URL format.
    pub fn new(url: &str, from: Mailbox) -> Result<Self, String> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| e.to_string())?
            .timeout(Some(std::time::Duration::from_secs(15)))
            .build();
        Ok(Self { transport, from })
    }
}

#[async_trait]
impl MailTransport for SmtpMailer {
    async fn send(&self, mail: &Mail) -> Result<(), String> {
        let msg = message(&self.from, mail)?;
        self.transport.send(msg).await.map(|_| ()).map_err(|e| e.to_string())
    }
}

/// Writes each mail to `<data dir>/outbox/*.eml` and logs one line: for
/// development, when no SMTP server is configured.
pub struct DirMailer {
    dir: PathBuf,
    from: Mailbox,
}

impl DirMailer {
    /// A dev outbox in `dir` (created if needed).
    pub fn new(dir: PathBuf, from: Mailbox) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        Ok(Self { dir, from })
    }
}

#[async_trait]
impl MailTransport for DirMailer {
    async fn send(&self, mail: &Mail) -> Result<(), String> {
        let msg = message(&self.from, mail)?;
        let name = format!(
            "{}-{}.eml",
            portcullis_app::clock::Clock::now_ms(&portcullis_app::SystemClock),
            portcullis_app::tokens::random_b64(6).replace(['-', '_'], "x")
        );
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let path = self.dir.join(&name);
        // Write then rename, so a reader never sees half a mail; both in
        // one trip to a blocking thread.
        let (bytes, dest) = (msg.formatted(), path.clone());
        tokio::task::spawn_blocking(move || {
            crate::files::write_private(&tmp, &bytes)?;
            std::fs::rename(&tmp, &dest)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
        tracing::info!(to = %mail.to, subject = %mail.subject, file = %path.display(), "mail written to the dev outbox");
        Ok(())
    }
}
