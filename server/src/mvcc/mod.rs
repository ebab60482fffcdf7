//! The multi-version key-value store: etcd's `mvcc` package.
//!
//! Owns the revision history of every key: the on-disk layout of revisions
//! in [`Cf::Kv`](crate::storage::Cf::Kv) ([`revision`]), each key's history
//! ([`key_index`]), the ordered in-memory index over all keys ([`index`]), and
//! the store that reads and writes them ([`store`] over the locked
//! [`state`], [`write`], [`reader`], ranges in [`range`]), compaction
//! in the background ([`compact`], [`compact_metrics`]),
//! and the hashes members compare ([`hash`]).
//! It calls only [`crate::storage`]; it knows nothing of raft, requests or
//! leases (`apply/` turns requests into calls here).
//!
//! Semantics are etcd 3.4's:
//! - The store revision starts at 1. A write txn that changes something
//!   raises it by exactly 1; its changes carry sub-revisions 0..n.
//! - A range `[key, end)`: empty `end` means the single `key`, `end = "\0"`
//!   means every key `>= key`.
//! - Reading at a revision below the compacted revision fails with
//!   [`MvccError::Compacted`]; above the current one with
//!   [`MvccError::FutureRev`]. Reading exactly at the compacted revision works.

pub mod changes;
pub mod compact;
pub mod compact_metrics;
pub mod hash;
pub mod index;
pub mod key_index;
pub mod range;
pub mod reader;
pub mod revision;
pub mod state;
pub mod store;
pub mod write;

#[cfg(test)]
mod changes_tests;
#[cfg(test)]
mod compact_tests;
#[cfg(test)]
mod store_tests;
#[cfg(test)]
mod test_store;

pub use compact::{Pacing, Progress};
pub use reader::Reader;
pub use revision::Revision;
pub use store::{MvccStore, ReadTxn};
pub use write::{event_of, WriteTxn};

use timon_proto::mvccpb::KeyValue;

use crate::storage::StorageError;

/// A failed read or compaction.
#[derive(Debug, thiserror::Error)]
pub enum MvccError {
    /// The revision asked for is below the compacted revision.
    #[error("mvcc: required revision has been compacted")]
    Compacted,
    /// The revision asked for is above the current revision.
    #[error("mvcc: required revision is a future revision")]
    FutureRev,
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Stored bytes that do not decode, or an index entry without its value.
    #[error("mvcc: corrupt store: {0}")]
    Corrupt(String),
}

/// Options of a range read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RangeOptions {
    /// At most this many key-values (`<= 0`: no limit). `count` ignores it.
    pub limit: i64,
    /// Read at this revision (`<= 0`: the view's revision).
    pub rev: i64,
    /// Only count; return no key-values.
    pub count_only: bool,
    /// Key-values without their values (each is dropped as it is read, so a
    /// wide range holds only keys and metadata in memory).
    pub keys_only: bool,
}

/// The answer of a range read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RangeResult {
    /// Key-values in key order, at most `limit` of them.
    pub kvs: Vec<KeyValue>,
    /// The view's revision (not the revision read at), as etcd reports it.
    pub rev: i64,
    /// How many keys the range holds at the revision read, ignoring `limit`.
    pub count: i64,
}

/// A consistent view of the store at one revision.
pub trait ReadView {
    /// The revision this view reads at by default: the store revision when
    /// the view was taken (for a write txn: before its own changes).
    fn rev(&self) -> i64;

    /// The compacted revision: reads below it fail. `-1` before the first
    /// compaction (etcd's value).
    fn first_rev(&self) -> i64;

    /// The keys in `[key, end)` at `opts.rev`. A write txn that already
    /// changed something reads at its own new revision, seeing its writes.
    fn range(&self, key: &[u8], end: &[u8], opts: RangeOptions) -> Result<RangeResult, MvccError>;
}
