//! Group commit of proposals: KV writes that reach the leader while earlier
//! ones are still in raft are proposed together, as one `Batch` entry.
//!
//! openraft 0.9 appends (and fsyncs) the log once per `client_write`, so
//! one entry per request caps a member at one fsync per write. The batcher
//! keeps at most [`IN_FLIGHT`] entries in raft; what arrives meanwhile
//! waits in its queue and goes out as the next entry, up to
//! [`MAX_REQUESTS`] requests or about [`MAX_BYTES`]. A lone request is
//! proposed as itself, so an idle member adds no latency; when none of the
//! batcher's entries is in raft, the caller's own task proposes it, which
//! spares the two task hand-offs of the queue (to the batching task, then
//! to the task it spawns) and the one back: a single client's write on an
//! idle member is that much faster.
//!
//! Apply executes a batch's requests in order, each with its own revision
//! and response (`raft::state_machine`), so clients see exactly what they
//! would have seen had each been proposed alone.

use std::sync::Arc;

use openraft::error::{ClientWriteError, RaftError};
use prost::Message;
use timon_proto::timonpb::internal_raft_request::Request;
use timon_proto::timonpb::{Batch, InternalRaftRequest};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use super::types::{self, Indexed};
use super::ProposeError;
use crate::apply::Response;

/// Entries of this batcher in raft at once.
pub const IN_FLIGHT: usize = 4;
/// Requests in one entry at most.
pub const MAX_REQUESTS: usize = 512;
/// Bytes of requests after which an entry takes no more (a soft limit: a
/// request is never split, and one request may be up to
/// --max-request-bytes).
pub const MAX_BYTES: usize = 2 << 20;

type Reply = oneshot::Sender<Result<Indexed, ProposeError>>;

/// The handle proposals go through; cheap to clone.
#[derive(Clone)]
pub struct ProposeBatcher {
    tx: mpsc::UnboundedSender<(InternalRaftRequest, Reply)>,
    raft: types::Raft,
    slots: Slots,
}

/// The batcher's [`IN_FLIGHT`] permits: one per entry in raft, and one
/// held by the batching task while it waits for requests.
#[derive(Clone)]
struct Slots(Arc<Semaphore>);

impl Slots {
    fn new() -> Self {
        Self(Arc::new(Semaphore::new(IN_FLIGHT)))
    }

    /// The batching task's next slot, once one is free.
    async fn next(&self) -> Option<OwnedSemaphorePermit> {
        self.0.clone().acquire_owned().await.ok()
    }

    /// A slot for proposing directly, when no entry of this batcher is in
    /// raft (every permit is free but the one the batching task waits
    /// with). A request that races with queued ones may go first: they
    /// are concurrent, so either order is one the clients could see.
    fn idle(&self) -> Option<OwnedSemaphorePermit> {
        if self.0.available_permits() + 1 < IN_FLIGHT {
            return None;
        }
        self.0.clone().try_acquire_owned().ok()
    }
}

/// Whether `req` may share an entry with others: the KV writes, whose apply
/// has no effect outside the MVCC store.
pub fn batchable(req: &InternalRaftRequest) -> bool {
    match &req.request {
        Some(Request::Put(_) | Request::DeleteRange(_) | Request::Txn(_)) => true,
        // A user's KV write: applied as that user inside the batch.
        Some(Request::AsUser(a)) => a.request.as_deref().is_some_and(batchable),
        _ => false,
    }
}

impl ProposeBatcher {
    /// Starts the batching task for `raft`; it ends when every handle is gone.
    pub fn start(raft: types::Raft) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let slots = Slots::new();
        tokio::spawn(run(raft.clone(), rx, slots.clone()));
        Self { tx, raft, slots }
    }

    /// Proposes `req` (which must be [`batchable`]) on this member, which
    /// should be the leader: answers its own apply result and the index of
    /// the entry that carried it.
    pub async fn propose(&self, req: InternalRaftRequest) -> Result<Indexed, ProposeError> {
        if let Some(slot) = self.slots.idle() {
            let answer = client_write(&self.raft, req).await;
            drop(slot);
            return answer;
        }
        let (reply, rx) = oneshot::channel();
        self.tx.send((req, reply)).map_err(|_| ProposeError::Stopped)?;
        rx.await.map_err(|_| ProposeError::Stopped)?
    }
}

async fn run(raft: types::Raft, mut rx: mpsc::UnboundedReceiver<(InternalRaftRequest, Reply)>, slots: Slots) {
    loop {
        let Some(slot) = slots.next().await else {
            return;
        };
        let Some(batch) = next_batch(&mut rx, |(req, _)| req.encoded_len()).await else {
            return;
        };
        let raft = raft.clone();
        tokio::spawn(async move {
            propose(&raft, batch).await;
            drop(slot);
        });
    }
}

/// Waits for the next queued item and takes what else is queued with it,
/// up to [`MAX_REQUESTS`] items or about [`MAX_BYTES`] by `size`; None once
/// every sender is gone.
pub(super) async fn next_batch<T>(rx: &mut mpsc::UnboundedReceiver<T>, size: impl Fn(&T) -> usize) -> Option<Vec<T>> {
    let first = rx.recv().await?;
    let mut bytes = size(&first);
    let mut batch = vec![first];
    while batch.len() < MAX_REQUESTS && bytes < MAX_BYTES {
        match rx.try_recv() {
            Ok(next) => {
                bytes += size(&next);
                batch.push(next);
            }
            Err(_) => break,
        }
    }
    Some(batch)
}

/// Proposes `batch` as one entry and hands each request its own answer.
async fn propose(raft: &types::Raft, mut batch: Vec<(InternalRaftRequest, Reply)>) {
    if batch.len() == 1 {
        let (req, reply) = batch.pop().expect("one request");
        let _ = reply.send(client_write(raft, req).await);
        return;
    }
    let (requests, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
    let entry = InternalRaftRequest {
        request: Some(Request::Batch(Batch { requests })),
    };
    match client_write(raft, entry).await {
        Ok((Ok(Response::Batch(results)), index)) if results.len() == replies.len() => {
            for (reply, result) in replies.into_iter().zip(results) {
                let _ = reply.send(Ok((result, index)));
            }
        }
        Ok((other, _)) => {
            // Apply answers a batch with a batch; anything else is a bug.
            tracing::error!("a batch entry was answered {other:?}");
            for reply in replies {
                let _ = reply.send(Err(ProposeError::Stopped));
            }
        }
        Err(e) => {
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}

/// One entry through openraft.
pub(super) async fn client_write(raft: &types::Raft, req: InternalRaftRequest) -> Result<Indexed, ProposeError> {
    match raft.client_write(req).await {
        Ok(resp) => Ok((resp.data.0, resp.log_id.index)),
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => Err(ProposeError::NotLeader),
        Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(_))) => Err(ProposeError::Timeout),
        Err(RaftError::Fatal(_)) => Err(ProposeError::Stopped),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_proposal_goes_direct_only_while_no_entry_is_in_raft() {
        let slots = Slots::new();
        let waiting = slots.next().await.expect("the batching task waits with one slot");
        let direct = slots.idle().expect("nothing in raft: propose directly");
        assert!(slots.idle().is_none(), "one entry in raft: queue");
        drop(direct);
        // The batching task proposed what it waited for and waits again.
        let in_raft = waiting;
        let _waiting = slots.next().await.expect("a free slot");
        assert!(slots.idle().is_none(), "an entry of the queue in raft: queue");
        drop(in_raft);
        assert!(slots.idle().is_some(), "idle again");
    }
}
