//! Compaction: dropping the revisions no read at or after the compaction
//! revision can need (etcd's `kvstore_compaction.go`, done synchronously in
//! the compacting txn's batch instead of in the background).
//!
//! For each key, the newest revision at or below the compaction revision is
//! kept while it is a value, so reads at the compaction revision still see
//! it; a key whose newest revision there is a tombstone loses its whole
//! history up to it. Everything newer than the compaction revision stays.

use super::index::TreeIndex;
use super::revision::{main_rev_start, Revision};
use crate::storage::keys::meta;
use crate::storage::{Cf, KvRead, Scan, StorageError, WriteBatch};

/// Adds to `batch` the deletion of every stored revision at or below `rev`
/// that the index would not keep, and the new compacted revision. The index
/// itself is compacted by the caller once the batch is written.
pub(crate) fn plan(
    engine: &dyn KvRead,
    index: &TreeIndex,
    rev: i64,
    batch: &mut WriteBatch,
) -> Result<(), StorageError> {
    let keep = index.keep(rev);
    let end = main_rev_start(rev.saturating_add(1));
    engine.scan(Cf::Kv, &[], Some(&end), &mut |k, _| {
        if let Some(r) = Revision::from_bytes(k) {
            if !keep.contains(&r) {
                batch.delete(Cf::Kv, k.to_vec());
            }
        }
        Scan::Continue
    })?;
    batch.put(Cf::Meta, meta::COMPACT_REV, rev.to_be_bytes().to_vec());
    Ok(())
}
