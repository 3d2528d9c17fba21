//! The use cases wired to in-memory ports on a clock that moves only when told.

use std::sync::Arc;
use std::time::Duration;

use portcullis_app::accounts::{AccountPorts, NewSession, Registration};
use portcullis_app::audit::Audit;
use portcullis_app::limits::RateLimiter;
use portcullis_app::mail::{Mail, MailKind, MailRenderer, MailVars, Mailer, Sealer};
use portcullis_app::{Accounts, Argon2Settings, AuthSettings, ClientInfo, HashPool, ManualClock, Origin, User};

use crate::memory::Memory;

/// Writes every mail as its kind and the link it carries, if any.
struct PlainMail;

impl MailRenderer for PlainMail {
    fn render(&self, kind: MailKind, to: &str, vars: &MailVars) -> Result<Mail, String> {
        let text = format!("{} {}", kind.name(), vars.link.as_deref().unwrap_or(""));
        Ok(Mail { to: to.to_owned(), subject: kind.name().to_owned(), html: text.clone(), text })
    }
}

/// A password good enough for the default policy.
pub const PW: &str = "correct horse battery staple";

/// The account use cases over [`Memory`], on a clock that moves only when told.
pub struct World {
    /// The clock.
    pub clock: Arc<ManualClock>,
    /// The ports.
    pub store: Arc<Memory>,
    /// The use cases.
    pub accounts: Accounts,
    /// Opens the mails in the outbox.
    pub sealer: Sealer,
}

/// Minutes as a duration.
pub fn minutes(n: u64) -> Duration {
    Duration::from_secs(60 * n)
}

impl World {
    /// The use cases with `settings`, the clock at an arbitrary fixed date.
    pub fn new(settings: AuthSettings) -> Self {
        let clock = Arc::new(ManualClock::new(1_800_000_000_000));
        let store = Arc::new(Memory::default());
        let sealer = Sealer::new(b"a secret for the tests of the use cases");
        let mailer = Mailer::new(Arc::new(PlainMail), sealer.clone(), Arc::new(tokio::sync::Notify::new()));
        let cheap = Argon2Settings { memory_kib: 1024, iterations: 1, parallelism: 1 };
        let hasher = Arc::new(HashPool::new(cheap, 2, 64).expect("hash pool"));
        let ports = AccountPorts {
            users: store.clone(),
            sessions: store.clone(),
            throttle: store.clone(),
            tokens: store.clone(),
            audit: store.clone(),
            two_factor: store.clone(),
        };
        let accounts = Accounts::new(ports, mailer, hasher, settings, clock.clone());
        Self { clock, store, accounts, sealer }
    }

    /// A rate limiter on the same store and clock.
    pub fn limiter(&self, per_minute: u32) -> RateLimiter {
        RateLimiter::new(self.store.clone(), per_minute, self.clock.clone())
    }

    /// The audit log on the same store and clock, kept for `retention`.
    pub fn audit(&self, retention: Duration) -> Audit {
        Audit::new(self.store.clone(), retention, self.clock.clone())
    }

    /// Moves the clock on.
    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    /// A verified user with password [`PW`].
    pub async fn user(&self, name: &str) -> User {
        let reg = Registration {
            username: name.into(),
            email: format!("{name}@example.com"),
            password: PW.into(),
            is_admin: false,
            email_verified: true,
        };
        self.accounts.register(reg, &Origin::command_line()).await.expect("register")
    }

    /// Signs in through the use cases; the error is the login's.
    pub async fn sign_in(
        &self,
        name: &str,
        password: &str,
        remember: bool,
    ) -> Result<NewSession, portcullis_app::AppError> {
        let origin = Origin::user(&ClientInfo::default());
        let login = self.accounts.authenticate(name, password, None, &origin).await?;
        self.accounts.sign_in(login, remember, ClientInfo::default(), "a browser", &origin).await
    }

    /// Whether `cookie` still opens a live session.
    pub async fn signed_in(&self, cookie: &str) -> bool {
        self.accounts.resolve_session(cookie).await.expect("resolve").is_some()
    }

    /// The links (`<base>/<path>/<token>`) in the mails queued so far, oldest first.
    pub fn links(&self, path: &str) -> Vec<String> {
        let marker = format!("/{path}/");
        self.store
            .outbox()
            .iter()
            .filter_map(|m| self.sealer.open(&m.sealed))
            .filter_map(|m| m.text.split_whitespace().find(|w| w.contains(&marker)).map(str::to_owned))
            .filter_map(|link| link.split(&marker).nth(1).map(str::to_owned))
            .collect()
    }
}
