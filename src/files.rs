//! Files at rest are the owner's alone: the data directory holds the
//! database, the secret key and, in development, mails with live reset
//! links. Everything the process creates is private (mode 0700 for
//! directories, 0600 for files, on Unix), and what it finds looser from
//! before is named in a warning at start.

use std::path::{Path, PathBuf};

/// Makes every file and directory this process creates from now on private
/// to its user: SQLite's database and its `-wal` and `-shm` files, the
/// outbox and its mails. Other modes are set where files are made; this
/// covers the ones made by libraries.
pub fn private_by_default() {
    #[cfg(unix)]
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

/// The paths among `paths` that exist and that others than their owner may
/// read, write or enter, with their permission bits.
pub fn loose(paths: &[PathBuf]) -> Vec<(PathBuf, u32)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        paths
            .iter()
            .filter_map(|p| {
                let mode = std::fs::metadata(p).ok()?.permissions().mode() & 0o777;
                (mode & 0o077 != 0).then(|| (p.clone(), mode))
            })
            .collect()
    }
    #[cfg(not(unix))]
    {
        let _ = paths;
        Vec::new()
    }
}

/// Warns, one line each, about the data directory and the files in it that
/// others may read (left from before: what is made now is private).
pub fn warn_if_loose(data_dir: &Path, database_url: &str) {
    let mut paths = vec![data_dir.to_path_buf(), data_dir.join("secret.key"), data_dir.join("outbox")];
    if let Some(db) = sqlite_file(database_url) {
        for suffix in ["", "-wal", "-shm"] {
            let mut name = db.clone().into_os_string();
            name.push(suffix);
            paths.push(PathBuf::from(name));
        }
    }
    for (path, mode) in loose(&paths) {
        tracing::warn!(
            "{} has mode {mode:o}: others on this machine may read it; make it private with chmod go-rwx",
            path.display()
        );
    }
}

/// The file of a `sqlite://` database URL, unless it is in memory.
fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

/// Writes `bytes` to a new file at `path` that only its owner may read.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    opts.open(path)?.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_name_their_file() {
        assert_eq!(sqlite_file("sqlite:///var/lib/p/portcullis.db?mode=rwc"), Some("/var/lib/p/portcullis.db".into()));
        assert_eq!(sqlite_file("sqlite://./data/p.db"), Some("./data/p.db".into()));
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("postgres://db/p"), None);
    }

    #[cfg(unix)]
    #[test]
    fn only_loose_paths_are_named() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("temp dir");
        let open = dir.path().join("open");
        let private = dir.path().join("private");
        write_private(&private, b"x").expect("write");
        std::fs::write(&open, b"x").expect("write");
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let found = loose(&[open.clone(), private.clone(), dir.path().join("absent")]);
        assert_eq!(found, vec![(open, 0o644)]);
        assert_eq!(std::fs::metadata(&private).expect("stat").permissions().mode() & 0o777, 0o600);
    }
}
