//! DeleteRange requests (etcd's `applierV3backend.DeleteRange`).

use timon_proto::etcdserverpb::{DeleteRangeRequest, DeleteRangeResponse};

use super::{header, lease, EtcdError};
use crate::mvcc::{RangeOptions, ReadView, WriteTxn};

/// Deletes the keys of `[key, range_end)`. The header revision is the new
/// revision if anything in the txn changed so far, else the current one (a
/// delete of nothing does not raise the revision). Deleted keys leave
/// their leases, so each deleted key's metadata is read (its value only
/// for `prev_kv`), as etcd looks each one up in its lessor. (Asking storage
/// first whether any lease exists at all cost a scan over the tombstones
/// every revoked lease leaves until compaction.)
pub fn delete_range(txn: &mut WriteTxn<'_>, d: &DeleteRangeRequest) -> Result<DeleteRangeResponse, EtcdError> {
    let opts = RangeOptions {
        keys_only: !d.prev_kv,
        ..RangeOptions::default()
    };
    let mut prev_kvs = txn.range(&d.key, &d.range_end, opts)?.kvs;
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
