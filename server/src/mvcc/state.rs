//! What the store's one `RwLock` guards: the key index and the revision
//! counters. The store (`store.rs`), its write txns (`write.rs`), its
//! reader (`reader.rs`) and the background compaction (`compact.rs`) all
//! take it; see `store.rs` for who holds it how.

use super::index::TreeIndex;

/// What the lock guards.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) index: TreeIndex,
    /// The revision of the last write txn that changed something (1 when
    /// nothing was ever written).
    pub(crate) current_rev: i64,
    /// The revision of the last compaction, -1 before the first (reads
    /// below it are refused; storage may still hold what it drops).
    pub(crate) compact_rev: i64,
    /// Set when the store was opened without
    /// `meta::FINISHED_COMPACT_REV`: the next compaction writes it.
    pub(crate) finished_unrecorded: bool,
}
