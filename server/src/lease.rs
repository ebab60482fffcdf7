//! Lease deadlines (DESIGN.md invariant 7): the clock half of etcd's
//! `lessor`. Which leases exist and their TTLs is replicated state
//! (`apply::lease`); when each one expires is known only to the leader, in
//! memory. A member that becomes leader restarts every lease with its full
//! TTL plus an election timeout ([`Deadlines::promote`], etcd's `Promote`),
//! so an election never expires a lease; a follower keeps no deadline.
//!
//! The raft module drives this: it promotes and demotes on leadership
//! changes, reports grants and revokes as they are applied, and proposes a
//! LeaseRevoke for every lease [`Deadlines::expired`] names.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Default)]
struct Inner {
    primary: bool,
    expiry: BTreeMap<i64, Instant>,
}

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
}

impl Deadlines {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// This member became leader: every lease of `leases` (ID → TTL s)
    /// expires its TTL plus `extend` from now.
    pub fn promote(&self, leases: &BTreeMap<i64, i64>, extend: Duration) {
        let now = Instant::now();
        let mut inner = self.lock();
        inner.primary = true;
        inner.expiry = leases
            .iter()
            .map(|(id, ttl)| (*id, now + extend + secs(*ttl)))
            .collect();
    }

    /// This member is leader no more: it forgets every deadline.
    pub fn demote(&self) {
        let mut inner = self.lock();
        inner.primary = false;
        inner.expiry.clear();
    }

    pub fn is_primary(&self) -> bool {
        self.lock().primary
    }

    /// A grant was applied: on the leader the lease starts its TTL now.
    pub fn granted(&self, id: i64, ttl: i64) {
        let mut inner = self.lock();
        if inner.primary {
            inner.expiry.insert(id, Instant::now() + secs(ttl));
        }
    }

    /// A revoke was applied.
    pub fn revoked(&self, id: i64) {
        self.lock().expiry.remove(&id);
    }

    /// Makes the deadlines match the lease table (ID → TTL s) after changes
    /// this member did not see one by one (a snapshot, entries applied while
    /// it was being promoted): unknown leases start their TTL now, leases
    /// gone from the table are forgotten.
    pub fn reconcile(&self, leases: &BTreeMap<i64, i64>) {
        let now = Instant::now();
        let mut inner = self.lock();
        if !inner.primary {
            return;
        }
        inner.expiry.retain(|id, _| leases.contains_key(id));
        for (id, ttl) in leases {
            inner.expiry.entry(*id).or_insert(now + secs(*ttl));
        }
    }

    /// Restarts lease `id` (granted TTL `ttl` s) and answers its TTL.
    pub fn renew(&self, id: i64, ttl: i64) -> Result<i64, RenewError> {
        let now = Instant::now();
        let mut inner = self.lock();
        if !inner.primary {
            return Err(RenewError::NotPrimary);
        }
        if inner.expiry.get(&id).is_some_and(|at| *at <= now) {
            return Err(RenewError::NotFound);
        }
        inner.expiry.insert(id, now + secs(ttl));
        Ok(ttl)
    }

    /// Seconds left before lease `id` expires, truncated as etcd does
    /// (`int64(Remaining().Seconds())`); `None` without a deadline.
    pub fn remaining_secs(&self, id: i64) -> Option<i64> {
        let at = *self.lock().expiry.get(&id)?;
        let now = Instant::now();
        Some(if at >= now {
            (at - now).as_secs() as i64
        } else {
            -((now - at).as_secs() as i64)
        })
    }

    /// The leases whose deadline passed, in ID order (empty on a follower).
    pub fn expired(&self) -> Vec<i64> {
        let now = Instant::now();
        let inner = self.lock();
        inner
            .expiry
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(id, _)| *id)
            .collect()
    }
}

fn secs(ttl: i64) -> Duration {
    Duration::from_secs(ttl.max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_primary_keeps_deadlines() {
        let d = Deadlines::default();
        d.granted(1, 10);
        assert_eq!(d.remaining_secs(1), None);
        assert_eq!(d.renew(1, 10), Err(RenewError::NotPrimary));
        d.promote(&BTreeMap::from([(1, 10)]), Duration::from_secs(1));
        assert_eq!(d.remaining_secs(1), Some(10));
        assert_eq!(d.renew(1, 10), Ok(10));
        assert_eq!(d.remaining_secs(1), Some(9));
        d.granted(2, 0);
        assert_eq!(d.expired(), vec![2]);
        assert_eq!(d.renew(2, 0), Err(RenewError::NotFound));
        d.revoked(2);
        assert!(d.expired().is_empty());
        d.reconcile(&BTreeMap::from([(3, 5)]));
        assert_eq!(d.remaining_secs(1), None);
        assert_eq!(d.remaining_secs(3), Some(4));
        d.demote();
        assert!(!d.is_primary());
        assert_eq!(d.remaining_secs(3), None);
    }
}
