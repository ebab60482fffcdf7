//! A lease's renewer task, shared by the `lock` and `lease` workloads: it
//! keeps one lease alive over a keep-alive stream and records each renewal
//! as a `keep-alive` operation of its own process.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use timon_proto::etcdserverpb::lease_client::LeaseClient;
use timon_proto::etcdserverpb::{LeaseKeepAliveRequest, LeaseKeepAliveResponse};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Status, Streaming};

use crate::history::{Kind, Op};
use crate::recorder::Recorder;
use crate::workload::register;

/// How a renewer renews, and where it records.
#[derive(Clone)]
pub struct Renewal {
    pub rec: Recorder,
    /// The workload's next fresh process id (the renewer takes one, and a
    /// new one after each renewal with an unknown outcome).
    pub processes: Arc<AtomicI64>,
    /// The lease's TTL in seconds.
    pub ttl: i64,
    pub every: Duration,
    pub op_timeout: Duration,
    /// Stop renewing then (the run's deadline), if set.
    pub until: Option<Instant>,
}

impl Renewal {
    fn fresh(&self) -> i64 {
        self.processes.fetch_add(1, Ordering::Relaxed)
    }
}

/// A running renewer; it stops when this is dropped, unless detached.
pub struct Renewer(Option<JoinHandle<()>>);

impl Renewer {
    /// Starts renewing `lease` (see [`renew`]).
    pub fn spawn(channel: Channel, lease: i64, r: Renewal, lost: Arc<AtomicBool>) -> Self {
        Renewer(Some(tokio::spawn(renew(channel, lease, r, lost))))
    }

    /// Lets the renewer run on by itself (until it stops on its own).
    pub fn detach(mut self) {
        self.0.take();
    }
}

impl Drop for Renewer {
    fn drop(&mut self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}

/// Renews `lease` every `r.every` over one keep-alive stream (reopened
/// after an error) until it is found gone, not renewed for a TTL, or
/// `r.until` passed, then sets `lost`.
async fn renew(channel: Channel, lease: i64, r: Renewal, lost: Arc<AtomicBool>) {
    let mut process = r.fresh();
    let mut client = LeaseClient::new(channel);
    let mut stream = None;
    let ttl = Duration::from_secs(u64::try_from(r.ttl).unwrap_or(0));
    let mut renewed = Instant::now();
    loop {
        tokio::time::sleep(r.every).await;
        if renewed.elapsed() > ttl || r.until.is_some_and(|u| Instant::now() >= u) {
            break;
        }
        let invoked = Instant::now();
        let op = |ttl| Op::KeepAlive { lease, ttl };
        r.rec.record(process, Kind::Invoke, op(None), None, None);
        match tokio::time::timeout(r.op_timeout, keep_alive(&mut client, &mut stream, lease)).await {
            Ok(Ok(answer)) if answer.ttl > 0 => {
                let rev = answer.header.map(|h| h.revision);
                r.rec.record(process, Kind::Ok, op(Some(answer.ttl)), rev, None);
                renewed = invoked;
            }
            Ok(Ok(_)) => {
                r.rec
                    .record(process, Kind::Fail, op(None), None, Some("lease not found".into()));
                break;
            }
            Ok(Err(status)) => {
                stream = None;
                let text = register::describe(&status);
                if register::not_applied(&text) {
                    r.rec.record(process, Kind::Fail, op(None), None, Some(text));
                } else {
                    r.rec.record(process, Kind::Info, op(None), None, Some(text));
                    process = r.fresh();
                }
            }
            Err(_) => {
                stream = None;
                r.rec
                    .record(process, Kind::Info, op(None), None, Some("timeout".into()));
                process = r.fresh();
            }
        }
    }
    lost.store(true, Ordering::Relaxed);
}

type KeepAliveStream = (mpsc::Sender<LeaseKeepAliveRequest>, Streaming<LeaseKeepAliveResponse>);

/// One renewal: the request is queued before the stream is opened, as a
/// server may answer the call only with its first response.
async fn keep_alive(
    client: &mut LeaseClient<Channel>,
    stream: &mut Option<KeepAliveStream>,
    lease: i64,
) -> Result<LeaseKeepAliveResponse, Status> {
    let closed = || Status::unavailable("keep-alive stream closed");
    let request = LeaseKeepAliveRequest { id: lease };
    let (tx, responses) = match stream {
        Some((tx, responses)) => {
            tx.send(request).await.map_err(|_| closed())?;
            (tx, responses)
        }
        None => {
            let (tx, rx) = mpsc::channel(1);
            tx.send(request).await.map_err(|_| closed())?;
            let responses = client.lease_keep_alive(ReceiverStream::new(rx)).await?.into_inner();
            let (tx, responses) = stream.insert((tx, responses));
            (tx, responses)
        }
    };
    let _ = tx;
    responses.message().await?.ok_or_else(closed)
}
