//! Leadership transfer: etcd's MoveLeader, and the hand-off a leader makes
//! before it stops (etcd's `TransferLeadership` in `EtcdServer.Stop`).
//!
//! The leader holds new proposals (for at most an election timeout, as
//! etcd's raft does), waits until the transferee has replicated its whole
//! log, then sends raft's TimeoutNow to every voter
//! (`timonpb.Peer/TimeoutNow`, handled by the vendored openraft's
//! `Raft::handle_transfer_leader`, see vendor/openraft/TIMON-PATCH.md): the
//! others stop honouring its lease first, then the transferee campaigns at
//! once and wins at the next term, without waiting for an election timeout.
//! Held proposals go on once the transfer ended; on a member that is leader
//! no more they fail with `NotLeader`, and the proposer retries them at the
//! new leader.

use std::time::{Duration, Instant};

use futures::future::join_all;
use openraft::{LogId, Vote};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::network::encode;
use super::node::RaftNode;
use timon_proto::timonpb::RaftMessage;

/// raft's TimeoutNow, as `timonpb.Peer/TimeoutNow` carries it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TimeoutNow {
    /// The transferring leader's vote: members at another vote ignore it.
    pub from: Vote<u64>,
    pub to: u64,
    /// The leader's last log id, which the transferee must hold.
    pub last_log_id: Option<LogId<u64>>,
}

/// Why a transfer did not happen, each etcd's error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TransferError {
    /// `etcdserver: not leader`.
    #[error("not leader")]
    NotLeader,
    /// An unknown member or a learner: `etcdserver: bad leader transferee`.
    #[error("bad leader transferee")]
    BadTransferee,
    /// The transferee did not become leader in time.
    #[error("leader transfer took too long")]
    Timeout,
}

/// Transfers under way and proposals in flight. A proposal enters only while
/// no transfer is under way; a transfer starts by waiting until the
/// proposals in flight are done, so the leader's log is final while the
/// transferee catches up with it.
pub(super) struct TransferGate(watch::Sender<Counts>);

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    transfers: usize,
    proposals: usize,
}

impl TransferGate {
    pub(super) fn new() -> Self {
        Self(watch::Sender::new(Counts::default()))
    }

    /// Waits until no transfer is under way and counts a proposal in
    /// flight until the returned guard is dropped.
    pub(super) async fn enter(&self) -> Proposing<'_> {
        loop {
            let entered = self.0.send_if_modified(|c| {
                let open = c.transfers == 0;
                c.proposals += usize::from(open);
                open
            });
            if entered {
                return Proposing(self);
            }
            let _ = self.0.subscribe().wait_for(|c| c.transfers == 0).await;
        }
    }

    /// Holds new proposals until the returned guard is dropped.
    fn hold(&self) -> Holding<'_> {
        self.0.send_modify(|c| c.transfers += 1);
        Holding(self)
    }

    /// Returns once every proposal that entered before the hold is done.
    async fn drained(&self) {
        let _ = self.0.subscribe().wait_for(|c| c.proposals == 0).await;
    }
}

/// A proposal in flight.
pub(super) struct Proposing<'a>(&'a TransferGate);

impl Drop for Proposing<'_> {
    fn drop(&mut self) {
        self.0 .0.send_modify(|c| c.proposals -= 1);
    }
}

/// New proposals wait while this lives.
struct Holding<'a>(&'a TransferGate);

impl Drop for Holding<'_> {
    fn drop(&mut self) {
        self.0 .0.send_modify(|c| c.transfers -= 1);
    }
}

impl RaftNode {
    /// etcd's MoveLeader: hands this leader's leadership to voter `to` and
    /// returns once `to` is leader, or `Timeout` at `deadline`.
    pub async fn move_leader(&self, to: u64, deadline: Instant) -> Result<(), TransferError> {
        if self.status().leader != Some(self.id()) {
            return Err(TransferError::NotLeader);
        }
        if !self.members().iter().any(|m| m.id == to && !m.is_learner) {
            return Err(TransferError::BadTransferee);
        }
        if to == self.id() {
            return Ok(());
        }
        let started = Instant::now();
        tracing::info!(
            "leadership transfer starting: local-member-id {:x}, current-leader-member-id {:x}, transferee-member-id {:x}",
            self.id(),
            self.id(),
            to
        );
        let old_term = self.status().term;
        let leads = || async {
            let mut rx = self.raft().metrics();
            let stopped = rx
                .wait_for(|m| m.current_leader == Some(to) && m.current_term > old_term)
                .await
                .is_err();
            if stopped {
                std::future::pending::<()>().await;
            }
        };
        let handover = async {
            self.transfer_gate().drained().await;
            let msg = self.caught_up(to).await;
            self.send_timeout_now(&msg).await;
            leads().await;
        };
        // Proposals are held for at most an election timeout: etcd's raft
        // aborts a transfer after one and takes proposals again, while
        // MoveLeader waits on for the new leader until its deadline.
        let held = self.transfer_gate().hold();
        let abort = (Instant::now() + self.election_timeout()).min(deadline);
        let handed_over = tokio::time::timeout_at(abort.into(), handover).await.is_ok();
        drop(held);
        if !handed_over && tokio::time::timeout_at(deadline.into(), leads()).await.is_err() {
            return Err(TransferError::Timeout);
        }
        crate::planted::note_handoff();
        tracing::info!(
            "leadership transfer finished: local-member-id {:x}, old-leader-member-id {:x}, new-leader-member-id {:x}, took {:?}",
            self.id(),
            self.id(),
            to,
            started.elapsed()
        );
        Ok(())
    }

    /// What etcd does when it stops: a leader of more than one voter hands
    /// its leadership to the most caught-up other voter (up to the request
    /// timeout), so the cluster does not wait an election timeout.
    pub async fn transfer_leadership_on_stop(&self) {
        let status = self.status();
        if status.leader != Some(self.id()) {
            tracing::info!(
                "skipped leadership transfer; local server is not leader: local-member-id {:x}",
                self.id()
            );
            return;
        }
        let Some(to) = self.most_caught_up_voter() else {
            tracing::info!(
                "skipped leadership transfer for single voting member cluster: local-member-id {:x}",
                self.id()
            );
            return;
        };
        if let Err(e) = self.move_leader(to, Instant::now() + self.request_timeout()).await {
            tracing::warn!("leadership transfer failed: local-member-id {:x}: {e}", self.id());
        }
    }

    /// The voter other than this leader that replicated the most of its
    /// log (the lowest id among equals).
    fn most_caught_up_voter(&self) -> Option<u64> {
        let m = self.raft().metrics().borrow().clone();
        let replication = m.replication.unwrap_or_default();
        let voters: Vec<u64> = m
            .membership_config
            .membership()
            .voter_ids()
            .filter(|v| *v != self.id())
            .collect();
        // max_by_key keeps the last of equals: scan from the highest id.
        voters
            .into_iter()
            .rev()
            .max_by_key(|v| replication.get(v).cloned().flatten().map(|l| l.index))
    }

    /// Waits until `to` replicated this leader's whole log (proposals are
    /// held and those in flight are done, so the log stopped growing) and
    /// answers the TimeoutNow to send.
    async fn caught_up(&self, to: u64) -> TimeoutNow {
        let mut rx = self.raft().metrics();
        loop {
            let stopped = rx
                .wait_for(|m| {
                    let matched = m.replication.as_ref().and_then(|r| r.get(&to).cloned().flatten());
                    matched.map(|l| l.index) >= m.last_log_index
                })
                .await
                .is_err();
            if stopped {
                // Raft stopped: `to` will not catch up; the caller times out.
                std::future::pending::<()>().await;
            }
            let last_log_id = self.raft().data_metrics().borrow().last_log;
            let (from, matched) = {
                let m = rx.borrow();
                (
                    m.vote,
                    m.replication.as_ref().and_then(|r| r.get(&to).cloned().flatten()),
                )
            };
            if matched >= last_log_id {
                return TimeoutNow { from, to, last_log_id };
            }
            // An entry was appended since (not a client proposal: a lease
            // revoke or a membership change): wait for it too.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Sends TimeoutNow to the other voters, then to this member, then to
    /// the transferee, so every voter gave up the lease before the
    /// transferee's vote request reaches it. A voter that cannot be reached
    /// is skipped (the transferee needs a quorum, not every voter).
    async fn send_timeout_now(&self, msg: &TimeoutNow) {
        let Ok(encoded) = encode(msg) else { return };
        let others: Vec<u64> = self
            .members()
            .into_iter()
            .filter(|m| !m.is_learner && m.id != self.id() && m.id != msg.to)
            .map(|m| m.id)
            .collect();
        join_all(
            others
                .into_iter()
                .map(|id| self.send_timeout_now_to(id, encoded.clone())),
        )
        .await;
        self.handle_timeout_now(msg.clone()).await;
        self.send_timeout_now_to(msg.to, encoded).await;
    }

    async fn send_timeout_now_to(&self, id: u64, msg: RaftMessage) {
        let Ok(mut client) = self.peer(id) else { return };
        let timeout = self.election_timeout();
        match tokio::time::timeout(timeout, client.timeout_now(msg)).await {
            Ok(Ok(_)) => {}
            Ok(Err(status)) => tracing::warn!("TimeoutNow to {id:x}: {status}"),
            Err(_) => tracing::warn!("TimeoutNow to {id:x}: no answer within {timeout:?}"),
        }
    }

    /// A TimeoutNow received (or sent to itself by the leader).
    pub(super) async fn handle_timeout_now(&self, msg: TimeoutNow) {
        let _ = self
            .raft()
            .handle_transfer_leader(msg.from, msg.to, msg.last_log_id)
            .await;
    }
}
