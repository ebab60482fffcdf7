//! Leases: grant, revoke, time-to-live, list, keep-alive (once, or a
//! background task that renews at a third of the TTL as clientv3 does),
//! and [`Session`], a lease kept alive for as long as it is held.
//!
//! Grant and revoke are writes (re-sent only when they certainly were not
//! applied); time-to-live, list and keep-alive are re-sent like reads
//! (renewing twice is harmless).

use std::time::Duration;

use timon_proto::etcdserverpb::lease_client::LeaseClient;
use timon_proto::etcdserverpb::{
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseLeasesRequest,
    LeaseLeasesResponse, LeaseRevokeRequest, LeaseRevokeResponse, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::retry::{self, Kind};

/// etcd's text for a lease that does not exist (clientv3's `ErrLeaseNotFound`).
pub const LEASE_NOT_FOUND: &str = "etcdserver: requested lease not found";

/// The shortest wait between two renewals of the keep-alive task.
const MIN_RENEW_INTERVAL: Duration = Duration::from_millis(500);

impl Client {
    /// Grants a lease of `ttl` seconds; `id` 0 lets the server choose it.
    pub async fn lease_grant(&self, ttl: i64, id: i64) -> Result<LeaseGrantResponse> {
        self.call(Kind::Write, |channel| async move {
            LeaseClient::new(channel)
                .lease_grant(retry::request(LeaseGrantRequest { ttl, id }, true))
                .await
        })
        .await
    }

    /// Revokes lease `id`, deleting its keys.
    pub async fn lease_revoke(&self, id: i64) -> Result<LeaseRevokeResponse> {
        self.call(Kind::Write, |channel| async move {
            LeaseClient::new(channel)
                .lease_revoke(retry::request(LeaseRevokeRequest { id }, true))
                .await
        })
        .await
    }

    /// Lease `id`'s granted and remaining TTL (-1: it does not exist), and
    /// its keys if `keys`.
    pub async fn lease_time_to_live(&self, id: i64, keys: bool) -> Result<LeaseTimeToLiveResponse> {
        self.call(Kind::Read, |channel| async move {
            LeaseClient::new(channel)
                .lease_time_to_live(retry::request(LeaseTimeToLiveRequest { id, keys }, true))
                .await
        })
        .await
    }

    /// Every lease.
    pub async fn lease_leases(&self) -> Result<LeaseLeasesResponse> {
        self.call(Kind::Read, |channel| async move {
            LeaseClient::new(channel)
                .lease_leases(retry::request(LeaseLeasesRequest {}, true))
                .await
        })
        .await
    }

    /// Renews lease `id` once. A lease that does not exist (the server
    /// answers TTL 0) is an error with etcd's text, as in clientv3.
    pub async fn lease_keep_alive_once(&self, id: i64) -> Result<LeaseKeepAliveResponse> {
        let answer = self
            .call(Kind::Read, |channel| async move {
                let requests = futures::stream::iter([LeaseKeepAliveRequest { id }]);
                let mut answers = LeaseClient::new(channel)
                    .lease_keep_alive(retry::request(requests, true))
                    .await?
                    .into_inner();
                match answers.message().await? {
                    Some(answer) => Ok(tonic::Response::new(answer)),
                    None => Err(tonic::Status::unavailable("keep-alive stream closed")),
                }
            })
            .await?;
        if answer.ttl <= 0 {
            return Err(Error::from(tonic::Status::not_found(LEASE_NOT_FOUND)));
        }
        Ok(answer)
    }

    /// Keeps lease `id` alive in a background task until the returned
    /// [`KeepAlive`] is dropped, the lease is gone, or a renewal fails.
    pub fn lease_keep_alive(&self, id: i64) -> KeepAlive {
        let (tx, answers) = mpsc::channel(16);
        let client = self.clone();
        let task = tokio::spawn(async move {
            loop {
                let answer = client.lease_keep_alive_once(id).await;
                let wait = match &answer {
                    Ok(a) => Duration::from_secs(a.ttl.max(0) as u64 / 3).max(MIN_RENEW_INTERVAL),
                    // Expired or revoked: the channel closes.
                    Err(Error::Rpc { message, .. }) if message == LEASE_NOT_FOUND => return,
                    Err(_) => Duration::ZERO,
                };
                let failed = answer.is_err();
                if tx.send(answer).await.is_err() || failed {
                    return;
                }
                tokio::time::sleep(wait).await;
            }
        });
        KeepAlive { answers, task }
    }
}

/// A background keep-alive ([`Client::lease_keep_alive`]); dropping it stops it.
#[derive(Debug)]
pub struct KeepAlive {
    answers: mpsc::Receiver<Result<LeaseKeepAliveResponse>>,
    task: JoinHandle<()>,
}

impl KeepAlive {
    /// The next renewal's answer; None once the lease expired or was revoked.
    pub async fn next(&mut self) -> Option<Result<LeaseKeepAliveResponse>> {
        self.answers.recv().await
    }
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A lease kept alive in the background (clientv3's `concurrency.Session`):
/// the owner of locks and campaigns.
#[derive(Debug)]
pub struct Session {
    client: Client,
    lease: i64,
    keep_alive: KeepAlive,
}

impl Session {
    /// Grants a lease of `ttl` seconds and starts keeping it alive.
    pub async fn new(client: &Client, ttl: i64) -> Result<Session> {
        let lease = client.lease_grant(ttl, 0).await?.id;
        Ok(Session {
            client: client.clone(),
            lease,
            keep_alive: client.lease_keep_alive(lease),
        })
    }

    /// The session's lease ID.
    pub fn lease(&self) -> i64 {
        self.lease
    }

    /// Resolves when the session ends: its lease expired, was revoked, or
    /// could not be renewed.
    pub async fn done(&mut self) {
        while let Some(Ok(_)) = self.keep_alive.next().await {}
    }

    /// Stops renewing and revokes the lease (deleting its keys).
    pub async fn close(self) -> Result<()> {
        drop(self.keep_alive);
        self.client.lease_revoke(self.lease).await.map(|_| ())
    }
}
