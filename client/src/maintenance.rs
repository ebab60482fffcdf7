//! Compaction, member status and snapshots.
//!
//! Compaction is a KV RPC on the wire but an operator's tool in spirit, so it
//! lives here beside Status rather than with get/put/delete.

use timon_proto::etcdserverpb::kv_client::KvClient;
use timon_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use timon_proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, SnapshotRequest, SnapshotResponse, StatusRequest, StatusResponse,
};

use crate::client::Client;
use crate::error::Result;
use crate::retry::{self, Kind};

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

// Compacting twice changes nothing more, but the second attempt would fail
// with "required revision has been compacted": treat it as a write.
await_as!(Compact => CompactionResponse, |this| async move {
    let request = this.request;
    this.client
        .call(Kind::Write, |channel| {
            let request = retry::request(request, true);
            async move { KvClient::new(channel).compact(request).await }
        })
        .await
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

    /// Starts a snapshot of the backend (etcd's format, its sha256 as the
    /// last message) from the member requests currently go to. Only the
    /// start is retried: a stream that breaks must be started again.
    pub async fn snapshot(&self) -> Result<tonic::Streaming<SnapshotResponse>> {
        self.call(Kind::Read, |channel| async move {
            MaintenanceClient::new(channel)
                .max_decoding_message_size(usize::MAX)
                .snapshot(retry::request(SnapshotRequest {}, false))
                .await
        })
        .await
    }

    /// The status (version, db size, raft state) of the member requests
    /// currently go to. Retried and failed over like any read, so after a
    /// failover it describes a different member.
    pub async fn status(&self) -> Result<StatusResponse> {
        self.call(Kind::Read, |channel| async move {
            MaintenanceClient::new(channel).status(StatusRequest {}).await
        })
        .await
    }

    /// The status of the member serving `endpoint` (`host:port` or
    /// `http://host:port`), on a connection of its own with this client's
    /// options; it need not be one of the client's endpoints. Retried on
    /// that endpoint only, never failed over to another member.
    pub async fn status_of(&self, endpoint: &str) -> Result<StatusResponse> {
        let member = Client::connect_with_options([endpoint], self.options().clone()).await?;
        member.status().await
    }
}
