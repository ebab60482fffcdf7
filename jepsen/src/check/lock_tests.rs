//! Tests of the lock checker on small hand-made histories: client 0 holds
//! lease a, client 1 lease b; client 0 acquires, writes fenced and
//! releases, then client 1 acquires (when `Plan::b_at` says) and does the
//! same.

use super::*;
use crate::check::ops::operations;
use crate::check::testgen::{info, inv, ok};
use crate::history::{Entry, History};

const MS: u64 = 1_000_000;
const A: i64 = 0xa;
const B: i64 = 0xb;

fn acquire(lease: i64, key: bool) -> Op {
    Op::Acquire {
        name: "jepsen/lock".into(),
        lease,
        key: key.then(|| format!("jepsen/lock/{lease:x}")),
    }
}
fn release(lease: i64) -> Op {
    Op::Release {
        key: format!("jepsen/lock/{lease:x}"),
    }
}
fn fenced(lease: i64, value: u64) -> Op {
    Op::Fenced {
        lock: format!("jepsen/lock/{lease:x}"),
        value,
    }
}
fn grant(ttl: i64, lease: Option<i64>) -> Op {
    Op::Grant { ttl, lease }
}

/// The shape of the two-client history.
struct Plan {
    /// Lease a's TTL in seconds.
    ttl_a: i64,
    /// When client 1's acquire completes (ms); client 0 releases at 600.
    b_at: u64,
    /// Fencing revisions of the two acquisitions.
    fences: (i64, i64),
    /// Revision of client 0's fenced write.
    write_a: i64,
}

impl Default for Plan {
    fn default() -> Self {
        Plan {
            ttl_a: 5,
            b_at: 900,
            fences: (10, 13),
            write_a: 11,
        }
    }
}

fn history(plan: &Plan, extra: Vec<Entry>) -> History {
    let mut h = vec![
        inv(10, 0, grant(plan.ttl_a, None)),
        ok(10, 100 * MS, grant(plan.ttl_a, Some(A)), None),
        inv(11, 0, grant(5, None)),
        ok(11, 100 * MS, grant(5, Some(B)), None),
        inv(0, 200 * MS, acquire(A, false)),
        ok(0, 300 * MS, acquire(A, true), Some(plan.fences.0)),
        inv(1, 200 * MS, acquire(B, false)),
        ok(1, plan.b_at * MS, acquire(B, true), Some(plan.fences.1)),
        inv(0, 400 * MS, fenced(A, 1)),
        ok(0, 500 * MS, fenced(A, 1), Some(plan.write_a)),
        inv(0, 600 * MS, release(A)),
        ok(0, 700 * MS, release(A), Some(12)),
        inv(1, 2000 * MS, fenced(B, 2)),
        ok(1, 2100 * MS, fenced(B, 2), Some(14)),
        inv(1, 2200 * MS, release(B)),
        ok(1, 2300 * MS, release(B), Some(15)),
    ];
    h.extend(extra);
    h.sort_by_key(|e| e.time);
    h
}

fn problems(plan: &Plan, extra: Vec<Entry>) -> Vec<String> {
    let v = check(&operations(&history(plan, extra)).unwrap());
    println!("{}\n{:?}", v.summary, v.found);
    v.found
}

#[test]
fn a_lock_passed_from_holder_to_holder_is_valid() {
    assert!(problems(&Plan::default(), vec![]).is_empty());
}

#[test]
fn overlapping_certain_holds_are_invalid() {
    let found = problems(
        &Plan {
            b_at: 550,
            ..Plan::default()
        },
        vec![],
    );
    assert_eq!(found.len(), 1);
    assert!(found[0].contains("holds overlap"), "{found:?}");
}

#[test]
fn a_hold_whose_lease_may_have_expired_may_be_overlapped() {
    // Lease a (TTL 1 s, never renewed) is certain until 500 ms only.
    let plan = Plan {
        ttl_a: 1,
        b_at: 550,
        ..Plan::default()
    };
    assert!(problems(&plan, vec![]).is_empty());
    // A renewal invoked at 400 ms keeps it certain until 900 ms.
    let renewal = vec![
        inv(10, 400 * MS, Op::KeepAlive { lease: A, ttl: None }),
        ok(10, 450 * MS, Op::KeepAlive { lease: A, ttl: Some(1) }, None),
    ];
    assert_eq!(problems(&plan, renewal).len(), 1);
}

#[test]
fn a_revoked_or_abandoned_lease_ends_the_hold() {
    let plan = Plan {
        b_at: 550,
        ..Plan::default()
    };
    let revoke = vec![
        inv(10, 450 * MS, Op::Revoke { lease: A }),
        info(10, 460 * MS, Op::Revoke { lease: A }),
    ];
    assert!(problems(&plan, revoke).is_empty());
    // An earlier lock request of lease a with an unknown outcome may
    // delete the key at any time.
    let abandoned = vec![
        inv(20, 150 * MS, acquire(A, false)),
        info(20, 160 * MS, acquire(A, false)),
    ];
    assert!(problems(&plan, abandoned).is_empty());
}

#[test]
fn fencing_revisions_must_rise_in_completion_order() {
    for fences in [(10, 9), (10, 10)] {
        let found = problems(
            &Plan {
                fences,
                write_a: 10,
                ..Plan::default()
            },
            vec![],
        );
        assert!(found.iter().any(|p| p.contains("fencing revision went")), "{found:?}");
    }
}

#[test]
fn a_fenced_write_after_the_next_owner_acquired_is_invalid() {
    let found = problems(
        &Plan {
            write_a: 13,
            ..Plan::default()
        },
        vec![],
    );
    assert_eq!(found.len(), 1);
    assert!(found[0].contains("after a later owner"), "{found:?}");
    let found = problems(
        &Plan {
            write_a: 10,
            ..Plan::default()
        },
        vec![],
    );
    assert!(found[0].contains("not above its fencing revision"), "{found:?}");
}
