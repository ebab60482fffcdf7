//! The raft state machine: applies committed entries to the MVCC store
//! through `apply`, one engine batch per entry holding the entry's writes and
//! its log id (DESIGN.md invariant 3), and builds and installs snapshots: a
//! snapshot is a point in the log recorded in the snapshot directory
//! (`snapshot_store`) whose data is written only when it travels
//! (`snapshot_data`); a received one is installed by `snapshot_install`.
//!
//! State-machine batches are not fsynced: the raft log that can replay them
//! is, and the log store syncs the engine before it purges entries.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};

use super::apply_log::Applying;
use super::snapshot;
use super::snapshot_data::{self, Naming};
use super::snapshot_file::SnapshotFile;
use super::snapshot_install;
use super::snapshot_store::SnapshotStore;
use super::types::{
    sm_read, sm_write, snapshot_read, snapshot_write, Applied, Entry, LogId, Snapshot, SnapshotMeta, StorageError,
    StoredMembership, TypeConfig,
};
use crate::apply::{self, Response};
use crate::auth::Tokens;
use crate::lease::Deadlines;
use crate::mvcc::MvccStore;
use crate::storage::keys::meta;
use crate::storage::{Cf, KvRead, Scan, SharedEngine, WriteBatch};
use crate::watch::WatchHub;
use timon_proto::mvccpb::Event;
use timon_proto::timonpb::internal_raft_request::Request;
use timon_proto::timonpb::{InternalRaftRequest, MemberAttributes};

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

/// Held for writing while an install replaces the column families and for
/// reading while a snapshot builder takes its engine view, so a snapshot
/// never sees a half-installed state machine (builds run concurrently with
/// the state machine's other work).
type InstallGate = Arc<RwLock<()>>;

pub struct StateMachine {
    engine: SharedEngine,
    store: Arc<StoreHandle>,
    snapshots: Arc<SnapshotStore>,
    install_gate: InstallGate,
    snapshot_seq: u64,
    /// Where committed events go; none in storage-only tests.
    watch: Option<Arc<WatchHub>>,
    /// The leader's lease deadlines, told of applied grants and revokes.
    leases: Option<Arc<Deadlines>>,
    /// The member's auth tokens, told of applied Authenticates, deleted
    /// users and auth turned off (`apply::auth::effects`).
    tokens: Option<Arc<Tokens>>,
    /// --experimental-warning-apply-duration (`apply_log`).
    warning_apply: Duration,
    /// How fast each store compacts in the background.
    compaction_pacing: crate::mvcc::Pacing,
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

/// The snapshot meta of `view` (its id left for `snapshot_data` to set).
fn snapshot_meta_of(view: &dyn KvRead) -> Result<SnapshotMeta, StorageError> {
    let (last_log_id, last_membership) = applied_in(view)?;
    Ok(SnapshotMeta {
        last_log_id,
        last_membership,
        snapshot_id: String::new(),
    })
}

/// The meta write that marks entry `log_id` applied; it goes in the same
/// batch as the entry's changes (invariant 3).
fn applied(log_id: LogId) -> Result<WriteBatch, StorageError> {
    let mut extra = WriteBatch::new();
    extra.put(
        Cf::Meta,
        meta::APPLIED.to_vec(),
        serde_json::to_vec(&log_id).map_err(sm_write)?,
    );
    Ok(extra)
}

/// The meta writes that go with the `done`th of the `n` requests of batch
/// entry `log_id`: the entry is applied with the last one; before that,
/// [`meta::APPLIED_PART`] counts the requests done.
fn batch_progress(log_id: LogId, done: usize, n: usize) -> Result<WriteBatch, StorageError> {
    if done == n {
        let mut extra = applied(log_id)?;
        extra.delete(Cf::Meta, meta::APPLIED_PART.to_vec());
        return Ok(extra);
    }
    let mut extra = WriteBatch::new();
    let part = serde_json::to_vec(&(log_id, done)).map_err(sm_write)?;
    extra.put(Cf::Meta, meta::APPLIED_PART.to_vec(), part);
    Ok(extra)
}

impl StateMachine {
    /// The `slow-leader-apply` fault and the `renew-before-apply` bug
    /// (`crate::planted`): the leader applies a lease revoke 300 ms after
    /// it was committed, as a leader with a slow disk would.
    async fn planted_slow_leader_apply(&self) {
        let planted = crate::planted::active("slow-leader-apply") || crate::planted::active("renew-before-apply");
        if planted && self.leases.as_ref().is_some_and(|d| d.is_primary()) {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
    }

    /// Tells watchers about a committed revision's events: only now that
    /// its batch is written (DESIGN.md invariant 6).
    fn publish(&self, events: &[Event]) {
        if let (Some(hub), Some(rev)) = (&self.watch, events.first().and_then(|e| e.kv.as_ref())) {
            hub.notify(rev.mod_revision, events);
        }
    }

    /// Applies a `Batch` entry: each request in order, each its own write
    /// and revision, as if each had been its own entry. The entry counts as
    /// applied with its last request; until then [`meta::APPLIED_PART`]
    /// says how many are done, so a restart resumes after them.
    fn apply_batch(
        &self,
        store: &MvccStore,
        log_id: LogId,
        requests: Vec<InternalRaftRequest>,
    ) -> Result<Applied, StorageError> {
        let done = match read_json::<(LogId, usize)>(self.engine.as_ref(), meta::APPLIED_PART)? {
            Some((id, n)) if id == log_id => n,
            _ => 0,
        };
        let n = requests.len();
        let mut results = Vec::with_capacity(n);
        for (i, req) in requests.into_iter().enumerate() {
            if i < done {
                // Applied before a restart; its client is gone.
                results.push(Ok(Response::Empty));
                continue;
            }
            let extra = batch_progress(log_id, i + 1, n)?;
            let applying = Applying::start(&req);
            let mut txn = store.write();
            let result = apply::execute(&mut txn, req);
            let events = txn.commit(extra).map_err(sm_write)?;
            applying.done(self.warning_apply, &result);
            self.publish(&events);
            results.push(result);
        }
        if n == 0 {
            store.write().commit(batch_progress(log_id, 0, 0)?).map_err(sm_write)?;
        }
        Ok(Applied(Ok(Response::Batch(results))))
    }

    /// Opens the state machine on `engine` with its snapshots in
    /// `snapshot_dir` (created if missing). An install a crash interrupted
    /// is completed first.
    pub fn open(engine: SharedEngine, snapshot_dir: &Path) -> Result<Self, StorageError> {
        let snapshots = SnapshotStore::open(snapshot_dir).map_err(|e| snapshot_read(None, e))?;
        snapshot_install::resume(engine.as_ref(), &snapshots)?;
        snapshots.drop_data().map_err(|e| snapshot_write(None, e))?;
        let store = MvccStore::open(engine.clone()).map_err(sm_read)?;
        Ok(Self {
            engine,
            store: Arc::new(StoreHandle::new(store)),
            snapshots: Arc::new(snapshots),
            install_gate: InstallGate::default(),
            snapshot_seq: 0,
            watch: None,
            leases: None,
            tokens: None,
            // No warnings until the member's threshold is set.
            warning_apply: Duration::MAX,
            compaction_pacing: crate::mvcc::Pacing::default(),
        })
    }

    /// Publishes every committed revision's events to `hub` from now on.
    pub fn set_watch_hub(&mut self, hub: Arc<WatchHub>) {
        self.watch = Some(hub);
    }

    /// Tells `deadlines` of every grant and revoke applied from now on.
    pub fn set_lease_deadlines(&mut self, deadlines: Arc<Deadlines>) {
        self.leases = Some(deadlines);
    }

    /// Tells `tokens` what every auth request applied from now on means
    /// for the member's tokens.
    pub fn set_auth_tokens(&mut self, tokens: Arc<Tokens>) {
        self.tokens = Some(tokens);
    }

    /// Logs every request whose apply takes longer than `threshold` (etcd's
    /// `--warning-apply-duration`).
    pub fn set_warning_apply_duration(&mut self, threshold: Duration) {
        self.warning_apply = threshold;
    }

    /// --experimental-compaction-batch-limit and -sleep-interval, for the
    /// current store and every store an install rebuilds.
    pub fn set_compaction_pacing(&mut self, pacing: crate::mvcc::Pacing) {
        self.compaction_pacing = pacing;
        self.store.current().set_compaction_pacing(pacing);
    }

    pub fn store(&self) -> Arc<StoreHandle> {
        self.store.clone()
    }
}

/// Checks a received snapshot, makes it the local current snapshot, installs
/// it, deletes its data (the state machine holds it now) and rebuilds the
/// MVCC store from the result. The current store's
/// background compaction stops first: it must not delete from the data
/// the install writes.
fn install_received(
    engine: &SharedEngine,
    current: &StoreHandle,
    snapshots: &SnapshotStore,
    gate: &RwLock<()>,
    meta: &SnapshotMeta,
    (mut file, path): (File, PathBuf),
) -> Result<MvccStore, StorageError> {
    file.seek(SeekFrom::Start(0))
        .map_err(|e| snapshot_read(Some(meta), e))?;
    snapshot::verify(BufReader::new(&mut file)).map_err(|e| snapshot_read(Some(meta), e))?;
    let local = snapshots
        .adopt(meta, file, &path)
        .map_err(|e| snapshot_write(Some(meta), e))?;
    {
        let _installing = gate.write().unwrap_or_else(|p| p.into_inner());
        current.current().stop_compaction();
        snapshot_install::install(engine.as_ref(), meta, local)?;
    }
    if let Err(e) = snapshots.drop_data() {
        tracing::warn!("cannot delete the data of installed snapshot {}: {e}", meta.snapshot_id);
    }
    MvccStore::open(engine.clone()).map_err(sm_read)
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
            let entry = match entry.payload {
                EntryPayload::Normal(InternalRaftRequest {
                    request: Some(Request::Batch(batch)),
                }) => {
                    out.push(self.apply_batch(&store, entry.log_id, batch.requests)?);
                    continue;
                }
                payload => Entry {
                    log_id: entry.log_id,
                    payload,
                },
            };
            let revoked = match &entry.payload {
                EntryPayload::Normal(req) => revoked_lease(req),
                _ => None,
            };
            if revoked.is_some() {
                self.planted_slow_leader_apply().await;
            }
            let mut extra = applied(entry.log_id)?;
            let applying = match &entry.payload {
                EntryPayload::Normal(req) => Some(Applying::start(req)),
                _ => None,
            };
            let mut txn = store.write();
            let index = entry.log_id.index;
            let mut result = match entry.payload {
                EntryPayload::Blank => Ok(Response::Empty),
                EntryPayload::Normal(req) => {
                    if let Some(Request::MemberAttributes(a)) = &req.request {
                        extra.put(
                            Cf::Meta,
                            member_attrs_key(a.id),
                            serde_json::to_vec(a).map_err(sm_write)?,
                        );
                    }
                    apply::execute(&mut txn, req)
                }
                EntryPayload::Membership(m) => {
                    // A member that leaves the config is removed for good
                    // (etcd never lets a removed ID back in).
                    let (_, previous) = applied_in(self.engine.as_ref())?;
                    for (id, _) in previous.membership().nodes() {
                        if m.get_node(id).is_none() {
                            extra.put(Cf::Meta, removed_key(*id), Vec::new());
                        }
                    }
                    let stored = StoredMembership::new(Some(entry.log_id), m);
                    extra.put(
                        Cf::Meta,
                        meta::MEMBERSHIP.to_vec(),
                        serde_json::to_vec(&stored).map_err(sm_write)?,
                    );
                    Ok(Response::Empty)
                }
            };
            let events = txn.commit(extra).map_err(sm_write)?;
            if let Some(applying) = applying {
                applying.done(self.warning_apply, &result);
            }
            self.publish(&events);
            if let (Some(tokens), Ok(Response::Auth(auth))) = (&self.tokens, &mut result) {
                apply::auth::effects(auth, index, tokens);
            }
            if let Some(deadlines) = &self.leases {
                match &result {
                    Ok(Response::LeaseGrant(g)) => deadlines.granted(g.id, g.ttl),
                    Ok(Response::LeaseRevoke(_)) => deadlines.revoked(revoked.unwrap_or(0)),
                    _ => {}
                }
            }
            out.push(Applied(result));
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.snapshot_seq += 1;
        SnapshotBuilder {
            engine: self.engine.clone(),
            snapshots: self.snapshots.clone(),
            install_gate: self.install_gate.clone(),
            seq: self.snapshot_seq,
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<SnapshotFile>, StorageError> {
        let (file, path) = self.snapshots.create_receiving().map_err(|e| snapshot_write(None, e))?;
        Ok(Box::new(SnapshotFile::new(file, path)))
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta, snapshot: Box<SnapshotFile>) -> Result<(), StorageError> {
        let received = snapshot.into_std().await.map_err(|e| snapshot_read(Some(meta), e))?;
        let size = received.0.metadata().map_or(0, |m| m.len());
        let snapshot_id = meta.snapshot_id.clone();
        let index = meta.last_log_id.map_or(0, |l| l.index);
        let (engine, store, snapshots, gate, meta) = (
            self.engine.clone(),
            self.store.clone(),
            self.snapshots.clone(),
            self.install_gate.clone(),
            meta.clone(),
        );
        let rebuilt =
            tokio::task::spawn_blocking(move || install_received(&engine, &store, &snapshots, &gate, &meta, received))
                .await
                .map_err(sm_write)??;
        if crate::planted::active("snapshot-keeps-old-index") {
            // The planted bug (`crate::planted`): the store rebuilt from the
            // snapshot is dropped, and the member goes on with the key index
            // and revision it had before the install.
            drop(rebuilt);
        } else {
            rebuilt.set_compaction_pacing(self.compaction_pacing);
            self.store.replace(rebuilt);
        }
        if let Some(hub) = &self.watch {
            hub.resync_all();
        }
        // etcd's rafthttp receiver line, then timon's own (tests wait for it).
        tracing::info!(
            { "incoming-snapshot-index" = index,
            "incoming-snapshot-size-bytes" = size,
            "incoming-snapshot-size" = %timon_go::humanize_bytes(size) },
            "received and saved database snapshot"
        );
        tracing::info!("applied snapshot {} from the leader", snapshot_id);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let Some(current) = self.snapshots.current() else {
            return Ok(None);
        };
        if let Some((meta, file)) = self.snapshots.open_written(&current) {
            return Ok(Some(Snapshot {
                meta,
                snapshot: Box::new(SnapshotFile::new(file, PathBuf::new())),
            }));
        }
        let (meta, data) = snapshot_data::take(
            self.engine.clone(),
            self.install_gate.clone(),
            self.snapshots.clone(),
            Naming::Current(current),
            snapshot_meta_of,
        )
        .await?;
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(data),
        }))
    }
}

/// The lease a LeaseRevoke request revokes, whoever made it.
fn revoked_lease(req: &InternalRaftRequest) -> Option<i64> {
    match &req.request {
        Some(Request::LeaseRevoke(r)) => Some(r.id),
        Some(Request::AsUser(a)) => a.request.as_deref().and_then(revoked_lease),
        _ => None,
    }
}

/// Where a member's published attributes are kept.
pub fn member_attrs_key(id: u64) -> Vec<u8> {
    let mut k = meta::MEMBER_ATTRS.to_vec();
    k.extend_from_slice(&id.to_be_bytes());
    k
}

fn removed_key(id: u64) -> Vec<u8> {
    let mut k = meta::REMOVED.to_vec();
    k.extend_from_slice(&id.to_be_bytes());
    k
}

/// Whether `id` was a member and has been removed.
pub fn is_removed(view: &dyn KvRead, id: u64) -> bool {
    matches!(view.get(Cf::Meta, &removed_key(id)), Ok(Some(_)))
}

/// Every member's published attributes, by member id.
pub fn member_attrs(view: &dyn KvRead) -> Result<BTreeMap<u64, MemberAttributes>, crate::storage::StorageError> {
    let mut out = BTreeMap::new();
    let mut end = meta::MEMBER_ATTRS.to_vec();
    *end.last_mut().unwrap_or(&mut 0) += 1;
    view.scan(Cf::Meta, meta::MEMBER_ATTRS, Some(&end), &mut |_k, v| {
        if let Ok(a) = serde_json::from_slice::<MemberAttributes>(v) {
            out.insert(a.id, a);
        }
        Scan::Continue
    })?;
    Ok(out)
}

pub struct SnapshotBuilder {
    engine: SharedEngine,
    snapshots: Arc<SnapshotStore>,
    install_gate: InstallGate,
    seq: u64,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    /// Records the state machine's applied log id as the current snapshot:
    /// nothing is copied (the data is written if a follower needs it).
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let (meta, data) = snapshot_data::take(
            self.engine.clone(),
            self.install_gate.clone(),
            self.snapshots.clone(),
            Naming::Build(self.seq),
            snapshot_meta_of,
        )
        .await?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(data),
        })
    }
}
