//! The raft state machine: applies committed entries to the MVCC store
//! through `apply`, one engine batch per entry holding the entry's writes and
//! its log id (DESIGN.md invariant 3), and builds/installs snapshots.
//!
//! State-machine batches are not fsynced: the raft log that can replay them
//! is, and the log store syncs the engine before it purges entries.

use std::io::Cursor;
use std::sync::{Arc, Mutex, RwLock};

use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder, StorageIOError};

use super::snapshot;
use super::types::{any, Applied, Entry, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig};
use crate::apply::{self, Response};
use crate::mvcc::MvccStore;
use crate::storage::keys::meta;
use crate::storage::{Cf, KvRead, SharedEngine, WriteBatch};

/// The MVCC store the rest of the server reads from. Installing a snapshot
/// swaps in a store rebuilt from the new data; readers take the current one
/// per request.
pub struct StoreHandle {
    current: RwLock<Arc<MvccStore>>,
}

impl StoreHandle {
    pub fn new(store: MvccStore) -> Self {
        Self {
            current: RwLock::new(Arc::new(store)),
        }
    }
    pub fn current(&self) -> Arc<MvccStore> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
    fn replace(&self, store: MvccStore) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(store);
    }
}

/// The last snapshot built or installed: its meta and its bytes.
type CurrentSnapshot = Arc<Mutex<Option<(SnapshotMeta, Vec<u8>)>>>;

pub struct StateMachine {
    engine: SharedEngine,
    store: Arc<StoreHandle>,
    /// The last snapshot built or installed, kept for followers that need it.
    current_snapshot: CurrentSnapshot,
    snapshot_seq: u64,
}

fn sm_read(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::read_state_machine(any(e)).into()
}

fn sm_write(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write_state_machine(any(e)).into()
}

fn read_json<T: serde::de::DeserializeOwned>(view: &dyn KvRead, key: &[u8]) -> Result<Option<T>, StorageError> {
    match view.get(Cf::Meta, key).map_err(sm_read)? {
        None => Ok(None),
        Some(b) => serde_json::from_slice(&b).map(Some).map_err(sm_read),
    }
}

/// The applied log id and membership recorded in `view`.
fn applied_in(view: &dyn KvRead) -> Result<(Option<LogId>, StoredMembership), StorageError> {
    let applied = read_json::<LogId>(view, meta::APPLIED)?;
    let membership = read_json::<StoredMembership>(view, meta::MEMBERSHIP)?.unwrap_or_default();
    Ok((applied, membership))
}

impl StateMachine {
    pub fn open(engine: SharedEngine) -> Result<Self, StorageError> {
        let store = MvccStore::open(engine.clone()).map_err(sm_read)?;
        Ok(Self {
            engine,
            store: Arc::new(StoreHandle::new(store)),
            current_snapshot: Arc::new(Mutex::new(None)),
            snapshot_seq: 0,
        })
    }

    pub fn store(&self) -> Arc<StoreHandle> {
        self.store.clone()
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        applied_in(self.engine.as_ref())
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let store = self.store.current();
        let mut out = Vec::new();
        for entry in entries {
            let mut extra = WriteBatch::new();
            extra.put(
                Cf::Meta,
                meta::APPLIED.to_vec(),
                serde_json::to_vec(&entry.log_id).map_err(sm_write)?,
            );
            let mut txn = store.write();
            let result = match entry.payload {
                EntryPayload::Blank => Ok(Response::Empty),
                EntryPayload::Normal(req) => apply::execute(&mut txn, req),
                EntryPayload::Membership(m) => {
                    let stored = StoredMembership::new(Some(entry.log_id), m);
                    extra.put(
                        Cf::Meta,
                        meta::MEMBERSHIP.to_vec(),
                        serde_json::to_vec(&stored).map_err(sm_write)?,
                    );
                    Ok(Response::Empty)
                }
            };
            txn.commit(extra).map_err(sm_write)?;
            out.push(Applied(result));
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.snapshot_seq += 1;
        SnapshotBuilder {
            engine: self.engine.clone(),
            current_snapshot: self.current_snapshot.clone(),
            seq: self.snapshot_seq,
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let mut batch = snapshot::restore_batch(&data)
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), any(e)))?;
        batch.put(
            Cf::Meta,
            meta::APPLIED.to_vec(),
            serde_json::to_vec(&meta.last_log_id).map_err(sm_write)?,
        );
        batch.put(
            Cf::Meta,
            meta::MEMBERSHIP.to_vec(),
            serde_json::to_vec(&meta.last_membership).map_err(sm_write)?,
        );
        self.engine.write(batch, true).map_err(sm_write)?;
        let rebuilt = MvccStore::open(self.engine.clone()).map_err(sm_read)?;
        self.store.replace(rebuilt);
        *self.current_snapshot.lock().unwrap_or_else(|p| p.into_inner()) = Some((meta.clone(), data));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let current = self.current_snapshot.lock().unwrap_or_else(|p| p.into_inner()).clone();
        Ok(current.map(|(meta, data)| Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}

pub struct SnapshotBuilder {
    engine: SharedEngine,
    current_snapshot: CurrentSnapshot,
    seq: u64,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        // One engine view gives the data and the log id it corresponds to,
        // while apply goes on.
        let view = self.engine.snapshot();
        let (last_log_id, last_membership) = applied_in(view.as_ref())?;
        let data = snapshot::dump(view.as_ref(), &[meta::APPLIED, meta::MEMBERSHIP])
            .map_err(|e| StorageIOError::read_snapshot(None, any(e)))?;
        let snapshot_id = match last_log_id {
            Some(id) => format!("{}-{}-{}", id.leader_id.term, id.index, self.seq),
            None => format!("0-0-{}", self.seq),
        };
        let meta = SnapshotMeta {
            last_log_id,
            last_membership,
            snapshot_id,
        };
        *self.current_snapshot.lock().unwrap_or_else(|p| p.into_inner()) = Some((meta.clone(), data.clone()));
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}
