//! A consistent copy of the SQLite database while it is in use.

use portcullis_app::StoreError;

use crate::{Backend, SqlStore, backend_err};

impl SqlStore {
    /// Copies the whole SQLite database into `path` with `VACUUM INTO`, on a
    /// reading connection: the copy is one read transaction's snapshot,
    /// taken while writers go on. `path` must not exist or be an empty file.
    /// PostgreSQL is refused: its own tool (`pg_dump`) does this there.
    pub async fn backup_into(&self, path: &std::path::Path) -> Result<(), StoreError> {
        if self.backend == Backend::Postgres {
            return Err(StoreError::Backend(
                "backup copies SQLite databases; for PostgreSQL use pg_dump (or your provider's snapshots)".into(),
            ));
        }
        let target = path.to_str().ok_or_else(|| StoreError::Backend("the backup path is not UTF-8".into()))?;
        sqlx::query("VACUUM INTO $1").bind(target).execute(&mut *self.read().await?).await.map_err(backend_err)?;
        Ok(())
    }
}
