//! The lease table (etcd's `lessor`, without its clocks): which leases
//! exist, their granted TTL and the keys attached to each, kept in the
//! state machine's meta column family so it travels in snapshots.
//!
//! Layout ([`meta::LEASE`], [`meta::LEASE_KEY`]): `lease/<id>` → TTL, then
//! the remaining TTL of the last checkpoint if there is one (8 big-endian
//! bytes each), and `lease_key/<id><key>` → empty, the ID as 8 big-endian
//! bytes. A checkpoint (etcd's `LeaseCheckpoint`, proposed by the leader)
//! records how long a lease had left, so that a new leader restarts it from
//! there rather than from its full TTL; a renew clears it (remaining 0). Writes are
//! staged on the entry's [`WriteTxn`] and land in its batch; reads see the
//! table as of the previous entry (an entry never both changes the table and
//! reads its own change). Deadlines are not here: only the leader keeps them,
//! in memory (`crate::lease`).

use std::collections::BTreeMap;

use timon_proto::etcdserverpb::{
    LeaseCheckpointRequest, LeaseGrantRequest, LeaseGrantResponse, LeaseRevokeRequest, LeaseRevokeResponse,
};

use super::{header, EtcdError};
use crate::mvcc::{ReadView, WriteTxn};
use crate::storage::keys::{meta, prefix_end};
use crate::storage::{Cf, KvRead, Scan};

/// etcd's largest TTL (`lease.MaxLeaseTTL`), in seconds.
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;

fn id_bytes(id: i64) -> [u8; 8] {
    (id as u64).to_be_bytes()
}

fn lease_key(id: i64) -> Vec<u8> {
    [meta::LEASE, &id_bytes(id)].concat()
}

fn attached_prefix(id: i64) -> Vec<u8> {
    [meta::LEASE_KEY, &id_bytes(id)].concat()
}

fn attached_key(id: i64, key: &[u8]) -> Vec<u8> {
    [meta::LEASE_KEY, &id_bytes(id), key].concat()
}

fn storage(e: crate::storage::StorageError) -> EtcdError {
    EtcdError::Internal(e.to_string())
}

fn ttl_of(v: &[u8]) -> i64 {
    v.get(..8).and_then(|b| b.try_into().ok()).map_or(0, i64::from_be_bytes)
}

/// The checkpointed remaining TTL; 0 when none was recorded.
fn remaining_of(v: &[u8]) -> i64 {
    v.get(8..16)
        .and_then(|b| b.try_into().ok())
        .map_or(0, i64::from_be_bytes)
}

/// A lease record: the granted TTL, then the remaining TTL unless 0.
fn record(ttl: i64, remaining: i64) -> Vec<u8> {
    let mut v = ttl.to_be_bytes().to_vec();
    if remaining > 0 {
        v.extend_from_slice(&remaining.to_be_bytes());
    }
    v
}

/// The granted TTL of lease `id`, if it exists.
pub fn lookup(view: &dyn KvRead, id: i64) -> Result<Option<i64>, EtcdError> {
    Ok(view.get(Cf::Meta, &lease_key(id)).map_err(storage)?.map(|v| ttl_of(&v)))
}

/// The remaining TTL of lease `id`'s last checkpoint (0: none), if it exists.
pub fn checkpointed(view: &dyn KvRead, id: i64) -> Result<Option<i64>, EtcdError> {
    Ok(view
        .get(Cf::Meta, &lease_key(id))
        .map_err(storage)?
        .map(|v| remaining_of(&v)))
}

/// Every lease with `f` of its record, by ID.
fn scan_leases(view: &dyn KvRead, f: fn(&[u8]) -> i64) -> Result<BTreeMap<i64, i64>, EtcdError> {
    let mut out = BTreeMap::new();
    view.scan(Cf::Meta, meta::LEASE, Some(&prefix_end(meta::LEASE)), &mut |k, v| {
        if let Ok(id) = <[u8; 8]>::try_from(&k[meta::LEASE.len()..]) {
            out.insert(u64::from_be_bytes(id) as i64, f(v));
        }
        Scan::Continue
    })
    .map_err(storage)?;
    Ok(out)
}

/// Every lease with its granted TTL, by ID.
pub fn leases(view: &dyn KvRead) -> Result<BTreeMap<i64, i64>, EtcdError> {
    scan_leases(view, ttl_of)
}

/// Every lease with the TTL a new leader restarts it with (etcd's
/// `RemainingTTL`): the last checkpoint's remaining TTL, else the granted TTL.
pub fn remaining_ttls(view: &dyn KvRead) -> Result<BTreeMap<i64, i64>, EtcdError> {
    scan_leases(view, |v| match remaining_of(v) {
        0 => ttl_of(v),
        r => r,
    })
}

/// The keys attached to lease `id`, in key order.
pub fn keys(view: &dyn KvRead, id: i64) -> Result<Vec<Vec<u8>>, EtcdError> {
    let prefix = attached_prefix(id);
    let mut out = Vec::new();
    view.scan(Cf::Meta, &prefix, Some(&prefix_end(&prefix)), &mut |k, _| {
        out.push(k[prefix.len()..].to_vec());
        Scan::Continue
    })
    .map_err(storage)?;
    Ok(out)
}

/// A put's or txn's lease must exist (0: no lease).
pub fn check_exists(view: &dyn KvRead, id: i64) -> Result<(), EtcdError> {
    if id != 0 && lookup(view, id)?.is_none() {
        return Err(EtcdError::LeaseNotFound);
    }
    Ok(())
}

/// Moves `key`'s attachment from lease `old` to lease `new` (0: none).
pub fn reattach(txn: &mut WriteTxn<'_>, key: &[u8], old: i64, new: i64) {
    if old == new {
        return;
    }
    if old != 0 {
        txn.staged_mut().delete(Cf::Meta, attached_key(old, key));
    }
    if new != 0 {
        txn.staged_mut().put(Cf::Meta, attached_key(new, key), Vec::new());
    }
}

/// Creates lease `r.id` with TTL `r.ttl`. The proposer chose the ID and
/// raised the TTL to the minimum, so every member applies the same.
pub fn grant(txn: &mut WriteTxn<'_>, r: &LeaseGrantRequest) -> Result<LeaseGrantResponse, EtcdError> {
    if r.id == 0 {
        return Err(EtcdError::LeaseNotFound);
    }
    if r.ttl > MAX_LEASE_TTL {
        return Err(EtcdError::LeaseTtlTooLarge);
    }
    if lookup(txn.engine(), r.id)?.is_some() {
        return Err(EtcdError::LeaseExist);
    }
    txn.staged_mut().put(Cf::Meta, lease_key(r.id), record(r.ttl, 0));
    Ok(LeaseGrantResponse {
        header: header(txn.rev()),
        id: r.id,
        ttl: r.ttl,
        error: String::new(),
    })
}

/// Records the leader's remaining TTLs (etcd's lessor `Checkpoint`);
/// unknown leases are skipped (revoked since), as etcd does. Changes no
/// key and no revision.
pub fn checkpoint(txn: &mut WriteTxn<'_>, r: &LeaseCheckpointRequest) -> Result<(), EtcdError> {
    for cp in &r.checkpoints {
        if let Some(ttl) = lookup(txn.engine(), cp.id)? {
            txn.staged_mut()
                .put(Cf::Meta, lease_key(cp.id), record(ttl, cp.remaining_ttl));
        }
    }
    Ok(())
}

/// Deletes lease `r.id` and every key attached to it, all in one revision
/// (none if no key is attached).
pub fn revoke(txn: &mut WriteTxn<'_>, r: &LeaseRevokeRequest) -> Result<LeaseRevokeResponse, EtcdError> {
    if lookup(txn.engine(), r.id)?.is_none() {
        return Err(EtcdError::LeaseNotFound);
    }
    let attached = keys(txn.engine(), r.id)?;
    let mut rev = txn.rev();
    for key in &attached {
        rev = txn.delete_range(key, &[]).1;
    }
    let prefix = attached_prefix(r.id);
    let end = prefix_end(&prefix);
    txn.staged_mut().delete_range(Cf::Meta, prefix, end);
    txn.staged_mut().delete(Cf::Meta, lease_key(r.id));
    Ok(LeaseRevokeResponse { header: header(rev) })
}
