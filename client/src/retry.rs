//! The retry and failover policy every request builder goes through.
//!
//! A request is sent to the client's current endpoint. When it fails, the
//! error decides what happens next:
//!
//! - **Reads** (Range, read-only Txn, Status, MemberList) are re-sent on any
//!   retryable failure ([`Error::is_retryable`]): connection refused, reset
//!   or closed, gRPC `Unavailable` (`etcdserver: no leader`, `leader
//!   changed`, `request timed out`, `server stopped`, ...), `too many
//!   requests`. Reading twice is harmless.
//! - **Writes** (Put, DeleteRange, Txn with a write, Compact, member add /
//!   remove / promote / update) are re-sent only when the failure proves the
//!   first attempt had no effect ([`Error::is_not_applied`]): the client
//!   never connected, the connection closed before the request was written,
//!   or etcd rejected it before proposing it to raft (`no leader`, `leader
//!   changed`, `not capable`, `rpc not supported for learner`, `too many
//!   requests`). A write that timed out, or whose connection broke after it
//!   was sent, or that got `server stopped` (etcd also answers that for a
//!   proposal already handed to raft) is returned to the caller: sending it
//!   again could apply it twice.
//!
//! Before a retry the client fails over to the next endpoint in its list
//! (all clones follow) and waits with exponential backoff, 50 ms doubling to
//! at most 1 s. Everything, the attempt in flight included, is bounded by
//! [`ConnectOptions::request_timeout`](crate::ConnectOptions); when it passes
//! the request ends with [`Error::Timeout`], carrying the last failure.
//!
//! Requests that need consensus (writes and linearizable reads) carry etcd's
//! `hasleader` metadata, as clientv3's `WithRequireLeader` does: a member
//! that has lost its leader then rejects them at once with `etcdserver: no
//! leader` (not applied, so safe to send elsewhere) instead of holding them
//! until its own timeout. Serializable reads, Status and MemberList are
//! served without a leader, so they do not carry it.
//!
//! Watch streams (module `watch`) carry `hasleader` too: etcd then refuses
//! to open one on a member without a leader, and cancels the open ones with
//! `etcdserver: no leader` when its member has had no leader for three
//! election timeouts. They follow the same failover and [`Backoff`], but
//! have no deadline once their watchers exist: a broken stream is reopened
//! on the next endpoint for as long as the error is retryable, and every
//! watcher resumes where it stopped (see the `watch` module).

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;
use tonic::transport::Channel;

use crate::client::Client;
use crate::error::{Error, Result};

const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// The wait before each retry: 50 ms, doubling to at most 1 s. Requests
/// and watch streams (module `watch`) both use it.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    next: Duration,
}

impl Backoff {
    pub(crate) fn new() -> Self {
        Backoff { next: FIRST_BACKOFF }
    }

    /// The wait before the next retry; each call doubles the one after.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(MAX_BACKOFF);
        delay
    }

    /// Starts again from the shortest wait (after a success).
    pub(crate) fn reset(&mut self) {
        self.next = FIRST_BACKOFF;
    }
}

/// etcd's metadata asking a member to refuse the request when it has no
/// leader (`rpctypes.MetadataRequireLeaderKey` / `MetadataHasLeader`).
const REQUIRE_LEADER_KEY: &str = "hasleader";
const REQUIRE_LEADER_VALUE: &str = "true";

/// What sending a request twice could do, which decides when it is re-sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Changes nothing: re-sent on any retryable failure.
    Read,
    /// Changes state: re-sent only when the failure proves it was not applied.
    Write,
}

impl Kind {
    fn may_resend(self, error: &Error) -> bool {
        match self {
            Kind::Read => error.is_retryable(),
            Kind::Write => error.is_retryable() && error.is_not_applied(),
        }
    }
}

/// Wraps `message` in a request, adding `hasleader` when the request needs
/// consensus (see the module docs).
pub(crate) fn request<T>(message: T, needs_leader: bool) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    crate::auth::attach_token(&mut request);
    if needs_leader {
        request.metadata_mut().insert(
            REQUIRE_LEADER_KEY,
            tonic::metadata::MetadataValue::from_static(REQUIRE_LEADER_VALUE),
        );
    }
    request
}

impl Client {
    /// Sends a request through `send` (called once per attempt with the
    /// current endpoint's channel), retrying and failing over as the module
    /// docs describe.
    pub(crate) async fn call<T, F, Fut>(&self, kind: Kind, mut send: F) -> Result<T>
    where
        F: FnMut(Channel) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let timeout = self.options().request_timeout;
        let deadline = Instant::now() + timeout;
        let mut backoff = Backoff::new();
        let mut last: Option<Error> = None;
        let mut refreshed = false;
        loop {
            let active = self.active();
            let token = self.token();
            let attempt = crate::auth::with_token(token.clone(), || send(active.channel));
            let error = match tokio::time::timeout_at(deadline, attempt).await {
                Ok(Ok(response)) => return Ok(response.into_inner()),
                Ok(Err(status)) => Error::from_call(status, self.endpoint_uri(active.index)),
                Err(_elapsed) => {
                    return Err(Error::Timeout {
                        timeout,
                        last: last.map(Box::new),
                    })
                }
            };
            // clientv3 authenticates again once when the token is refused
            // (expired, or the member restarted) and sends the request again.
            if token.is_some() && !refreshed && crate::auth::is_stale_token(&error) {
                refreshed = true;
                self.refresh_token().await?;
                continue;
            }
            if !kind.may_resend(&error) {
                return Err(error);
            }
            self.fail_over(active.index);
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::Timeout {
                    timeout,
                    last: Some(Box::new(error)),
                });
            }
            last = Some(error);
            tokio::time::sleep(backoff.next_delay().min(deadline - now)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_resend_only_what_was_not_applied() {
        let no_leader = Error::from(tonic::Status::unavailable("etcdserver: no leader"));
        let timed_out = Error::from(tonic::Status::unavailable("etcdserver: request timed out"));
        let refused = Error::Connect {
            endpoints: "http://a:1".into(),
            reason: "connection refused".into(),
        };
        let reset = Error::Transport {
            endpoint: "http://a:1".into(),
            reason: "connection reset".into(),
        };
        for error in [&no_leader, &timed_out, &refused, &reset] {
            assert!(Kind::Read.may_resend(error), "{error}");
        }
        assert!(Kind::Write.may_resend(&no_leader));
        assert!(Kind::Write.may_resend(&refused));
        assert!(!Kind::Write.may_resend(&timed_out));
        assert!(!Kind::Write.may_resend(&reset));
        let bad = Error::from(tonic::Status::invalid_argument("etcdserver: key is not provided"));
        assert!(!Kind::Read.may_resend(&bad) && !Kind::Write.may_resend(&bad));
    }

    #[test]
    fn backoff_doubles_to_one_second_and_resets() {
        let mut backoff = Backoff::new();
        let delays: Vec<u128> = (0..7).map(|_| backoff.next_delay().as_millis()).collect();
        assert_eq!(delays, [50, 100, 200, 400, 800, 1000, 1000]);
        backoff.reset();
        assert_eq!(backoff.next_delay(), FIRST_BACKOFF);
    }

    #[test]
    fn only_consensus_requests_carry_hasleader() {
        let r = request((), true);
        assert_eq!(
            r.metadata().get(REQUIRE_LEADER_KEY).and_then(|v| v.to_str().ok()),
            Some("true")
        );
        assert!(request((), false).metadata().get(REQUIRE_LEADER_KEY).is_none());
    }
}
