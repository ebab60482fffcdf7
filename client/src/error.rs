//! The client's one error type.
//!
//! A failed RPC keeps the gRPC code and the server's message untouched,
//! because etcd clients (and scripts parsing etcdctl output) tell errors apart
//! by etcd's exact strings such as `etcdserver: mvcc: required revision has
//! been compacted`.
//!
//! The module also classifies errors for the retry policy (see `retry`):
//! [`Error::is_retryable`] says whether sending the same request again could
//! succeed, [`Error::is_not_applied`] whether the failed request provably had
//! no effect, which is what makes re-sending a write safe.

use std::time::Duration;

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
    /// The TLS files or settings cannot be used (a missing or unreadable
    /// file, a certificate that does not match its key).
    #[error("{reason}")]
    Tls {
        /// What is wrong, naming the file.
        reason: String,
    },
    /// None of the endpoints accepted a connection, so the request (if
    /// any) was never sent.
    #[error("could not connect to any endpoint ({endpoints}): {reason}")]
    Connect {
        /// The endpoints tried, comma separated.
        endpoints: String,
        /// The last connection error seen.
        reason: String,
    },
    /// The connection broke while the request was in flight (reset, closed,
    /// HTTP/2 error). The server may or may not have received the request.
    #[error("connection to {endpoint} failed: {reason}")]
    Transport {
        /// The endpoint the request was sent to.
        endpoint: String,
        /// What the transport reported.
        reason: String,
    },
    /// A watcher's next revision has been compacted away, so the events it
    /// has not received yet are lost (clientv3's `ErrCompacted`). etcd
    /// cancels the watch; the watcher ends after this error. It happens when
    /// the watch starts (or resumes after a failover) below the compaction.
    #[error("{}", COMPACTED_MESSAGE)]
    Compacted {
        /// The compaction revision: the lowest revision a new watch can
        /// start from.
        compact_revision: i64,
        /// The header of the cancelling response (member and raft term; its
        /// revision is 0, as etcd sends it).
        header: Option<timon_proto::etcdserverpb::ResponseHeader>,
    },
    /// The request, including its retries, did not finish within
    /// [`ConnectOptions::request_timeout`](crate::ConnectOptions). A write
    /// that timed out may or may not have been applied.
    #[error("request timed out after {timeout:?}{}", last_error_suffix(.last))]
    Timeout {
        /// The deadline that passed.
        timeout: Duration,
        /// The failure that was being retried when time ran out, if any.
        last: Option<Box<Error>>,
    },
}

/// etcd's text for a compacted revision (`rpctypes.ErrCompacted`).
pub(crate) const COMPACTED_MESSAGE: &str = "etcdserver: mvcc: required revision has been compacted";

fn last_error_suffix(last: &Option<Box<Error>>) -> String {
    last.as_ref().map(|e| format!(" (last error: {e})")).unwrap_or_default()
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
/// now", not "the request is wrong"; clientv3 retries reads on these too.
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

/// etcd errors returned before the request was proposed to raft, so the
/// request provably changed nothing:
/// - `no leader`, `not capable`, `rpc not supported for learner`: rejected
///   by etcd's gRPC interceptor before the handler runs;
/// - `too many requests`: checked before proposing;
/// - `leader changed`: etcd 3.4 returns it only from the read-index path
///   (reads); a server returning it for a write promises the write was not
///   applied.
///
/// Not here, on purpose: `server stopped` (etcd returns it also while a
/// proposal is pending, v3_server.go `processInternalRaftRequestOnce`, after
/// which the rest of the cluster may still commit it) and every
/// `request timed out` variant (the proposal may commit later).
const NOT_APPLIED_MESSAGES: &[&str] = &[
    "etcdserver: no leader",
    "etcdserver: leader changed",
    "etcdserver: not capable",
    "etcdserver: rpc not supported for learner",
    "etcdserver: too many requests",
];

impl Error {
    /// The gRPC code, if the error came from an RPC.
    pub fn code(&self) -> Option<tonic::Code> {
        match self {
            Error::Rpc { code, .. } => Some(*code),
            // etcd's gRPC code for a compacted revision.
            Error::Compacted { .. } => Some(tonic::Code::OutOfRange),
            _ => None,
        }
    }

    /// The server's status message, if the error came from an RPC (or is
    /// etcd's compaction error for a watch).
    pub fn message(&self) -> Option<&str> {
        match self {
            Error::Rpc { message, .. } => Some(message),
            Error::Compacted { .. } => Some(COMPACTED_MESSAGE),
            _ => None,
        }
    }

    /// True when the same request may succeed if sent again, possibly to
    /// another member: the member was unreachable, had no leader, shed load,
    /// or the connection broke. Errors about the request itself (compacted
    /// revision, bad argument, permission) are never retryable.
    ///
    /// A retried write may have been applied the first time; the client
    /// itself re-sends a write only when [`Error::is_not_applied`] holds.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Rpc { code, message } => {
                *code == tonic::Code::Unavailable || TRANSIENT_MESSAGES.contains(&message.as_str())
            }
            Error::Connect { .. } | Error::Transport { .. } | Error::Timeout { .. } => true,
            Error::NoEndpoints | Error::InvalidEndpoint { .. } | Error::Tls { .. } | Error::Compacted { .. } => false,
        }
    }

    /// True when the failed request provably had no effect on the cluster:
    /// it never left the client (no connection), or the server rejected it
    /// before proposing it (see `NOT_APPLIED_MESSAGES`). Only then is it safe
    /// to send a write again.
    pub fn is_not_applied(&self) -> bool {
        match self {
            Error::Rpc { message, .. } => NOT_APPLIED_MESSAGES.contains(&message.as_str()),
            Error::Connect { .. } => true,
            Error::Transport { .. } | Error::Timeout { .. } => false,
            Error::NoEndpoints | Error::InvalidEndpoint { .. } | Error::Tls { .. } | Error::Compacted { .. } => true,
        }
    }

    /// Classifies a failed call to `endpoint`. A status the server sent
    /// carries no source error; one that tonic made up locally from a
    /// transport failure does, and its source chain tells whether the request
    /// was sent at all: a [`tonic::ConnectError`] (TCP connect failed) or a
    /// canceled hyper request (the connection closed before the request was
    /// written) means it was not.
    pub(crate) fn from_call(status: tonic::Status, endpoint: &str) -> Error {
        let Some(source) = std::error::Error::source(&status) else {
            return Error::from(status);
        };
        let reason = describe_chain(status.message(), source);
        if never_sent(source) {
            Error::Connect {
                endpoints: endpoint.to_owned(),
                reason,
            }
        } else {
            Error::Transport {
                endpoint: endpoint.to_owned(),
                reason,
            }
        }
    }
}

/// True when the error chain shows the request never reached the wire.
fn never_sent(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(error) = current {
        if error.downcast_ref::<tonic::ConnectError>().is_some() {
            return true;
        }
        if error
            .downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_canceled)
        {
            return true;
        }
        current = error.source();
    }
    false
}

/// `message: cause: cause...`, skipping causes whose text is already there.
fn describe_chain(message: &str, error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = message.to_owned();
    let mut current = Some(error);
    while let Some(error) = current {
        let cause = error.to_string();
        if !text.contains(&cause) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&cause);
        }
        current = error.source();
    }
    text
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

    #[test]
    fn only_pre_proposal_rejections_count_as_not_applied() {
        let unavailable = |m: &str| Error::from(tonic::Status::unavailable(m));
        assert!(unavailable("etcdserver: no leader").is_not_applied());
        assert!(unavailable("etcdserver: leader changed").is_not_applied());
        assert!(!unavailable("etcdserver: request timed out").is_not_applied());
        assert!(!unavailable("etcdserver: server stopped").is_not_applied());
        assert!(unavailable("etcdserver: server stopped").is_retryable());
        let transport = Error::Transport {
            endpoint: "http://a:1".into(),
            reason: "connection reset".into(),
        };
        assert!(transport.is_retryable() && !transport.is_not_applied());
    }

    #[test]
    fn server_statuses_stay_rpc_errors_and_connect_failures_are_typed() {
        let status = tonic::Status::unavailable("etcdserver: no leader");
        assert!(matches!(Error::from_call(status, "http://a:1"), Error::Rpc { .. }));
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let status = tonic::Status::from_error(Box::new(tonic::ConnectError(Box::new(refused))));
        let error = Error::from_call(status, "http://a:1");
        assert!(matches!(error, Error::Connect { .. }), "{error:?}");
        assert!(error.is_not_applied());
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        let status = tonic::Status::from_error(Box::new(reset));
        let error = Error::from_call(status, "http://a:1");
        assert!(matches!(error, Error::Transport { .. }), "{error:?}");
    }

    #[test]
    fn timeouts_name_the_last_error() {
        let error = Error::Timeout {
            timeout: Duration::from_secs(2),
            last: Some(Box::new(Error::from(tonic::Status::unavailable(
                "etcdserver: no leader",
            )))),
        };
        assert_eq!(
            error.to_string(),
            "request timed out after 2s (last error: etcdserver: no leader)"
        );
    }
}
