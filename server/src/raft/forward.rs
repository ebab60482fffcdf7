//! What a follower sends its leader on behalf of its clients, batched.
//!
//! Every member serves every request (DESIGN.md invariant 5), so under load a
//! follower forwards a stream of writes and read-index requests to its
//! leader. One gRPC call each costs both members a stream, its headers and a
//! task per request; etcd instead carries its proposals and read requests
//! inside the raft stream. Here they share calls:
//!
//! - **Reads.** A linearizable read on a follower needs the leader's read
//!   index from a round that started after the read arrived. Reads queue;
//!   one task sends a `ReadIndex` call for everything queued, then the next
//!   call for what arrived meanwhile. The leader answers each call from a
//!   round that starts after the call arrived (`read_index`), hence after
//!   every read it carries arrived: linearizable, as with a call per read.
//! - **Writes.** Up to [`WRITES_IN_FLIGHT`] `ProposeMany` calls are out at once;
//!   what arrives meanwhile waits and goes in the next one (up to
//!   `propose_batch::MAX_REQUESTS` or about `MAX_BYTES`). The leader proposes the
//!   requests of a call together, so they usually share one log entry too
//!   (`propose_batch`), and answers each its own result. A lone write goes
//!   at once, so an idle follower adds no latency.
//!
//! A call that fails fails every request it carried, with the error a call
//! of its own would have had: `NotLeader` when it certainly reached no
//! leader (safe to send again), `LeaderChanged` when its fate is unknown.
//! A leader too old to know `ProposeMany` (a rolling upgrade) answers
//! `Unimplemented`, which proposed nothing: those writes fail `NotLeader`,
//! their callers send them again, and for a minute every write to that
//! leader goes in a `Propose` call of its own.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::join_all;
use prost::Message;
use timon_proto::timonpb::{Batch, InternalRaftRequest, ReadIndexRequest};
use tokio::sync::{mpsc, oneshot, Semaphore};

use super::network::{decode, PeerRpc};
use super::propose_batch::next_batch;
use super::types::Indexed;
use super::ProposeError;

/// `ReadIndex` calls out at once: one. The leader answers a call from its
/// next heartbeat round, so reads queued behind a call lose little, and one
/// call at a time batched the most: in A/B runs against main on 3 members
/// with 100 clients (benches/README.md), a quarter fewer CPU µs per
/// linearizable read and 1.3-1.4x the reads/s; with 4 calls or no limit the
/// CPU saving shrank (-24%, 0%).
pub const READS_IN_FLIGHT: usize = 1;
/// `ProposeMany` calls out at once. Writes wait for their commit, so with
/// few calls in flight writes queue behind them; in the same runs puts were
/// 0.96x of main's with 4, 0.99-1.16x with 16, 1.03-1.19x with no limit
/// (within the noise of each other); 16 keeps a bound.
pub const WRITES_IN_FLIGHT: usize = 16;

type ReadWaiter = oneshot::Sender<Result<u64, ProposeError>>;
type WriteReply = oneshot::Sender<Result<Indexed, ProposeError>>;
type Write = (InternalRaftRequest, WriteReply);

/// The handle reads and writes are forwarded through.
pub struct Forwarder {
    reads: mpsc::UnboundedSender<(u64, ReadWaiter)>,
    writes: mpsc::UnboundedSender<(u64, Write)>,
}

impl Forwarder {
    /// Starts the forwarding tasks; they end when the forwarder is dropped.
    /// `client` gives a member's peer client, by ID.
    pub fn start(client: impl Fn(u64) -> Result<PeerRpc, ProposeError> + Send + Sync + 'static) -> Self {
        let route = Route {
            client: Arc::new(client),
            old_leaders: Arc::default(),
        };
        let (reads, reads_rx) = mpsc::unbounded_channel();
        let (writes, writes_rx) = mpsc::unbounded_channel();
        tokio::spawn(run_reads(route.clone(), reads_rx));
        tokio::spawn(run_writes(route, writes_rx));
        Self { reads, writes }
    }

    /// `leader`'s read index, from a round that starts after this call.
    pub async fn read_index(&self, leader: u64) -> Result<u64, ProposeError> {
        let (tx, rx) = oneshot::channel();
        self.reads.send((leader, tx)).map_err(|_| ProposeError::Stopped)?;
        rx.await.map_err(|_| ProposeError::Stopped)?
    }

    /// Asks `leader` to propose `req`: its apply result and entry index.
    pub async fn propose(&self, leader: u64, req: InternalRaftRequest) -> Result<Indexed, ProposeError> {
        let (tx, rx) = oneshot::channel();
        self.writes
            .send((leader, (req, tx)))
            .map_err(|_| ProposeError::Stopped)?;
        rx.await.map_err(|_| ProposeError::Stopped)?
    }
}

/// How to reach a leader.
#[derive(Clone)]
struct Route {
    client: Arc<dyn Fn(u64) -> Result<PeerRpc, ProposeError> + Send + Sync>,
    /// Leaders that answered `ProposeMany` with `Unimplemented`, and when.
    old_leaders: Arc<Mutex<HashMap<u64, Instant>>>,
}

/// How long a leader that lacked `ProposeMany` gets one call per write.
const OLD_LEADER_RETRY: Duration = Duration::from_secs(60);

impl Route {
    fn client(&self, id: u64) -> Result<PeerRpc, ProposeError> {
        (self.client)(id)
    }

    async fn read_index(&self, leader: u64) -> Result<u64, ProposeError> {
        match self.client(leader)?.read_index(ReadIndexRequest {}).await {
            Ok(r) => Ok(r.into_inner().index),
            Err(status) => Err(ProposeError::from_status(&status)),
        }
    }

    /// Sends `batch` to `leader` and hands each request its answer.
    async fn propose(&self, leader: u64, batch: Vec<Write>) {
        let mut client = match self.client(leader) {
            Ok(c) => c,
            Err(e) => return fail(batch.into_iter().map(|(_, reply)| reply), e),
        };
        if batch.len() == 1 || self.without_many(leader) {
            let each = batch.into_iter().map(|(req, reply)| {
                let mut client = client.clone();
                async move {
                    let answer = match client.propose(req).await {
                        Ok(resp) => decode(&resp.into_inner()).unwrap_or(Err(ProposeError::Stopped)),
                        Err(status) => Err(call_error(&status)),
                    };
                    let _ = reply.send(answer);
                }
            });
            join_all(each).await;
            return;
        }
        let (requests, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
        let answers = match client.propose_many(Batch { requests }).await {
            Ok(resp) => decode::<Vec<Result<Indexed, ProposeError>>>(&resp.into_inner()),
            Err(status) if status.code() == tonic::Code::Unimplemented => {
                // Not proposed: the callers send them again, one call each.
                tracing::info!(leader = %format!("{leader:x}"), "leader does not take forwarded writes together; sending them one by one");
                self.old_leaders
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(leader, Instant::now());
                return fail(replies, ProposeError::NotLeader);
            }
            Err(status) => return fail(replies, call_error(&status)),
        };
        match answers {
            Ok(answers) if answers.len() == replies.len() => {
                for (reply, answer) in replies.into_iter().zip(answers) {
                    let _ = reply.send(answer);
                }
            }
            _ => {
                tracing::error!("a leader's answer to forwarded writes is not one result per write");
                fail(replies, ProposeError::Stopped)
            }
        }
    }

    /// Whether `leader` answered `ProposeMany` with `Unimplemented` in the
    /// last [`OLD_LEADER_RETRY`] (it may have been upgraded since).
    fn without_many(&self, leader: u64) -> bool {
        let mut old = self.old_leaders.lock().unwrap_or_else(|p| p.into_inner());
        old.retain(|_, since| since.elapsed() < OLD_LEADER_RETRY);
        old.contains_key(&leader)
    }
}

/// A forwarded write whose call failed: `Unavailable` means the call reached
/// no server (not proposed), anything else leaves its fate unknown.
fn call_error(status: &tonic::Status) -> ProposeError {
    if status.code() == tonic::Code::Unavailable {
        ProposeError::NotLeader
    } else {
        ProposeError::LeaderChanged
    }
}

fn fail(replies: impl IntoIterator<Item = WriteReply>, e: ProposeError) {
    for reply in replies {
        let _ = reply.send(Err(e.clone()));
    }
}

/// Splits what was queued by the leader it is for (one, unless the leader
/// changed while it queued).
fn by_leader<T>(queued: Vec<(u64, T)>) -> BTreeMap<u64, Vec<T>> {
    let mut groups: BTreeMap<u64, Vec<T>> = BTreeMap::new();
    for (leader, item) in queued {
        groups.entry(leader).or_default().push(item);
    }
    groups
}

async fn run_reads(route: Route, mut rx: mpsc::UnboundedReceiver<(u64, ReadWaiter)>) {
    let slots = Arc::new(Semaphore::new(READS_IN_FLIGHT));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = rx.recv().await else {
            return;
        };
        let mut queued = vec![first];
        while let Ok(next) = rx.try_recv() {
            queued.push(next);
        }
        let route = route.clone();
        tokio::spawn(async move {
            let calls = by_leader(queued).into_iter().map(|(leader, waiters)| {
                let route = &route;
                async move {
                    let result = route.read_index(leader).await;
                    for w in waiters {
                        let _ = w.send(result.clone());
                    }
                }
            });
            join_all(calls).await;
            drop(slot);
        });
    }
}

async fn run_writes(route: Route, mut rx: mpsc::UnboundedReceiver<(u64, Write)>) {
    let slots = Arc::new(Semaphore::new(WRITES_IN_FLIGHT));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let Some(queued) = next_batch(&mut rx, |(_, (req, _))| req.encoded_len()).await else {
            return;
        };
        let route = route.clone();
        tokio::spawn(async move {
            join_all(
                by_leader(queued)
                    .into_iter()
                    .map(|(leader, batch)| route.propose(leader, batch)),
            )
            .await;
            drop(slot);
        });
    }
}
