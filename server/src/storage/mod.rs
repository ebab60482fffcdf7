//! The storage seam: a small engine interface and the engines behind it.
//!
//! Everything timon persists goes through [`Engine`]: the raft log and raft
//! meta (`raft/`), the MVCC revisions and state-machine meta (`mvcc/`,
//! `apply/`). The data dir's on-disk format version is checked and stamped by
//! [`format`]. RocksDB is the engine we ship ([`rocks::RocksEngine`]) and this
//! is the only module that imports `rocksdb`; [`mem::MemEngine`] serves unit
//! tests. Column families and the fixed meta keys are named in [`keys`].
//!
//! Writes are described by a [`WriteBatch`] of engine-neutral operations and
//! applied atomically: either every operation of a batch is visible after a
//! crash or none is (DESIGN.md invariant 3).

pub mod format;
pub mod keys;
pub mod mem;
pub mod rocks;

pub use keys::Cf;

use std::sync::Arc;

/// An engine failure. Storage errors are not recoverable by a request: the
/// caller reports them and, in apply, stops the member rather than diverge.
#[derive(Debug, thiserror::Error)]
#[error("storage: {0}")]
pub struct StorageError(pub String);

pub type Result<T> = std::result::Result<T, StorageError>;

/// One operation of a [`WriteBatch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    Put {
        cf: Cf,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Delete {
        cf: Cf,
        key: Vec<u8>,
    },
    /// Deletes every key in `[start, end)`.
    DeleteRange {
        cf: Cf,
        start: Vec<u8>,
        end: Vec<u8>,
    },
}

/// An ordered list of writes applied atomically by [`Engine::write`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WriteBatch {
    pub ops: Vec<WriteOp>,
}

impl WriteBatch {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn put(&mut self, cf: Cf, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops.push(WriteOp::Put {
            cf,
            key: key.into(),
            value: value.into(),
        });
    }
    pub fn delete(&mut self, cf: Cf, key: impl Into<Vec<u8>>) {
        self.ops.push(WriteOp::Delete { cf, key: key.into() });
    }
    pub fn delete_range(&mut self, cf: Cf, start: impl Into<Vec<u8>>, end: impl Into<Vec<u8>>) {
        self.ops.push(WriteOp::DeleteRange {
            cf,
            start: start.into(),
            end: end.into(),
        });
    }
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
    pub fn len(&self) -> usize {
        self.ops.len()
    }
}

/// What the scan callback answers: go on to the next key or stop here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scan {
    Continue,
    Stop,
}

/// Point reads and ordered scans. Implemented by engines and by their
/// consistent snapshots.
pub trait KvRead {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Visits the keys of `cf` in `[start, end)` (`end = None`: to the end of
    /// the column family) in ascending byte order until `f` answers
    /// [`Scan::Stop`].
    fn scan(&self, cf: Cf, start: &[u8], end: Option<&[u8]>, f: &mut dyn FnMut(&[u8], &[u8]) -> Scan) -> Result<()>;

    /// The last key-value pair of `cf` in `[start, end)`, if any.
    fn last_in(&self, cf: Cf, start: &[u8], end: Option<&[u8]>) -> Result<Option<(Vec<u8>, Vec<u8>)>>;
}

/// Visits keys as [`KvRead::scan`] does, with a callback that can fail:
/// the first error stops the scan and is answered.
pub fn try_scan<E: From<StorageError>>(
    view: &dyn KvRead,
    cf: Cf,
    start: &[u8],
    end: Option<&[u8]>,
    f: &mut dyn FnMut(&[u8], &[u8]) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    let mut failure = None;
    view.scan(cf, start, end, &mut |k, v| match f(k, v) {
        Ok(()) => Scan::Continue,
        Err(e) => {
            failure = Some(e);
            Scan::Stop
        }
    })?;
    failure.map_or(Ok(()), Err)
}

/// A storage engine shared by the raft log store, the state machine and the
/// read path.
pub trait Engine: KvRead + Send + Sync + 'static {
    /// Applies `batch` atomically. With `sync`, the write is on stable storage
    /// (the write-ahead log fsynced) before this returns.
    fn write(&self, batch: WriteBatch, sync: bool) -> Result<()>;

    /// Applies `batch` atomically to memory only, bypassing the write-ahead
    /// log, so a crash loses it even though readers saw it. Never right for
    /// data anyone relies on: it exists for the planted `ack-before-fsync`
    /// bug (`crate::planted`), under which every unsynced write is made so,
    /// the in-process stand-in for a power cut dropping writes the OS had
    /// not fsynced. Engines without a log treat it as an ordinary unsynced
    /// write.
    fn write_unlogged(&self, batch: WriteBatch) -> Result<()> {
        self.write(batch, false)
    }

    /// Makes every earlier write durable (fsyncs the write-ahead log).
    fn sync(&self) -> Result<()>;

    /// A consistent point-in-time view, unaffected by later writes.
    fn snapshot(&self) -> Box<dyn KvRead + Send + '_>;

    /// Approximate bytes on disk of every column family.
    fn size_on_disk(&self) -> u64;

    /// Approximate bytes of `cfs` (on disk and in memory): what the state
    /// machine holds, for Status.dbSize and the backend quota.
    fn size_of(&self, cfs: &[Cf]) -> u64;

    /// Rewrites the files of every column family so deleted data stops
    /// taking space (etcd's defragment). Reads and writes go on meanwhile.
    fn compact_all(&self) -> Result<()>;

    /// Frees now, rather than at some later compaction, the space of the
    /// files of `cf` whose keys all lie in `[first, last]`, a range a write
    /// already deleted with [`WriteBatch::delete_range`] (that deletion
    /// still covers whatever other files hold of the range). Only for data
    /// nothing reads again, engine snapshots included: their view of the
    /// range goes too. Engines without files do nothing.
    fn drop_files_in(&self, _cf: Cf, _first: &[u8], _last: &[u8]) -> Result<()> {
        Ok(())
    }
}

pub type SharedEngine = Arc<dyn Engine>;
