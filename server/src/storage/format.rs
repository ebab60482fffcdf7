//! The data dir's on-disk format version: which layout of column families,
//! keys and values (`keys`, the MVCC and raft encodings) a data dir holds.
//!
//! The version lives in [`Cf::RaftMeta`] under
//! [`raft_meta::FORMAT_VERSION`] (local to the member: never replicated,
//! never in a snapshot, so a snapshot install cannot erase it). It is
//! written when a data dir is created. A data dir without it was written
//! before versions existed; its layout is version 1, the first, and it is
//! stamped as such when opened. A data dir of a version above
//! [`SUPPORTED`] was written by a newer timon: start-up stops before
//! anything in it is opened for writing, so the newer binary can still use it.
//!
//! Changing the layout means raising [`SUPPORTED`], migrating older data
//! dirs when they are opened, and adding a fixture of the old layout to
//! `server/tests/upgrade.rs`.

use std::path::Path;

use super::keys::raft_meta;
use super::rocks::RocksEngine;
use super::{Cf, Engine, Result, StorageError, WriteBatch};

/// The format version this binary writes and the newest it reads.
pub const SUPPORTED: u64 = 1;

/// The version of a data dir written before versions were stamped.
pub const UNSTAMPED: u64 = 1;

/// Checks the format version of the database at `db_path` (inside the data
/// dir `data_dir`, which errors name) before it is opened for writing. A
/// missing or never-initialized database passes: it is created at
/// [`SUPPORTED`]. Writes nothing.
pub fn check(data_dir: &Path, db_path: &Path) -> Result<()> {
    // RocksDB's CURRENT file names the manifest; without it nothing was
    // ever committed there and the database is created afresh.
    if !db_path.join("CURRENT").exists() {
        return Ok(());
    }
    let raw = RocksEngine::read_only_get(db_path, Cf::RaftMeta, raft_meta::FORMAT_VERSION).map_err(|e| {
        StorageError(format!(
            "cannot read the on-disk format version of data dir {}: {}",
            data_dir.display(),
            e.0
        ))
    })?;
    let found = match raw {
        None => UNSTAMPED,
        Some(raw) => decode(&raw).ok_or_else(|| {
            StorageError(format!(
                "data dir {} has a corrupt on-disk format version ({raw:02x?})",
                data_dir.display()
            ))
        })?,
    };
    if found > SUPPORTED {
        return Err(StorageError(format!(
            "data dir {} has on-disk format version {found}, but this timon supports versions up to \
             {SUPPORTED}: it was written by a newer timon; run that version on it (nothing was changed)",
            data_dir.display()
        )));
    }
    Ok(())
}

/// Writes [`SUPPORTED`] as the format version of `engine` if it has none
/// (a new data dir, or one written before versions existed), synced.
pub fn stamp(engine: &dyn Engine) -> Result<()> {
    if engine.get(Cf::RaftMeta, raft_meta::FORMAT_VERSION)?.is_some() {
        return Ok(());
    }
    let mut batch = WriteBatch::new();
    batch.put(
        Cf::RaftMeta,
        raft_meta::FORMAT_VERSION,
        SUPPORTED.to_be_bytes().to_vec(),
    );
    engine.write(batch, true)
}

/// The stored format version of `engine`, if stamped.
pub fn stored(engine: &dyn Engine) -> Result<Option<u64>> {
    Ok(engine
        .get(Cf::RaftMeta, raft_meta::FORMAT_VERSION)?
        .as_deref()
        .and_then(decode))
}

fn decode(raw: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(raw.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put_version(engine: &RocksEngine, raw: &[u8]) {
        let mut batch = WriteBatch::new();
        batch.put(Cf::RaftMeta, raft_meta::FORMAT_VERSION, raw.to_vec());
        engine.write(batch, true).unwrap();
    }

    #[test]
    fn missing_database_passes_and_new_one_is_stamped() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        check(dir.path(), &db).unwrap();
        let engine = RocksEngine::open(&db).unwrap();
        assert_eq!(stored(&engine).unwrap(), None);
        stamp(&engine).unwrap();
        assert_eq!(stored(&engine).unwrap(), Some(SUPPORTED));
    }

    #[test]
    fn unstamped_database_is_version_one() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        drop(RocksEngine::open(&db).unwrap());
        check(dir.path(), &db).unwrap();
    }

    #[test]
    fn newer_version_is_refused_naming_dir_and_versions() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        put_version(&RocksEngine::open(&db).unwrap(), &(SUPPORTED + 1).to_be_bytes());
        let e = check(dir.path(), &db).unwrap_err().0;
        assert!(e.contains(&dir.path().display().to_string()), "{e}");
        assert!(e.contains(&format!("version {}", SUPPORTED + 1)), "{e}");
        assert!(e.contains(&format!("up to {SUPPORTED}")), "{e}");
    }

    #[test]
    fn corrupt_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        put_version(&RocksEngine::open(&db).unwrap(), b"xyz");
        let e = check(dir.path(), &db).unwrap_err().0;
        assert!(e.contains("corrupt on-disk format version"), "{e}");
    }

    #[test]
    fn stamp_keeps_an_existing_version() {
        let dir = tempfile::tempdir().unwrap();
        let engine = RocksEngine::open(&dir.path().join("db")).unwrap();
        put_version(&engine, &SUPPORTED.to_be_bytes());
        stamp(&engine).unwrap();
        assert_eq!(stored(&engine).unwrap(), Some(SUPPORTED));
    }
}
