//! The `portcullis` command: serve, migrate, and manage users.

use std::io::{BufRead as _, IsTerminal as _};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use portcullis::config::{Config, Sources};
use portcullis::server::{self, StartError};
use portcullis_app::accounts::Registration;
use portcullis_app::{AppError, Origin, StoreError};
use portcullis_domain::{Email, Password, PasswordPolicy, Username};

/// A request makes many small allocations that live only as long as the
/// request; mimalloc serves them in a fraction of the system allocator's
/// instructions (docs/history.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// User accounts and sessions done right.
///
/// Configuration comes from PORTCULLIS_* environment variables over an
/// optional TOML file (PORTCULLIS_CONFIG, default ./portcullis.toml);
/// see the README for every variable.
#[derive(Parser)]
#[command(name = "portcullis", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Apply pending migrations, then serve HTTP until SIGINT/SIGTERM (the default).
    Serve,
    /// Apply pending migrations and exit.
    Migrate,
    /// Manage user accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Move users (and posts) in from another app. Reasons for skipped rows
    /// go to standard error; the last line is
    /// `imported N users, M posts; skipped K`. Running it again imports nothing.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Copy the SQLite database (consistently, while the server runs) to
    /// FILE, and the secret key to FILE.secret.key, both mode 0600. Never
    /// overwrites; on PostgreSQL it refuses: use pg_dump.
    Backup {
        /// Where the copy goes; must not exist.
        file: std::path::PathBuf,
    },
}

#[derive(Subcommand)]
enum ImportCommand {
    /// Users and posts from a database of the Flask tutorial app (tables
    /// `user` and `post`): Werkzeug hashes kept (upgraded at each user's next
    /// login), admin and verified flags, creation times and a lock still in
    /// force kept; its plaintext verification and reset tokens are not taken.
    FlaskSqlite {
        /// The app's SQLite file (instance/app.db).
        path: std::path::PathBuf,
        /// Check and count everything, write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Users from CSV with the header
    /// `username,email,password_hash,is_admin,email_verified,created_at`;
    /// hashes: Argon2id, Werkzeug pbkdf2/scrypt, bcrypt `$2b$`. Times are
    /// UTC (`2024-05-01 12:00:00`, RFC 3339 with `Z`, or Unix seconds);
    /// empty means now.
    Csv {
        /// The CSV file.
        path: std::path::PathBuf,
        /// Check and count everything, write nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user. On a terminal the password is asked for twice, with
    /// echo off; with --password-stdin it is read from standard input (one line).
    Create {
        /// 3–32 letters, digits, '_', '-' or '.'; unique without regard to case.
        #[arg(long)]
        username: String,
        /// Email address; unique without regard to case.
        #[arg(long)]
        email: String,
        /// Make the user an administrator.
        #[arg(long)]
        admin: bool,
        /// Mark the email address as verified.
        #[arg(long)]
        verified: bool,
        /// Read the password from standard input, one line (for scripts; passwords never go on the command line).
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users, one a line: id, username, email, admin, verified, locked.
    List,
    /// Grant (or with --revoke, remove) administrator rights; the user's sessions end.
    SetAdmin {
        /// Username or email.
        user: String,
        /// Remove administrator rights instead.
        #[arg(long)]
        revoke: bool,
    },
    /// Clear a failed-login lock.
    Unlock {
        /// Username or email.
        user: String,
    },
    /// Turn a user's two-factor sign-in off (mailed to them, recorded), as the admin action does.
    #[command(name = "reset-2fa")]
    Reset2fa {
        /// Username or email.
        user: String,
    },
}

/// A command's failure: configuration problems exit 2, others 1.
enum Failure {
    Config(String),
    Other(String),
}

impl From<StartError> for Failure {
    fn from(e: StartError) -> Self {
        match e {
            StartError::Config(c) => Failure::Config(c.to_string()),
            StartError::Other(s) => Failure::Other(s),
        }
    }
}

impl From<AppError> for Failure {
    fn from(e: AppError) -> Self {
        Failure::Other(match e {
            AppError::NotFound => "no such user".into(),
            other => other.to_string(),
        })
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Sources::from_process().and_then(|s| Config::load(&s)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    portcullis::logs::init(&config);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command.unwrap_or(Command::Serve), config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Config(m)) => {
            eprintln!("error: {m}");
            ExitCode::from(2)
        }
        Err(Failure::Other(m)) => {
            eprintln!("error: {m}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, config: Config) -> Result<(), Failure> {
    let services = server::open(&config).await?;
    match command {
        // `open` applied them and logged which.
        Command::Migrate => Ok(()),
        Command::Serve => {
            if config.redis_url.is_some() {
                tracing::info!("sessions and rate-limit counters are kept in Redis");
            }
            let state = server::web_state(&config, &services)?;
            let listener = server::bind(config.bind).await?;
            if let Some(at) = server::start_metrics(&config, &services, server::shutdown_signal()).await? {
                tracing::info!("metrics are served at http://{at}/metrics");
            }
            let background = server::start_background(&services);
            let addr = listener.local_addr().map_err(|e| Failure::Other(e.to_string()))?;
            tracing::info!("Portcullis is serving http://{addr} (public URL {})", config.base_url);
            if !services.passkeys.available() {
                tracing::info!(
                    "passkeys are off: browsers offer them only where PORTCULLIS_BASE_URL names a host (such as localhost), not an IP address"
                );
            }
            portcullis::setup::announce(&config, &services).await?;
            server::serve(listener, state, server::shutdown_signal())
                .await
                .map_err(|e| Failure::Other(e.to_string()))?;
            background.shutdown().await;
            services.store.close().await;
            Ok(())
        }
        Command::User(cmd) => user_command(cmd, &services).await,
        Command::Import(cmd) => {
            let dry_run = matches!(
                cmd,
                ImportCommand::FlaskSqlite { dry_run: true, .. } | ImportCommand::Csv { dry_run: true, .. }
            );
            let summary = match cmd {
                ImportCommand::FlaskSqlite { path, dry_run } => {
                    portcullis::import::flask_sqlite(&services, &path, dry_run).await
                }
                ImportCommand::Csv { path, dry_run } => portcullis::import::csv(&services, &path, dry_run).await,
            }
            .map_err(Failure::Other)?;
            if dry_run {
                eprintln!("dry run: nothing was written; the counts say what an import would do");
            }
            println!("{summary}");
            Ok(())
        }
        Command::Backup { file } => {
            let (db, key) = portcullis::backup::backup(&services, &file).await.map_err(Failure::Other)?;
            println!("backed up the database to {} and the secret key to {}", db.display(), key.display());
            Ok(())
        }
    }
}

/// Refuses a bad or taken username or email before the password is asked
/// for, so that nobody types a password twice for nothing.
async fn check_names(accounts: &portcullis_app::Accounts, username: &str, email: &str) -> Result<(), Failure> {
    let username = Username::parse(username).map_err(|e| Failure::Other(e.to_string()))?;
    let email = Email::parse(email).map_err(|e| Failure::Other(e.to_string()))?;
    if accounts.find_user(username.as_str()).await.is_ok() {
        return Err(Failure::Other(StoreError::UsernameTaken.to_string()));
    }
    if accounts.find_user(email.as_str()).await.is_ok() {
        return Err(Failure::Other(StoreError::EmailTaken.to_string()));
    }
    Ok(())
}

/// How many times `user create` asks for a password before giving up.
const PASSWORD_TRIES: usize = 3;

/// Asks for a new password on the terminal, twice and with echo off, until
/// the two match and the policy accepts it. Never waits on a pipe: without
/// a terminal it fails at once.
fn ask_password(policy: PasswordPolicy) -> Result<String, Failure> {
    if !std::io::stdin().is_terminal() {
        return Err(Failure::Other("no terminal to ask for the password on: pipe it in with --password-stdin".into()));
    }
    let read = |prompt: &str| {
        rpassword::prompt_password(prompt).map_err(|e| Failure::Other(format!("cannot read the password: {e}")))
    };
    for _ in 0..PASSWORD_TRIES {
        let password = read("Password: ")?;
        if let Err(e) = Password::parse(&password, policy) {
            eprintln!("{e}. Try again.");
            continue;
        }
        if read("Password (again): ")? != password {
            eprintln!("The passwords do not match. Try again.");
            continue;
        }
        return Ok(password);
    }
    Err(Failure::Other(format!("no password set after {PASSWORD_TRIES} tries")))
}

async fn user_command(cmd: UserCommand, services: &server::Services) -> Result<(), Failure> {
    let accounts = &services.accounts;
    match cmd {
        UserCommand::Create { username, email, admin, verified, password_stdin } => {
            let password = if password_stdin {
                let mut line = String::new();
                std::io::stdin()
                    .lock()
                    .read_line(&mut line)
                    .map_err(|e| Failure::Other(format!("cannot read the password: {e}")))?;
                line.trim_end_matches(['\n', '\r']).to_owned()
            } else {
                check_names(accounts, &username, &email).await?;
                ask_password(accounts.password_policy())?
            };
            let reg = Registration { username, email, password, is_admin: admin, email_verified: verified };
            let user = accounts.register(reg, &Origin::command_line()).await?;
            println!("created user {} (id {})", user.username, user.id);
            Ok(())
        }
        UserCommand::List => {
            let mut after = None;
            loop {
                let page = accounts.list_users(None, after, 500).await?;
                for row in &page {
                    let u = &row.user;
                    println!(
                        "{}\t{}\t{}\tadmin={}\tverified={}\tlocked={}",
                        u.id,
                        u.username,
                        u.email,
                        u.is_admin,
                        u.email_verified,
                        row.locked_until.is_some()
                    );
                }
                match page.last() {
                    Some(last) if page.len() == 500 => after = Some(last.user.id),
                    _ => break,
                }
            }
            Ok(())
        }
        UserCommand::SetAdmin { user, revoke } => {
            let u = accounts.find_user(&user).await?;
            let u = accounts.set_admin(u.id, !revoke, &Origin::command_line()).await?;
            println!("{} is {}an administrator", u.username, if u.is_admin { "" } else { "no longer " });
            Ok(())
        }
        UserCommand::Unlock { user } => {
            let u = accounts.find_user(&user).await?;
            accounts.unlock_user(u.id, &Origin::command_line()).await?;
            println!("{} is unlocked", u.username);
            Ok(())
        }
        UserCommand::Reset2fa { user } => {
            let u = accounts.find_user(&user).await?;
            let u = accounts.reset_two_factor(u.id, &Origin::command_line()).await?;
            println!("two-factor sign-in is off for {}", u.username);
            Ok(())
        }
    }
}
