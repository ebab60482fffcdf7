//! `Maintenance.Snapshot`: a consistent point-in-time copy of the state
//! machine in etcd's backend format, then its sha256, as etcd streams it
//! (`v3rpc/maintenance.go`): 32 KiB blobs with the bytes remaining, and a
//! last message whose blob is the 32-byte digest.
//!
//! The copy is written from one engine snapshot (RocksDB's) into a
//! temporary file in the data dir (`member/snapshot-*.tmp`), then read back
//! in chunks, so neither side holds the database in memory; the file is
//! removed when the stream ends, however it ends (a client that goes away
//! drops the stream, which stops the reader and deletes the file).

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::pin::Pin;
use std::time::Instant;

use futures::Stream;
use sha2::{Digest, Sha256};
use timon_proto::etcdserverpb::SnapshotResponse;
use tokio::sync::mpsc;
use tonic::Status;

use crate::backup;
use crate::storage::SharedEngine;

/// etcd's `snapshotSendBufferSize`.
pub const CHUNK_BYTES: usize = 32 * 1024;
/// A progress line is logged every this many bytes sent.
const PROGRESS_BYTES: u64 = 4 << 20;

pub type SnapshotStream = Pin<Box<dyn Stream<Item = Result<SnapshotResponse, Status>> + Send>>;

/// Deletes the temporary files of snapshots that a crash interrupted
/// (a clean stream deletes its own).
pub fn remove_stale_files(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snapshot-") && name.ends_with(".tmp") {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => tracing::info!(path = %entry.path().display(), "removed an interrupted snapshot's file"),
                Err(e) => {
                    tracing::warn!(path = %entry.path().display(), error = %e, "cannot remove an interrupted snapshot's file")
                }
            }
        }
    }
}

/// Starts a snapshot of `engine`, building the file under `dir`. Answers
/// at once: the copy is made by the stream's task (the engine snapshot is
/// taken as it starts), so a client's deadline for the response does not
/// have to cover the copy of a large store.
pub fn stream(engine: SharedEngine, dir: &Path) -> Result<SnapshotStream, Status> {
    let tmp = tempfile::Builder::new()
        .prefix("snapshot-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| Status::internal(format!("cannot create a snapshot file in {}: {e}", dir.display())))?;
    let (tx, rx) = mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        let built = tmp.reopen().map_err(backup::ExportError::from).and_then(|file| {
            let view = engine.snapshot();
            backup::write_etcd_db(&*view, file, 0, &mut |_| {})
        });
        match built {
            Ok((_, exported)) => {
                tracing::info!(
                    total_bytes = exported.size,
                    size = %timon_go::humanize_bytes(exported.size),
                    path = %tmp.path().display(),
                    "sending database snapshot to client"
                );
                send_file(tmp, exported.size, &tx);
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot write a database snapshot");
                let _ = tx.blocking_send(Err(Status::internal(e.to_string())));
            }
        }
    });
    Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
}

/// Reads the file in chunks into `tx`, hashing, then sends the digest.
/// Stops (and deletes the file, by dropping it) when the receiver is gone.
fn send_file(tmp: tempfile::NamedTempFile, total: u64, tx: &mpsc::Sender<Result<SnapshotResponse, Status>>) {
    let start = Instant::now();
    let mut file = match tmp.reopen() {
        Ok(f) => f,
        Err(e) => {
            let _ = tx.blocking_send(Err(Status::internal(e.to_string())));
            return;
        }
    };
    let _ = file.seek(SeekFrom::Start(0));
    let mut hash = Sha256::new();
    let mut sent = 0u64;
    let mut buf = vec![0u8; CHUNK_BYTES];
    while sent < total {
        let want = CHUNK_BYTES.min((total - sent) as usize);
        if let Err(e) = file.read_exact(&mut buf[..want]) {
            let _ = tx.blocking_send(Err(Status::internal(e.to_string())));
            return;
        }
        hash.update(&buf[..want]);
        sent += want as u64;
        let message = SnapshotResponse {
            header: None,
            remaining_bytes: total - sent,
            blob: buf[..want].to_vec(),
            version: String::new(),
        };
        if tx.blocking_send(Ok(message)).is_err() {
            tracing::warn!(
                sent_bytes = sent,
                total_bytes = total,
                "snapshot client went away; dropping the snapshot"
            );
            return;
        }
        if sent % PROGRESS_BYTES == 0 || sent == total {
            tracing::info!(sent_bytes = sent, total_bytes = total, "sending database snapshot");
        }
    }
    let sha = hash.finalize().to_vec();
    tracing::info!(
        total_bytes = total,
        checksum_size = sha.len(),
        "sending database sha256 checksum to client"
    );
    let last = SnapshotResponse {
        header: None,
        remaining_bytes: 0,
        blob: sha,
        version: String::new(),
    };
    if tx.blocking_send(Ok(last)).is_ok() {
        tracing::info!(
            total_bytes = total,
            size = %timon_go::humanize_bytes(total),
            took = ?start.elapsed(),
            "successfully sent database snapshot to client"
        );
    }
    drop(tmp);
}
