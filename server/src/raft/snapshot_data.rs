//! How a snapshot's data comes to exist: a snapshot is a point in the log
//! whose data is the state machine itself, so its bytes are written only
//! when they travel.
//!
//! [`take`] takes one consistent engine view, reads the applied log id and
//! membership from it (the snapshot's meta) and answers at once with a
//! [`SnapshotFile`] that holds no bytes yet. The first read or seek of that
//! file starts a blocking task that streams the view in
//! [`super::snapshot`]'s format into a file, kept until a newer snapshot is
//! built so that retries and other followers are sent the same file
//! (`SnapshotStore::keep_written`; a follower that cannot be reached must
//! not make its leader copy the store at every retry). A file dropped
//! unread (openraft's start-up and its snapshot builds only look at the
//! meta) writes nothing. The view, an engine snapshot, is held from
//! [`take`] until the bytes are written or the file dropped; dropping the
//! file stops a write in progress and returns once the task let go of the
//! view and the engine, so an engine is closed when its last user says so.

use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, RwLock};

use tokio::sync::oneshot;

use super::snapshot;
use super::snapshot_file::SnapshotFile;
use super::snapshot_store::SnapshotStore;
use super::types::{sm_read, snapshot_write, SnapshotMeta, StorageError};
use crate::storage::keys::meta;
use crate::storage::{KvRead, SharedEngine};

/// Meta keys that never travel in a snapshot's data: the applied log id and
/// the membership travel in its `SnapshotMeta`; the install marker is local.
pub const NOT_IN_SNAPSHOT: [&[u8]; 3] = [meta::APPLIED, meta::MEMBERSHIP, meta::INSTALLING];

/// A writer that fails once `cancel` is set, so a write nobody will read
/// stops early.
struct Cancellable<W> {
    inner: W,
    cancel: Arc<AtomicBool>,
}

impl<W: io::Write> io::Write for Cancellable<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(io::Error::other("the snapshot's reader is gone"));
        }
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// How [`take`] names the snapshot of the view it takes.
pub enum Naming {
    /// A new snapshot, published as the current one: `term-index-seq`.
    Build(u64),
    /// The current snapshot: its meta if the view is at its log id, else a
    /// snapshot of the view at `term-index-0` (the state machine moved on
    /// since it was built, and its data is the state machine as it is now).
    Current(SnapshotMeta),
}

/// Takes one consistent view of the state machine (while no install is
/// writing, `gate`), describes it with `describe` and names it per `naming`;
/// answers its meta and its data, written only when first read.
pub async fn take(
    engine: SharedEngine,
    gate: Arc<RwLock<()>>,
    snapshots: Arc<SnapshotStore>,
    naming: Naming,
    describe: fn(&dyn KvRead) -> Result<SnapshotMeta, StorageError>,
) -> Result<(SnapshotMeta, SnapshotFile), StorageError> {
    let (meta_tx, meta_rx) = oneshot::channel();
    let (start_tx, start_rx) = oneshot::channel::<()>();
    let (written_tx, written_rx) = oneshot::channel();
    let (released_tx, released_rx) = mpsc::channel::<()>();
    let cancel = Arc::new(AtomicBool::new(false));
    let cancelled = cancel.clone();
    tokio::task::spawn_blocking(move || {
        let view = {
            let _not_installing = gate.read().unwrap_or_else(|p| p.into_inner());
            engine.snapshot()
        };
        let described = describe(view.as_ref()).and_then(|meta| name(meta, naming, &snapshots));
        let meta = match described {
            Ok(meta) => meta,
            Err(e) => {
                let _ = meta_tx.send(Err(e));
                return;
            }
        };
        let _ = meta_tx.send(Ok(meta.clone()));
        let written = match start_rx.blocking_recv() {
            Ok(()) => Some(write(view.as_ref(), &snapshots, &meta, cancelled)),
            Err(_) => None,
        };
        drop(view);
        drop(engine);
        drop(released_tx);
        if let Some(written) = written {
            let _ = written_tx.send(written);
        }
    });
    let meta = meta_rx.await.map_err(sm_read)??;
    Ok((meta, SnapshotFile::later(start_tx, written_rx, cancel, released_rx)))
}

/// Gives the view's meta (its `snapshot_id` not yet set) its name, and
/// publishes a new build.
fn name(mut meta: SnapshotMeta, naming: Naming, snapshots: &SnapshotStore) -> Result<SnapshotMeta, StorageError> {
    let (term, index) = meta.last_log_id.map_or((0, 0), |id| (id.leader_id.term, id.index));
    match naming {
        Naming::Current(current) if current.last_log_id == meta.last_log_id => Ok(current),
        Naming::Current(_) => {
            meta.snapshot_id = format!("{term}-{index}-0");
            Ok(meta)
        }
        Naming::Build(seq) => {
            meta.snapshot_id = format!("{term}-{index}-{seq}");
            snapshots.publish(&meta).map_err(|e| snapshot_write(Some(&meta), e))?;
            Ok(meta)
        }
    }
}

/// Streams `view` into a new file, kept for later senders; answers it
/// positioned at the start.
fn write(
    view: &dyn KvRead,
    snapshots: &SnapshotStore,
    meta: &SnapshotMeta,
    cancel: Arc<AtomicBool>,
) -> io::Result<File> {
    let (file, path) = snapshots.create_sending()?;
    let out = BufWriter::new(Cancellable { inner: file, cancel });
    let written = snapshot::encode(view, &NOT_IN_SNAPSHOT, out)
        .map_err(io::Error::other)
        .and_then(|(w, _)| w.into_inner().map_err(|e| e.into_error()))
        .map(|c| c.inner);
    let mut file = match written {
        Ok(file) => file,
        Err(e) => {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
    };
    snapshots.keep_written(meta, &path)?;
    file.seek(SeekFrom::Start(0))?;
    tracing::info!(
        "wrote the data of snapshot {} ({} bytes) to send",
        meta.snapshot_id,
        file.metadata().map_or(0, |m| m.len())
    );
    Ok(file)
}
