//! Compaction and member status.
//!
//! Compaction is a KV RPC on the wire but an operator's tool in spirit, so it
//! lives here beside Status rather than with get/put/delete.

use timon_proto::etcdserverpb::{CompactionRequest, CompactionResponse, StatusRequest, StatusResponse};

use crate::client::Client;
use crate::error::Result;

/// An awaitable Compact request.
#[derive(Debug, Clone)]
#[must_use = "a request does nothing until awaited"]
pub struct Compact {
    client: Client,
    request: CompactionRequest,
}

impl Compact {
    /// Waits until the compaction has physically removed old revisions from
    /// the contacted member's backend, not only until it is accepted.
    pub fn physical(mut self) -> Self {
        self.request.physical = true;
        self
    }
}

await_as!(Compact => CompactionResponse, |this| async move {
    let response = this.client.kv_client().compact(this.request).await?;
    Result::Ok(response.into_inner())
});

impl Client {
    /// Discards history below `revision`; add `.physical()`, then `.await`.
    pub fn compact(&self, revision: i64) -> Compact {
        Compact {
            client: self.clone(),
            request: CompactionRequest {
                revision,
                physical: false,
            },
        }
    }

    /// The connected member's status: version, db size, raft state.
    pub async fn status(&self) -> Result<StatusResponse> {
        let response = self.maintenance_client().status(StatusRequest {}).await?;
        Ok(response.into_inner())
    }
}
