//! The snapshot directory (`<data-dir>/member/snap`): which snapshot is
//! current, and the data files that exist while a snapshot travels.
//!
//! A snapshot is a point in the log: its `SnapshotMeta` (last log id,
//! membership, id), kept in `<id>.meta.json`. Its data is the state machine
//! itself, so nothing is copied when one is built (etcd's raft snapshots
//! hold no data either); the data is written out only when it has to
//! travel (`snapshot_data`). The meta file is written under a `.tmp` name,
//! fsynced and renamed into place, then the directory is fsynced. Only the
//! newest snapshot (by last log id) is kept.
//!
//! Data files, `<id>.snap`: a snapshot received from the leader stays there
//! until it is installed (a crash during the install redoes it from there,
//! `snapshot_install`), then it is deleted ([`SnapshotStore::drop_data`]);
//! the data last written to be sent stays there until a newer snapshot is
//! published, for every follower that needs a snapshot meanwhile
//! ([`SnapshotStore::keep_written`]); a restart deletes it.
//! `.tmp` files belong to snapshots being sent or received; any found at
//! open are from an interrupted run and are deleted. Directories written by
//! earlier versions hold a `<id>.snap` beside every meta file: it is
//! deleted like a received one once installed.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use super::types::SnapshotMeta;

const DATA_SUFFIX: &str = ".snap";
const META_SUFFIX: &str = ".meta.json";
const TMP_SUFFIX: &str = ".tmp";
const RECEIVING_SUFFIX: &str = ".receiving.tmp";

/// The snapshot files of one member.
pub struct SnapshotStore {
    dir: PathBuf,
    /// The newest durable snapshot. Held while publishing, adopting and
    /// keeping written data, so a data file is never renamed into place
    /// after a newer snapshot was published (and its older files deleted).
    current: Mutex<Option<SnapshotMeta>>,
    /// The snapshot whose data was last written to be sent, kept in
    /// `<id>.snap` until a newer snapshot is published, so a follower that
    /// needs a snapshot again (or another one) gets the same file rather
    /// than a new copy of the store. Locked after `current`.
    written: Mutex<Option<SnapshotMeta>>,
    next_tmp: AtomicU64,
}

/// The file-name stem for a snapshot id: ids are ours (`term-index-seq`) but
/// arrive from the leader, so anything but `[A-Za-z0-9_-]` is replaced.
fn stem(snapshot_id: &str) -> String {
    let s: String = snapshot_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() {
        "_".into()
    } else {
        s
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn remove_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn file_names(dir: &Path) -> io::Result<Vec<String>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        if let Ok(name) = entry?.file_name().into_string() {
            out.push(name);
        }
    }
    Ok(out)
}

/// Whether the current snapshot is newer than `meta`.
fn newer_than(current: &Option<SnapshotMeta>, meta: &SnapshotMeta) -> bool {
    current.as_ref().is_some_and(|c| c.last_log_id > meta.last_log_id)
}

fn read_meta(path: &Path) -> io::Result<SnapshotMeta> {
    serde_json::from_reader(BufReader::new(File::open(path)?)).map_err(io::Error::other)
}

impl SnapshotStore {
    /// Opens (creating if missing) the snapshot directory and finds the
    /// current snapshot again; deletes `.tmp` files and older snapshots. The
    /// current snapshot's data file, if any, stays for an install to resume.
    pub fn open(dir: &Path) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let mut newest: Option<SnapshotMeta> = None;
        for name in file_names(dir)? {
            if name.ends_with(TMP_SUFFIX) {
                remove_if_exists(&dir.join(&name))?;
                continue;
            }
            let Some(name_stem) = name.strip_suffix(META_SUFFIX) else {
                continue;
            };
            let meta = match read_meta(&dir.join(&name)) {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!("ignoring snapshot meta {name}: {e}");
                    continue;
                }
            };
            let named_right = stem(&meta.snapshot_id) == name_stem;
            if named_right && newest.as_ref().is_none_or(|n| meta.last_log_id >= n.last_log_id) {
                newest = Some(meta);
            }
        }
        let store = Self {
            dir: dir.to_path_buf(),
            current: Mutex::new(None),
            written: Mutex::new(None),
            next_tmp: AtomicU64::new(0),
        };
        store.remove_all_but(newest.as_ref().map(|m| m.snapshot_id.as_str()))?;
        *store.lock() = newest;
        Ok(store)
    }

    fn lock(&self) -> MutexGuard<'_, Option<SnapshotMeta>> {
        self.current.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_written(&self) -> MutexGuard<'_, Option<SnapshotMeta>> {
        self.written.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps the data of snapshot `meta`, just written to `tmp` to be sent,
    /// for [`Self::open_written`]; deletes it instead when a newer snapshot
    /// is current already. An open file of it stays readable either way.
    pub fn keep_written(&self, meta: &SnapshotMeta, tmp: &Path) -> io::Result<()> {
        let current = self.lock();
        if newer_than(&current, meta) {
            return remove_if_exists(tmp);
        }
        let mut written = self.lock_written();
        if let Some(old) = written.take() {
            remove_if_exists(&self.data_path(&old.snapshot_id))?;
        }
        fs::rename(tmp, self.data_path(&meta.snapshot_id))?;
        *written = Some(meta.clone());
        Ok(())
    }

    /// The data written to send last ([`Self::keep_written`]), opened, if it
    /// is of a snapshot at or past `current`.
    pub fn open_written(&self, current: &SnapshotMeta) -> Option<(SnapshotMeta, File)> {
        let written = self.lock_written();
        let meta = written.as_ref().filter(|w| w.last_log_id >= current.last_log_id)?;
        let file = File::open(self.data_path(&meta.snapshot_id)).ok()?;
        Some((meta.clone(), file))
    }

    /// Where the data of snapshot `snapshot_id` is (or would be) kept.
    pub fn data_path(&self, snapshot_id: &str) -> PathBuf {
        self.dir.join(format!("{}{DATA_SUFFIX}", stem(snapshot_id)))
    }

    fn meta_path(&self, snapshot_id: &str) -> PathBuf {
        self.dir.join(format!("{}{META_SUFFIX}", stem(snapshot_id)))
    }

    /// The current snapshot.
    pub fn current(&self) -> Option<SnapshotMeta> {
        self.lock().clone()
    }

    /// The data file of snapshot `snapshot_id`, opened for reading.
    pub fn open_data(&self, snapshot_id: &str) -> io::Result<File> {
        File::open(self.data_path(snapshot_id))
    }

    fn create_tmp(&self, kind: &str) -> io::Result<(File, PathBuf)> {
        let n = self.next_tmp.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.join(format!("{n}.{kind}{TMP_SUFFIX}"));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)?;
        Ok((file, path))
    }

    /// A new empty file to write a snapshot's data into before it is sent,
    /// and its path.
    pub fn create_sending(&self) -> io::Result<(File, PathBuf)> {
        self.create_tmp("sending")
    }

    /// A new empty file to receive a snapshot from the leader into. Files of
    /// earlier, abandoned receptions are deleted: openraft receives one
    /// snapshot at a time.
    pub fn create_receiving(&self) -> io::Result<(File, PathBuf)> {
        for name in file_names(&self.dir)? {
            if name.ends_with(RECEIVING_SUFFIX) {
                remove_if_exists(&self.dir.join(name))?;
            }
        }
        self.create_tmp("receiving")
    }

    /// Makes the snapshot `meta` durable and current, then deletes older
    /// snapshots (and their data). Answers false when a newer snapshot is
    /// already current.
    pub fn publish(&self, meta: &SnapshotMeta) -> io::Result<bool> {
        let mut current = self.lock();
        if newer_than(&current, meta) {
            return Ok(false);
        }
        self.publish_locked(&mut current, meta)?;
        Ok(true)
    }

    fn publish_locked(&self, current: &mut Option<SnapshotMeta>, meta: &SnapshotMeta) -> io::Result<()> {
        let (mut meta_file, meta_tmp) = self.create_tmp("meta")?;
        serde_json::to_writer(&mut meta_file, meta).map_err(io::Error::other)?;
        meta_file.sync_all()?;
        fs::rename(&meta_tmp, self.meta_path(&meta.snapshot_id))?;
        sync_dir(&self.dir)?;
        *current = Some(meta.clone());
        // The data written to send goes with the other older files.
        *self.lock_written() = None;
        if let Err(e) = self.remove_all_but(Some(&meta.snapshot_id)) {
            tracing::warn!("cannot delete snapshots older than {}: {e}", meta.snapshot_id);
        }
        Ok(())
    }

    /// Deletes every data file: called once the state machine holds what
    /// they carried (an install finished, or found finished at open).
    pub fn drop_data(&self) -> io::Result<()> {
        *self.lock_written() = None;
        for name in file_names(&self.dir)? {
            if name.ends_with(DATA_SUFFIX) {
                remove_if_exists(&self.dir.join(name))?;
            }
        }
        Ok(())
    }

    /// Makes a snapshot received from the leader (`file`, written at `path`)
    /// durable in `<id>.snap` and current, and answers that file positioned
    /// at the start, to install from. A file this store handed out for
    /// receiving is renamed into place; any other file is copied in.
    pub fn adopt(&self, meta: &SnapshotMeta, mut file: File, path: &Path) -> io::Result<File> {
        let ours = path.parent() == Some(self.dir.as_path())
            && path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(RECEIVING_SUFFIX));
        let (mut local, tmp) = if ours {
            (file, path.to_path_buf())
        } else {
            let (copy, tmp) = self.create_tmp("copying")?;
            file.seek(SeekFrom::Start(0))?;
            let mut w = BufWriter::new(copy);
            io::copy(&mut BufReader::new(file), &mut w)?;
            (w.into_inner().map_err(|e| e.into_error())?, tmp)
        };
        local.sync_all()?;
        let mut current = self.lock();
        if newer_than(&current, meta) {
            remove_if_exists(&tmp)?;
            return Err(io::Error::other(format!(
                "snapshot {} is older than the current snapshot",
                meta.snapshot_id
            )));
        }
        fs::rename(&tmp, self.data_path(&meta.snapshot_id))?;
        self.publish_locked(&mut current, meta)?;
        drop(current);
        local.seek(SeekFrom::Start(0))?;
        Ok(local)
    }

    /// Deletes every snapshot but `keep` (meta files first, so a crash
    /// leaves at worst a data file without meta, which is ignored). Leaves
    /// `.tmp` files: they belong to snapshots in progress.
    fn remove_all_but(&self, keep: Option<&str>) -> io::Result<()> {
        let keep = keep.map(stem);
        let names = file_names(&self.dir)?;
        for suffix in [META_SUFFIX, DATA_SUFFIX] {
            for name in &names {
                if let Some(s) = name.strip_suffix(suffix) {
                    if keep.as_deref() != Some(s) {
                        remove_if_exists(&self.dir.join(name))?;
                    }
                }
            }
        }
        Ok(())
    }
}
