//! The Lease service: LeaseGrant, LeaseRevoke, LeaseKeepAlive,
//! LeaseTimeToLive, LeaseLeases, with etcd 3.4's answers.
//!
//! Grant and revoke go through raft (the grant's ID is chosen here, before
//! proposing, and its TTL raised to etcd's minimum, so apply is
//! deterministic). Keep-alives and time-to-live need the leader's
//! deadlines: `RaftNode` runs them there, forwarding from a follower.
//! LeaseLeases answers the local lease table, as etcd 3.4 does, soonest
//! expiry first on the leader (etcd sorts by remaining time).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::pin::Pin;
use std::sync::Arc;

use timon_proto::etcdserverpb::lease_server::Lease;
use timon_proto::etcdserverpb::{
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseLeasesRequest,
    LeaseLeasesResponse, LeaseRevokeRequest, LeaseRevokeResponse, LeaseStatus, LeaseTimeToLiveRequest,
    LeaseTimeToLiveResponse,
};
use timon_proto::timonpb::internal_raft_request::Request as RaftRequest;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use super::error::{etcd_status, internal, propose_status};
use super::Ctx;
use crate::apply;

pub struct LeaseService {
    ctx: Arc<Ctx>,
}

impl LeaseService {
    pub fn new(ctx: Arc<Ctx>) -> Self {
        Self { ctx }
    }
}

/// A random positive lease ID, as etcd picks one when the client gives 0.
fn random_lease_id() -> i64 {
    loop {
        let mut h = RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        let id = (h.finish() & (i64::MAX as u64)) as i64;
        if id != 0 {
            return id;
        }
    }
}

type KeepAliveStream = Pin<Box<dyn Stream<Item = Result<LeaseKeepAliveResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Lease for LeaseService {
    async fn lease_grant(&self, request: Request<LeaseGrantRequest>) -> Result<Response<LeaseGrantResponse>, Status> {
        self.ctx.require_leader(&request)?;
        self.ctx.refuse_on_learner()?;
        self.ctx.check_quota(apply::quota::LEASE_COST).await?;
        let who = self.ctx.caller(&request).await?;
        let mut req = request.into_inner();
        if req.id == 0 {
            req.id = random_lease_id();
        }
        if req.ttl > apply::lease::MAX_LEASE_TTL {
            return Err(etcd_status(&apply::EtcdError::LeaseTtlTooLarge));
        }
        req.ttl = req.ttl.max(self.ctx.raft.min_lease_ttl());
        match self.ctx.propose_as(who.as_ref(), RaftRequest::LeaseGrant(req)).await? {
            apply::Response::LeaseGrant(mut resp) => {
                self.ctx.fill_header(&mut resp.header);
                Ok(Response::new(resp))
            }
            other => Err(internal(format!("apply answered {other:?} to a lease grant"))),
        }
    }

    async fn lease_revoke(
        &self,
        request: Request<LeaseRevokeRequest>,
    ) -> Result<Response<LeaseRevokeResponse>, Status> {
        self.ctx.require_leader(&request)?;
        self.ctx.refuse_on_learner()?;
        let who = self.ctx.caller(&request).await?;
        match self
            .ctx
            .propose_as(who.as_ref(), RaftRequest::LeaseRevoke(request.into_inner()))
            .await?
        {
            apply::Response::LeaseRevoke(mut resp) => {
                self.ctx.fill_header(&mut resp.header);
                Ok(Response::new(resp))
            }
            other => Err(internal(format!("apply answered {other:?} to a lease revoke"))),
        }
    }

    type LeaseKeepAliveStream = KeepAliveStream;

    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        self.ctx.require_leader(&request)?;
        self.ctx.refuse_on_learner()?;
        let mut incoming = request.into_inner();
        let (tx, rx) = mpsc::channel(16);
        let ctx = self.ctx.clone();
        tokio::spawn(async move {
            while let Some(Ok(req)) = incoming.next().await {
                // The header is taken before the renew, as etcd does, so
                // its revision is not after a revoke the renew missed.
                let header = ctx.current_header();
                let answer = match ctx.raft.lease_renew(req.id).await {
                    Ok(ttl) => Ok(LeaseKeepAliveResponse {
                        header,
                        id: req.id,
                        ttl,
                    }),
                    Err(e) => Err(propose_status(&e)),
                };
                let failed = answer.is_err();
                if tx.send(answer).await.is_err() || failed {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        self.ctx.require_leader(&request)?;
        self.ctx.refuse_on_learner()?;
        let mut resp = self
            .ctx
            .raft
            .lease_time_to_live(request.into_inner())
            .await
            .map_err(|e| propose_status(&e))?;
        resp.header = self.ctx.current_header();
        Ok(Response::new(resp))
    }

    async fn lease_leases(
        &self,
        request: Request<LeaseLeasesRequest>,
    ) -> Result<Response<LeaseLeasesResponse>, Status> {
        self.ctx.require_leader(&request)?;
        self.ctx.refuse_on_learner()?;
        let store = self.ctx.raft.store();
        let mut ids: Vec<i64> = apply::lease::leases(store.engine().as_ref())
            .map_err(|e| etcd_status(&e))?
            .into_keys()
            .collect();
        self.ctx.raft.lease_deadlines().sort_by_expiry(&mut ids);
        let leases = ids.into_iter().map(|id| LeaseStatus { id }).collect();
        Ok(Response::new(LeaseLeasesResponse {
            header: self.ctx.current_header(),
            leases,
        }))
    }
}
