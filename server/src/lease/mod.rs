//! Lease deadlines (DESIGN.md invariant 7): the clock half of etcd's
//! `lessor`. Which leases exist and their TTLs is replicated state
//! (`apply::lease`); when each one expires is known only to the leader, in
//! memory. A member that becomes leader restarts every lease with its
//! remaining TTL plus an election timeout ([`Deadlines::promote`], etcd's
//! `Promote`), so an election never expires a lease; a follower keeps no
//! deadline.
//!
//! Checkpoints (etcd's `--experimental-enable-lease-checkpoint`): so that a
//! new leader does not restart a long lease from its full TTL, the leader
//! records each lease's remaining TTL through raft once per checkpoint
//! interval, scheduled per lease as etcd's lessor does (after a grant, a
//! promotion, a renew and each checkpoint, if the lease has more than one
//! interval left); [`Deadlines::due_checkpoints`] names the due ones. A
//! renew of a checkpointed lease clears its checkpoint (remaining 0).
//!
//! Rate limits as etcd's (`pileup`): at most 500 revocations per 500 ms
//! check, and a promotion spreads leases that would all expire at once.
//!
//! The raft module drives this: it promotes and demotes on leadership
//! changes, reports grants and revokes as they are applied, and proposes a
//! LeaseRevoke for every lease [`Deadlines::expired`] names and a
//! LeaseCheckpoint for the due checkpoints.

mod pileup;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Default)]
struct Inner {
    primary: bool,
    expiry: BTreeMap<i64, Instant>,
    /// When each lease's next checkpoint is due (leader only).
    checkpoint_at: BTreeMap<i64, Instant>,
    /// Renewed leases whose recorded checkpoint must be cleared.
    clear: BTreeSet<i64>,
}

/// Most checkpoints per proposal (etcd's `maxLeaseCheckpointBatchSize`).
pub const MAX_CHECKPOINT_BATCH: usize = 1000;

/// Why a renew was not done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenewError {
    /// This member is not the leader (etcd's `ErrNotPrimary`).
    NotPrimary,
    /// No such lease, or it expired and its revoke is on its way.
    NotFound,
}

/// The leader's lease deadlines.
#[derive(Default)]
pub struct Deadlines {
    inner: Mutex<Inner>,
    /// None: checkpoints are off.
    checkpoint_interval: Option<Duration>,
}

impl Inner {
    /// etcd's `scheduleCheckpointIfNeeded`: a checkpoint one interval from
    /// `now` if lease `id` has more than an interval left.
    fn schedule(&mut self, interval: Option<Duration>, id: i64, now: Instant) {
        let (Some(interval), Some(at)) = (interval, self.expiry.get(&id)) else {
            return;
        };
        if at.saturating_duration_since(now).as_secs() > interval.as_secs() {
            self.checkpoint_at.insert(id, now + interval);
        }
    }
}

impl Deadlines {
    /// Deadlines that checkpoint remaining TTLs every `interval` (None: never).
    pub fn new(checkpoint_interval: Option<Duration>) -> Self {
        Self {
            inner: Mutex::default(),
            checkpoint_interval,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// This member became leader: every lease of `leases` (ID → remaining
    /// TTL s, `apply::lease::remaining_ttls`) expires that TTL plus
    /// `extend` from now.
    pub fn promote(&self, leases: &BTreeMap<i64, i64>, extend: Duration) {
        let now = now();
        let mut inner = self.lock();
        inner.primary = true;
        inner.expiry = leases
            .iter()
            .map(|(id, ttl)| (*id, now + extend + secs(*ttl)))
            .collect();
        pileup::spread(&mut inner.expiry, now);
        inner.checkpoint_at.clear();
        inner.clear.clear();
        for id in leases.keys() {
            inner.schedule(self.checkpoint_interval, *id, now);
        }
    }

    /// This member is leader no more: it forgets every deadline.
    pub fn demote(&self) {
        let mut inner = self.lock();
        inner.primary = false;
        inner.expiry.clear();
        inner.checkpoint_at.clear();
        inner.clear.clear();
    }

    pub fn is_primary(&self) -> bool {
        self.lock().primary
    }

    /// A grant was applied: on the leader the lease starts its TTL now.
    pub fn granted(&self, id: i64, ttl: i64) {
        let mut inner = self.lock();
        if inner.primary {
            let now = now();
            inner.expiry.insert(id, now + secs(ttl));
            inner.schedule(self.checkpoint_interval, id, now);
        }
    }

    /// A revoke was applied.
    pub fn revoked(&self, id: i64) {
        let mut inner = self.lock();
        inner.expiry.remove(&id);
        inner.checkpoint_at.remove(&id);
        inner.clear.remove(&id);
    }

    /// Makes the deadlines match the lease table (ID → TTL s) after changes
    /// this member did not see one by one (a snapshot, entries applied while
    /// it was being promoted): unknown leases start their TTL now, leases
    /// gone from the table are forgotten.
    pub fn reconcile(&self, leases: &BTreeMap<i64, i64>) {
        let now = now();
        let mut inner = self.lock();
        if !inner.primary {
            return;
        }
        inner.expiry.retain(|id, _| leases.contains_key(id));
        inner.checkpoint_at.retain(|id, _| leases.contains_key(id));
        inner.clear.retain(|id| leases.contains_key(id));
        for (id, ttl) in leases {
            if !inner.expiry.contains_key(id) {
                inner.expiry.insert(*id, now + secs(*ttl));
                inner.schedule(self.checkpoint_interval, *id, now);
            }
        }
    }

    /// Restarts lease `id` (granted TTL `ttl` s) and answers its TTL;
    /// `checkpointed`: the lease has a recorded checkpoint, which the next
    /// [`Self::due_checkpoints`] clears.
    pub fn renew(&self, id: i64, ttl: i64, checkpointed: bool) -> Result<i64, RenewError> {
        let now = now();
        let mut inner = self.lock();
        if !inner.primary {
            return Err(RenewError::NotPrimary);
        }
        if inner.expiry.get(&id).is_some_and(|at| *at <= now) {
            return Err(RenewError::NotFound);
        }
        inner.expiry.insert(id, now + secs(ttl));
        if checkpointed {
            inner.clear.insert(id);
        }
        if !inner.checkpoint_at.contains_key(&id) {
            inner.schedule(self.checkpoint_interval, id, now);
        }
        Ok(ttl)
    }

    /// etcd's `findDueScheduledCheckpoints`: up to `limit` (ID, remaining
    /// TTL s) to record now, each rescheduled one interval later; leases
    /// renewed since their last checkpoint come first, with remaining 0.
    /// `ttls` (ID → granted TTL) skips leases with their full TTL left.
    pub fn due_checkpoints(&self, ttls: &BTreeMap<i64, i64>, limit: usize) -> Vec<(i64, i64)> {
        let now = now();
        let mut inner = self.lock();
        if !inner.primary {
            return Vec::new();
        }
        let mut out: Vec<(i64, i64)> = Vec::new();
        while out.len() < limit {
            let Some(id) = inner.clear.pop_first() else { break };
            out.push((id, 0));
        }
        let due: Vec<i64> = inner
            .checkpoint_at
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(id, _)| *id)
            .take(limit.saturating_sub(out.len()))
            .collect();
        for id in due {
            inner.checkpoint_at.remove(&id);
            let Some(at) = inner.expiry.get(&id).copied().filter(|at| *at > now) else {
                continue;
            };
            // etcd rounds up: int64(math.Ceil(remaining.Seconds())).
            let remaining = (at - now).as_secs_f64().ceil() as i64;
            if ttls.get(&id).is_some_and(|ttl| remaining < *ttl) {
                out.retain(|(cleared, _)| *cleared != id);
                out.push((id, remaining));
            }
            inner.schedule(self.checkpoint_interval, id, now);
        }
        out
    }

    /// Seconds left before lease `id` expires, truncated as etcd does
    /// (`int64(Remaining().Seconds())`); `None` without a deadline.
    pub fn remaining_secs(&self, id: i64) -> Option<i64> {
        let at = *self.lock().expiry.get(&id)?;
        let now = now();
        Some(if at >= now {
            (at - now).as_secs() as i64
        } else {
            -((now - at).as_secs() as i64)
        })
    }

    /// The leases whose deadline passed, earliest first, at most etcd's
    /// revocations per check (empty on a follower).
    pub fn expired(&self) -> Vec<i64> {
        let now = now();
        let inner = self.lock();
        let mut due: Vec<(Instant, i64)> = inner
            .expiry
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(id, at)| (*at, *id))
            .collect();
        due.sort();
        due.into_iter()
            .take(pileup::REVOKES_PER_CHECK)
            .map(|(_, id)| id)
            .collect()
    }

    /// Orders lease IDs as etcd's `Leases()` does: by remaining time, the
    /// soonest first; leases without a deadline (all of them on a
    /// follower) last, by ID.
    pub fn sort_by_expiry(&self, ids: &mut [i64]) {
        let inner = self.lock();
        ids.sort_by_key(|id| (!inner.expiry.contains_key(id), inner.expiry.get(id).copied(), *id));
    }
}

/// The clock lease deadlines are kept on: the monotonic one, which wall
/// clock jumps and slews do not move (the planted `wall-clock-lease` bug
/// reads the wall clock instead).
fn now() -> Instant {
    if crate::planted::active("wall-clock-lease") {
        crate::planted::wall_instant()
    } else {
        Instant::now()
    }
}

fn secs(ttl: i64) -> Duration {
    let ttl = Duration::from_secs(ttl.max(0) as u64);
    if crate::planted::active("short-lease-deadline") {
        return ttl.mul_f64(0.6);
    }
    ttl
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Asserts lease `id`'s remaining seconds for a deadline set `ttl` from
    /// a moment after `since`: truncated, below `ttl` and at least what is
    /// left of `ttl` after the time since `since` (the real clock). On a
    /// quiet machine that is the one value `ttl` - 1 s; a loaded one that
    /// stalls the test for a second widens the range instead of failing it.
    fn assert_remaining(d: &Deadlines, id: i64, ttl: Duration, since: Instant) {
        let got = d.remaining_secs(id).expect("a deadline");
        let least = ttl.saturating_sub(since.elapsed()).as_secs() as i64;
        assert!(
            (least..ttl.as_secs() as i64).contains(&got),
            "lease {id}: {got} s left of {ttl:?} set at most {:?} ago",
            since.elapsed()
        );
    }

    #[test]
    fn only_the_primary_keeps_deadlines() {
        let d = Deadlines::default();
        d.granted(1, 10);
        assert_eq!(d.remaining_secs(1), None);
        assert_eq!(d.renew(1, 10, false), Err(RenewError::NotPrimary));
        let since = Instant::now();
        d.promote(&BTreeMap::from([(1, 10)]), Duration::from_secs(1));
        // The TTL plus the 1 s extension.
        assert_remaining(&d, 1, Duration::from_secs(11), since);
        let since = Instant::now();
        assert_eq!(d.renew(1, 10, false), Ok(10));
        assert_remaining(&d, 1, Duration::from_secs(10), since);
        d.granted(2, 0);
        assert_eq!(d.expired(), vec![2]);
        assert_eq!(d.renew(2, 0, false), Err(RenewError::NotFound));
        d.revoked(2);
        assert!(d.expired().is_empty());
        let since = Instant::now();
        d.reconcile(&BTreeMap::from([(3, 5)]));
        assert_eq!(d.remaining_secs(1), None);
        assert_remaining(&d, 3, Duration::from_secs(5), since);
        d.demote();
        assert!(!d.is_primary());
        assert_eq!(d.remaining_secs(3), None);
    }

    #[test]
    fn checkpoints_are_due_one_interval_after_scheduling() {
        let d = Deadlines::new(Some(Duration::ZERO));
        // 1: long enough to schedule; 2: no time left after the interval.
        d.promote(&BTreeMap::from([(1, 30), (2, 0)]), Duration::ZERO);
        let ttls = BTreeMap::from([(1, 30), (2, 0)]);
        // Remaining (rounded up) equals the full TTL: nothing to record yet.
        assert_eq!(d.due_checkpoints(&ttls, 10), vec![]);
        let shorter = BTreeMap::from([(1, 60)]);
        assert_eq!(d.due_checkpoints(&shorter, 10), vec![(1, 30)]);
        // A renew of a checkpointed lease clears its record first.
        assert_eq!(d.renew(1, 30, true), Ok(30));
        assert_eq!(d.due_checkpoints(&ttls, 10), vec![(1, 0)]);
        assert_eq!(d.due_checkpoints(&ttls, 10), vec![]);
        // Off: never any checkpoint.
        let off = Deadlines::default();
        off.promote(&BTreeMap::from([(1, 30)]), Duration::ZERO);
        assert_eq!(off.due_checkpoints(&shorter, 10), vec![]);
    }

    #[test]
    fn leases_list_soonest_expiry_first_and_revokes_are_rate_limited() {
        let d = Deadlines::default();
        let mut ids = vec![3, 1, 2];
        d.sort_by_expiry(&mut ids);
        assert_eq!(ids, vec![1, 2, 3], "a follower: by ID");
        d.promote(&BTreeMap::from([(1, 30), (2, 10), (3, 20)]), Duration::ZERO);
        d.sort_by_expiry(&mut ids);
        assert_eq!(ids, vec![2, 3, 1]);
        let many: BTreeMap<i64, i64> = (0..1200).map(|id| (id, 0)).collect();
        d.promote(&many, Duration::ZERO);
        // The pile-up spreads some beyond now; at most 500 per check anyway.
        let first = d.expired();
        assert!(!first.is_empty() && first.len() <= 500, "{}", first.len());
    }
}
