//! The Maintenance service. Status (what `etcdctl endpoint status` shows),
//! Hash and HashKV (`mvcc::hash`), Alarm (through raft: `apply::alarm`),
//! Defragment (a RocksDB compaction of every column family), Snapshot
//! (etcd's backend format, `super::snapshot`) and MoveLeader (the raft
//! module's leadership transfer). The rest answers
//! `Unimplemented` until its issue lands.

use std::sync::Arc;
use std::time::Instant;

use timon_proto::etcdserverpb::maintenance_server::Maintenance;
use timon_proto::etcdserverpb::{
    AlarmRequest, AlarmResponse, DefragmentRequest, DefragmentResponse, DowngradeRequest, DowngradeResponse,
    HashKvRequest, HashKvResponse, HashRequest, HashResponse, MoveLeaderRequest, MoveLeaderResponse, ResponseHeader,
    SnapshotRequest, StatusRequest, StatusResponse,
};
use timon_proto::timonpb::internal_raft_request::Request as RaftRequest;
use tonic::{Request, Response, Status};

use super::{error, Ctx, ETCD_API_VERSION};
use crate::apply;

pub struct MaintenanceService {
    ctx: Arc<Ctx>,
}

impl MaintenanceService {
    pub fn new(ctx: Arc<Ctx>) -> Self {
        Self { ctx }
    }

    fn header(&self) -> Option<ResponseHeader> {
        self.ctx.current_header()
    }
}

/// An alarm as etcd's Status lists it among its errors: gogoproto's
/// compact text form, zero fields left out, each field followed by a space.
fn alarm_text(m: &timon_proto::etcdserverpb::AlarmMember) -> String {
    let mut text = String::new();
    if m.member_id != 0 {
        text.push_str(&format!("memberID:{} ", m.member_id));
    }
    if m.alarm != 0 {
        text.push_str(&format!("alarm:{} ", apply::alarm::alarm_name(m.alarm)));
    }
    text
}

type SnapshotStream = super::snapshot::SnapshotStream;

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    /// etcd's Alarm: every action (GET too) goes through raft, so the
    /// answer is the cluster's agreed state.
    async fn alarm(&self, request: Request<AlarmRequest>) -> Result<Response<AlarmResponse>, Status> {
        match self.ctx.propose(RaftRequest::Alarm(request.into_inner())).await? {
            apply::Response::Alarm(mut resp) => {
                self.ctx.fill_header(&mut resp.header);
                Ok(Response::new(resp))
            }
            other => Err(error::internal(format!("apply answered {other:?} to an alarm request"))),
        }
    }

    async fn status(&self, _request: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        let raft = self.ctx.raft.status();
        let db_size = self.ctx.db_size() as i64;
        let quota = match self.ctx.limits.quota_backend_bytes {
            q if q <= 0 => super::DEFAULT_QUOTA_BYTES as i64,
            q => q,
        };
        let mut errors = vec![];
        if raft.leader.is_none() {
            errors.push("etcdserver: no leader".to_string());
        }
        let alarms = apply::alarm::list(&*self.ctx.engine).map_err(error::internal)?;
        errors.extend(alarms.iter().map(alarm_text));
        Ok(Response::new(StatusResponse {
            header: self.header(),
            version: ETCD_API_VERSION.to_string(),
            db_size,
            leader: raft.leader.unwrap_or(0),
            raft_index: raft.last_log_index,
            raft_term: raft.term,
            raft_applied_index: raft.applied_index,
            errors,
            db_size_in_use: db_size,
            is_learner: raft.is_learner,
            storage_version: ETCD_API_VERSION.to_string(),
            db_size_quota: quota,
            downgrade_info: None,
        }))
    }

    /// etcd's defragment: RocksDB rewrites its files without the deleted
    /// data, while reads and writes go on (etcd stops both meanwhile).
    /// It first waits for the compactions applied so far to finish
    /// deleting in the background, so `compact` then `defrag` frees what
    /// the compaction dropped.
    async fn defragment(&self, request: Request<DefragmentRequest>) -> Result<Response<DefragmentResponse>, Status> {
        self.ctx.require_admin_unmapped(&request).await?;
        let store = self.ctx.raft.store();
        store.compacted(store.compaction().scheduled).await;
        drop(store);
        let engine = self.ctx.engine.clone();
        let before = self.ctx.db_size();
        let started = std::time::Instant::now();
        tracing::info!("current-db-size-bytes" = before, "defragmenting");
        tokio::task::spawn_blocking(move || engine.compact_all())
            .await
            .map_err(error::internal)?
            .map_err(error::internal)?;
        let after = self.ctx.db_size();
        tracing::info!(
            "current-db-size-bytes-diff" = after as i64 - before as i64,
            "current-db-size-bytes" = after,
            took = %timon_go::format_duration(started.elapsed()),
            "finished defragmenting directory"
        );
        Ok(Response::new(DefragmentResponse { header: self.header() }))
    }

    async fn hash(&self, request: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        self.ctx.require_admin_unmapped(&request).await?;
        let store = self.ctx.raft.store();
        let h = tokio::task::spawn_blocking(move || store.hash_all())
            .await
            .map_err(error::internal)?
            .map_err(|e| error::etcd_status(&e.into()))?;
        Ok(Response::new(HashResponse {
            header: self.ctx.header(h.current_rev),
            hash: h.hash,
        }))
    }

    /// etcd's HashKV: the MVCC hash at a revision (0: the current one),
    /// the compaction revision it was taken at, and (etcd 3.6's field) the
    /// revision it covers.
    async fn hash_kv(&self, request: Request<HashKvRequest>) -> Result<Response<HashKvResponse>, Status> {
        self.ctx.require_admin_unmapped(&request).await?;
        let rev = request.get_ref().revision;
        let store = self.ctx.raft.store();
        let h = tokio::task::spawn_blocking(move || store.hash_kv(rev))
            .await
            .map_err(error::internal)?
            .map_err(|e| error::etcd_status(&e.into()))?;
        Ok(Response::new(HashKvResponse {
            header: self.ctx.header(h.current_rev),
            hash: h.hash,
            compact_revision: h.compact_rev,
            hash_revision: h.hash_rev,
        }))
    }

    type SnapshotStream = SnapshotStream;

    async fn snapshot(&self, request: Request<SnapshotRequest>) -> Result<Response<Self::SnapshotStream>, Status> {
        self.ctx.require_admin_unmapped(&request).await?;
        let stream = super::snapshot::stream(self.ctx.engine.clone(), &self.ctx.snapshot_tmp_dir)?;
        Ok(Response::new(stream))
    }

    /// etcd's MoveLeader: only the leader moves its leadership, to a voter.
    /// Like etcd 3.4/3.5, it needs no admin permission.
    async fn move_leader(&self, request: Request<MoveLeaderRequest>) -> Result<Response<MoveLeaderResponse>, Status> {
        let to = request.get_ref().target_id;
        let deadline = Instant::now() + self.ctx.raft.request_timeout();
        self.ctx
            .raft
            .move_leader(to, deadline)
            .await
            .map_err(|e| error::transfer_status(&e))?;
        Ok(Response::new(MoveLeaderResponse { header: self.header() }))
    }

    async fn downgrade(&self, _request: Request<DowngradeRequest>) -> Result<Response<DowngradeResponse>, Status> {
        Err(Status::unimplemented("Downgrade is not implemented yet"))
    }
}
