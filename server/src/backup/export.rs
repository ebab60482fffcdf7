//! timon's state machine as an etcd backend file: what `Maintenance.Snapshot`
//! streams. Read from one consistent engine view (a RocksDB snapshot), so
//! the file is a point-in-time copy while writes go on; written through
//! [`BoltWriter`], so memory does not grow with the store.
//!
//! Mapping (timon meta key → etcd bucket): the `Kv` column family → `key`
//! (same bytes); `lease/` → `lease` (`leasepb.Lease`); `auth_enabled`,
//! `auth_revision` → `auth`; `auth_user/`, `auth_role/` → `authUsers`,
//! `authRoles`; `removed/` → `members_removed`; the applied log id →
//! `meta`'s `consistent_index` and `term`; `compact_rev` and
//! `finished_compact_rev` → `meta`'s `scheduledCompactRev` and
//! `finishedCompactRev`; `alarm/` → `alarm`.
//! `members` and `cluster` are written empty: a restore builds a new
//! cluster's membership.

use std::fs::File;

use prost::Message;

use super::bolt_write::{BoltWriter, BucketWriter};
use super::etcd_schema::{self as etcd, Lease};
use crate::mvcc::Revision;
use crate::storage::keys::meta;
use crate::storage::{try_scan, Cf, KvRead, Scan, StorageError};

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("writing snapshot: {0}")]
    Io(#[from] std::io::Error),
}

/// What an export wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exported {
    /// Bytes of the bbolt file (without the sha256 a stream appends).
    pub size: u64,
    /// Keys in the `key` bucket (revisions).
    pub revisions: u64,
}

fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    end
}

/// Copies the keys of `cf` in `[prefix, prefix_end)` into `bucket`, mapped
/// by `f` (key without the prefix, value) → the bucket's key and value.
fn copy_prefix(
    view: &dyn KvRead,
    prefix: &[u8],
    bucket: &mut BucketWriter<'_>,
    f: &dyn Fn(&[u8], &[u8]) -> Option<(Vec<u8>, Vec<u8>)>,
) -> Result<u64, ExportError> {
    let mut n = 0;
    try_scan(view, Cf::Meta, prefix, Some(&prefix_end(prefix)), &mut |k, v| {
        if let Some((key, value)) = f(&k[prefix.len()..], v) {
            bucket.put(&key, &value)?;
            n += 1;
        }
        Ok::<_, ExportError>(())
    })?;
    Ok(n)
}

fn i64_of(v: &[u8]) -> i64 {
    v.get(..8).and_then(|b| b.try_into().ok()).map_or(0, i64::from_be_bytes)
}

/// The applied log id's index and term, from its JSON in the meta CF.
fn applied(view: &dyn KvRead) -> Result<(u64, u64), StorageError> {
    let Some(raw) = view.get(Cf::Meta, meta::APPLIED)? else {
        return Ok((0, 0));
    };
    let id: serde_json::Value =
        serde_json::from_slice(&raw).map_err(|e| StorageError(format!("corrupt applied log id: {e}")))?;
    let index = id["index"].as_u64().unwrap_or(0);
    let term = id["leader_id"]["term"].as_u64().unwrap_or(0);
    Ok((index, term))
}

/// Writes the state machine in `view` as an etcd backend into `file`;
/// `progress` is called with the revisions written so far, every `every`.
pub fn write_etcd_db(
    view: &dyn KvRead,
    file: File,
    every: u64,
    progress: &mut dyn FnMut(u64),
) -> Result<(File, Exported), ExportError> {
    let mut db = BoltWriter::new(file)?;
    // Active alarms: etcd's key is the AlarmMember's bytes, as timon's.
    let mut bucket = db.bucket(etcd::ALARM);
    copy_prefix(view, meta::ALARM, &mut bucket, &|k, v| Some((k.to_vec(), v.to_vec())))?;
    bucket.finish()?;
    for name in [etcd::CLUSTER, etcd::MEMBERS] {
        db.bucket(name).finish()?;
    }

    let mut revisions = 0u64;
    {
        let mut bucket = db.bucket(etcd::KEY);
        try_scan(view, Cf::Kv, &[], None, &mut |k, v| {
            bucket.put(k, v)?;
            revisions += 1;
            if every > 0 && revisions.is_multiple_of(every) {
                progress(revisions);
            }
            Ok::<_, ExportError>(())
        })?;
        bucket.finish()?;
    }

    let mut bucket = db.bucket(etcd::LEASE);
    copy_prefix(view, meta::LEASE, &mut bucket, &|id, v| {
        let id_bytes: [u8; 8] = id.try_into().ok()?;
        let lease = Lease {
            id: i64::from_be_bytes(id_bytes),
            ttl: i64_of(v),
            remaining_ttl: v.get(8..).map_or(0, i64_of),
        };
        Some((id.to_vec(), lease.encode_to_vec()))
    })?;
    bucket.finish()?;

    let mut bucket = db.bucket(etcd::AUTH);
    let enabled = view.get(Cf::Meta, meta::AUTH_ENABLED)?.unwrap_or_else(|| vec![0]);
    bucket.put(etcd::AUTH_ENABLED, &enabled)?;
    let revision = view
        .get(Cf::Meta, meta::AUTH_REVISION)?
        .unwrap_or_else(|| 1u64.to_be_bytes().to_vec());
    bucket.put(etcd::AUTH_REVISION, &revision)?;
    bucket.finish()?;

    for (prefix, name) in [(meta::AUTH_ROLE, etcd::AUTH_ROLES), (meta::AUTH_USER, etcd::AUTH_USERS)] {
        let mut bucket = db.bucket(name);
        copy_prefix(view, prefix, &mut bucket, &|k, v| Some((k.to_vec(), v.to_vec())))?;
        bucket.finish()?;
    }

    let mut bucket = db.bucket(etcd::MEMBERS_REMOVED);
    // etcd keys removed members by their ID in hex (`types.ID.String`).
    let mut removed: Vec<Vec<u8>> = Vec::new();
    view.scan(
        Cf::Meta,
        meta::REMOVED,
        Some(&prefix_end(meta::REMOVED)),
        &mut |k, _| {
            if let Ok(id) = <[u8; 8]>::try_from(&k[meta::REMOVED.len()..]) {
                removed.push(format!("{:x}", u64::from_be_bytes(id)).into_bytes());
            }
            Scan::Continue
        },
    )?;
    removed.sort();
    for id in removed {
        bucket.put(&id, b"removed")?;
    }
    bucket.finish()?;

    let (index, term) = applied(view)?;
    let scheduled = view.get(Cf::Meta, meta::COMPACT_REV)?.map(|v| i64_of(&v));
    // A compaction still deleting in the background: etcd finishes it when
    // it opens the file, as timon would.
    let finished = match view.get(Cf::Meta, meta::FINISHED_COMPACT_REV)? {
        Some(v) => Some(i64_of(&v)),
        None => scheduled,
    };
    let mut bucket = db.bucket(etcd::META);
    bucket.put(etcd::CONSISTENT_INDEX, &index.to_be_bytes())?;
    if let Some(rev) = finished.filter(|r| *r > 0) {
        bucket.put(etcd::FINISHED_COMPACT_REV, &Revision::new(rev, 0).to_bytes())?;
    }
    if let Some(rev) = scheduled.filter(|r| *r > 0) {
        bucket.put(etcd::SCHEDULED_COMPACT_REV, &Revision::new(rev, 0).to_bytes())?;
    }
    bucket.put(etcd::TERM, &term.to_be_bytes())?;
    bucket.finish()?;

    let (file, size) = db.finish()?;
    Ok((file, Exported { size, revisions }))
}
