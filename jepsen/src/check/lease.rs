//! The lease checker: the `lease` workload's keys live exactly as long as
//! their leases (etcd's lessor, DESIGN.md invariant 7).
//!
//! Each lease has one key, put once with it. A lease is *certainly alive*
//! until `s + ttl / 2` for the latest successful grant or renewal invoked
//! at `s` with the TTL it answered (the leader refreshed it no earlier than
//! `s`; half the TTL spares a deposed leader's answer, as `check::lock`
//! does). A lease has *ended* once a revoke of it completed, or once a read
//! invoked after its put completed found the key absent. Rules, each sound
//! for a correct server:
//!
//! 1. **Not early**: a read invoked after the put completed, completed
//!    while the lease was certainly alive and before any revoke of it was
//!    invoked, finds the key.
//! 2. **Revoke is final**: no read invoked after a revoke completed finds
//!    the key.
//! 3. **Gone stays gone**: no read invoked after a read found the key gone
//!    (both after the put completed) finds it again.
//! 4. **No renewal after the end**: no renewal invoked after the lease
//!    ended answers a TTL (etcd's leader waits for its applied index before
//!    it renews, so a revoke that any member answered is seen).
//! 5. A read that finds the key finds the value put.

use std::collections::HashMap;

use super::ops::{Operation, Outcome};
use super::Violations;
use crate::history::Op;

/// What the history says about one lease and its key.
#[derive(Debug, Default)]
struct Lease<'a> {
    alive_until: u64,
    /// The first revoke's invocation (any outcome).
    revoke_invoked: Option<u64>,
    /// The first successful revoke's completion.
    revoked: Option<u64>,
    put: Option<&'a Operation>,
}

impl Lease<'_> {
    fn put_value(&self) -> Option<u64> {
        match self.put.map(|p| &p.op) {
            Some(Op::LeasedPut { value, .. }) => Some(*value),
            _ => None,
        }
    }

    /// When the put certainly completed.
    fn put_done(&self) -> Option<u64> {
        self.put.filter(|p| p.outcome == Outcome::Ok).and_then(|p| p.complete)
    }
}

/// Until when a lease is certainly alive after a successful grant or
/// renewal invoked at `invoked` (ns) that answered `ttl` seconds: half the
/// TTL (see the module doc). The lock checker uses the same rule.
pub(crate) fn certainly_alive_until(invoked: u64, ttl: i64) -> u64 {
    invoked + u64::try_from(ttl).unwrap_or(0) * 1_000_000_000 / 2
}

/// Checks the lease workload's operations (all others are ignored).
pub fn check(ops: &[Operation]) -> Violations {
    let mut leases: HashMap<i64, Lease<'_>> = HashMap::new();
    let mut lease_of: HashMap<&str, i64> = HashMap::new();
    for o in ops {
        match (&o.op, o.outcome) {
            (Op::Grant { ttl, lease: Some(l) }, Outcome::Ok) => {
                let e = leases.entry(*l).or_default();
                e.alive_until = e.alive_until.max(certainly_alive_until(o.invoke, *ttl));
            }
            (Op::KeepAlive { lease, ttl: Some(t) }, Outcome::Ok) if *t > 0 => {
                let e = leases.entry(*lease).or_default();
                e.alive_until = e.alive_until.max(certainly_alive_until(o.invoke, *t));
            }
            (Op::Revoke { lease }, outcome) => {
                let e = leases.entry(*lease).or_default();
                e.revoke_invoked = Some(e.revoke_invoked.map_or(o.invoke, |t| t.min(o.invoke)));
                if outcome == Outcome::Ok {
                    let done = o.complete.unwrap_or(u64::MAX);
                    e.revoked = Some(e.revoked.map_or(done, |t| t.min(done)));
                }
            }
            (Op::LeasedPut { key, lease, .. }, _) => {
                leases.entry(*lease).or_default().put = Some(o);
                lease_of.insert(key, *lease);
            }
            _ => {}
        }
    }

    let reads: Vec<(&Operation, &str, Option<u64>)> = ops
        .iter()
        .filter(|o| o.outcome == Outcome::Ok)
        .filter_map(|o| match &o.op {
            Op::LeasedRead { key, value } => Some((o, key.as_str(), *value)),
            _ => None,
        })
        .collect();
    let mut found = Vec::new();
    // When each lease was first seen gone by a read after its put.
    let mut gone: HashMap<i64, (u64, &Operation)> = HashMap::new();
    for &(read, key, value) in &reads {
        let Some(lease) = lease_of.get(key) else { continue };
        let l = &leases[lease];
        let after_put = l.put_done().is_some_and(|t| t < read.invoke);
        if value.is_none() && after_put {
            let done = read.complete.unwrap_or(u64::MAX);
            let g = gone.entry(*lease).or_insert((done, read));
            if done < g.0 {
                *g = (done, read);
            }
        }
    }
    for &(read, key, value) in &reads {
        let Some(lease) = lease_of.get(key) else {
            found.push(format!("{read}: no put of {key} in the history"));
            continue;
        };
        let l = &leases[lease];
        let after_put = l.put_done().is_some_and(|t| t < read.invoke);
        let done = read.complete.unwrap_or(u64::MAX);
        match value {
            None if after_put && done < l.alive_until && l.revoke_invoked.is_none_or(|t| t > done) => {
                found.push(format!(
                    "lease {lease:x} ended early: {read}, though the lease was certainly alive until {:.3}s and not revoked",
                    l.alive_until as f64 / 1e9
                ));
            }
            Some(v) => {
                if l.put_value() != Some(v) {
                    found.push(format!("{read}: that value was not put to {key}"));
                }
                if let Some(t) = l.revoked.filter(|&t| t < read.invoke) {
                    found.push(format!(
                        "lease {lease:x}'s key outlived its revoke (completed at {:.3}s): {read}",
                        t as f64 / 1e9
                    ));
                }
                if let Some((t, first)) = gone.get(lease).filter(|(t, _)| *t < read.invoke) {
                    found.push(format!(
                        "lease {lease:x}'s key came back: {read}, after {first} at {:.3}s",
                        *t as f64 / 1e9
                    ));
                }
            }
            None => {}
        }
    }
    for o in ops {
        let (Op::KeepAlive { lease, ttl: Some(t) }, Outcome::Ok) = (&o.op, o.outcome) else {
            continue;
        };
        if *t <= 0 {
            continue;
        }
        let l = leases.get(lease);
        if let Some(r) = l.and_then(|l| l.revoked).filter(|&r| r < o.invoke) {
            found.push(format!(
                "lease {lease:x} renewed after its revoke completed at {:.3}s: {o}",
                r as f64 / 1e9
            ));
        } else if let Some((_, first)) = gone.get(lease).filter(|(g, _)| *g < o.invoke) {
            found.push(format!("lease {lease:x} renewed after {first} found its key gone: {o}"));
        }
    }
    Violations {
        summary: format!(
            "{} leases, {} reads of their keys: none ended early, came back or was renewed after its end",
            leases.len(),
            reads.len()
        ),
        found,
    }
}

#[cfg(test)]
#[path = "lease_tests.rs"]
mod tests;
