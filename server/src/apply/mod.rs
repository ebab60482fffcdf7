//! Request execution: one write request (a raft entry's command) applied to
//! the MVCC store inside one write txn, with etcd 3.4's semantics
//! (`etcdserver/apply.go`).
//!
//! Everything here is deterministic: no clocks, no randomness, no hash-map
//! iteration, so every member turns the same log into the same state and the
//! same responses (DESIGN.md invariant 2). The caller owns the txn and
//! commits it, together with the applied log id, after [`execute`] returns,
//! whether it returned a response or an error.
//!
//! Response headers carry only `revision`; `rpc/` fills cluster id, member
//! id and raft term of the outer header, as etcd does.
//!
//! # Layout
//! - [`error`]: [`EtcdError`], etcd's error strings and gRPC codes.
//! - [`range`]: Range (also used by `rpc/` for reads outside raft).
//! - [`put`], [`delete`]: Put and DeleteRange.
//! - [`txn`]: Txn with compares, nested txns and up-front checks.
//! - [`compact`]: Compaction requests, done in the txn's own batch.
//! - [`lease`]: the lease table; LeaseGrant, LeaseRevoke and LeaseCheckpoint.
//! - [`alarm`]: NOSPACE and CORRUPT alarms, and the requests they refuse;
//!   [`quota`]: etcd's estimate of what a request adds to the store.
//! - [`auth`]: etcd's auth applier: each request runs as its author and is
//!   checked against that user's permissions; the auth requests.

pub mod alarm;
pub mod auth;
pub mod compact;
pub mod delete;
pub mod error;
pub mod lease;
pub mod put;
pub mod quota;
pub mod range;
pub mod txn;

#[cfg(test)]
mod alarm_tests;
#[cfg(test)]
mod auth_tests;
#[cfg(test)]
mod tests;

pub use error::{EtcdCode, EtcdError};

use timon_proto::etcdserverpb::{
    AlarmResponse, CompactionResponse, DeleteRangeResponse, LeaseGrantResponse, LeaseRevokeResponse, PutResponse,
    ResponseHeader, TxnResponse,
};
use timon_proto::timonpb::internal_raft_request::Request;
use timon_proto::timonpb::InternalRaftRequest;

use crate::auth::AuthInfo;
use crate::mvcc::WriteTxn;

/// The result of applying one command.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Response {
    Put(PutResponse),
    DeleteRange(DeleteRangeResponse),
    Txn(TxnResponse),
    Compaction(CompactionResponse),
    LeaseGrant(LeaseGrantResponse),
    LeaseRevoke(LeaseRevokeResponse),
    Auth(auth::AuthResponse),
    Alarm(AlarmResponse),
    /// A `Batch` entry: each request's own result, in order.
    Batch(Vec<Result<Response, EtcdError>>),
    /// A command without a request (nothing to do).
    Empty,
}

/// Applies `req` to `txn`. On error the txn is left without changes, so
/// committing it records only the applied log id, as etcd's failed requests
/// change nothing.
pub fn execute(txn: &mut WriteTxn<'_>, req: InternalRaftRequest) -> Result<Response, EtcdError> {
    execute_as(txn, &AuthInfo::default(), req)
}

/// [`execute`] for a request made by `who` (no user: the default).
fn execute_as(txn: &mut WriteTxn<'_>, who: &AuthInfo, req: InternalRaftRequest) -> Result<Response, EtcdError> {
    let request = match req.request {
        Some(Request::AsUser(a)) => {
            let who = AuthInfo {
                username: a.username,
                revision: a.auth_revision,
            };
            let inner = a.request.map(|r| *r).unwrap_or_default();
            return execute_as(txn, &who, inner);
        }
        other => other,
    };
    if let Some(r) = &request {
        auth::check(txn.engine(), who, r)?;
        alarm::gate(txn.engine(), r)?;
    }
    let result = match request {
        Some(Request::Put(p)) => put::put(txn, &p).map(Response::Put),
        Some(Request::DeleteRange(d)) => delete::delete_range(txn, &d).map(Response::DeleteRange),
        Some(Request::Txn(t)) => txn::txn(txn, &t).map(Response::Txn),
        Some(Request::Compaction(c)) => compact::compact(txn, &c).map(Response::Compaction),
        Some(Request::LeaseGrant(g)) => lease::grant(txn, &g).map(Response::LeaseGrant),
        Some(Request::LeaseRevoke(r)) => lease::revoke(txn, &r).map(Response::LeaseRevoke),
        Some(Request::LeaseCheckpoint(c)) => lease::checkpoint(txn, &c).map(|()| Response::Empty),
        Some(Request::Alarm(a)) => alarm::alarm(txn, &a).map(Response::Alarm),
        // Cluster bookkeeping: the state machine records it, the KV store
        // does not change.
        Some(Request::MemberAttributes(_)) | None => Ok(Response::Empty),
        // The state machine applies a batch's requests one by one
        // (`raft::state_machine`); one nested here is not a command.
        Some(Request::Batch(_)) => Ok(Response::Empty),
        // Unwrapped and run above.
        Some(Request::AsUser(_)) => Ok(Response::Empty),
        Some(r) if auth::is_auth(&r) => auth::execute(txn, who, r),
        Some(r) => Err(EtcdError::Internal(format!("unexpected request {r:?}"))),
    };
    if result.is_err() {
        txn.rollback();
    }
    result
}

/// A response header as apply fills it: the revision only.
pub(crate) fn header(revision: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        revision,
        ..ResponseHeader::default()
    })
}
