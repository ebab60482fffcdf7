//! The lock checker: mutual exclusion and fencing of the `lock` workload's
//! acquisitions (etcd's `v3lock`, a lock key per lease, the oldest key
//! holds the lock).
//!
//! A lock key exists from its acquisition until it is unlocked or its
//! lease ends, so a hold is *certain* at time t only if its lease was
//! certainly alive at t and its release was not yet invoked:
//!
//! - a lease is certainly alive from its grant until `s + ttl / 2` for the
//!   latest successful renewal (or the grant) invoked at `s` with the TTL
//!   it answered (the server refreshed it no earlier than `s`, and leases
//!   do not come back; half the TTL spares a slow or stale leader's
//!   answer), and never after a revoke, a renewal that found it gone, or
//!   an acquire or release of it with an unknown outcome was invoked (an
//!   abandoned lock request may still delete the key);
//! - a hold is `[acquire completion, min(release invocation, lease end))`.
//!
//! Holds whose lease was not certainly alive when the acquire completed
//! (the lease may have expired while waiting) are left out. Rules, each
//! sound for a correct lock service:
//!
//! 1. Fencing revisions of certain acquisitions strictly increase in
//!    completion order (so they are unique).
//! 2. No two certain holds overlap in real time.
//! 3. A fenced write that succeeded got a revision above its hold's
//!    fencing revision and below the fencing revision of every certain
//!    acquisition with a higher one (the next owners acquired after its
//!    lock key was deleted, and its guard saw the key).

use std::collections::HashMap;

use super::ops::{Operation, Outcome};
use super::Violations;
use crate::history::Op;

/// What the history says about one lease.
#[derive(Debug, Default, Clone, Copy)]
struct Lease {
    /// Certainly alive until then (ns), from renewals.
    alive_until: u64,
    /// Not trusted from then on (revoke, lost, unknown lock request).
    cut: Option<u64>,
}

impl Lease {
    fn end(&self) -> u64 {
        self.cut.map_or(self.alive_until, |c| c.min(self.alive_until))
    }

    fn cut_at(&mut self, t: u64) {
        self.cut = Some(self.cut.map_or(t, |c| c.min(t)));
    }
}

/// An `Ok` acquisition and how long it certainly held.
#[derive(Debug, Clone)]
struct Hold<'a> {
    acquire: &'a Operation,
    key: String,
    fence: Option<i64>,
    /// `[start, end)`, empty when not certain.
    start: u64,
    end: u64,
}

impl Hold<'_> {
    fn certain(&self) -> bool {
        self.start < self.end
    }
}

fn leases(ops: &[Operation]) -> HashMap<i64, Lease> {
    let mut out: HashMap<i64, Lease> = HashMap::new();
    let renewed = |out: &mut HashMap<i64, Lease>, lease: i64, invoke: u64, ttl: i64| {
        let l = out.entry(lease).or_default();
        l.alive_until = l.alive_until.max(super::lease::certainly_alive_until(invoke, ttl));
    };
    for o in ops {
        match (&o.op, o.outcome) {
            (Op::Grant { ttl, lease: Some(id) }, Outcome::Ok) => renewed(&mut out, *id, o.invoke, *ttl),
            (Op::KeepAlive { lease, ttl: Some(ttl) }, Outcome::Ok) if *ttl > 0 => {
                renewed(&mut out, *lease, o.invoke, *ttl)
            }
            (Op::KeepAlive { lease, .. }, Outcome::Fail) | (Op::Revoke { lease }, Outcome::Ok | Outcome::Info) => {
                out.entry(*lease).or_default().cut_at(o.invoke)
            }
            (Op::Acquire { lease, .. }, Outcome::Info) => out.entry(*lease).or_default().cut_at(o.invoke),
            _ => {}
        }
    }
    out
}

/// The lease id in a lock key `<name>/<lease in hex>`.
fn key_lease(key: &str) -> Option<i64> {
    key.rsplit('/').next().and_then(|h| i64::from_str_radix(h, 16).ok())
}

fn holds<'a>(ops: &'a [Operation], leases: &mut HashMap<i64, Lease>) -> Vec<Hold<'a>> {
    // An unknown release may delete the key whenever: cut its lease too.
    for o in ops {
        if let (Op::Release { key }, Outcome::Info) = (&o.op, o.outcome) {
            if let Some(l) = key_lease(key) {
                leases.entry(l).or_default().cut_at(o.invoke);
            }
        }
    }
    let mut out = Vec::new();
    for a in ops {
        let (
            Op::Acquire {
                lease, key: Some(key), ..
            },
            Outcome::Ok,
            Some(start),
        ) = (&a.op, a.outcome, a.complete)
        else {
            continue;
        };
        // The hold's release: the first release of the key invoked after
        // it (a client is sequential, and lock keys are per lease).
        let released = ops
            .iter()
            .filter(|r| matches!(&r.op, Op::Release { key: k } if k == key) && r.invoke >= start)
            .map(|r| r.invoke)
            .min()
            .unwrap_or(u64::MAX);
        let lease_end = leases.get(lease).map_or(0, Lease::end);
        out.push(Hold {
            acquire: a,
            key: key.clone(),
            fence: a.revision,
            start,
            end: released.min(lease_end),
        });
    }
    out.sort_by_key(|h| (h.start, h.acquire.index));
    out
}

/// Checks rules 1–3 over a history's operations.
pub fn check(ops: &[Operation]) -> Violations {
    let mut leases = leases(ops);
    let holds = holds(ops, &mut leases);
    let mut found = Vec::new();
    let certain: Vec<&Hold<'_>> = holds.iter().filter(|h| h.certain()).collect();

    // Rule 1 (holds are sorted by acquisition completion).
    for w in certain.windows(2) {
        let (a, b) = (w[0], w[1]);
        if let (Some(x), Some(y)) = (a.fence, b.fence) {
            if x >= y {
                found.push(format!(
                    "fencing revision went from {x} to {y}: {} then {}",
                    a.acquire, b.acquire
                ));
            }
        }
    }
    for h in &certain {
        if h.fence.is_none() {
            found.push(format!("{}: an acquisition without a fencing revision", h.acquire));
        }
    }

    // Rule 2: each certain hold against the latest-ending earlier one.
    let mut longest: Option<&Hold<'_>> = None;
    for &h in &certain {
        if let Some(prev) = longest {
            if prev.end > h.start {
                found.push(format!(
                    "holds overlap for {:.3}s: {} held until t {} and {} held from t {}",
                    (prev.end.min(h.end) - h.start) as f64 / 1e9,
                    prev.acquire,
                    prev.end,
                    h.acquire,
                    h.start
                ));
            }
        }
        if longest.is_none_or(|p| h.end > p.end) {
            longest = Some(h);
        }
    }

    // Rule 3.
    let mut fences: Vec<i64> = certain.iter().filter_map(|h| h.fence).collect();
    fences.sort_unstable();
    let (mut fenced_ok, mut fenced_fail) = (0, 0);
    for w in ops {
        let Op::Fenced { lock, .. } = &w.op else { continue };
        if w.outcome != Outcome::Ok {
            fenced_fail += usize::from(w.outcome == Outcome::Fail);
            continue;
        }
        fenced_ok += 1;
        // The writer's hold: its latest acquisition of the key before the write.
        let Some(h) = holds
            .iter()
            .filter(|h| h.key == *lock && h.start <= w.invoke)
            .max_by_key(|h| h.start)
        else {
            found.push(format!("{w}: a fenced write without an acquisition of {lock}"));
            continue;
        };
        let (Some(fence), Some(rev)) = (h.fence, w.revision) else {
            continue;
        };
        if rev <= fence {
            found.push(format!("{w}: revision {rev} is not above its fencing revision {fence}"));
        }
        let next = fences.partition_point(|&f| f <= fence);
        if let Some(&later) = fences.get(next) {
            if rev >= later {
                found.push(format!(
                    "{w}: written at revision {rev}, after a later owner acquired at {later} (this hold's fence {fence})"
                ));
            }
        }
    }

    Violations {
        summary: format!(
            "{} acquisitions ({} certain), {fenced_ok} fenced writes ok, {fenced_fail} refused: \
             fences rise, no certain holds overlap",
            holds.len(),
            certain.len()
        ),
        found,
    }
}

#[cfg(test)]
#[path = "lock_tests.rs"]
mod tests;
