//! The peer transport, server side: the `timonpb.Peer` gRPC service on
//! `--listen-peer-urls`. It hands openraft's RPCs to the local raft and, on
//! the leader, runs what followers forward: proposals, read-index requests,
//! membership changes, lease renewals and lease time-to-live questions.
//!
//! Answers carry the serialized `Result` of the local call, so a raft error
//! on this member reaches the caller's openraft as a remote error.
//!
//! Every call is admitted first, as etcd's rafthttp does:
//! an `X-Etcd-Cluster-ID` header naming another cluster (or unreadable) is
//! refused with etcd's "cluster ID mismatch" (FailedPrecondition), and a
//! sender (the `X-Server-From` header, or the member a raft message says
//! it comes from) that is not in this member's membership with etcd's
//! "error sender not found" (NotFound); both are logged. A call without
//! the headers (a timon from before they existed, during a rolling
//! upgrade) is judged by the sender its raft message names, if any. A
//! member that has no membership yet (joining, before the leader's first
//! entries) admits any sender of its cluster. A member whose membership is
//! behind the cluster's asks its peers about an unknown sender and admits
//! it once one of them names it as a member ([`super::vouch`]).

use std::sync::Arc;

use futures::stream::BoxStream;
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use serde::Serialize;
use timon_proto::etcdserverpb::{HashKvRequest, HashKvResponse, LeaseKeepAliveRequest, LeaseTimeToLiveRequest};
use timon_proto::timonpb::peer_server::Peer;
use timon_proto::timonpb::{
    Batch, ClusterInfoRequest, ClusterInfoResponse, InternalRaftRequest, PeerMember, RaftMessage, ReadIndexRequest,
    ReadIndexResponse,
};
use tokio::sync::watch;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status, Streaming};

use super::membership::MembershipChange;
use super::network::{decode, encode, CLUSTER_ID_HEADER, FROM_HEADER, REMOVED_MESSAGE};
use super::node::RaftNode;
use super::state_machine::is_removed;
use super::transfer::TimeoutNow;
use super::types::TypeConfig;
use super::vouch::Vouched;

#[derive(Clone)]
pub struct PeerService {
    node: Arc<RaftNode>,
    cluster_id: u64,
    vouched: Arc<Vouched>,
    /// Becomes true when the member stops: append streams end then, or the
    /// server's graceful shutdown would wait for them forever.
    stop: watch::Receiver<bool>,
}

impl PeerService {
    pub fn new(node: Arc<RaftNode>, cluster_id: u64, stop: watch::Receiver<bool>) -> Self {
        Self {
            node,
            cluster_id,
            vouched: Vouched::new(),
            stop,
        }
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

    /// The first half of admission (see the module doc): refuses another
    /// cluster's ID; answers the sender the `X-Server-From` header names.
    fn check_headers(&self, meta: &MetadataMap) -> Result<Option<u64>, Status> {
        let hex = |name: &str| {
            meta.get(name)
                .map(|v| v.to_str().ok().and_then(|s| u64::from_str_radix(s, 16).ok()).ok_or(v))
        };
        match hex(CLUSTER_ID_HEADER) {
            None => {}
            Some(Ok(id)) if id == self.cluster_id => {}
            Some(other) => {
                let remote = match other {
                    Ok(id) => format!("{id:x}"),
                    Err(raw) => format!("{raw:?}"),
                };
                tracing::warn!(
                    { "local-member-id" = %format!("{:x}", self.node.id()),
                    "local-member-cluster-id" = %format!("{:x}", self.cluster_id),
                    "remote-peer-cluster-id" = %remote },
                    "request cluster ID mismatch"
                );
                return Err(Status::failed_precondition("cluster ID mismatch"));
            }
        }
        match hex(FROM_HEADER) {
            None => Ok(None),
            Some(Ok(id)) => Ok(Some(id)),
            Some(Err(raw)) => {
                tracing::warn!(
                    { "local-member-id" = %format!("{:x}", self.node.id()), "remote-peer-id" = ?raw },
                    "failed to parse the sender's member ID"
                );
                Err(Status::invalid_argument("malformed X-Server-From"))
            }
        }
    }

    /// The second half: refuses a removed sender, or one missing from this
    /// member's membership (unless it has none yet) that no peer vouched
    /// for; such a sender makes this member ask its peers.
    fn check_sender(&self, id: u64) -> Result<(), Status> {
        self.refuse_removed(Some(id))?;
        let membership = self.node.raft().metrics().borrow().membership_config.clone();
        let joining = membership.membership().nodes().next().is_none();
        if !joining && !membership.membership().nodes().any(|(n, _)| *n == id) {
            if self.vouched.contains(id) {
                return Ok(());
            }
            let peer_urls = membership
                .membership()
                .nodes()
                .filter(|(n, _)| **n != self.node.id())
                .flat_map(|(_, m)| m.peer_urls.iter().cloned())
                .collect();
            self.vouched
                .ask(self.node.peers.dialer().clone(), self.cluster_id, peer_urls);
            tracing::warn!(
                { "local-member-id" = %format!("{:x}", self.node.id()),
                "remote-peer-id" = %format!("{id:x}"),
                "cluster-id" = %format!("{:x}", self.cluster_id) },
                "failed to find remote peer in cluster"
            );
            return Err(Status::not_found("error sender not found"));
        }
        Ok(())
    }

    /// Admits a call by its headers, before its body is decoded; answers
    /// the sender they name.
    fn admit(&self, meta: &MetadataMap) -> Result<Option<u64>, Status> {
        let from = self.check_headers(meta)?;
        if let Some(id) = from {
            self.check_sender(id)?;
        }
        Ok(from)
    }

    /// Admits the sender a raft message names, unless the headers named
    /// (and admitted) the same one.
    fn admit_claimed(&self, from: Option<u64>, claimed: Option<u64>) -> Result<(), Status> {
        match claimed {
            Some(id) if Some(id) != from => self.check_sender(id),
            _ => Ok(()),
        }
    }
}

impl PeerService {
    /// One AppendEntries, on its own or on a stream whose headers named
    /// `from`: admits the sender again (it may have been removed since)
    /// and the one the request names, then hands it to openraft.
    async fn append_one(&self, from: Option<u64>, msg: &RaftMessage) -> Result<RaftMessage, Status> {
        if let Some(id) = from {
            self.check_sender(id)?;
        }
        let req: AppendEntriesRequest<TypeConfig> = decode(msg).map_err(bad_message)?;
        self.admit_claimed(from, req.vote.leader_id().voted_for())?;
        answer(&self.node.raft().append_entries(req).await).map(Response::into_inner)
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

#[tonic::async_trait]
impl Peer for PeerService {
    async fn append_entries(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let from = self.check_headers(request.metadata())?;
        self.append_one(from, request.get_ref()).await.map(Response::new)
    }

    type AppendStreamStream = BoxStream<'static, Result<RaftMessage, Status>>;

    async fn append_stream(
        &self,
        request: Request<Streaming<RaftMessage>>,
    ) -> Result<Response<Self::AppendStreamStream>, Status> {
        let from = self.admit(request.metadata())?;
        // Each request is read, run and answered before the next is read:
        // the answers are the requests' in order, with no task of their own.
        // A refusal is the stream's last item; the sender ending its half
        // (or going away), or this member stopping, ends it too.
        let state = Some((self.clone(), request.into_inner()));
        let answers = futures::stream::unfold(state, move |state| async move {
            let (mut service, mut requests) = state?;
            let msg = tokio::select! {
                msg = requests.message() => msg.ok().flatten()?,
                _ = service.stop.wait_for(|stopped| *stopped) => return None,
            };
            match service.append_one(from, &msg).await {
                Ok(answer) => Some((Ok(answer), Some((service, requests)))),
                Err(refused) => Some((Err(refused), None)),
            }
        });
        Ok(Response::new(Box::pin(answers)))
    }

    async fn vote(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let from = self.admit(request.metadata())?;
        let req: VoteRequest<u64> = decode(request.get_ref()).map_err(bad_message)?;
        self.admit_claimed(from, req.vote.leader_id().voted_for())?;
        answer(&self.node.raft().vote(req).await)
    }

    async fn install_snapshot(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let from = self.admit(request.metadata())?;
        let req: InstallSnapshotRequest<TypeConfig> = decode(request.get_ref()).map_err(bad_message)?;
        self.admit_claimed(from, req.vote.leader_id().voted_for())?;
        answer(&self.node.raft().install_snapshot(req).await)
    }

    async fn timeout_now(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let from = self.admit(request.metadata())?;
        let msg: TimeoutNow = decode(request.get_ref()).map_err(bad_message)?;
        self.admit_claimed(from, msg.from.leader_id().voted_for())?;
        self.node.handle_timeout_now(msg).await;
        answer(&())
    }

    async fn propose(&self, request: Request<InternalRaftRequest>) -> Result<Response<RaftMessage>, Status> {
        self.admit(request.metadata())?;
        answer(&self.node.propose_local(request.into_inner()).await)
    }

    async fn propose_many(&self, request: Request<Batch>) -> Result<Response<RaftMessage>, Status> {
        self.admit(request.metadata())?;
        // Proposed concurrently, so they queue together and usually share
        // one entry (`propose_batch`); answered in the order they came.
        let each = request
            .into_inner()
            .requests
            .into_iter()
            .map(|req| self.node.propose_local(req));
        answer(&futures::future::join_all(each).await)
    }

    async fn read_index(&self, request: Request<ReadIndexRequest>) -> Result<Response<ReadIndexResponse>, Status> {
        self.admit(request.metadata())?;
        match self.node.local_read_index().await {
            Ok(index) => Ok(Response::new(ReadIndexResponse { index })),
            Err(e) => Err(e.to_status()),
        }
    }

    async fn cluster_info(
        &self,
        request: Request<ClusterInfoRequest>,
    ) -> Result<Response<ClusterInfoResponse>, Status> {
        // A joining member asks before it knows its cluster: it sends no
        // headers, and a call without them is admitted.
        self.admit(request.metadata())?;
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
        self.admit(request.metadata())?;
        let change: MembershipChange = decode(request.get_ref()).map_err(bad_message)?;
        answer(&self.node.change_local(change).await)
    }

    async fn lease_renew(&self, request: Request<LeaseKeepAliveRequest>) -> Result<Response<RaftMessage>, Status> {
        self.admit(request.metadata())?;
        answer(&self.node.local_lease_renew(request.get_ref().id).await)
    }

    async fn hash_kv(&self, request: Request<HashKvRequest>) -> Result<Response<HashKvResponse>, Status> {
        self.admit(request.metadata())?;
        let rev = request.get_ref().revision;
        self.node.local_hash_kv(rev, self.cluster_id).await.map(Response::new)
    }

    async fn lease_time_to_live(
        &self,
        request: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<RaftMessage>, Status> {
        self.admit(request.metadata())?;
        answer(&self.node.local_lease_time_to_live(request.get_ref()).await)
    }
}
