//! [`RaftNode`]: one member's raft, as the rest of the server sees it.
//!
//! Every member serves every request (DESIGN.md invariant 5): a write on a
//! follower is forwarded to the leader, which proposes it and answers the
//! apply result; a linearizable read on a follower asks the leader for its
//! read index and waits until its own state machine has applied that far.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{InitializeError, RaftError};
use timon_proto::timonpb::InternalRaftRequest;

use super::forward::Forwarder;
use super::log_growth::{LogGrowth, LOG_BYTES_PER_SNAPSHOT};
use super::network::{NetworkFactory, PeerRpc, Peers};
use super::propose_batch::{self, ProposeBatcher};
use super::read_index::ReadBatcher;
use super::state_machine::{StateMachine, StoreHandle};
use super::transfer::TransferGate;
use super::types::{self, Indexed, Member};
use super::{log_store, ProposeError, RaftSettings};
use crate::apply::{EtcdError, Response};
use crate::lease::Deadlines;
use crate::mvcc::MvccStore;
use crate::storage::SharedEngine;
use crate::watch::WatchHub;

/// A snapshot of raft's progress, for Status and headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RaftStatus {
    pub member_id: u64,
    pub leader: Option<u64>,
    pub term: u64,
    pub last_log_index: u64,
    pub applied_index: u64,
    pub is_learner: bool,
}

/// A member of the current membership config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInfo {
    pub id: u64,
    pub member: Member,
    pub is_learner: bool,
}

/// What applying a proposal answered, or why it was not applied.
pub type ProposeResult = Result<Result<Response, EtcdError>, ProposeError>;

pub struct RaftNode {
    raft: types::Raft,
    pub(super) id: u64,
    store: Arc<StoreHandle>,
    pub(super) peers: Arc<Peers>,
    reads: ReadBatcher,
    proposals: ProposeBatcher,
    /// A follower's reads and writes on their way to the leader.
    forwarder: Forwarder,
    watch: Arc<WatchHub>,
    request_timeout: Duration,
    /// --election-timeout, in ms.
    election_ms: u64,
    /// --heartbeat-interval, in ms.
    heartbeat_ms: u64,
    /// Lease deadlines, kept while this member is the leader.
    leases: Arc<Deadlines>,
    /// The commit index the log store last saved (see
    /// [`RaftNode::wait_applied_committed`]).
    committed: Arc<AtomicU64>,
    /// Held while leadership is handed over (see `transfer`).
    transfer_gate: TransferGate,
}

impl RaftNode {
    /// Opens the log and state machine on `engine` and starts raft. A member
    /// with an empty log initializes the cluster from `initial_members`
    /// unless it joins an existing cluster (`join`); every member of a new
    /// cluster does so with the same config, which yields the same first
    /// entry everywhere. A restarted member resumes from its log.
    pub async fn start(
        id: u64,
        engine: SharedEngine,
        initial_members: BTreeMap<u64, Member>,
        join: bool,
        settings: &RaftSettings,
    ) -> anyhow::Result<Self> {
        let config = openraft::Config {
            cluster_name: "timon".into(),
            heartbeat_interval: settings.heartbeat_ms,
            // openraft's follower campaigns after its leader lease (= the
            // max timeout) plus a timeout drawn from [min, max): with these,
            // 1.25-1.5x --election-timeout after the last heartbeat, close to
            // etcd's [1x, 2x) (a leader's death is noticed within about two
            // election timeouts either way).
            election_timeout_min: settings.election_ms / 2,
            election_timeout_max: settings.election_ms * 3 / 4,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(settings.snapshot_count.max(1)),
            // etcd keeps 5000 entries after a snapshot for slow followers;
            // a smaller --snapshot-count keeps fewer.
            max_in_snapshot_log_to_keep: settings.snapshot_count.clamp(1, 5_000),
            // Each snapshot chunk (3 MiB) must be answered within this, or
            // the transfer starts again from its first byte: openraft's 200
            // ms was missed by every large transfer in a debug build, and
            // can be on a loaded machine. etcd's rafthttp gives a write 5 s.
            install_snapshot_timeout: 5_000,
            ..Default::default()
        };
        let config = Arc::new(config.validate()?);
        let growth = LogGrowth::new(LOG_BYTES_PER_SNAPSHOT);
        let log_store = log_store::LogStore::new(engine.clone()).with_growth(growth.clone());
        let committed = log_store.committed_index();
        let mut state_machine = StateMachine::open(engine, &settings.snapshot_dir)?;
        let store = state_machine.store();
        let watch = WatchHub::start(store.clone());
        state_machine.set_watch_hub(watch.clone());
        let leases = Arc::new(Deadlines::new(settings.lease_checkpoint_interval));
        state_machine.set_lease_deadlines(leases.clone());
        state_machine.set_auth_tokens(settings.auth_tokens.clone());
        state_machine.set_warning_apply_duration(settings.warning_apply_duration);
        state_machine.set_compaction_pacing(settings.compaction_pacing);
        let peers = Peers::new(settings.peer_dialer.clone());
        let network = NetworkFactory::new(peers.clone());
        let raft = types::Raft::new(id, config, network, log_store, state_machine).await?;
        if !join && !raft.is_initialized().await? {
            match raft.initialize(initial_members).await {
                Ok(()) => {}
                // Another member's first entry reached us first.
                Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let reads = ReadBatcher::start(raft.clone());
        let proposals = ProposeBatcher::start(raft.clone());
        let forwarder = {
            let (raft, peers) = (raft.clone(), peers.clone());
            Forwarder::start(move |id| peer_client(&raft, &peers, id))
        };
        watch_own_removal(&raft, id, peers.clone());
        stop_on_fatal_error(&raft);
        super::leader_log::spawn(&raft, id);
        super::log_growth::spawn(&raft, growth, raft.config().max_in_snapshot_log_to_keep, {
            let peers = peers.clone();
            move |id| peers.is_active(id)
        });
        // etcd's request timeout: 5 s plus two election timeouts.
        let request_timeout = Duration::from_millis(5_000 + 2 * settings.election_ms);
        Ok(Self {
            raft,
            id,
            store,
            peers,
            reads,
            proposals,
            forwarder,
            watch,
            request_timeout,
            election_ms: settings.election_ms,
            heartbeat_ms: settings.heartbeat_ms,
            leases,
            committed,
            transfer_gate: TransferGate::new(),
        })
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub(crate) fn raft(&self) -> &types::Raft {
        &self.raft
    }

    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    pub(super) fn election_timeout(&self) -> Duration {
        Duration::from_millis(self.election_ms)
    }

    pub(super) fn heartbeat_ms(&self) -> u64 {
        self.heartbeat_ms
    }

    pub(super) fn transfer_gate(&self) -> &TransferGate {
        &self.transfer_gate
    }

    pub fn lease_deadlines(&self) -> &Arc<Deadlines> {
        &self.leases
    }

    /// The watchers of this member and the events they get.
    pub fn watch_hub(&self) -> &Arc<WatchHub> {
        &self.watch
    }

    /// The MVCC store as of now (a snapshot install swaps it).
    pub fn store(&self) -> Arc<MvccStore> {
        self.store.current()
    }

    /// Replicates `req`, waits until it is applied on this member and
    /// answers what applying it answered. On a follower the leader proposes
    /// it. With no leader, or while the leader changes, it waits and retries
    /// for as long as etcd's request timeout, but only a request that
    /// certainly was not proposed is sent again.
    pub async fn propose(&self, req: InternalRaftRequest) -> ProposeResult {
        let deadline = Instant::now() + self.request_timeout;
        loop {
            let leader = self.leader_within(deadline).await?;
            let attempt = async {
                if leader == self.id {
                    return self.propose_local(req.clone()).await;
                }
                let (result, index) = self.forwarder.propose(leader, req.clone()).await?;
                // Answer once this member applied it too, so a read here
                // that follows the write sees it.
                self.wait_applied(index, deadline).await?;
                Ok((result, index))
            };
            match tokio::time::timeout_at(deadline.into(), attempt).await {
                Err(_) => return Err(ProposeError::Timeout),
                Ok(Ok((result, _))) => return Ok(result),
                Ok(Err(ProposeError::NotLeader)) => self.wait_leader_change(leader, deadline).await?,
                Ok(Err(e)) => return Err(e),
            }
        }
    }

    /// Proposes `req` on this member, which must be the leader; answers the
    /// apply result and the entry's log index. `NotLeader`: not proposed.
    /// While leadership is handed over, it waits until the transfer ended.
    pub async fn propose_local(&self, req: InternalRaftRequest) -> Result<Indexed, ProposeError> {
        let _in_flight = self.transfer_gate.enter().await;
        if propose_batch::batchable(&req) {
            return self.proposals.propose(req).await;
        }
        propose_batch::client_write(&self.raft, req).await
    }

    /// Waits briefly for a leader other than `old`, so a retry does not
    /// hammer a member that just failed; errors once `deadline` passed.
    pub(super) async fn wait_leader_change(&self, old: u64, deadline: Instant) -> Result<(), ProposeError> {
        if Instant::now() >= deadline {
            return Err(ProposeError::Timeout);
        }
        let mut rx = self.raft.metrics();
        let backoff = Duration::from_millis(100).min(deadline.saturating_duration_since(Instant::now()));
        let _ = tokio::time::timeout(backoff, rx.wait_for(|m| m.current_leader.is_some_and(|l| l != old))).await;
        Ok(())
    }

    pub(super) fn peer(&self, id: u64) -> Result<PeerRpc, ProposeError> {
        peer_client(&self.raft, &self.peers, id)
    }

    /// Makes the next read linearizable: learns the read index (from the
    /// leader, DESIGN.md invariant 5) and waits until this member applied it.
    pub async fn read_index(&self) -> Result<(), ProposeError> {
        if crate::planted::active("stale-read") && self.status().leader != Some(self.id) {
            return Ok(());
        }
        if self.planted_local_read() {
            return Ok(());
        }
        let deadline = Instant::now() + self.request_timeout;
        let index = tokio::time::timeout_at(deadline.into(), self.leader_read_index(deadline))
            .await
            .map_err(|_| ProposeError::Timeout)??;
        self.wait_applied(index, deadline).await
    }

    /// Whether a planted bug answers this read from local state (see
    /// `crate::planted`: `leaderless-read`, `joined-stale-read`,
    /// `handoff-stale-read`).
    fn planted_local_read(&self) -> bool {
        use crate::planted::{active, joined, recently_handed_off};
        let leader = self.status().leader;
        (active("leaderless-read") && leader.is_none())
            || (active("joined-stale-read") && joined() && leader != Some(self.id))
            || (active("handoff-stale-read") && recently_handed_off())
    }

    async fn leader_read_index(&self, deadline: Instant) -> Result<u64, ProposeError> {
        loop {
            let leader = self.leader_within(deadline).await?;
            let result = if leader == self.id {
                self.reads.read_index().await
            } else {
                self.forwarder.read_index(leader).await
            };
            match result {
                // A read is safe to ask again: wait for the new leader.
                Err(ProposeError::NotLeader | ProposeError::LeaderChanged) => {
                    self.wait_leader_change(leader, deadline).await?
                }
                // The leader's confirmation round heard from no quorum within
                // its per-peer deadline (one heartbeat interval; a loaded
                // machine or a slow peer misses it). A later round is as
                // good, so ask again until the request deadline, as etcd's
                // read loop does, instead of failing the read at once.
                Err(ProposeError::Timeout) if Instant::now() < deadline => {
                    let pause = Duration::from_millis(self.heartbeat_ms);
                    tokio::time::sleep(pause.min(deadline.saturating_duration_since(Instant::now()))).await
                }
                other => return other,
            }
        }
    }

    /// The read index, answered by the leader for itself or a follower.
    pub async fn local_read_index(&self) -> Result<u64, ProposeError> {
        self.reads.read_index().await
    }

    /// etcd's `waitAppliedIndex`: waits (up to a second) until this
    /// member's state machine applied every entry it knows committed. The
    /// leader does so before it answers from lease state, so a lease that a
    /// committed revoke ended, which a read on another member may already
    /// have shown gone, is not renewed in the gap before the leader applies
    /// the revoke.
    pub(super) async fn wait_applied_committed(&self) -> Result<(), ProposeError> {
        const APPLY_TIMEOUT: Duration = Duration::from_secs(1);
        let committed = self.committed.load(Ordering::Relaxed);
        match self.wait_applied(committed, Instant::now() + APPLY_TIMEOUT).await {
            Err(ProposeError::Timeout) => Err(ProposeError::AppliedIndexTimeout),
            other => other,
        }
    }

    /// Waits, up to the request timeout, until this member applied entry
    /// `index` (a simple auth token names the entry that made it: etcd's
    /// `indexWaiter`).
    pub async fn wait_applied_index(&self, index: u64) -> Result<(), ProposeError> {
        self.wait_applied(index, Instant::now() + self.request_timeout).await
    }

    async fn wait_applied(&self, index: u64, deadline: Instant) -> Result<(), ProposeError> {
        if self.status().applied_index >= index {
            return Ok(());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        self.raft
            .wait(Some(left))
            .applied_index_at_least(Some(index), "read index")
            .await
            .map(|_| ())
            .map_err(|e| match e {
                openraft::metrics::WaitError::Timeout(..) => ProposeError::Timeout,
                openraft::metrics::WaitError::ShuttingDown => ProposeError::Stopped,
            })
    }

    /// The current leader, waiting for one until `deadline`.
    pub(super) async fn leader_within(&self, deadline: Instant) -> Result<u64, ProposeError> {
        if let Some(l) = self.status().leader {
            return Ok(l);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        self.wait_for_leader(left).await.ok_or(ProposeError::NoLeader)
    }

    pub fn status(&self) -> RaftStatus {
        // Called for every request (headers, leader checks): read the
        // metrics in place rather than cloning them.
        let rx = self.raft.metrics();
        let m = rx.borrow();
        // etcd's check-quorum: a leader that heard from no quorum for an
        // election timeout is leader no more (openraft keeps the role, so
        // the member reports no leader and refuses what needs one).
        let lost_quorum = m.current_leader == Some(self.id)
            && m.membership_config.membership().voter_ids().count() > 1
            && m.millis_since_quorum_ack.is_none_or(|ms| ms > self.election_ms);
        let is_learner = !m.membership_config.membership().voter_ids().any(|v| v == self.id);
        RaftStatus {
            member_id: self.id,
            leader: if lost_quorum { None } else { m.current_leader },
            term: m.current_term,
            last_log_index: m.last_log_index.unwrap_or(0),
            applied_index: m.last_applied.map(|l| l.index).unwrap_or(0),
            is_learner,
        }
    }

    /// Waits until some member is leader, up to `timeout`.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Option<u64> {
        let mut rx = self.raft.metrics();
        let wait = async {
            loop {
                if let Some(l) = rx.borrow_and_update().current_leader {
                    return Some(l);
                }
                if rx.changed().await.is_err() {
                    return None;
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.ok().flatten()
    }

    /// Becomes true once this member learns it was removed from the cluster.
    pub fn removed(&self) -> tokio::sync::watch::Receiver<bool> {
        self.peers.removed()
    }

    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!("raft shutdown: {e}");
        }
    }
}

/// Stops the process once raft's core quits on an error (a log or vote
/// write that failed: an fsync answering EIO, a full disk), as etcd's
/// `lg.Fatal` does when its WAL cannot be saved. Serving on would leave a
/// member that answers Status but can never write or confirm a read again,
/// and that a supervisor never restarts; and an fsync that failed must not
/// be retried (Linux may have dropped the pages it was to write). A
/// restart recovers from what reached the disk.
fn stop_on_fatal_error(raft: &types::Raft) {
    let mut rx = raft.metrics();
    tokio::spawn(async move {
        loop {
            let error = match &rx.borrow_and_update().running_state {
                Err(openraft::error::Fatal::Stopped) => return,
                Err(e) => Some(e.to_string()),
                Ok(()) => None,
            };
            if let Some(error) = error {
                crate::logs::fatal("raft stopped on a storage error; stopping the member", &error);
                std::process::exit(1);
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    });
}

/// Marks this member removed once a membership config it belonged to is
/// replaced by one without it (a member that never belonged, e.g. one
/// waiting to be added, is not removed).
fn watch_own_removal(raft: &types::Raft, id: u64, peers: Arc<Peers>) {
    let mut rx = raft.metrics();
    tokio::spawn(async move {
        let mut was_member = false;
        loop {
            let in_config = rx
                .borrow_and_update()
                .membership_config
                .membership()
                .get_node(&id)
                .is_some();
            if in_config {
                was_member = true;
            } else if was_member {
                peers.mark_removed();
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    });
}

/// A client of member `id`, at the URL the membership names.
fn peer_client(raft: &types::Raft, peers: &Peers, id: u64) -> Result<PeerRpc, ProposeError> {
    let membership = raft.metrics().borrow().membership_config.clone();
    let member = membership
        .membership()
        .get_node(&id)
        .cloned()
        .ok_or(ProposeError::NoLeader)?;
    peers.client(id, &member).map_err(|_| ProposeError::NoLeader)
}
