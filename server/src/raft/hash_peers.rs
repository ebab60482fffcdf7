//! Asking every other member for its HashKV over the peer service, for the
//! corruption checks (`crate::corrupt`), and answering such a question.

use std::time::Duration;

use timon_proto::etcdserverpb::{HashKvRequest, HashKvResponse, ResponseHeader};
use tonic::Status;

use super::node::RaftNode;
use crate::mvcc::MvccError;

/// One peer's answer.
#[derive(Debug)]
pub struct PeerHash {
    pub id: u64,
    pub peer_urls: Vec<String>,
    pub answer: Result<HashKvResponse, Status>,
}

impl PeerHash {
    /// Whether the peer refused because `rev` is compacted on it.
    pub fn compacted(&self) -> bool {
        matches!(&self.answer, Err(s) if s.message() == MvccError::Compacted.to_string())
    }

    /// Whether the peer refused because it has not reached `rev` yet.
    pub fn future_rev(&self) -> bool {
        matches!(&self.answer, Err(s) if s.message() == MvccError::FutureRev.to_string())
    }
}

impl RaftNode {
    /// Every other member's HashKV at `rev`, each asked at once and given
    /// `timeout` (etcd's request timeout) to answer.
    pub async fn peer_hash_kvs(&self, rev: i64, timeout: Duration) -> Vec<PeerHash> {
        let asks = self
            .members()
            .into_iter()
            .filter(|m| m.id != self.id)
            .map(|m| async move {
                let answer = match self.peers.client(m.id, &m.member) {
                    Ok(mut client) => {
                        match tokio::time::timeout(timeout, client.hash_kv(HashKvRequest { revision: rev })).await {
                            Ok(Ok(r)) => Ok(r.into_inner()),
                            Ok(Err(s)) => Err(s),
                            Err(_) => Err(Status::deadline_exceeded("no answer within the request timeout")),
                        }
                    }
                    Err(e) => Err(Status::unavailable(e.to_string())),
                };
                PeerHash {
                    id: m.id,
                    peer_urls: m.member.peer_urls.clone(),
                    answer,
                }
            });
        futures::future::join_all(asks).await
    }

    /// This member's HashKV at `rev`, answered to a peer.
    pub async fn local_hash_kv(&self, rev: i64, cluster_id: u64) -> Result<HashKvResponse, Status> {
        let store = self.store();
        let h = tokio::task::spawn_blocking(move || store.hash_kv(rev))
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        match h {
            Ok(h) => Ok(HashKvResponse {
                header: Some(ResponseHeader {
                    cluster_id,
                    member_id: self.id,
                    revision: h.current_rev,
                    raft_term: self.status().term,
                }),
                hash: h.hash,
                compact_revision: h.compact_rev,
                hash_revision: h.hash_rev,
            }),
            Err(e @ (MvccError::Compacted | MvccError::FutureRev)) => Err(Status::out_of_range(e.to_string())),
            Err(e) => Err(Status::internal(e.to_string())),
        }
    }
}
