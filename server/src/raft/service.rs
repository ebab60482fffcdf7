//! The peer transport, server side: the `timonpb.Peer` gRPC service on
//! `--listen-peer-urls`. It hands openraft's RPCs to the local raft and, on
//! the leader, runs what followers forward: proposals, read-index requests,
//! membership changes, lease renewals and lease time-to-live questions.
//!
//! Answers carry the serialized `Result` of the local call, so a raft error
//! on this member reaches the caller's openraft as a remote error.

use std::sync::Arc;

use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use serde::Serialize;
use timon_proto::etcdserverpb::{HashKvRequest, HashKvResponse, LeaseKeepAliveRequest, LeaseTimeToLiveRequest};
use timon_proto::timonpb::peer_server::Peer;
use timon_proto::timonpb::{
    ClusterInfoRequest, ClusterInfoResponse, InternalRaftRequest, PeerMember, RaftMessage, ReadIndexRequest,
    ReadIndexResponse,
};
use tonic::{Request, Response, Status};

use super::membership::MembershipChange;
use super::network::{decode, encode, REMOVED_MESSAGE};
use super::node::RaftNode;
use super::state_machine::is_removed;
use super::transfer::TimeoutNow;
use super::types::TypeConfig;
use super::ProposeError;

pub struct PeerService {
    node: Arc<RaftNode>,
    cluster_id: u64,
}

impl PeerService {
    pub fn new(node: Arc<RaftNode>, cluster_id: u64) -> Self {
        Self { node, cluster_id }
    }
}

impl PeerService {
    /// A removed member must not disturb the cluster: tell it, and it stops.
    fn refuse_removed(&self, sender: Option<u64>) -> Result<(), Status> {
        match sender {
            Some(id) if is_removed(self.node.store().engine().as_ref(), id) => {
                Err(Status::permission_denied(REMOVED_MESSAGE))
            }
            _ => Ok(()),
        }
    }
}

fn bad_message(e: bincode::Error) -> Status {
    Status::invalid_argument(format!("malformed raft message: {e}"))
}

fn answer<T: Serialize>(v: &T) -> Result<Response<RaftMessage>, Status> {
    encode(v)
        .map(Response::new)
        .map_err(|e| Status::internal(format!("cannot encode answer: {e}")))
}

/// The status a leader answers a read-index request with, and its inverse.
fn propose_error_status(e: &ProposeError) -> Status {
    match e {
        ProposeError::NotLeader | ProposeError::LeaderChanged => Status::failed_precondition("leader changed"),
        ProposeError::NoLeader => Status::unavailable("no leader"),
        ProposeError::Timeout | ProposeError::AppliedIndexTimeout => Status::deadline_exceeded("request timed out"),
        ProposeError::Stopped => Status::aborted("server stopped"),
    }
}

/// Reads a leader's read-index failure back into a [`ProposeError`].
pub fn propose_error_from_status(s: &Status) -> ProposeError {
    match s.code() {
        tonic::Code::FailedPrecondition => ProposeError::LeaderChanged,
        tonic::Code::DeadlineExceeded => ProposeError::Timeout,
        tonic::Code::Aborted => ProposeError::Stopped,
        // The leader could not be reached: it is gone or partitioned.
        _ => ProposeError::LeaderChanged,
    }
}

#[tonic::async_trait]
impl Peer for PeerService {
    async fn append_entries(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let req: AppendEntriesRequest<TypeConfig> = decode(request.get_ref()).map_err(bad_message)?;
        self.refuse_removed(req.vote.leader_id().voted_for())?;
        answer(&self.node.raft().append_entries(req).await)
    }

    async fn vote(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let req: VoteRequest<u64> = decode(request.get_ref()).map_err(bad_message)?;
        self.refuse_removed(req.vote.leader_id().voted_for())?;
        answer(&self.node.raft().vote(req).await)
    }

    async fn install_snapshot(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let req: InstallSnapshotRequest<TypeConfig> = decode(request.get_ref()).map_err(bad_message)?;
        answer(&self.node.raft().install_snapshot(req).await)
    }

    async fn timeout_now(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let msg: TimeoutNow = decode(request.get_ref()).map_err(bad_message)?;
        self.node.handle_timeout_now(msg).await;
        answer(&())
    }

    async fn propose(&self, request: Request<InternalRaftRequest>) -> Result<Response<RaftMessage>, Status> {
        answer(&self.node.propose_local(request.into_inner()).await)
    }

    async fn read_index(&self, _request: Request<ReadIndexRequest>) -> Result<Response<ReadIndexResponse>, Status> {
        match self.node.local_read_index().await {
            Ok(index) => Ok(Response::new(ReadIndexResponse { index })),
            Err(e) => Err(propose_error_status(&e)),
        }
    }

    async fn cluster_info(
        &self,
        _request: Request<ClusterInfoRequest>,
    ) -> Result<Response<ClusterInfoResponse>, Status> {
        let members = self
            .node
            .members()
            .into_iter()
            .map(|m| PeerMember {
                id: m.id,
                peer_urls: m.member.peer_urls,
            })
            .collect();
        Ok(Response::new(ClusterInfoResponse {
            cluster_id: self.cluster_id,
            members,
        }))
    }

    async fn change_membership(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let change: MembershipChange = decode(request.get_ref()).map_err(bad_message)?;
        answer(&self.node.change_local(change).await)
    }

    async fn lease_renew(&self, request: Request<LeaseKeepAliveRequest>) -> Result<Response<RaftMessage>, Status> {
        answer(&self.node.local_lease_renew(request.get_ref().id).await)
    }

    async fn hash_kv(&self, request: Request<HashKvRequest>) -> Result<Response<HashKvResponse>, Status> {
        let rev = request.get_ref().revision;
        self.node.local_hash_kv(rev, self.cluster_id).await.map(Response::new)
    }

    async fn lease_time_to_live(
        &self,
        request: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<RaftMessage>, Status> {
        answer(&self.node.local_lease_time_to_live(request.get_ref()).await)
    }
}
