//! Tests of the lease checker on a small hand-made history: lease a (TTL
//! 4 s) is granted at 0 s, its key put at 0.1 s, renewed at 1 s (certainly
//! alive until 3 s), and ends by a revoke or by expiry; each test adds the
//! reads and renewals it is about.

use super::*;
use crate::check::ops::operations;
use crate::check::testgen::{info, inv, ok};
use crate::history::{Entry, History};

const MS: u64 = 1_000_000;
const A: i64 = 0xa;
const KEY: &str = "jepsen/lease/a";

fn put() -> Op {
    Op::LeasedPut {
        key: KEY.into(),
        lease: A,
        value: 7,
    }
}
fn read(value: Option<u64>) -> Op {
    Op::LeasedRead { key: KEY.into(), value }
}
fn renew(ttl: Option<i64>) -> Op {
    Op::KeepAlive { lease: A, ttl }
}

/// Grant, put and one renewal of lease a; the owner is process 0, its
/// renewer process 1.
fn base() -> History {
    vec![
        inv(0, 0, Op::Grant { ttl: 4, lease: None }),
        ok(0, 10 * MS, Op::Grant { ttl: 4, lease: Some(A) }, Some(1)),
        inv(0, 100 * MS, put()),
        ok(0, 110 * MS, put(), Some(2)),
        inv(1, 1000 * MS, renew(None)),
        ok(1, 1010 * MS, renew(Some(4)), Some(2)),
    ]
}

/// A read over `[from, to]` ms answering `value`, by a process of its own.
fn read_at(from: u64, to: u64, value: Option<u64>) -> [Entry; 2] {
    let p = 100 + from as i64;
    [inv(p, from * MS, read(None)), ok(p, to * MS, read(value), Some(2))]
}

fn revoke_at(from: u64, to: u64) -> [Entry; 2] {
    let op = Op::Revoke { lease: A };
    [inv(3, from * MS, op.clone()), ok(3, to * MS, op, Some(3))]
}

fn violations(mut h: History) -> Vec<String> {
    h.sort_by_key(|e| e.time);
    let ops = operations(&h).unwrap();
    check(&ops).found
}

#[test]
fn a_lease_that_lives_then_expires_is_valid() {
    let mut h = base();
    h.extend(read_at(500, 510, Some(7)));
    h.extend(read_at(2900, 2950, Some(7)));
    // Expired after 3 s of certain life: absent from then on.
    h.extend(read_at(6000, 6010, None));
    h.extend(read_at(6100, 6110, None));
    // A renewal after the end answers "not found" (no TTL): fine.
    h.extend([inv(1, 6200 * MS, renew(None)), ok(1, 6210 * MS, renew(Some(0)), None)]);
    assert_eq!(violations(h), Vec::<String>::new());
}

#[test]
fn a_key_gone_while_its_lease_was_certainly_alive_is_an_early_end() {
    let mut h = base();
    h.extend(read_at(2000, 2010, None));
    let v = violations(h);
    assert!(v.len() == 1 && v[0].contains("ended early"), "{v:?}");
}

#[test]
fn a_read_racing_a_revoke_may_find_the_key_gone() {
    let mut h = base();
    h.extend(revoke_at(1500, 1600));
    h.extend(read_at(1550, 1560, None));
    assert_eq!(violations(h), Vec::<String>::new());
    // Or still there, while the revoke is in flight.
    let mut h = base();
    h.extend(revoke_at(1500, 1600));
    h.extend(read_at(1550, 1560, Some(7)));
    assert_eq!(violations(h), Vec::<String>::new());
}

#[test]
fn a_key_read_after_its_revoke_completed_is_caught() {
    let mut h = base();
    h.extend(revoke_at(1500, 1600));
    h.extend(read_at(1700, 1710, Some(7)));
    let v = violations(h);
    assert!(v.len() == 1 && v[0].contains("outlived its revoke"), "{v:?}");
}

#[test]
fn a_key_that_comes_back_is_caught() {
    let mut h = base();
    h.extend(read_at(5000, 5010, None));
    h.extend(read_at(5100, 5110, Some(7)));
    let v = violations(h);
    assert!(v.len() == 1 && v[0].contains("came back"), "{v:?}");
    // Overlapping reads may see either order.
    let mut h = base();
    h.extend(read_at(5000, 5200, None));
    h.extend(read_at(5100, 5110, Some(7)));
    assert_eq!(violations(h), Vec::<String>::new());
}

#[test]
fn a_renewal_after_the_revoke_or_after_the_key_was_seen_gone_is_caught() {
    let mut h = base();
    h.extend(revoke_at(1500, 1600));
    h.extend([inv(1, 1700 * MS, renew(None)), ok(1, 1710 * MS, renew(Some(4)), None)]);
    let v = violations(h);
    assert!(v.len() == 1 && v[0].contains("renewed after its revoke"), "{v:?}");

    let mut h = base();
    h.extend(read_at(5000, 5010, None));
    h.extend([inv(1, 5020 * MS, renew(None)), ok(1, 5030 * MS, renew(Some(4)), None)]);
    // (The renewal also makes the absent read an early end.)
    let v = violations(h);
    assert!(v.iter().any(|v| v.contains("found its key gone")), "{v:?}");

    // A renewal invoked before the revoke completed may still succeed.
    let mut h = base();
    h.extend(revoke_at(1500, 1600));
    h.extend([inv(1, 1550 * MS, renew(None)), ok(1, 1620 * MS, renew(Some(4)), None)]);
    assert_eq!(violations(h), Vec::<String>::new());
}

#[test]
fn an_unknown_put_proves_nothing_about_absence() {
    let mut h: History = base()
        .into_iter()
        .map(|e| if e.time == 110 * MS { info(0, e.time, put()) } else { e })
        .collect();
    // Absent early (the put may not have happened), present later (it did,
    // late): neither an early end nor a comeback.
    h.extend(read_at(2000, 2010, None));
    h.extend(read_at(2100, 2110, Some(7)));
    assert_eq!(violations(h), Vec::<String>::new());
}

#[test]
fn a_value_never_put_is_caught() {
    let mut h = base();
    h.extend(read_at(500, 510, Some(8)));
    let v = violations(h);
    assert!(v.len() == 1 && v[0].contains("not put"), "{v:?}");
}
