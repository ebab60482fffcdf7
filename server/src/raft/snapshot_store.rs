//! The snapshot directory (`<data-dir>/member/snap`): which snapshot files
//! exist, which one is current, and the open-file type openraft streams.
//!
//! A snapshot is two files named after its snapshot id: `<id>.snap`, the
//! data in [`super::snapshot`]'s format, and `<id>.meta.json`, its
//! `SnapshotMeta`. Each is written under a `.tmp` name, fsynced and renamed
//! into place (data first, then meta), then the directory is fsynced; a
//! snapshot exists once its meta file does. Only the newest snapshot (by last
//! log id) is kept: older ones are deleted once a newer one is durable. A
//! reader that already opened an older file keeps reading it (unlinking does
//! not close open files). `.tmp` files belong to snapshots being built or
//! received; any found at open are from an interrupted run and are deleted.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncSeek, AsyncWrite, ReadBuf};

use super::types::SnapshotMeta;

const DATA_SUFFIX: &str = ".snap";
const META_SUFFIX: &str = ".meta.json";
const TMP_SUFFIX: &str = ".tmp";
const RECEIVING_SUFFIX: &str = ".receiving.tmp";

/// The snapshot files of one member.
pub struct SnapshotStore {
    dir: PathBuf,
    /// The newest durable snapshot. Held while publishing and while opening
    /// the current file, so a file is never deleted between being chosen and
    /// being opened.
    current: Mutex<Option<SnapshotMeta>>,
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

fn read_meta(path: &Path) -> io::Result<SnapshotMeta> {
    serde_json::from_reader(BufReader::new(File::open(path)?)).map_err(io::Error::other)
}

impl SnapshotStore {
    /// Opens (creating if missing) the snapshot directory and finds the
    /// current snapshot again; deletes `.tmp` files, older snapshots and
    /// halves of snapshots.
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
            let complete =
                stem(&meta.snapshot_id) == name_stem && dir.join(format!("{name_stem}{DATA_SUFFIX}")).exists();
            if complete && newest.as_ref().is_none_or(|n| meta.last_log_id >= n.last_log_id) {
                newest = Some(meta);
            }
        }
        let store = Self {
            dir: dir.to_path_buf(),
            current: Mutex::new(None),
            next_tmp: AtomicU64::new(0),
        };
        store.remove_all_but(newest.as_ref().map(|m| m.snapshot_id.as_str()))?;
        *store.lock() = newest;
        Ok(store)
    }

    fn lock(&self) -> MutexGuard<'_, Option<SnapshotMeta>> {
        self.current.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Where the data of snapshot `snapshot_id` is (or would be) kept.
    pub fn data_path(&self, snapshot_id: &str) -> PathBuf {
        self.dir.join(format!("{}{DATA_SUFFIX}", stem(snapshot_id)))
    }

    fn meta_path(&self, snapshot_id: &str) -> PathBuf {
        self.dir.join(format!("{}{META_SUFFIX}", stem(snapshot_id)))
    }

    /// The current snapshot, its data file opened for reading.
    pub fn open_current(&self) -> io::Result<Option<(SnapshotMeta, File)>> {
        let current = self.lock();
        match current.as_ref() {
            None => Ok(None),
            Some(meta) => Ok(Some((meta.clone(), File::open(self.data_path(&meta.snapshot_id))?))),
        }
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

    /// A new empty file to build a snapshot into, and its path for
    /// [`Self::publish`].
    pub fn create_building(&self) -> io::Result<(File, PathBuf)> {
        self.create_tmp("building")
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

    /// Makes the snapshot `meta`, written to `file` at the temporary `tmp`,
    /// durable under its final name and current, then deletes older
    /// snapshots. Answers false (and deletes `tmp`) when a newer snapshot is
    /// already current; `file` stays readable either way.
    pub fn publish(&self, meta: &SnapshotMeta, file: &File, tmp: &Path) -> io::Result<bool> {
        file.sync_all()?;
        let mut current = self.lock();
        if current.as_ref().is_some_and(|c| c.last_log_id > meta.last_log_id) {
            remove_if_exists(tmp)?;
            return Ok(false);
        }
        fs::rename(tmp, self.data_path(&meta.snapshot_id))?;
        let (mut meta_file, meta_tmp) = self.create_tmp("meta")?;
        serde_json::to_writer(&mut meta_file, meta).map_err(io::Error::other)?;
        meta_file.sync_all()?;
        fs::rename(&meta_tmp, self.meta_path(&meta.snapshot_id))?;
        sync_dir(&self.dir)?;
        *current = Some(meta.clone());
        if let Err(e) = self.remove_all_but(Some(&meta.snapshot_id)) {
            tracing::warn!("cannot delete snapshots older than {}: {e}", meta.snapshot_id);
        }
        Ok(true)
    }

    /// Makes a snapshot received from the leader (`file`, written at `path`)
    /// durable and current in this directory, and answers its local data
    /// file positioned at the start. A file this store handed out for
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
        if !self.publish(meta, &local, &tmp)? {
            return Err(io::Error::other(format!(
                "snapshot {} is older than the current snapshot",
                meta.snapshot_id
            )));
        }
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

/// openraft's `SnapshotData`: an open snapshot file and its path, so a
/// received snapshot can be renamed into place rather than copied.
pub struct SnapshotFile {
    file: tokio::fs::File,
    path: PathBuf,
}

impl SnapshotFile {
    pub fn new(file: File, path: PathBuf) -> Self {
        Self {
            file: tokio::fs::File::from_std(file),
            path,
        }
    }

    /// The file (after every pending write completed) and its path.
    pub async fn into_std(self) -> (File, PathBuf) {
        (self.file.into_std().await, self.path)
    }
}

impl AsyncRead for SnapshotFile {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().file).poll_read(cx, buf)
    }
}

impl AsyncWrite for SnapshotFile {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().file).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().file).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().file).poll_shutdown(cx)
    }
}

impl AsyncSeek for SnapshotFile {
    fn start_seek(self: Pin<&mut Self>, position: SeekFrom) -> io::Result<()> {
        Pin::new(&mut self.get_mut().file).start_seek(position)
    }
    fn poll_complete(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        Pin::new(&mut self.get_mut().file).poll_complete(cx)
    }
}
