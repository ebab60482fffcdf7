//! Leases on the raft side (DESIGN.md invariant 7): the leader keeps the
//! deadlines ([`crate::lease::Deadlines`]), promotes them when it becomes
//! leader, and proposes a LeaseRevoke through raft for each lease that
//! expired, and a LeaseCheckpoint with the remaining TTLs that are due (so
//! that the next leader restarts each lease from its remaining TTL).
//! Renewals and remaining-TTL questions need those deadlines, so a
//! follower forwards them to the leader over the Peer service.

use std::sync::Arc;
use std::time::{Duration, Instant};

use timon_proto::etcdserverpb::{
    LeaseCheckpoint, LeaseCheckpointRequest, LeaseKeepAliveRequest, LeaseRevokeRequest, LeaseTimeToLiveRequest,
    LeaseTimeToLiveResponse,
};
use timon_proto::timonpb::internal_raft_request::Request;
use timon_proto::timonpb::InternalRaftRequest;

use super::network::decode;
use super::node::RaftNode;
use super::ProposeError;
use crate::apply::{lease, EtcdError};
use crate::lease::{RenewError, MAX_CHECKPOINT_BATCH};

/// How often the leader looks for expired leases (etcd's lessor loop: 500 ms).
const EXPIRY_CHECK: Duration = Duration::from_millis(500);

impl RaftNode {
    /// etcd's minimum lease TTL in seconds: 1.5 election timeouts, counted
    /// in whole heartbeats as etcd counts ticks, rounded up.
    pub fn min_lease_ttl(&self) -> i64 {
        let heartbeat = self.heartbeat_ms().max(1);
        let ticks = self.election_timeout().as_millis() as u64 / heartbeat;
        let min_ms = (3 * ticks) / 2 * heartbeat;
        min_ms.div_ceil(1000) as i64
    }

    /// Starts the task that keeps lease deadlines on the leader and revokes
    /// expired leases; it ends with raft.
    pub fn start_lease_expiry(self: &Arc<Self>) {
        let node = Arc::downgrade(self);
        let mut rx = self.raft().metrics();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(EXPIRY_CHECK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let full = tokio::select! {
                    _ = tick.tick() => true,
                    changed = rx.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        false
                    }
                };
                let Some(node) = node.upgrade() else { return };
                node.follow_leadership();
                if full {
                    node.revoke_expired().await;
                    node.checkpoint_due().await;
                }
            }
        });
    }

    /// Promotes the deadlines when this member became leader, demotes them
    /// when it stopped being leader.
    fn follow_leadership(&self) {
        let deadlines = self.lease_deadlines();
        let leader = self.status().leader == Some(self.id());
        if leader == deadlines.is_primary() {
            return;
        }
        if !leader {
            deadlines.demote();
            return;
        }
        match lease::remaining_ttls(self.store().engine().as_ref()) {
            Ok(table) => deadlines.promote(&table, self.election_timeout()),
            Err(e) => tracing::warn!("cannot read the lease table: {e}"),
        }
    }

    /// On the leader: brings the deadlines in line with the lease table and
    /// proposes a revoke for each expired lease.
    async fn revoke_expired(&self) {
        let deadlines = self.lease_deadlines().clone();
        if !deadlines.is_primary() {
            return;
        }
        match lease::leases(self.store().engine().as_ref()) {
            Ok(table) => deadlines.reconcile(&table),
            Err(e) => return tracing::warn!("cannot read the lease table: {e}"),
        }
        for id in deadlines.expired() {
            // As root, as etcd's leader revokes (`WithRoot`): the keys of
            // the lease may be anyone's.
            let req = crate::auth::as_root(InternalRaftRequest {
                request: Some(Request::LeaseRevoke(LeaseRevokeRequest { id })),
            });
            match tokio::time::timeout(self.request_timeout(), self.propose_local(req)).await {
                Ok(Ok((Ok(_), _))) => {}
                Ok(Ok((Err(EtcdError::LeaseNotFound), _))) => deadlines.revoked(id),
                other => {
                    // Tried again at the next check, if still leader.
                    tracing::warn!("cannot revoke expired lease {id:x}: {other:?}");
                    return;
                }
            }
        }
    }

    /// On the leader: proposes the due checkpoints of remaining TTLs, in
    /// batches of at most [`MAX_CHECKPOINT_BATCH`].
    async fn checkpoint_due(&self) {
        let deadlines = self.lease_deadlines().clone();
        if !deadlines.is_primary() {
            return;
        }
        let table = match lease::leases(self.store().engine().as_ref()) {
            Ok(table) => table,
            Err(e) => return tracing::warn!("cannot read the lease table: {e}"),
        };
        loop {
            let due = deadlines.due_checkpoints(&table, MAX_CHECKPOINT_BATCH);
            if due.is_empty() {
                return;
            }
            let full = due.len() == MAX_CHECKPOINT_BATCH;
            let checkpoints = due
                .into_iter()
                .map(|(id, remaining_ttl)| LeaseCheckpoint { id, remaining_ttl })
                .collect();
            let req = InternalRaftRequest {
                request: Some(Request::LeaseCheckpoint(LeaseCheckpointRequest { checkpoints })),
            };
            match tokio::time::timeout(self.request_timeout(), self.propose_local(req)).await {
                Ok(Ok(_)) => {}
                // The next one is due an interval later; meanwhile a new
                // leader would restart the lease from an older, longer TTL.
                other => return tracing::warn!("cannot checkpoint lease TTLs: {other:?}"),
            }
            if !full {
                return;
            }
        }
    }

    /// Renews lease `id` on the leader (forwarding from a follower) and
    /// answers its TTL, or 0 if the lease does not exist (any more).
    pub async fn lease_renew(&self, id: i64) -> Result<i64, ProposeError> {
        let deadline = Instant::now() + self.request_timeout();
        loop {
            let leader = self.leader_within(deadline).await?;
            let result = if leader == self.id() {
                self.local_lease_renew(id).await
            } else {
                match self.peer(leader)?.lease_renew(LeaseKeepAliveRequest { id }).await {
                    Ok(r) => decode(&r.into_inner()).map_err(|_| ProposeError::Stopped)?,
                    Err(status) => Err(ProposeError::from_status(&status)),
                }
            };
            match result {
                Err(ProposeError::NotLeader | ProposeError::LeaderChanged) => {
                    self.wait_leader_change(leader, deadline).await?
                }
                other => return other,
            }
        }
    }

    /// Renews lease `id` on this member, which must be the leader.
    pub async fn local_lease_renew(&self, id: i64) -> Result<i64, ProposeError> {
        if !self.lease_deadlines().is_primary() {
            return Err(ProposeError::NotLeader);
        }
        if !crate::planted::active("renew-before-apply") {
            self.wait_applied_committed().await?;
        }
        let engine = self.store().engine().clone();
        let (ttl, remaining) = match (
            lease::lookup(engine.as_ref(), id),
            lease::checkpointed(engine.as_ref(), id),
        ) {
            (Ok(Some(ttl)), Ok(remaining)) => (ttl, remaining.unwrap_or(0)),
            (Ok(None), _) => return Ok(0),
            _ => return Err(ProposeError::Stopped),
        };
        match self.lease_deadlines().renew(id, ttl, remaining > 0) {
            Ok(ttl) => Ok(ttl),
            Err(RenewError::NotFound) => Ok(0),
            Err(RenewError::NotPrimary) => Err(ProposeError::NotLeader),
        }
    }

    /// Lease `req.id`'s remaining and granted TTL (and keys), from the
    /// leader; TTL -1 if it does not exist, as etcd answers.
    pub async fn lease_time_to_live(
        &self,
        req: LeaseTimeToLiveRequest,
    ) -> Result<LeaseTimeToLiveResponse, ProposeError> {
        let deadline = Instant::now() + self.request_timeout();
        loop {
            let leader = self.leader_within(deadline).await?;
            let result = if leader == self.id() {
                self.local_lease_time_to_live(&req).await
            } else {
                match self.peer(leader)?.lease_time_to_live(req).await {
                    Ok(r) => decode(&r.into_inner()).map_err(|_| ProposeError::Stopped)?,
                    Err(status) => Err(ProposeError::from_status(&status)),
                }
            };
            match result {
                Err(ProposeError::NotLeader | ProposeError::LeaderChanged) => {
                    self.wait_leader_change(leader, deadline).await?
                }
                other => return other,
            }
        }
    }

    /// [`Self::lease_time_to_live`] on this member, which must be the leader.
    pub async fn local_lease_time_to_live(
        &self,
        req: &LeaseTimeToLiveRequest,
    ) -> Result<LeaseTimeToLiveResponse, ProposeError> {
        let deadlines = self.lease_deadlines();
        if !deadlines.is_primary() {
            return Err(ProposeError::NotLeader);
        }
        self.wait_applied_committed().await?;
        let engine = self.store().engine().clone();
        let granted = match lease::lookup(engine.as_ref(), req.id) {
            Ok(Some(ttl)) => ttl,
            Ok(None) => {
                return Ok(LeaseTimeToLiveResponse {
                    id: req.id,
                    ttl: -1,
                    ..LeaseTimeToLiveResponse::default()
                })
            }
            Err(_) => return Err(ProposeError::Stopped),
        };
        let keys = if req.keys {
            lease::keys(engine.as_ref(), req.id).map_err(|_| ProposeError::Stopped)?
        } else {
            Vec::new()
        };
        Ok(LeaseTimeToLiveResponse {
            header: None,
            id: req.id,
            ttl: deadlines.remaining_secs(req.id).unwrap_or(granted),
            granted_ttl: granted,
            keys,
        })
    }
}
