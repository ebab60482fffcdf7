//! Put requests (etcd's `applierV3backend.Put`).

use timon_proto::etcdserverpb::{PutRequest, PutResponse};

use super::{header, lease, EtcdError};
use crate::mvcc::{RangeOptions, ReadView, WriteTxn};

/// Writes one key. `ignore_value` / `ignore_lease` keep the current value /
/// lease and need the key to exist ([`EtcdError::KeyNotFound`]); `prev_kv`
/// returns the key as it was before this put (including earlier writes of the
/// same txn). A lease must exist ([`EtcdError::LeaseNotFound`], checked
/// first as etcd does); the key moves from its old lease to the new one.
pub fn put(txn: &mut WriteTxn<'_>, p: &PutRequest) -> Result<PutResponse, EtcdError> {
    lease::check_exists(txn.engine(), p.lease)?;
    // The previous version says which lease the key leaves. Reading it (one
    // point read, none for a new key) is cheaper than asking storage whether
    // any lease exists: revoked leases leave tombstones that such a scan
    // walks on every put.
    let prev = txn.range(&p.key, &[], RangeOptions::default())?.kvs.into_iter().next();
    let (value, lease) = match &prev {
        None if p.ignore_value || p.ignore_lease => return Err(EtcdError::KeyNotFound),
        Some(old) => (
            if p.ignore_value { &old.value } else { &p.value },
            if p.ignore_lease { old.lease } else { p.lease },
        ),
        None => (&p.value, p.lease),
    };
    let old_lease = prev.as_ref().map_or(0, |kv| kv.lease);
    let rev = txn.put(&p.key, value, lease);
    lease::reattach(txn, &p.key, old_lease, lease);
    // A planted bug (never in normal builds): answer a revision twice.
    let answered = if crate::planted::active("reuse-revision") && rev % 20 == 0 {
        rev - 1
    } else {
        rev
    };
    Ok(PutResponse {
        header: header(answered),
        prev_kv: if p.prev_kv { prev } else { None },
    })
}
