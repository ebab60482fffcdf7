//! DeleteRange requests (etcd's `applierV3backend.DeleteRange`).

use timon_proto::etcdserverpb::{DeleteRangeRequest, DeleteRangeResponse};

use super::{header, EtcdError};
use crate::mvcc::{RangeOptions, ReadView, WriteTxn};

/// Deletes the keys of `[key, range_end)`. The header revision is the new
/// revision if anything in the txn changed so far, else the current one (a
/// delete of nothing does not raise the revision).
pub fn delete_range(txn: &mut WriteTxn<'_>, d: &DeleteRangeRequest) -> Result<DeleteRangeResponse, EtcdError> {
    let prev_kvs = if d.prev_kv {
        txn.range(&d.key, &d.range_end, RangeOptions::default())?.kvs
    } else {
        Vec::new()
    };
    let (deleted, rev) = txn.delete_range(&d.key, &d.range_end);
    Ok(DeleteRangeResponse {
        header: header(rev),
        deleted,
        prev_kvs,
    })
}
