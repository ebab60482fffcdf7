//! The client's one error type.
//!
//! A failed RPC keeps the gRPC code and the server's message untouched,
//! because etcd clients (and scripts parsing etcdctl output) tell errors apart
//! by etcd's exact strings such as `etcdserver: mvcc: required revision has
//! been compacted`.

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong talking to an etcd-compatible server.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server (or the transport below it) answered with a gRPC status.
    #[error("{}", rpc_display(*.code, .message))]
    Rpc {
        /// The gRPC status code.
        code: tonic::Code,
        /// The status message exactly as sent, e.g. `etcdserver: no leader`.
        message: String,
    },
    /// `connect` was given no endpoint at all.
    #[error("no endpoints given")]
    NoEndpoints,
    /// An endpoint string could not be turned into a URI we can dial.
    #[error("invalid endpoint {endpoint:?}: {reason}")]
    InvalidEndpoint {
        /// The endpoint as the caller wrote it.
        endpoint: String,
        /// Why it was rejected.
        reason: String,
    },
    /// None of the endpoints accepted a connection.
    #[error("could not connect to any endpoint ({endpoints}): {reason}")]
    Connect {
        /// The endpoints tried, comma separated.
        endpoints: String,
        /// The last connection error seen.
        reason: String,
    },
}

/// etcd's own errors print as their bare message (that is what clientv3 and
/// etcdctl show); any other status prints the way grpc-go formats it.
fn rpc_display(code: tonic::Code, message: &str) -> String {
    if message.starts_with("etcdserver: ") {
        message.to_owned()
    } else {
        format!("rpc error: code = {} desc = {message}", go_code_name(code))
    }
}

/// grpc-go's names for status codes (they differ from tonic's `Debug` for
/// `Ok` and `Cancelled`).
fn go_code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "Canceled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

/// etcd messages that mean "this member could not serve the request right
/// now", not "the request is wrong"; clientv3 retries on these too.
const TRANSIENT_MESSAGES: &[&str] = &[
    "etcdserver: no leader",
    "etcdserver: leader changed",
    "etcdserver: request timed out",
    "etcdserver: request timed out, possibly due to previous leader failure",
    "etcdserver: request timed out, possibly due to connection lost",
    "etcdserver: too many requests",
    "etcdserver: server stopped",
    "etcdserver: not capable",
];

impl Error {
    /// The gRPC code, if the error came from an RPC.
    pub fn code(&self) -> Option<tonic::Code> {
        match self {
            Error::Rpc { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The server's status message, if the error came from an RPC.
    pub fn message(&self) -> Option<&str> {
        match self {
            Error::Rpc { message, .. } => Some(message),
            _ => None,
        }
    }

    /// True when the same request may succeed if sent again, possibly to
    /// another member: the member was unreachable, had no leader, or shed
    /// load. Errors about the request itself (compacted revision, bad
    /// argument, permission) are never retryable.
    ///
    /// A retried write may have been applied the first time; callers should
    /// retry writes only when that is harmless or guarded by a txn compare.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Rpc { code, message } => {
                *code == tonic::Code::Unavailable || TRANSIENT_MESSAGES.contains(&message.as_str())
            }
            Error::Connect { .. } => true,
            Error::NoEndpoints | Error::InvalidEndpoint { .. } => false,
        }
    }
}

impl From<tonic::Status> for Error {
    fn from(status: tonic::Status) -> Self {
        Error::Rpc {
            code: status.code(),
            message: status.message().to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_errors_print_bare_and_others_like_grpc_go() {
        let compacted = Error::from(tonic::Status::out_of_range(
            "etcdserver: mvcc: required revision has been compacted",
        ));
        assert_eq!(
            compacted.to_string(),
            "etcdserver: mvcc: required revision has been compacted"
        );
        assert_eq!(compacted.code(), Some(tonic::Code::OutOfRange));
        assert!(!compacted.is_retryable());
        let cancelled = Error::from(tonic::Status::cancelled("gone"));
        assert_eq!(cancelled.to_string(), "rpc error: code = Canceled desc = gone");
    }

    #[test]
    fn transient_failures_are_retryable() {
        assert!(Error::from(tonic::Status::unavailable("etcdserver: no leader")).is_retryable());
        assert!(Error::from(tonic::Status::unknown("etcdserver: leader changed")).is_retryable());
        assert!(!Error::from(tonic::Status::invalid_argument("etcdserver: key is not provided")).is_retryable());
    }
}
