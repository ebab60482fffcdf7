//! `lease-keepalive`: each client grants one lease (TTL 60 s) and opens one
//! LeaseKeepAlive stream; a request is one keepalive and its answer on that
//! stream. Leases are revoked after the run.

use std::time::Duration;

use anyhow::Context;
use timon_proto::etcdserverpb::{LeaseGrantRequest, LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseRevokeRequest};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

use crate::conns::Pool;
use crate::options::Common;
use crate::progress::Progress;
use crate::report::Report;
use crate::runner::{self, Client, Outcome};

const TTL_SECS: i64 = 60;

struct KeepAliver {
    id: i64,
    tx: mpsc::Sender<LeaseKeepAliveRequest>,
    rx: Streaming<LeaseKeepAliveResponse>,
}

impl Client for KeepAliver {
    async fn call(&mut self, _seq: u64) -> Result<Outcome, tonic::Status> {
        self.tx
            .send(LeaseKeepAliveRequest { id: self.id })
            .await
            .map_err(|_| tonic::Status::unavailable("keepalive stream closed"))?;
        match self.rx.message().await? {
            Some(resp) if resp.ttl > 0 => Ok(Outcome::Done),
            Some(_) => Err(tonic::Status::not_found("lease expired")),
            None => Err(tonic::Status::unavailable("keepalive stream ended")),
        }
    }
}

pub async fn run(c: &Common, pool: &Pool, progress: &Progress) -> anyhow::Result<Report> {
    let mut clients = Vec::with_capacity(c.clients);
    for i in 0..c.clients {
        let mut lease = pool.lease(i);
        let id = lease
            .lease_grant(LeaseGrantRequest { ttl: TTL_SECS, id: 0 })
            .await
            .with_context(|| format!("grant lease for client {i}"))?
            .into_inner()
            .id;
        // The first keepalive is queued before the call: etcd (grpc-go)
        // sends the response headers the call waits for only with its first
        // message. Its answer is read here, unmeasured.
        let (tx, requests) = mpsc::channel(1);
        tx.send(LeaseKeepAliveRequest { id }).await?;
        let mut rx = lease
            .lease_keep_alive(ReceiverStream::new(requests))
            .await
            .with_context(|| format!("open keepalive stream for client {i}"))?
            .into_inner();
        rx.message()
            .await?
            .with_context(|| format!("keepalive stream of client {i} ended at once"))?;
        clients.push(KeepAliver { id, tx, rx });
    }
    let ids: Vec<i64> = clients.iter().map(|k| k.id).collect();
    let (rec, took) = runner::run(clients, super::stop(c), c.rate, progress).await?;
    for (i, id) in ids.into_iter().enumerate() {
        let mut lease = pool.lease(i);
        let _ = tokio::time::timeout(Duration::from_secs(5), lease.lease_revoke(LeaseRevokeRequest { id })).await;
    }
    Ok(Report::new("lease-keepalive", rec, took))
}
