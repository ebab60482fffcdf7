//! The raft log store: entries, vote, committed and purged log ids in the
//! engine's `RaftLog` and `RaftMeta` column families.
//!
//! Durability (DESIGN.md invariant 4): an append is written, then the
//! write-ahead log is synced on a blocking thread, and only then is the
//! append reported to openraft as flushed, so an entry openraft counts
//! towards a quorum is on stable storage. `append` returns once the entries
//! are written, before the sync: openraft (vendored patch 5) sends them to
//! the followers meanwhile, so the leader's fsync and theirs overlap. A
//! vote is fsynced before it is answered for the same reason. (The planted
//! `ack-before-fsync` bug, in `crate::planted`, breaks exactly this.)
//!
//! Every synced write is timed, as etcd times its WAL's fdatasync
//! (`etcd_disk_wal_fsync_duration_seconds`): one slower than
//! [`WARN_SYNC_DURATION`] logs etcd's "slow fdatasync" line.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader, StorageIOError};

use super::log_growth::LogGrowth;
use super::types::{any, Entry, LogId, StorageError, TypeConfig, Vote};
use crate::storage::keys::raft_meta;
use crate::storage::{Cf, Scan, SharedEngine, WriteBatch};

/// The log store; cheap to clone (clones share the engine).
#[derive(Clone)]
pub struct LogStore {
    engine: SharedEngine,
    /// The last commit index openraft saved, for [`LogStore::committed_index`].
    committed: Arc<AtomicU64>,
    /// Told of the bytes every append writes, and of truncations and
    /// purges (`log_growth`).
    growth: Option<Arc<LogGrowth>>,
}

/// etcd's `warnSyncDuration`: a synced log write slower than this is logged.
pub const WARN_SYNC_DURATION: Duration = Duration::from_secs(1);

/// Runs `write` (a synced write of the log or the vote), logging etcd's
/// `slow fdatasync` line when it took longer than [`WARN_SYNC_DURATION`].
fn timed_sync<T>(write: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    crate::planted::slow_fsync();
    let result = write();
    let took = start.elapsed();
    crate::disk_metrics::wal_fsync(took);
    if took > WARN_SYNC_DURATION {
        tracing::warn!(
            took = %timon_go::format_duration(took),
            "expected-duration" = %timon_go::format_duration(WARN_SYNC_DURATION),
            "slow fdatasync"
        );
    }
    result
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn read_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::read_logs(any(e)).into()
}

fn write_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write_logs(any(e)).into()
}

impl LogStore {
    pub fn new(engine: SharedEngine) -> Self {
        Self {
            engine,
            committed: Arc::default(),
            growth: None,
        }
    }

    /// Tells `growth` of the bytes every append writes from now on.
    pub fn with_growth(mut self, growth: Arc<LogGrowth>) -> Self {
        self.growth = Some(growth);
        self
    }

    /// The commit index as this member last learnt it (0 until its first
    /// commit after a start): what etcd's `waitAppliedIndex` waits for the
    /// state machine to reach before the leader answers from lease state.
    pub fn committed_index(&self) -> Arc<AtomicU64> {
        self.committed.clone()
    }

    fn meta<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StorageError> {
        match self.engine.get(Cf::RaftMeta, key).map_err(read_err)? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(read_err),
        }
    }

    /// Writes a meta value; with `sync`, durably before returning.
    fn put_meta<T: serde::Serialize>(&self, key: &[u8], value: &T, sync: bool) -> Result<(), StorageError> {
        let mut batch = WriteBatch::new();
        batch.put(
            Cf::RaftMeta,
            key.to_vec(),
            serde_json::to_vec(value).map_err(write_err)?,
        );
        if sync {
            timed_sync(|| self.engine.write(batch, true)).map_err(write_err)
        } else {
            self.engine.write(batch, false).map_err(write_err)
        }
    }

    fn last_entry_log_id(&self) -> Result<Option<LogId>, StorageError> {
        match self.engine.last_in(Cf::RaftLog, &[], None).map_err(read_err)? {
            None => Ok(None),
            Some((_, v)) => {
                let e: Entry = bincode::deserialize(&v).map_err(read_err)?;
                Ok(Some(e.log_id))
            }
        }
    }
}

/// Bytes of entries one AppendEntries carries at most (etcd's
/// `maxSizePerMsg`, 1 MiB), unless its first entry alone is larger.
/// openraft gives a replication RPC one heartbeat interval to be answered,
/// the follower's append and fsync included, and sends the same range again
/// when it is not: without a cap, a follower behind by hundreds of
/// megabytes of large writes was sent them all at once, again and again,
/// and never caught up.
pub const MAX_APPEND_BYTES: usize = 1 << 20;

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(i) => i.checked_add(1),
            Bound::Excluded(i) => Some(*i),
            Bound::Unbounded => None,
        };
        self.entries(start, end, usize::MAX)
    }

    /// What replication sends: the entries from `start`, up to
    /// [`MAX_APPEND_BYTES`] (at least one).
    async fn limited_get_log_entries(&mut self, start: u64, end: u64) -> Result<Vec<Entry>, StorageError> {
        self.entries(start, Some(end), MAX_APPEND_BYTES)
    }
}

impl LogStore {
    /// The entries in `[start, end)`, stopping before the one that would
    /// take their stored size past `max_bytes` (the first is always read).
    fn entries(&self, start: u64, end: Option<u64>, max_bytes: usize) -> Result<Vec<Entry>, StorageError> {
        let end_key = end.map(index_key);
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let mut failure = None;
        self.engine
            .scan(
                Cf::RaftLog,
                &index_key(start),
                end_key.as_ref().map(|k| &k[..]),
                &mut |_, v| {
                    bytes = bytes.saturating_add(v.len());
                    if bytes > max_bytes && !out.is_empty() {
                        return Scan::Stop;
                    }
                    match bincode::deserialize::<Entry>(v) {
                        Ok(e) => {
                            out.push(e);
                            Scan::Continue
                        }
                        Err(e) => {
                            failure = Some(e);
                            Scan::Stop
                        }
                    }
                },
            )
            .map_err(read_err)?;
        match failure {
            Some(e) => Err(read_err(e)),
            None => Ok(out),
        }
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id: Option<LogId> = self.meta(raft_meta::LAST_PURGED)?;
        let last_log_id = self.last_entry_log_id()?.or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        self.put_meta(raft_meta::VOTE, vote, true)
            .map_err(|e| StorageIOError::write_vote(any(e)).into())
    }

    /// The saved vote, as a restart must see it: never committed (openraft
    /// reads the vote only when it starts). openraft 0.9 restores a member
    /// whose saved vote is its own committed one as leader at once, in the
    /// same term, with the commit index of its last `save_committed` hint,
    /// which is not synced: after every member lost power the hint can be
    /// behind entries the cluster had acknowledged, and a read index taken
    /// from it served reads from before acknowledged writes (the harness's
    /// `lose-unsynced-all` nemesis found it). As etcd restarts every member
    /// as a follower, a member that led elects itself anew at a new term,
    /// whose first entry commits everything before it.
    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(self.meta::<Vote>(raft_meta::VOTE)?.map(|mut v| {
            v.committed = false;
            v
        }))
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // A hint for re-applying after a restart, which openraft does not
        // need durable: the next synced append or vote carries it to disk.
        // Syncing here cost one fsync per commit, as many as the appends.
        if let Some(c) = &committed {
            self.committed.fetch_max(c.index, Ordering::Relaxed);
        }
        self.put_meta(raft_meta::COMMITTED, &committed, false)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.meta::<Option<LogId>>(raft_meta::COMMITTED)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = WriteBatch::new();
        let mut appended = 0;
        let mut last_index = 0;
        for entry in entries {
            last_index = entry.log_id.index;
            let bytes = bincode::serialize(&entry).map_err(write_err)?;
            appended += bytes.len() as u64;
            batch.put(Cf::RaftLog, index_key(entry.log_id.index).to_vec(), bytes);
        }
        // The planted bugs acknowledge without a sync (under
        // `ack-before-fsync` the engine also leaves an unsynced write out
        // of its write-ahead log).
        let ack_unsynced = crate::planted::active("ack-before-fsync") || crate::planted::active("ack-before-wal-sync");
        let written = self.engine.write(batch, false);
        if let Err(e) = written {
            let e = std::io::Error::other(e.to_string());
            let failed = write_err(std::io::Error::other(e.to_string()));
            callback.log_io_completed(Err(e));
            return Err(failed);
        }
        if let Some(growth) = &self.growth {
            growth.appended(last_index, appended);
        }
        if ack_unsynced {
            callback.log_io_completed(Ok(()));
            return Ok(());
        }
        // The entries can be read now (openraft sends them to the followers
        // while this member fsyncs them: vendored patch 5); they are
        // reported flushed once the write-ahead log is synced.
        let engine = self.engine.clone();
        tokio::task::spawn_blocking(move || {
            let synced = timed_sync(|| engine.sync()).map_err(|e| std::io::Error::other(e.to_string()));
            callback.log_io_completed(synced);
        });
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut batch = WriteBatch::new();
        batch.delete_range(
            Cf::RaftLog,
            index_key(log_id.index).to_vec(),
            index_key(u64::MAX).to_vec(),
        );
        batch.delete(Cf::RaftLog, index_key(u64::MAX).to_vec());
        timed_sync(|| self.engine.write(batch, true)).map_err(write_err)?;
        if let Some(growth) = &self.growth {
            growth.truncated(log_id.index);
        }
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // Entries up to `log_id` are in the state machine; make sure those
        // (unsynced) state-machine writes are durable before the log that
        // could replay them disappears.
        self.engine.sync().map_err(write_err)?;
        let mut batch = WriteBatch::new();
        batch.put(
            Cf::RaftMeta,
            raft_meta::LAST_PURGED.to_vec(),
            serde_json::to_vec(&log_id).map_err(write_err)?,
        );
        batch.delete_range(Cf::RaftLog, index_key(0).to_vec(), index_key(log_id.index + 1).to_vec());
        self.engine.write(batch, true).map_err(write_err)?;
        if let Some(growth) = &self.growth {
            growth.purged(log_id.index);
        }
        // The deletion alone frees nothing until RocksDB compacts the files
        // it covers, which a log written once and never again may not see
        // for a long time (a bulk load's 1 GiB stayed on disk).
        self.engine
            .drop_files_in(Cf::RaftLog, &index_key(0), &index_key(log_id.index))
            .map_err(write_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::mem::MemEngine;

    #[tokio::test]
    async fn a_restart_reads_a_leaders_vote_as_not_yet_committed() {
        let mut store = LogStore::new(Arc::new(MemEngine::new()));
        assert_eq!(store.read_vote().await.unwrap(), None);
        store.save_vote(&Vote::new_committed(3, 7)).await.unwrap();
        assert_eq!(store.read_vote().await.unwrap(), Some(Vote::new(3, 7)));
    }

    /// Entries 1..=n, each a put of a `size`-byte value, written as
    /// `append` writes them.
    fn store_with_entries(n: u64, size: usize) -> LogStore {
        use openraft::testing::log_id;
        use openraft::EntryPayload;
        use timon_proto::etcdserverpb::PutRequest;
        use timon_proto::timonpb::internal_raft_request::Request;
        use timon_proto::timonpb::InternalRaftRequest;
        let store = LogStore::new(Arc::new(MemEngine::new()));
        let mut batch = WriteBatch::new();
        for i in 1..=n {
            let entry = Entry {
                log_id: log_id(1, 1, i),
                payload: EntryPayload::Normal(InternalRaftRequest {
                    request: Some(Request::Put(PutRequest {
                        key: format!("k{i}").into_bytes(),
                        value: vec![b'v'; size],
                        ..Default::default()
                    })),
                }),
            };
            batch.put(Cf::RaftLog, index_key(i).to_vec(), bincode::serialize(&entry).unwrap());
        }
        store.engine.write(batch, false).unwrap();
        store
    }

    fn indexes(entries: &[Entry]) -> Vec<u64> {
        entries.iter().map(|e| e.log_id.index).collect()
    }

    #[tokio::test]
    async fn replication_reads_about_a_mebibyte_of_entries_at_a_time() {
        // 10 entries of 300 KiB: three fit in 1 MiB, a fourth would not.
        let mut store = store_with_entries(10, 300 << 10);
        assert_eq!(indexes(&store.limited_get_log_entries(1, 11).await.unwrap()), [1, 2, 3]);
        assert_eq!(indexes(&store.limited_get_log_entries(9, 11).await.unwrap()), [9, 10]);
        // Everything when asked for a range (openraft's other readers).
        assert_eq!(store.try_get_log_entries(1..=10).await.unwrap().len(), 10);
    }

    #[tokio::test]
    async fn an_entry_larger_than_the_cap_is_still_sent_alone() {
        let mut store = store_with_entries(3, MAX_APPEND_BYTES + 1);
        assert_eq!(indexes(&store.limited_get_log_entries(2, 4).await.unwrap()), [2]);
        let mut small = store_with_entries(5, 10);
        assert_eq!(
            indexes(&small.limited_get_log_entries(1, 6).await.unwrap()),
            [1, 2, 3, 4, 5]
        );
    }
}
