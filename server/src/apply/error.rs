//! The errors a KV request can end in, with etcd's exact message strings and
//! the gRPC code etcd sends with each (etcd's `rpctypes/error.go`). Clients
//! match on the text, so the strings must never change.
//!
//! The type is serde-serialisable because apply results travel back from the
//! state machine to the proposer through raft's response channel.

use crate::auth::{AuthCode, AuthError};
use crate::mvcc::MvccError;

/// The gRPC status code of an [`EtcdError`]; `rpc/` maps it to tonic's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EtcdCode {
    InvalidArgument,
    OutOfRange,
    NotFound,
    FailedPrecondition,
    ResourceExhausted,
    Unavailable,
    PermissionDenied,
    Unauthenticated,
    DataLoss,
    Internal,
    Unknown,
}

#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum EtcdError {
    #[error("etcdserver: key is not provided")]
    EmptyKey,
    #[error("etcdserver: key not found")]
    KeyNotFound,
    #[error("etcdserver: value is provided")]
    ValueProvided,
    #[error("etcdserver: lease is provided")]
    LeaseProvided,
    #[error("etcdserver: too many operations in txn request")]
    TooManyOps,
    #[error("etcdserver: duplicate key given in txn request")]
    DuplicateKey,
    #[error("etcdserver: mvcc: required revision has been compacted")]
    Compacted,
    #[error("etcdserver: mvcc: required revision is a future revision")]
    FutureRev,
    #[error("etcdserver: mvcc: database space exceeded")]
    NoSpace,
    #[error("etcdserver: requested lease not found")]
    LeaseNotFound,
    #[error("etcdserver: lease already exists")]
    LeaseExist,
    #[error("etcdserver: too large lease TTL")]
    LeaseTtlTooLarge,
    #[error("etcdserver: request is too large")]
    RequestTooLarge,
    #[error("etcdserver: too many requests")]
    TooManyRequests,
    #[error("etcdserver: no leader")]
    NoLeader,
    #[error("etcdserver: not leader")]
    NotLeader,
    #[error("etcdserver: leader changed")]
    LeaderChanged,
    #[error("etcdserver: server stopped")]
    Stopped,
    #[error("etcdserver: request timed out")]
    Timeout,
    #[error("etcdserver: request timed out, possibly due to previous leader failure")]
    TimeoutDueToLeaderFail,
    #[error("etcdserver: request timed out, possibly due to connection lost")]
    TimeoutDueToConnectionLost,
    #[error("etcdserver: request timed out, waiting for the applied index took too long")]
    TimeoutWaitAppliedIndex,
    #[error("etcdserver: unhealthy cluster")]
    Unhealthy,
    #[error("etcdserver: corrupt cluster")]
    Corrupt,
    #[error("etcdserver: rpc not supported for learner")]
    NotSupportedForLearner,
    #[error("etcdserver: permission denied")]
    PermissionDenied,
    #[error("etcdserver: invalid auth token")]
    InvalidAuthToken,
    #[error("etcdserver: member ID already exist")]
    MemberExist,
    #[error("etcdserver: Peer URLs already exists")]
    PeerUrlExist,
    #[error("etcdserver: re-configuration failed due to not enough started members")]
    MemberNotEnoughStarted,
    #[error("etcdserver: given member URLs are invalid")]
    MemberBadUrls,
    #[error("etcdserver: member not found")]
    MemberNotFound,
    #[error("etcdserver: can only promote a learner member")]
    MemberNotLearner,
    #[error("etcdserver: can only promote a learner member which is in sync with leader")]
    LearnerNotReady,
    #[error("etcdserver: too many learner members in cluster")]
    TooManyLearners,
    /// A failure of this member (storage, corrupt data), not of the request.
    #[error("{0}")]
    Internal(String),
    /// Refused by auth, or an auth request's own error.
    #[error(transparent)]
    Auth(#[from] AuthError),
}

impl EtcdError {
    /// The gRPC code etcd answers this error with.
    pub fn code(&self) -> EtcdCode {
        use EtcdError::*;
        match self {
            EmptyKey | KeyNotFound | ValueProvided | LeaseProvided | TooManyOps | DuplicateKey | RequestTooLarge
            | MemberBadUrls => EtcdCode::InvalidArgument,
            Compacted | FutureRev | LeaseTtlTooLarge => EtcdCode::OutOfRange,
            NoSpace | TooManyRequests => EtcdCode::ResourceExhausted,
            LeaseNotFound | MemberNotFound => EtcdCode::NotFound,
            LeaseExist
            | NotLeader
            | MemberExist
            | PeerUrlExist
            | MemberNotEnoughStarted
            | MemberNotLearner
            | LearnerNotReady
            | TooManyLearners => EtcdCode::FailedPrecondition,
            NoLeader
            | LeaderChanged
            | Stopped
            | Timeout
            | TimeoutDueToLeaderFail
            | TimeoutDueToConnectionLost
            | TimeoutWaitAppliedIndex
            | Unhealthy
            | NotSupportedForLearner => EtcdCode::Unavailable,
            Corrupt => EtcdCode::DataLoss,
            PermissionDenied => EtcdCode::PermissionDenied,
            InvalidAuthToken => EtcdCode::Unauthenticated,
            Internal(_) => EtcdCode::Internal,
            Auth(a) => match a.code() {
                AuthCode::InvalidArgument => EtcdCode::InvalidArgument,
                AuthCode::FailedPrecondition => EtcdCode::FailedPrecondition,
                AuthCode::PermissionDenied => EtcdCode::PermissionDenied,
                AuthCode::Unauthenticated => EtcdCode::Unauthenticated,
                AuthCode::Unknown => EtcdCode::Unknown,
            },
        }
    }
}

impl From<MvccError> for EtcdError {
    fn from(e: MvccError) -> Self {
        match e {
            MvccError::Compacted => EtcdError::Compacted,
            MvccError::FutureRev => EtcdError::FutureRev,
            other => EtcdError::Internal(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_codes_are_etcds() {
        assert_eq!(EtcdError::EmptyKey.to_string(), "etcdserver: key is not provided");
        assert_eq!(
            EtcdError::Compacted.to_string(),
            "etcdserver: mvcc: required revision has been compacted"
        );
        assert_eq!(EtcdError::Compacted.code(), EtcdCode::OutOfRange);
        assert_eq!(
            EtcdError::FutureRev.to_string(),
            "etcdserver: mvcc: required revision is a future revision"
        );
        assert_eq!(EtcdError::DuplicateKey.code(), EtcdCode::InvalidArgument);
        assert_eq!(EtcdError::NoLeader.code(), EtcdCode::Unavailable);
        assert_eq!(EtcdError::from(MvccError::Compacted), EtcdError::Compacted);
        let json = serde_json::to_string(&EtcdError::KeyNotFound).unwrap();
        assert_eq!(
            serde_json::from_str::<EtcdError>(&json).unwrap(),
            EtcdError::KeyNotFound
        );
    }
}
