//! A read view that does not hold writes up while it loads values: the
//! store lock is held to find a range's revisions in the index and to take
//! an engine snapshot, and the values come from that snapshot once the lock
//! is released. An unpaginated Range of 100k objects of 10 KiB loads a GiB;
//! under the lock every write of the member (its apply, and so the whole
//! cluster's writes on a leader) would wait as long.
//!
//! Each range reads at the store's revision when it starts, so two ranges
//! of one view may read at different revisions: a Range request has one,
//! a read-only Txn takes a [`super::ReadTxn`].
//!
//! The values are there: a revision leaves storage only after the
//! background compaction dropped it from the index (`compact.rs`), which it
//! cannot do while the lock is held, and the snapshot is taken in that
//! hold.

use super::range::{fetch_stored, RangePlan};
use super::store::MvccStore;
use super::{MvccError, RangeOptions, RangeResult, ReadView};

/// Ranges of at most this many values are loaded under the lock: taking a
/// snapshot costs more than they do.
const SNAPSHOT_ABOVE: usize = 64;

pub struct Reader<'a> {
    store: &'a MvccStore,
}

impl MvccStore {
    /// A view for one range at a time; see the module doc.
    pub fn reader(&self) -> Reader<'_> {
        Reader { store: self }
    }
}

impl ReadView for Reader<'_> {
    fn rev(&self) -> i64 {
        self.store.current_revision()
    }

    fn first_rev(&self) -> i64 {
        self.store.compact_revision()
    }

    fn range(&self, key: &[u8], end: &[u8], opts: RangeOptions) -> Result<RangeResult, MvccError> {
        let engine = &*self.store.engine;
        let state = self.store.read_state();
        let plan = RangePlan::new(&state, key, end, state.current_rev, opts)?;
        if plan.len() <= SNAPSHOT_ABOVE {
            return plan.fetch(|r| fetch_stored(engine, r));
        }
        let snapshot = engine.snapshot();
        drop(state);
        plan.fetch(|r| fetch_stored(&*snapshot, r))
    }
}

#[cfg(test)]
#[path = "reader_tests.rs"]
mod tests;
