//! etcd's errors as gRPC statuses: the exact codes and message strings of
//! etcd's `rpctypes`, which clients match on.

use tonic::{Code, Status};

use crate::apply::{EtcdCode, EtcdError};
use crate::raft::{ProposeError, TransferError};

fn code(c: EtcdCode) -> Code {
    match c {
        EtcdCode::InvalidArgument => Code::InvalidArgument,
        EtcdCode::OutOfRange => Code::OutOfRange,
        EtcdCode::NotFound => Code::NotFound,
        EtcdCode::FailedPrecondition => Code::FailedPrecondition,
        EtcdCode::ResourceExhausted => Code::ResourceExhausted,
        EtcdCode::Unavailable => Code::Unavailable,
        EtcdCode::PermissionDenied => Code::PermissionDenied,
        EtcdCode::Unauthenticated => Code::Unauthenticated,
        EtcdCode::DataLoss => Code::DataLoss,
        EtcdCode::Internal => Code::Internal,
        EtcdCode::Unknown => Code::Unknown,
    }
}

pub fn etcd_status(e: &EtcdError) -> Status {
    Status::new(code(e.code()), e.to_string())
}

pub fn propose_status(e: &ProposeError) -> Status {
    let msg = match e {
        ProposeError::NoLeader => "etcdserver: no leader",
        ProposeError::NotLeader | ProposeError::LeaderChanged => "etcdserver: leader changed",
        ProposeError::Timeout => "etcdserver: request timed out",
        ProposeError::AppliedIndexTimeout => {
            "etcdserver: request timed out, waiting for the applied index took too long"
        }
        ProposeError::Stopped => "etcdserver: server stopped",
    };
    Status::unavailable(msg)
}

/// etcd's answer to a request whose raft entry would exceed
/// --max-request-bytes.
pub fn request_too_large() -> Status {
    Status::invalid_argument("etcdserver: request is too large")
}

/// A storage failure on the read path; the member is unhealthy.
pub fn internal(e: impl std::fmt::Display) -> Status {
    Status::internal(format!("etcdserver: {e}"))
}

/// MoveLeader's errors, as etcd 3.4/3.5 answer them: `ErrGRPCNotLeader`,
/// `ErrGRPCBadLeaderTransferee`, and `ErrTimeoutLeaderTransfer`, which has no
/// rpctypes entry and so reaches the client as `Unknown`.
pub fn transfer_status(e: &TransferError) -> Status {
    match e {
        TransferError::NotLeader => Status::failed_precondition("etcdserver: not leader"),
        TransferError::BadTransferee => Status::failed_precondition("etcdserver: bad leader transferee"),
        TransferError::Timeout => Status::unknown("etcdserver: request timed out, leader transfer took too long"),
    }
}
