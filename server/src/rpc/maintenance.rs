//! The Maintenance service. Status (what `etcdctl endpoint status` shows),
//! Alarm (no alarms are raised yet: lists none), Defragment (RocksDB
//! compacts on its own: a no-op that succeeds) and Snapshot (etcd's
//! backend format, `super::snapshot`). The rest answers
//! `Unimplemented` until its issue lands.

use std::sync::Arc;

use timon_proto::etcdserverpb::maintenance_server::Maintenance;
use timon_proto::etcdserverpb::{
    AlarmRequest, AlarmResponse, DefragmentRequest, DefragmentResponse, DowngradeRequest, DowngradeResponse,
    HashKvRequest, HashKvResponse, HashRequest, HashResponse, MoveLeaderRequest, MoveLeaderResponse, ResponseHeader,
    SnapshotRequest, StatusRequest, StatusResponse,
};
use tonic::{Request, Response, Status};

use super::{Ctx, ETCD_API_VERSION};

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

type SnapshotStream = super::snapshot::SnapshotStream;

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
        let stream = super::snapshot::stream(self.ctx.engine.clone(), &self.ctx.snapshot_tmp_dir)?;
        Ok(Response::new(stream))
    }

    async fn move_leader(&self, _request: Request<MoveLeaderRequest>) -> Result<Response<MoveLeaderResponse>, Status> {
        Err(Status::unimplemented("MoveLeader is not implemented yet"))
    }

    async fn downgrade(&self, _request: Request<DowngradeRequest>) -> Result<Response<DowngradeResponse>, Status> {
        Err(Status::unimplemented("Downgrade is not implemented yet"))
    }
}
