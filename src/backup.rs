//! `portcullis backup FILE`: a consistent copy of the SQLite database, taken
//! while the server runs, and the secret key beside it (`FILE.secret.key`);
//! both private to their owner (mode 0600). Nothing is ever overwritten.

use std::path::{Path, PathBuf};

use portcullis_store::Backend;

use crate::server::Services;

/// Where the secret key of a backup in `file` goes.
pub fn key_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".secret.key");
    PathBuf::from(name)
}

/// Creates `path`, empty and private, failing if it exists.
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    opts.open(path)
}

/// Writes the backup; answers the two paths written.
pub async fn backup(services: &Services, file: &Path) -> Result<(PathBuf, PathBuf), String> {
    if services.store.backend() == Backend::Postgres {
        return Err("backup copies the embedded SQLite database; this one is PostgreSQL: use pg_dump".into());
    }
    let key = key_path(file);
    for p in [file, key.as_path()] {
        if p.exists() {
            return Err(format!("{} already exists: not overwritten; choose a new name", p.display()));
        }
    }
    // Made empty and private first, so the copy is never readable by others.
    create_private(file).map_err(|e| format!("cannot create {}: {e}", file.display()))?;
    if let Err(e) = services.store.backup_into(file).await {
        let _ = std::fs::remove_file(file);
        return Err(format!("backup failed: {e}"));
    }
    let written = (|| {
        use std::io::Write as _;
        let mut f = create_private(&key)?;
        f.write_all(&services.secret_key)?;
        f.write_all(b"\n")?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(file);
        return Err(format!("cannot write {}: {e}", key.display()));
    }
    Ok((file.to_path_buf(), key))
}
