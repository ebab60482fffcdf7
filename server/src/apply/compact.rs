//! Compaction requests (etcd's `applierV3backend.Compaction`).

use timon_proto::etcdserverpb::{CompactionRequest, CompactionResponse};

use super::{header, EtcdError};
use crate::mvcc::{ReadView, WriteTxn};

/// Compacts the store at `req.revision`: reads below it are refused once
/// the txn commits; storage is compacted in the background. The response
/// carries the current revision; compaction itself does not raise it.
/// `physical` is the caller's to wait for (`MvccStore::compacted`).
pub fn compact(txn: &mut WriteTxn<'_>, req: &CompactionRequest) -> Result<CompactionResponse, EtcdError> {
    txn.compact(req.revision)?;
    Ok(CompactionResponse {
        header: header(txn.rev()),
    })
}
