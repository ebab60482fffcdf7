//! Batched read index on the leader.
//!
//! Every linearizable read needs the leader to confirm, with a heartbeat
//! round to a quorum, that it is still leader, and to name the log index the
//! reading member must have applied (DESIGN.md invariant 5). One round can
//! serve every read that arrived before it started, so reads queue here and
//! one task runs a round for everything queued, then the next round for what
//! arrived meanwhile. A read is never answered by a round that started before
//! the read arrived, which keeps it linearizable.

use tokio::sync::{mpsc, oneshot};

use super::types::Raft;
use super::ProposeError;
use openraft::error::{CheckIsLeaderError, RaftError};

type Waiter = oneshot::Sender<Result<u64, ProposeError>>;

pub struct ReadBatcher {
    tx: mpsc::UnboundedSender<Waiter>,
}

impl ReadBatcher {
    /// Starts the batching task; it ends when the batcher is dropped.
    pub fn start(raft: Raft) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<Waiter>();
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut waiters = vec![first];
                while let Ok(w) = rx.try_recv() {
                    waiters.push(w);
                }
                let result = round(&raft).await;
                for w in waiters {
                    let _ = w.send(result.clone());
                }
            }
        });
        Self { tx }
    }

    /// The leader's read index, from a round that starts after this call.
    /// `NotLeader` when this member is not the leader.
    pub async fn read_index(&self) -> Result<u64, ProposeError> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(tx).map_err(|_| ProposeError::Stopped)?;
        rx.await.map_err(|_| ProposeError::Stopped)?
    }
}

async fn round(raft: &Raft) -> Result<u64, ProposeError> {
    match raft.get_read_log_id().await {
        Ok((read, _applied)) => Ok(read.map(|l| l.index).unwrap_or(0)),
        Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(_))) => Err(ProposeError::NotLeader),
        Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(_))) => Err(ProposeError::Timeout),
        Err(RaftError::Fatal(_)) => Err(ProposeError::Stopped),
    }
}
