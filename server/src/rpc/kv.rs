//! The KV service: Range, Put, DeleteRange, Txn, Compact.
//!
//! Writes are proposed through raft and answered with what apply answered.
//! Reads are served from the local MVCC store; a linearizable read (the
//! default) first waits for the read index (DESIGN.md invariant 5), a
//! serializable one does not.

use std::sync::Arc;

use timon_proto::etcdserverpb::kv_server::Kv;
use timon_proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse,
    RangeRequest, RangeResponse, TxnRequest, TxnResponse,
};
use timon_proto::timonpb::internal_raft_request::Request as RaftRequest;
use tonic::{Request, Response, Status};

use super::caller::Credentials;
use super::error::{etcd_status, internal, propose_status};
use super::{validate, Ctx};
use crate::apply;

pub struct KvService {
    ctx: Arc<Ctx>,
}

impl KvService {
    pub fn new(ctx: Arc<Ctx>) -> Self {
        Self { ctx }
    }
}

/// Whether every range of a read-only txn asked for a serializable read.
fn is_txn_serializable(req: &TxnRequest) -> bool {
    use timon_proto::etcdserverpb::request_op::Request as Op;
    req.success
        .iter()
        .chain(&req.failure)
        .all(|op| matches!(&op.request, Some(Op::RequestRange(r)) if r.serializable))
}

fn unexpected(what: &str, got: &apply::Response) -> Status {
    internal(format!("apply answered {got:?} to a {what} request"))
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(&self, request: Request<RangeRequest>) -> Result<Response<RangeResponse>, Status> {
        self.ctx.require_leader(&request)?;
        let creds = Credentials::of(&request);
        let req = request.into_inner();
        if !req.serializable {
            self.ctx.refuse_on_learner()?;
        }
        validate::check_range(&req).map_err(|e| etcd_status(&e))?;
        if !req.serializable {
            self.ctx.raft.read_index().await.map_err(|e| propose_status(&e))?;
        }
        // etcd's doSerialize: check, read, then refuse if the auth store
        // changed meanwhile.
        let who = self.ctx.who(&creds).await?;
        self.ctx
            .check_range(who.as_ref(), &req.key, &req.range_end)
            .map_err(|e| etcd_status(&e.into()))?;
        let store = self.ctx.raft.store();
        let mut resp = apply::range::range(&store.reader(), &req).map_err(|e| etcd_status(&e))?;
        self.ctx.check_still_current(who.as_ref())?;
        self.ctx.fill_header(&mut resp.header);
        Ok(Response::new(resp))
    }

    async fn put(&self, request: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        self.ctx.require_leader(&request)?;
        self.ctx.refuse_on_learner()?;
        let creds = Credentials::of(&request);
        let req = request.into_inner();
        self.ctx.check_quota(apply::quota::put_cost(&req)).await?;
        validate::check_put(&req).map_err(|e| etcd_status(&e))?;
        let who = self.ctx.who(&creds).await?;
        match self.ctx.propose_as(who.as_ref(), RaftRequest::Put(req)).await? {
            apply::Response::Put(mut resp) => {
                self.ctx.fill_header(&mut resp.header);
                Ok(Response::new(resp))
            }
            other => Err(unexpected("put", &other)),
        }
    }

    async fn delete_range(
        &self,
        request: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        self.ctx.require_leader(&request)?;
        self.ctx.refuse_on_learner()?;
        let creds = Credentials::of(&request);
        let req = request.into_inner();
        validate::check_delete_range(&req).map_err(|e| etcd_status(&e))?;
        let who = self.ctx.who(&creds).await?;
        match self.ctx.propose_as(who.as_ref(), RaftRequest::DeleteRange(req)).await? {
            apply::Response::DeleteRange(mut resp) => {
                self.ctx.fill_header(&mut resp.header);
                Ok(Response::new(resp))
            }
            other => Err(unexpected("delete range", &other)),
        }
    }

    async fn txn(&self, request: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        self.ctx.require_leader(&request)?;
        self.ctx.refuse_on_learner()?;
        let creds = Credentials::of(&request);
        let req = request.into_inner();
        self.ctx.check_quota(apply::quota::txn_cost(&req)).await?;
        validate::check_txn(&req, self.ctx.limits.max_txn_ops).map_err(|e| etcd_status(&e))?;
        let who = self.ctx.who(&creds).await?;
        // Like etcd, a txn of ranges only is a read: served locally after the
        // read index (unless every range is serializable), never proposed.
        if apply::txn::is_txn_read_only(&req) {
            if !is_txn_serializable(&req) {
                self.ctx.raft.read_index().await.map_err(|e| propose_status(&e))?;
            }
            self.ctx.check_txn(who.as_ref(), &req)?;
            let store = self.ctx.raft.store();
            let mut resp = apply::txn::txn_read_only(&store.read(), &req).map_err(|e| etcd_status(&e))?;
            self.ctx.check_still_current(who.as_ref())?;
            self.ctx.fill_header(&mut resp.header);
            return Ok(Response::new(resp));
        }
        match self.ctx.propose_as(who.as_ref(), RaftRequest::Txn(req)).await? {
            apply::Response::Txn(mut resp) => {
                self.ctx.fill_header(&mut resp.header);
                Ok(Response::new(resp))
            }
            other => Err(unexpected("txn", &other)),
        }
    }

    async fn compact(&self, request: Request<CompactionRequest>) -> Result<Response<CompactionResponse>, Status> {
        self.ctx.require_leader(&request)?;
        self.ctx.refuse_on_learner()?;
        let creds = Credentials::of(&request);
        let req = request.into_inner();
        let (revision, physical) = (req.revision, req.physical);
        let who = self.ctx.who(&creds).await?;
        match self.ctx.propose_as(who.as_ref(), RaftRequest::Compaction(req)).await? {
            apply::Response::Compaction(mut resp) => {
                if physical {
                    // etcd answers a physical compaction once this member
                    // deleted what it drops.
                    self.ctx.raft.store().compacted(revision).await;
                }
                self.ctx.fill_header(&mut resp.header);
                Ok(Response::new(resp))
            }
            other => Err(unexpected("compaction", &other)),
        }
    }
}
