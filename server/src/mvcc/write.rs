//! The write txn: every change of one request, made at one new revision and
//! committed in one engine batch (etcd's `storeTxnWrite`).
//!
//! Changes go into the index at once, so later reads of the same txn see
//! them, while their values wait in memory until [`WriteTxn::commit`] writes
//! them with the revision meta and the caller's extra ops (the raft applied
//! log id) in one atomic batch. Dropping a txn without a successful commit
//! puts the index back as it was.

use std::collections::BTreeSet;
use std::sync::RwLockWriteGuard;

use prost::Message;
use timon_proto::mvccpb::event::EventType;
use timon_proto::mvccpb::{Event, KeyValue};

use super::compact::Compactor;
use super::key_index::KeyIndex;
use super::range::{fetch_stored, range_keys};
use super::revision::Revision;
use super::state::State;
use super::{MvccError, RangeOptions, RangeResult, ReadView};
use crate::storage::keys::meta;
use crate::storage::{Cf, Engine, StorageError, WriteBatch};

pub struct WriteTxn<'a> {
    engine: &'a dyn Engine,
    compactor: &'a Compactor,
    state: RwLockWriteGuard<'a, State>,
    /// The store revision when the txn began; its changes get `begin_rev + 1`.
    begin_rev: i64,
    /// The txn's changes in order: change `i` has revision
    /// `(begin_rev + 1, i)`. A deletion is a key-value with only the key.
    changes: Vec<KeyValue>,
    /// Each touched key's history before the txn touched it, to undo an
    /// aborted txn.
    undo: Vec<(Vec<u8>, Option<KeyIndex>)>,
    touched: BTreeSet<Vec<u8>>,
    /// A compaction to record at commit (the background compactor does it).
    compaction: Option<i64>,
    /// Writes outside the revision history that belong to this txn (apply's
    /// lease table), committed in its batch and dropped by a rollback.
    staged: WriteBatch,
    committed: bool,
}

impl<'a> WriteTxn<'a> {
    pub(crate) fn new(engine: &'a dyn Engine, compactor: &'a Compactor, state: RwLockWriteGuard<'a, State>) -> Self {
        let begin_rev = state.current_rev;
        Self {
            engine,
            compactor,
            state,
            begin_rev,
            changes: Vec::new(),
            undo: Vec::new(),
            touched: BTreeSet::new(),
            compaction: None,
            staged: WriteBatch::new(),
            committed: false,
        }
    }

    /// The engine the txn commits to, for reads outside the revision
    /// history (they see no staged write).
    pub fn engine(&self) -> &dyn Engine {
        self.engine
    }

    /// Stages writes outside the revision history, in order, to commit with
    /// the txn's batch; a rollback drops them.
    pub fn staged_mut(&mut self) -> &mut WriteBatch {
        &mut self.staged
    }

    /// Whether the txn changed any key (and so will raise the revision).
    pub fn has_changes(&self) -> bool {
        !self.changes.is_empty()
    }

    /// The revision a read inside the txn sees: its own new revision once it
    /// changed something.
    fn read_rev(&self) -> i64 {
        if self.changes.is_empty() {
            self.begin_rev
        } else {
            self.begin_rev + 1
        }
    }

    fn remember(&mut self, key: &[u8]) {
        if self.touched.insert(key.to_vec()) {
            let before = self.state.index.key_index(key).cloned();
            self.undo.push((key.to_vec(), before));
        }
    }

    fn next_rev(&self) -> Revision {
        Revision::new(self.begin_rev + 1, self.changes.len() as i64)
    }

    /// Writes `key = value` with `lease` (0: none) and returns the txn's
    /// revision. A key that exists keeps its create revision and gets the
    /// next version; otherwise it is created with version 1.
    pub fn put(&mut self, key: &[u8], value: &[u8], lease: i64) -> i64 {
        let rev = self.begin_rev + 1;
        let (created, version) = match self.state.index.get(key, rev) {
            Some(at) => (at.created.main, at.version + 1),
            None => (rev, 1),
        };
        let idx_rev = self.next_rev();
        self.remember(key);
        self.state.index.put(key, idx_rev);
        self.changes.push(KeyValue {
            key: key.to_vec(),
            create_revision: created,
            mod_revision: rev,
            version,
            value: value.to_vec(),
            lease,
        });
        rev
    }

    /// Deletes every key of the range and returns `(deleted, revision)`. The
    /// revision is the txn's new one if the txn changed anything so far,
    /// otherwise the current one.
    pub fn delete_range(&mut self, key: &[u8], end: &[u8]) -> (i64, i64) {
        let keys = self.state.index.range(key, end, self.read_rev());
        for (k, _) in &keys {
            let idx_rev = self.next_rev();
            self.remember(k);
            if self.state.index.tombstone(k, idx_rev) {
                self.changes.push(KeyValue {
                    key: k.clone(),
                    ..KeyValue::default()
                });
            }
        }
        let n = keys.len() as i64;
        if n != 0 || !self.changes.is_empty() {
            (n, self.begin_rev + 1)
        } else {
            (0, self.begin_rev)
        }
    }

    /// Schedules a compaction at `rev` for commit (etcd's checks: at or below
    /// the compacted revision is [`MvccError::Compacted`], above the current
    /// revision [`MvccError::FutureRev`]).
    pub fn compact(&mut self, rev: i64) -> Result<(), MvccError> {
        let compacted = self.compaction.unwrap_or(self.state.compact_rev);
        if rev <= compacted {
            return Err(MvccError::Compacted);
        }
        if rev > self.state.current_rev {
            return Err(MvccError::FutureRev);
        }
        self.compaction = Some(rev);
        Ok(())
    }

    /// Forgets every change and the scheduled compaction, putting the index
    /// back as it was; the txn can still be committed (with nothing in it).
    pub fn rollback(&mut self) {
        for (key, before) in self.undo.drain(..) {
            self.state.index.set_key_index(&key, before);
        }
        self.touched.clear();
        self.changes.clear();
        self.compaction = None;
        self.staged.ops.clear();
    }

    /// Commits in one engine batch: the txn's revisions, the current
    /// revision meta, the compaction's meta, then `extra`; then hands the
    /// compaction to the background compactor.
    /// The batch is written even when nothing changed, so `extra` (the
    /// applied log id) always lands. Returns the watch events of the changes.
    pub fn commit(mut self, extra: WriteBatch) -> Result<Vec<Event>, StorageError> {
        let rev = self.read_rev();
        let mut batch = WriteBatch::new();
        for (i, kv) in self.changes.iter().enumerate() {
            let r = Revision::new(self.begin_rev + 1, i as i64);
            let key = if kv.create_revision == 0 {
                r.to_tombstone_bytes()
            } else {
                r.to_bytes()
            };
            batch.put(Cf::Kv, key, kv.encode_to_vec());
        }
        batch.put(Cf::Meta, meta::CURRENT_REV, rev.to_be_bytes().to_vec());
        if let Some(c) = self.compaction {
            batch.put(Cf::Meta, meta::COMPACT_REV, c.to_be_bytes().to_vec());
            if self.state.finished_unrecorded {
                // Until now compactions finished in their own batch.
                let finished = self.state.compact_rev.to_be_bytes().to_vec();
                batch.put(Cf::Meta, meta::FINISHED_COMPACT_REV, finished);
            }
        }
        batch.ops.append(&mut self.staged.ops);
        batch.ops.extend(extra.ops);
        // State-machine writes need no fsync: the raft log is durable and a
        // crash replays the entries after the last applied id on disk.
        let start = std::time::Instant::now();
        self.engine.write(batch, false)?;
        crate::disk_metrics::backend_commit(start.elapsed());

        if let Some(c) = self.compaction {
            self.state.compact_rev = c;
            self.state.finished_unrecorded = false;
            self.compactor.schedule(c);
        }
        self.state.current_rev = rev;
        self.committed = true;
        let events = std::mem::take(&mut self.changes)
            .into_iter()
            .map(|mut kv| {
                if kv.create_revision == 0 {
                    kv.mod_revision = rev;
                }
                event_of(kv)
            })
            .collect();
        Ok(events)
    }
}

/// The watch event of a stored change: a deletion (a tombstone: no
/// create revision) or a put.
pub fn event_of(kv: KeyValue) -> Event {
    let kind = if kv.create_revision == 0 {
        EventType::Delete
    } else {
        EventType::Put
    };
    Event {
        r#type: kind as i32,
        kv: Some(kv),
        prev_kv: None,
    }
}

impl Drop for WriteTxn<'_> {
    fn drop(&mut self) {
        if !self.committed {
            self.rollback();
        }
    }
}

impl ReadView for WriteTxn<'_> {
    fn rev(&self) -> i64 {
        self.begin_rev
    }

    fn first_rev(&self) -> i64 {
        self.state.compact_rev
    }

    fn range(&self, key: &[u8], end: &[u8], opts: RangeOptions) -> Result<RangeResult, MvccError> {
        let own = self.begin_rev + 1;
        range_keys(&self.state, key, end, self.read_rev(), opts, |r| {
            if r.main == own {
                let kv = usize::try_from(r.sub).ok().and_then(|i| self.changes.get(i));
                kv.cloned()
                    .ok_or_else(|| MvccError::Corrupt(format!("own revision {r:?} unknown")))
            } else {
                fetch_stored(self.engine, r)
            }
        })
    }
}
