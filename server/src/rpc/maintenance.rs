//! The Maintenance service. Status (what `etcdctl endpoint status` shows),
//! Alarm (no alarms are raised yet: lists none), Defragment (RocksDB
//! compacts on its own: a no-op that succeeds) and MoveLeader (the raft
//! module's leadership transfer). The rest answers
//! `Unimplemented` until its issue lands.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use futures::Stream;
use timon_proto::etcdserverpb::maintenance_server::Maintenance;
use timon_proto::etcdserverpb::{
    AlarmRequest, AlarmResponse, DefragmentRequest, DefragmentResponse, DowngradeRequest, DowngradeResponse,
    HashKvRequest, HashKvResponse, HashRequest, HashResponse, MoveLeaderRequest, MoveLeaderResponse, ResponseHeader,
    SnapshotRequest, SnapshotResponse, StatusRequest, StatusResponse,
};
use tonic::{Request, Response, Status};

use super::{error, Ctx, ETCD_API_VERSION};

/// etcd's backend quota when --quota-backend-bytes is 0.
const DEFAULT_QUOTA_BYTES: i64 = 2 * 1024 * 1024 * 1024;

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

type SnapshotStream = Pin<Box<dyn Stream<Item = Result<SnapshotResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    async fn alarm(&self, _request: Request<AlarmRequest>) -> Result<Response<AlarmResponse>, Status> {
        Ok(Response::new(AlarmResponse {
            header: self.header(),
            alarms: vec![],
        }))
    }

    async fn status(&self, _request: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        let raft = self.ctx.raft.status();
        let db_size = self.ctx.engine.size_on_disk() as i64;
        let quota = match self.ctx.limits.quota_backend_bytes {
            q if q <= 0 => DEFAULT_QUOTA_BYTES,
            q => q,
        };
        let mut errors = vec![];
        if raft.leader.is_none() {
            errors.push("etcdserver: no leader".to_string());
        }
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

    async fn defragment(&self, request: Request<DefragmentRequest>) -> Result<Response<DefragmentResponse>, Status> {
        self.ctx.require_admin_unmapped(&request).await?;
        Ok(Response::new(DefragmentResponse { header: self.header() }))
    }

    async fn hash(&self, request: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        self.ctx.require_admin_unmapped(&request).await?;
        Err(Status::unimplemented("Hash is not implemented yet"))
    }

    async fn hash_kv(&self, request: Request<HashKvRequest>) -> Result<Response<HashKvResponse>, Status> {
        self.ctx.require_admin_unmapped(&request).await?;
        Err(Status::unimplemented("HashKV is not implemented yet"))
    }

    type SnapshotStream = SnapshotStream;

    async fn snapshot(&self, request: Request<SnapshotRequest>) -> Result<Response<Self::SnapshotStream>, Status> {
        self.ctx.require_admin_unmapped(&request).await?;
        Err(Status::unimplemented("Snapshot is not implemented yet"))
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
