//! Compaction requests (etcd's `applierV3backend.Compaction`).

use timon_proto::etcdserverpb::{CompactionRequest, CompactionResponse};

use super::{header, EtcdError};
use crate::mvcc::{ReadView, WriteTxn};

/// Compacts the store at `req.revision`. The response carries the current
/// revision; compaction itself does not raise it. `physical` needs no
/// waiting: the compaction is written in the txn's own batch.
pub fn compact(txn: &mut WriteTxn<'_>, req: &CompactionRequest) -> Result<CompactionResponse, EtcdError> {
    txn.compact(req.revision)?;
    Ok(CompactionResponse {
        header: header(txn.rev()),
    })
}
