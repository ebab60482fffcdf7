//! DeleteRange requests (etcd's `applierV3backend.DeleteRange`).

use timon_proto::etcdserverpb::{DeleteRangeRequest, DeleteRangeResponse};

use super::{header, lease, EtcdError};
use crate::mvcc::{RangeOptions, ReadView, WriteTxn};

/// Deletes the keys of `[key, range_end)`. The header revision is the new
/// revision if anything in the txn changed so far, else the current one (a
/// delete of nothing does not raise the revision). Deleted keys leave
/// their leases.
pub fn delete_range(txn: &mut WriteTxn<'_>, d: &DeleteRangeRequest) -> Result<DeleteRangeResponse, EtcdError> {
    let leases = lease::any(txn.engine())?;
    let mut prev_kvs = if d.prev_kv || leases {
        txn.range(&d.key, &d.range_end, RangeOptions::default())?.kvs
    } else {
        Vec::new()
    };
    let (deleted, rev) = txn.delete_range(&d.key, &d.range_end);
    for kv in prev_kvs.iter().filter(|kv| kv.lease != 0) {
        lease::reattach(txn, &kv.key, kv.lease, 0);
    }
    if !d.prev_kv {
        prev_kvs.clear();
    }
    Ok(DeleteRangeResponse {
        header: header(rev),
        deleted,
        prev_kvs,
    })
}
