//! The gRPC edge: thin tonic services that validate a request, hand it to
//! raft (writes) or read the MVCC store (reads), map errors to etcd's exact
//! gRPC status and fill the response header.
//!
//! # Layout
//! - `validate`: etcd's checks before a request is proposed.
//! - `caller`: who makes a request (token, client certificate) and the auth
//!   checks made at the edge (reads, watches, admin operations).
//! - `auth`: the Auth service (users, roles, enable, authenticate).
//! - `error`: etcd's gRPC codes and message strings.
//! - `kv`: the KV service. `maintenance`: the Maintenance service.
//! - `lease`: the Lease service (grant, revoke, keep-alive, time-to-live, list).
//! - `cluster`: the Cluster service (member list and changes).
//! - `lock`, `election`: the v3lock and v3election services, built as etcd
//!   builds them on `concurrency`: an in-process client over KV, Lease and
//!   the watch hub (sessions, waitDeletes).
//! - `watch`: the Watch service (streams of watchers over `crate::watch`);
//!   `watch_wire`: its responses, shared events encoded once;
//!   `watch_route`: the route that serves it in place of tonic's generated
//!   one.
//! - `limit`: etcd's status for a message over the gRPC receive limit.
//! - `http`: the plain HTTP side of the client URLs: /health, /version,
//!   /metrics, and the JSON gateway (`crate::gateway`).

pub mod auth;
pub mod caller;
pub mod cluster;
pub mod concurrency;
pub mod election;
pub mod error;
pub mod http;
pub mod kv;
pub mod lease;
pub mod limit;
pub mod lock;
pub mod maintenance;
pub mod snapshot;
pub mod validate;
pub mod watch;
pub mod watch_route;
pub mod watch_wire;

use std::sync::Arc;

use timon_proto::etcdserverpb::ResponseHeader;

use crate::raft::RaftNode;
use crate::storage::SharedEngine;

/// The etcd API level timon implements, reported as Status.version so
/// clients (Kubernetes among them) enable the features of that version.
pub const ETCD_API_VERSION: &str = "3.6.0";

/// etcd's backend quota when --quota-backend-bytes is 0.
pub const DEFAULT_QUOTA_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// Request limits from etcd's flags.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// --max-request-bytes.
    pub max_request_bytes: u64,
    /// --max-txn-ops.
    pub max_txn_ops: u64,
    /// --quota-backend-bytes (0: etcd's default of 2 GiB).
    pub quota_backend_bytes: i64,
}

/// What every service needs: the raft node, the IDs for headers and limits.
pub struct Ctx {
    pub raft: Arc<RaftNode>,
    /// For Status.dbSize.
    pub engine: SharedEngine,
    pub cluster_id: u64,
    pub member_id: u64,
    pub limits: Limits,
    /// The member's auth tokens (shared with the state machine, which
    /// registers simple tokens as it applies Authenticate entries).
    pub tokens: Arc<crate::auth::Tokens>,
    /// --bcrypt-cost, within bcrypt's bounds.
    pub bcrypt_cost: u32,
    /// --client-cert-auth: a verified client certificate's CN names the
    /// user of a request without a token (etcd's `AuthInfoFromTLS`).
    pub client_cert_auth: bool,
    /// Where `Maintenance.Snapshot` writes its temporary file (the
    /// member's `member` directory, beside the database).
    pub snapshot_tmp_dir: std::path::PathBuf,
}

/// etcd's `hasleader` request metadata (clientv3's WithRequireLeader).
const HAS_LEADER: &str = "hasleader";

impl Ctx {
    /// Refuses a request that requires a leader while this member knows
    /// none, at once, as etcd's interceptor does (instead of waiting for one).
    pub fn require_leader<T>(&self, request: &tonic::Request<T>) -> Result<(), tonic::Status> {
        let required = request
            .metadata()
            .get(HAS_LEADER)
            .is_some_and(|v| v.as_bytes() == b"true");
        if required && self.raft.status().leader.is_none() {
            return Err(error::propose_status(&crate::raft::ProposeError::NoLeader));
        }
        Ok(())
    }

    /// etcd answers a learner only serializable ranges and Status.
    pub fn refuse_on_learner(&self) -> Result<(), tonic::Status> {
        if self.raft.status().is_learner {
            return Err(error::etcd_status(&crate::apply::EtcdError::NotSupportedForLearner));
        }
        Ok(())
    }

    /// A complete response header at `revision` (0: none, as etcd's
    /// cluster server sends).
    pub fn header(&self, revision: i64) -> Option<ResponseHeader> {
        let mut h = Some(ResponseHeader {
            revision,
            ..Default::default()
        });
        self.fill_header(&mut h);
        h
    }

    /// A complete response header at this member's current revision
    /// (etcd's `hdr.fill`).
    pub fn current_header(&self) -> Option<ResponseHeader> {
        self.header(self.raft.store().current_revision())
    }

    /// Proposes a write and returns apply's response, or etcd's error;
    /// refuses it, as etcd does, when the marshalled raft request is over
    /// --max-request-bytes.
    pub async fn propose(
        &self,
        req: timon_proto::timonpb::internal_raft_request::Request,
    ) -> Result<crate::apply::Response, tonic::Status> {
        use prost::Message;
        let req = timon_proto::timonpb::InternalRaftRequest { request: Some(req) };
        if req.encoded_len() as u64 > self.limits.max_request_bytes {
            return Err(error::request_too_large());
        }
        match self.raft.propose(req).await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => Err(error::etcd_status(&e)),
            Err(e) => Err(error::propose_status(&e)),
        }
    }

    /// etcd's backend quota in bytes: `--quota-backend-bytes`, 0 meaning
    /// etcd's default of 2 GiB; negative: no quota.
    pub fn quota_bytes(&self) -> Option<u64> {
        match self.limits.quota_backend_bytes {
            q if q < 0 => None,
            0 => Some(DEFAULT_QUOTA_BYTES),
            q => Some(q as u64),
        }
    }

    /// What the state machine takes (Status.dbSize, and what the quota
    /// counts).
    pub fn db_size(&self) -> u64 {
        self.engine.size_of(&crate::storage::Cf::STATE)
    }

    /// etcd's `quotaAlarmer.check`: a request whose cost would take the
    /// store past the quota is refused with `database space exceeded`, and
    /// this member raises the NOSPACE alarm through raft (which then stops
    /// such requests on every member, whatever their size).
    pub async fn check_quota(&self, cost: u64) -> Result<(), tonic::Status> {
        let Some(quota) = self.quota_bytes() else {
            return Ok(());
        };
        if cost == 0 || self.db_size() + cost < quota {
            return Ok(());
        }
        self.raise_alarm(self.member_id, timon_proto::etcdserverpb::AlarmType::Nospace)
            .await;
        Err(error::etcd_status(&crate::apply::EtcdError::NoSpace))
    }

    /// Raises an alarm through raft (etcd's `AlarmRequest_ACTIVATE`),
    /// logging a failure rather than answering it: the caller has its own
    /// answer to give.
    pub async fn raise_alarm(&self, member_id: u64, alarm: timon_proto::etcdserverpb::AlarmType) {
        let raise = timon_proto::etcdserverpb::AlarmRequest {
            action: timon_proto::etcdserverpb::alarm_request::AlarmAction::Activate as i32,
            member_id,
            alarm: alarm as i32,
        };
        let req = timon_proto::timonpb::internal_raft_request::Request::Alarm(raise);
        if let Err(e) = self.propose(req).await {
            tracing::warn!(alarm = alarm.as_str_name(), error = %e.message(), "failed to raise an alarm");
        }
    }

    /// Fills the fields of a response header that identify who answered;
    /// `revision` is set by whoever produced the response.
    pub fn fill_header(&self, header: &mut Option<ResponseHeader>) {
        let h = header.get_or_insert_with(ResponseHeader::default);
        h.cluster_id = self.cluster_id;
        h.member_id = self.member_id;
        h.raft_term = self.raft.status().term;
    }
}
