//! Replacing the state machine's column families with a snapshot, with
//! bounded memory and crash safety (DESIGN.md invariant 3: a crash never
//! leaves a half-applied state).
//!
//! The snapshot file is durable in the snapshot directory before anything
//! is touched (`SnapshotStore::adopt`). Then:
//! 1. one synced batch writes the [`meta::INSTALLING`] marker (holding the
//!    snapshot's meta) and deletes the column families' contents;
//! 2. the snapshot's records are written in batches of about
//!    [`BATCH_BYTES`] (unsynced: the WAL keeps them in order after 1);
//! 3. one synced batch writes the applied log id and membership and deletes
//!    the marker.
//!
//! A crash after 1 leaves the marker; [`resume`], which
//! `StateMachine::open` runs before anything reads the state machine, redoes
//! the whole install from the snapshot file.

use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};

use super::snapshot::{self, Decoder};
use super::snapshot_store::SnapshotStore;
use super::types::{sm_read, sm_write, snapshot_read, SnapshotMeta, StorageError};
use crate::storage::keys::meta;
use crate::storage::{Cf, Engine, WriteBatch};

/// Bytes of keys and values per write batch while installing.
pub const BATCH_BYTES: usize = 4 << 20;

/// Keys at or above this bound do not exist in the state machine's column
/// families: revisions start with a big-endian i64 and meta keys are ASCII.
const END_OF_CF: [u8; 32] = [0xff; 32];

/// Replaces the state machine with the snapshot `meta` whose data is `data`
/// (already checked with [`snapshot::verify`] and durable in the snapshot
/// directory).
pub fn install(engine: &dyn Engine, meta: &SnapshotMeta, data: File) -> Result<(), StorageError> {
    begin(engine, meta)?;
    write_records(engine, meta, data)?;
    finish(engine, meta)
}

/// Completes an install that a crash interrupted, from the snapshot file in
/// `snapshots`; answers whether there was one.
pub fn resume(engine: &dyn Engine, snapshots: &SnapshotStore) -> Result<bool, StorageError> {
    let Some(raw) = engine.get(Cf::Meta, meta::INSTALLING).map_err(sm_read)? else {
        return Ok(false);
    };
    let meta: SnapshotMeta = serde_json::from_slice(&raw).map_err(sm_read)?;
    tracing::warn!(
        "completing the install of snapshot {} that a crash interrupted",
        meta.snapshot_id
    );
    let mut data = snapshots
        .open_data(&meta.snapshot_id)
        .map_err(|e| snapshot_read(Some(&meta), e))?;
    snapshot::verify(BufReader::new(&mut data)).map_err(|e| snapshot_read(Some(&meta), e))?;
    data.seek(SeekFrom::Start(0))
        .map_err(|e| snapshot_read(Some(&meta), e))?;
    install(engine, &meta, data)?;
    Ok(true)
}

/// Step 1: the marker, and every state-machine key but the marker deleted.
pub(super) fn begin(engine: &dyn Engine, meta: &SnapshotMeta) -> Result<(), StorageError> {
    let mut batch = WriteBatch::new();
    batch.put(
        Cf::Meta,
        meta::INSTALLING.to_vec(),
        serde_json::to_vec(meta).map_err(sm_write)?,
    );
    batch.delete_range(Cf::Kv, Vec::new(), END_OF_CF.to_vec());
    batch.delete_range(Cf::Meta, Vec::new(), meta::INSTALLING.to_vec());
    let mut after_marker = meta::INSTALLING.to_vec();
    after_marker.push(0);
    batch.delete_range(Cf::Meta, after_marker, END_OF_CF.to_vec());
    engine.write(batch, true).map_err(sm_write)
}

/// Step 2: the snapshot's records, in bounded batches.
fn write_records(engine: &dyn Engine, meta: &SnapshotMeta, data: File) -> Result<(), StorageError> {
    let bad = |e| snapshot_read(Some(meta), e);
    let mut records = Decoder::new(BufReader::new(data)).map_err(bad)?;
    let mut batch = WriteBatch::new();
    let mut bytes = 0;
    while let Some(r) = records.next_record().map_err(bad)? {
        if r.cf == Cf::Meta && r.key == meta::INSTALLING {
            // Local bookkeeping never travels; ignore it if it did.
            continue;
        }
        bytes += r.key.len() + r.value.len();
        batch.put(r.cf, r.key, r.value);
        if bytes >= BATCH_BYTES {
            engine.write(std::mem::take(&mut batch), false).map_err(sm_write)?;
            bytes = 0;
        }
    }
    if !batch.is_empty() {
        engine.write(batch, false).map_err(sm_write)?;
    }
    Ok(())
}

/// Step 3: the applied log id and membership, and the marker removed.
fn finish(engine: &dyn Engine, meta: &SnapshotMeta) -> Result<(), StorageError> {
    let mut batch = WriteBatch::new();
    match &meta.last_log_id {
        Some(id) => batch.put(
            Cf::Meta,
            meta::APPLIED.to_vec(),
            serde_json::to_vec(id).map_err(sm_write)?,
        ),
        None => batch.delete(Cf::Meta, meta::APPLIED.to_vec()),
    }
    batch.put(
        Cf::Meta,
        meta::MEMBERSHIP.to_vec(),
        serde_json::to_vec(&meta.last_membership).map_err(sm_write)?,
    );
    batch.delete(Cf::Meta, meta::INSTALLING.to_vec());
    engine.write(batch, true).map_err(sm_write)
}
