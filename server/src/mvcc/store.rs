//! The store: the index and revision counters over the engine, the read path
//! and start-up recovery.
//!
//! Concurrency: one `RwLock` guards the index and the revision counters. A
//! [`ReadTxn`] holds it shared; a [`WriteTxn`] holds it exclusively from
//! start to commit, so readers never see a txn half applied. Apply txns are
//! short, so readers wait at most one entry's apply. The background
//! compaction ([`super::compact`]) takes it exclusively a few keys at a
//! time, and deletes from storage only revisions no reader can ask for.

use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};

use super::compact::{Compactor, Pacing, Progress};
use super::index::TreeIndex;
use super::key_index::KeyIndex;
use super::range::{decode_kv, fetch_stored, range_keys};
use super::revision::{is_tombstone, Revision};
use super::state::State;
use super::write::WriteTxn;
use super::{MvccError, RangeOptions, RangeResult, ReadView};
use crate::storage::keys::meta;
use crate::storage::{Cf, KvRead, Scan, SharedEngine, StorageError};

/// The multi-version key-value store over a storage engine.
pub struct MvccStore {
    pub(crate) engine: SharedEngine,
    pub(crate) state: Arc<RwLock<State>>,
    pub(crate) compactor: Compactor,
}

impl std::fmt::Debug for MvccStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MvccStore")
            .field("current_rev", &self.current_revision())
            .field("compact_rev", &self.compact_revision())
            .finish_non_exhaustive()
    }
}

pub(crate) fn decode_i64(raw: &[u8], what: &str) -> Result<i64, StorageError> {
    let b: [u8; 8] = raw
        .try_into()
        .map_err(|_| StorageError(format!("corrupt {what}: {} bytes, want 8", raw.len())))?;
    Ok(i64::from_be_bytes(b))
}

impl MvccStore {
    /// Opens the store over `engine`, rebuilding the index from every stored
    /// revision (etcd's restore): a key seen first at a value starts its
    /// history from that value's create revision and version; a key whose
    /// first stored revision is a tombstone is gone already and is skipped.
    pub fn open(engine: SharedEngine) -> Result<Self, StorageError> {
        let compact_rev = match engine.get(Cf::Meta, meta::COMPACT_REV)? {
            Some(raw) => decode_i64(&raw, "compact revision")?,
            None => -1,
        };
        let finished = match engine.get(Cf::Meta, meta::FINISHED_COMPACT_REV)? {
            Some(raw) => Some(decode_i64(&raw, "finished compact revision")?),
            None => None,
        };
        let saved_rev = match engine.get(Cf::Meta, meta::CURRENT_REV)? {
            Some(raw) => decode_i64(&raw, "current revision")?,
            None => 1,
        };
        let mut index = TreeIndex::new();
        let mut last_rev = 1;
        let mut failure = None;
        engine.scan(Cf::Kv, &[], None, &mut |k, v| {
            match restore_one(&mut index, k, v) {
                Ok(main) => last_rev = main,
                Err(e) => {
                    failure = Some(e);
                    return Scan::Stop;
                }
            }
            Scan::Continue
        })?;
        if let Some(e) = failure {
            return Err(e);
        }
        let current_rev = last_rev.max(compact_rev).max(saved_rev);
        let state = Arc::new(RwLock::new(State {
            index,
            current_rev,
            compact_rev,
            finished_unrecorded: finished.is_none(),
        }));
        let finished = finished.unwrap_or(compact_rev);
        let compactor = Compactor::new(engine.clone(), state.clone(), finished);
        if compact_rev > finished {
            tracing::info!(
                { "meta-bucket-name-key" = "scheduledCompactRev",
                  "scheduled-compact-revision" = compact_rev },
                "resume scheduled compaction"
            );
            compactor.schedule(compact_rev);
        }
        Ok(Self {
            engine,
            state,
            compactor,
        })
    }

    pub fn current_revision(&self) -> i64 {
        self.read_state().current_rev
    }

    /// The revision of the last compaction, -1 before the first.
    pub fn compact_revision(&self) -> i64 {
        self.read_state().compact_rev
    }

    /// How far the background compaction is.
    pub fn compaction(&self) -> Progress {
        self.compactor.progress()
    }

    /// Sets how fast storage is compacted.
    pub fn set_compaction_pacing(&self, pacing: Pacing) {
        self.compactor.set_pacing(pacing);
    }

    /// Waits until storage is compacted at `rev` or later (the compaction
    /// at `rev` may not even be applied yet), or the store is being
    /// replaced: a Compaction with `physical` answers after this.
    pub async fn compacted(&self, rev: i64) {
        self.compactor.finished(rev).await;
    }

    /// Blocks until every compaction applied so far is finished in storage.
    pub fn wait_compaction(&self) {
        self.compactor.wait_idle();
    }

    /// Stops the background compaction for good (the store is about to be
    /// replaced); when this returns, it writes nothing more. Another store
    /// opened on the same engine resumes it.
    pub fn stop_compaction(&self) {
        self.compactor.stop();
    }

    /// A read view at the current revision. Writes wait while it lives, so
    /// drop it once the read is done.
    pub fn read(&self) -> ReadTxn<'_> {
        ReadTxn {
            engine: &*self.engine,
            state: self.read_state(),
        }
    }

    /// Starts the write txn of one request; it holds the store exclusively
    /// until [`WriteTxn::commit`] or drop (which undoes its changes).
    pub fn write(&self) -> WriteTxn<'_> {
        let state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        WriteTxn::new(&*self.engine, &self.compactor, state)
    }

    /// The engine underneath (the same one the caller handed to `open`).
    pub fn engine(&self) -> &SharedEngine {
        &self.engine
    }

    pub(super) fn read_state(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Adds one stored revision to the index being rebuilt; returns its main
/// revision.
fn restore_one(index: &mut TreeIndex, k: &[u8], v: &[u8]) -> Result<i64, StorageError> {
    let rev = Revision::from_bytes(k).ok_or_else(|| StorageError(format!("corrupt revision key {k:?}")))?;
    let kv = decode_kv(v, rev).map_err(|e| StorageError(e.to_string()))?;
    let tomb = is_tombstone(k);
    match index.key_index_mut(&kv.key) {
        Some(ki) if tomb => {
            ki.tombstone(rev);
        }
        Some(ki) => ki.put(rev),
        None if tomb => {}
        None => {
            let mut ki = KeyIndex::new(kv.key.clone());
            ki.restore(Revision::new(kv.create_revision, 0), rev, kv.version);
            index.set_key_index(&kv.key, Some(ki));
        }
    }
    Ok(rev.main)
}

/// A read-only view at the revision current when it was taken.
pub struct ReadTxn<'a> {
    pub(super) engine: &'a dyn KvRead,
    pub(super) state: RwLockReadGuard<'a, State>,
}

impl ReadView for ReadTxn<'_> {
    fn rev(&self) -> i64 {
        self.state.current_rev
    }

    fn first_rev(&self) -> i64 {
        self.state.compact_rev
    }

    fn range(&self, key: &[u8], end: &[u8], opts: RangeOptions) -> Result<RangeResult, MvccError> {
        range_keys(&self.state, key, end, self.state.current_rev, opts, |r| {
            fetch_stored(self.engine, r)
        })
    }
}
