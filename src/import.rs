//! `portcullis import`: reads another app's users (the Flask tutorial app's
//! SQLite database, or CSV) and hands them to the import use case in
//! batches. Reasons for skipped rows go to standard error, the summary line
//! to standard output; a progress bar shows on a terminal, plain lines
//! otherwise.

use std::io::IsTerminal as _;
use std::path::Path;
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressStyle};
use portcullis_app::import::{Import, ImportUser, Summary};
use portcullis_domain::import::{parse_flag, parse_time};
use portcullis_store::import::FlaskSource;

use crate::server::Services;

/// Users per batch: one transaction each.
pub const BATCH: usize = 1000;

/// The CSV header, exactly.
pub const CSV_HEADER: [&str; 6] = ["username", "email", "password_hash", "is_admin", "email_verified", "created_at"];

/// Shows how far an import is: a bar on a terminal, a line now and then otherwise.
struct Progress {
    bar: Option<ProgressBar>,
    total: Option<u64>,
    done: u64,
    said: u64,
}

impl Progress {
    fn new(total: Option<u64>) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = match total {
                Some(n) => ProgressBar::new(n),
                None => ProgressBar::new_spinner(),
            };
            let style = ProgressStyle::with_template("{bar:40} {pos}/{len} users {elapsed} (eta {eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar
        });
        Self { bar, total, done: 0, said: 0 }
    }

    fn advance(&mut self, n: u64) {
        self.done += n;
        match &self.bar {
            Some(bar) => bar.inc(n),
            None if self.done - self.said >= 10 * BATCH as u64 => {
                self.said = self.done;
                match self.total {
                    Some(t) => eprintln!("import: {} of {t} users read", self.done),
                    None => eprintln!("import: {} rows read", self.done),
                }
            }
            None => {}
        }
    }

    /// Prints a line without tearing the bar.
    fn say(&self, line: String) {
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn import_for(services: &Services, dry_run: bool, what: &str) -> Import {
    let store = Arc::new(services.store.clone());
    Import::new(
        store.clone(),
        store,
        services.clock.clone(),
        services.accounts.settings().lockout_threshold,
        dry_run,
        what,
    )
}

/// Imports users and posts from the Flask tutorial app's database at `path`.
pub async fn flask_sqlite(services: &Services, path: &Path, dry_run: bool) -> Result<Summary, String> {
    let mut source = FlaskSource::open(path).await.map_err(|e| e.to_string())?;
    let total = source.count_users().await.map_err(|e| e.to_string())?;
    let mut import = import_for(services, dry_run, &format!("flask-sqlite {}", path.display()));
    let mut progress = Progress::new(Some(total));
    loop {
        let rows = source.next_users(BATCH as i64).await.map_err(|e| e.to_string())?;
        if rows.is_empty() {
            break;
        }
        let mut users = Vec::with_capacity(rows.len());
        let mut read = 0;
        for row in rows {
            match row {
                Ok(u) => {
                    read += 1;
                    users.push(u);
                }
                Err((reason, n)) => {
                    // A user row skips itself and its posts; a bad post row only itself.
                    if reason.starts_with("user ") {
                        read += 1;
                    }
                    import.skipped_at_source(n);
                    progress.say(reason);
                }
            }
        }
        import.batch(users, &mut |line| progress.say(line)).await.map_err(|e| e.to_string())?;
        progress.advance(read);
    }
    let orphans = source.orphan_posts().await.map_err(|e| e.to_string())?;
    for id in &orphans {
        progress.say(format!("post id {id}: its author is not in the user table"));
    }
    import.skipped_at_source(orphans.len() as u64);
    progress.finish();
    import.finish().await.map_err(|e| e.to_string())
}

/// Imports users from a CSV file with the header [`CSV_HEADER`].
pub async fn csv(services: &Services, path: &Path, dry_run: bool) -> Result<Summary, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut reader = csv::ReaderBuilder::new().has_headers(true).flexible(false).from_reader(file);
    let header = reader.headers().map_err(|e| format!("cannot read {}: {e}", path.display()))?.clone();
    if header.iter().map(str::trim).ne(CSV_HEADER) {
        return Err(format!(
            "{}: the first line must be exactly {} (found {})",
            path.display(),
            CSV_HEADER.join(","),
            header.iter().collect::<Vec<_>>().join(",")
        ));
    }
    let mut import = import_for(services, dry_run, &format!("csv {}", path.display()));
    let mut progress = Progress::new(None);
    let mut users = Vec::with_capacity(BATCH);
    let mut record = csv::StringRecord::new();
    loop {
        let line = reader.position().line() + 1;
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let line = record.position().map_or(line, csv::Position::line);
                match csv_user(&record, line) {
                    Ok(u) => users.push(u),
                    Err(reason) => {
                        import.skipped_at_source(1);
                        progress.say(format!("line {line}: {reason}"));
                    }
                }
            }
            Err(e) => {
                let line = e.position().map_or(line, csv::Position::line);
                import.skipped_at_source(1);
                progress.say(format!("line {line}: malformed row: {}", csv_reason(&e)));
                if matches!(e.kind(), csv::ErrorKind::Io(_)) {
                    return Err(format!("cannot read {}: {e}", path.display()));
                }
            }
        }
        progress.advance(1);
        if users.len() >= BATCH {
            import.batch(std::mem::take(&mut users), &mut |l| progress.say(l)).await.map_err(|e| e.to_string())?;
        }
    }
    import.batch(users, &mut |l| progress.say(l)).await.map_err(|e| e.to_string())?;
    progress.finish();
    import.finish().await.map_err(|e| e.to_string())
}

/// What was wrong with a row the CSV reader refused, without its position
/// (the line is said first).
fn csv_reason(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
            format!("{len} fields where the header has {expected_len}")
        }
        csv::ErrorKind::Utf8 { .. } => "not valid UTF-8".into(),
        _ => e.to_string(),
    }
}

/// A CSV row as a user to import, or why not.
fn csv_user(record: &csv::StringRecord, line: u64) -> Result<ImportUser, String> {
    let field = |i: usize| record.get(i).unwrap_or_default();
    let is_admin = parse_flag(field(3)).ok_or_else(|| format!("is_admin {:?} is not a flag", field(3)))?;
    let email_verified = parse_flag(field(4)).ok_or_else(|| format!("email_verified {:?} is not a flag", field(4)))?;
    let created_at = match field(5).trim() {
        "" => None,
        s => Some(parse_time(s).ok_or_else(|| format!("created_at {s:?} is not a time"))?),
    };
    Ok(ImportUser {
        source: format!("line {line}"),
        username: field(0).to_owned(),
        email: field(1).to_owned(),
        password_hash: field(2).to_owned(),
        is_admin,
        email_verified,
        created_at,
        locked_until: None,
        posts: Vec::new(),
    })
}
