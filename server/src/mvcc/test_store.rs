//! What the store's unit tests share: a store's engine in memory, one-line
//! writes, and what storage holds.

use std::sync::Arc;

use timon_proto::mvccpb::KeyValue;

use super::{MvccError, MvccStore, RangeOptions, ReadView};
use crate::storage::mem::MemEngine;
use crate::storage::{Cf, Scan, SharedEngine, WriteBatch};

pub fn engine() -> SharedEngine {
    Arc::new(MemEngine::new())
}

/// Puts `k = v` in its own txn; answers the revision.
pub fn put(s: &MvccStore, k: &str, v: &str) -> i64 {
    let mut t = s.write();
    let rev = t.put(k.as_bytes(), v.as_bytes(), 0);
    t.commit(WriteBatch::new()).unwrap();
    rev
}

/// Deletes `[k, end)` in its own txn; answers (deleted, revision).
pub fn del_range(s: &MvccStore, k: &str, end: &str) -> (i64, i64) {
    let mut t = s.write();
    let out = t.delete_range(k.as_bytes(), end.as_bytes());
    t.commit(WriteBatch::new()).unwrap();
    out
}

pub fn del(s: &MvccStore, k: &str) {
    del_range(s, k, "");
}

/// `k` as a read at `rev` (0: the current revision) sees it.
pub fn get_at(s: &MvccStore, k: &str, rev: i64) -> Result<Option<KeyValue>, MvccError> {
    let opts = RangeOptions {
        rev,
        ..Default::default()
    };
    Ok(s.read().range(k.as_bytes(), b"", opts)?.kvs.into_iter().next())
}

/// Applies a compaction at `rev`; storage is compacted in the background
/// (`MvccStore::wait_compaction` waits for it).
pub fn compact(s: &MvccStore, rev: i64) {
    let mut t = s.write();
    t.compact(rev).unwrap();
    t.commit(WriteBatch::new()).unwrap();
}

/// Every key of `Cf::Kv`: revisions, tombstones marked.
pub fn stored(e: &SharedEngine) -> Vec<Vec<u8>> {
    let mut keys = Vec::new();
    e.scan(Cf::Kv, &[], None, &mut |k, _| {
        keys.push(k.to_vec());
        Scan::Continue
    })
    .unwrap();
    keys
}
