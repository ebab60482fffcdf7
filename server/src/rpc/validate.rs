//! Checks a KV request passes before it is proposed or served (etcd's
//! `v3rpc/key.go`): pure functions of the request, answering etcd's errors.

use std::cmp::Ordering;
use std::collections::BTreeSet;

use timon_proto::etcdserverpb::request_op::Request;
use timon_proto::etcdserverpb::{DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest};

use crate::apply::EtcdError;

/// etcd's default `--max-txn-ops`.
pub const DEFAULT_MAX_TXN_OPS: u64 = 128;

pub fn check_range(r: &RangeRequest) -> Result<(), EtcdError> {
    if r.key.is_empty() {
        return Err(EtcdError::EmptyKey);
    }
    Ok(())
}

pub fn check_put(r: &PutRequest) -> Result<(), EtcdError> {
    if r.key.is_empty() {
        return Err(EtcdError::EmptyKey);
    }
    if r.ignore_value && !r.value.is_empty() {
        return Err(EtcdError::ValueProvided);
    }
    if r.ignore_lease && r.lease != 0 {
        return Err(EtcdError::LeaseProvided);
    }
    Ok(())
}

pub fn check_delete_range(r: &DeleteRangeRequest) -> Result<(), EtcdError> {
    if r.key.is_empty() {
        return Err(EtcdError::EmptyKey);
    }
    Ok(())
}

/// The whole txn check etcd's KV.Txn runs: the request shape (op counts,
/// empty keys, recursively), then duplicate keys on each branch.
pub fn check_txn(r: &TxnRequest, max_txn_ops: u64) -> Result<(), EtcdError> {
    check_txn_request(r, i64::try_from(max_txn_ops).unwrap_or(i64::MAX))?;
    check_intervals(&r.success)?;
    check_intervals(&r.failure)?;
    Ok(())
}

/// Too many compares or ops on a branch, empty keys. A nested txn may use
/// only the ops its parent left (`max - parent's count`).
fn check_txn_request(r: &TxnRequest, max_txn_ops: i64) -> Result<(), EtcdError> {
    let opc = r.compare.len().max(r.success.len()).max(r.failure.len()) as i64;
    if opc > max_txn_ops {
        return Err(EtcdError::TooManyOps);
    }
    if r.compare.iter().any(|c| c.key.is_empty()) {
        return Err(EtcdError::EmptyKey);
    }
    for op in r.success.iter().chain(&r.failure) {
        check_request_op(op, max_txn_ops - opc)?;
    }
    Ok(())
}

fn check_request_op(op: &RequestOp, max_txn_ops: i64) -> Result<(), EtcdError> {
    match &op.request {
        Some(Request::RequestRange(r)) => check_range(r),
        Some(Request::RequestPut(p)) => check_put(p),
        Some(Request::RequestDeleteRange(d)) => check_delete_range(d),
        Some(Request::RequestTxn(t)) => check_txn_request(t, max_txn_ops),
        // etcd answers an op without a request so.
        None => Err(EtcdError::KeyNotFound),
    }
}

/// A key interval compared as etcd's `adt` string-affine intervals do: the
/// empty string is greater than every other string.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Interval {
    begin: Vec<u8>,
    end: Vec<u8>,
}

fn affine_cmp(a: &[u8], b: &[u8]) -> Ordering {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => a.cmp(b),
    }
}

impl Interval {
    fn point(key: &[u8]) -> Self {
        let mut end = key.to_vec();
        end.push(0);
        Self {
            begin: key.to_vec(),
            end,
        }
    }

    /// Whether `self` overlaps `other`, with etcd's exact comparison (which
    /// lets an end of `"\0"` overlap nothing: a delete of "every key >= k"
    /// never conflicts with a put).
    fn overlaps(&self, other: &Interval) -> bool {
        let begin_begin = affine_cmp(&self.begin, &other.begin);
        let begin_end = affine_cmp(&self.begin, &other.end);
        let end_begin = affine_cmp(&self.end, &other.begin);
        if begin_begin.is_lt() && end_begin.is_le() {
            return false;
        }
        begin_end.is_lt()
    }
}

fn intersects(dels: &[Interval], key: &[u8]) -> bool {
    let p = Interval::point(key);
    dels.iter().any(|d| p.overlaps(d))
}

/// etcd's `checkIntervals`: on one branch, no key may be put twice or be put
/// and deleted, counting nested txns (a key put on both branches of one
/// nested txn is fine: only one branch runs). Returns the branch's puts and
/// deletes for the parent's check.
fn check_intervals(reqs: &[RequestOp]) -> Result<(BTreeSet<Vec<u8>>, Vec<Interval>), EtcdError> {
    let mut dels: Vec<Interval> = Vec::new();
    for op in reqs {
        if let Some(Request::RequestDeleteRange(d)) = &op.request {
            dels.push(if d.range_end.is_empty() {
                Interval::point(&d.key)
            } else {
                Interval {
                    begin: d.key.clone(),
                    end: d.range_end.clone(),
                }
            });
        }
    }

    let mut puts: BTreeSet<Vec<u8>> = BTreeSet::new();
    // Only intervals overlapping ["\0", +inf) move up from nested txns.
    let everything = Interval {
        begin: vec![0],
        end: Vec::new(),
    };
    for op in reqs {
        let Some(Request::RequestTxn(t)) = &op.request else {
            continue;
        };
        let (puts_then, dels_then) = check_intervals(&t.success)?;
        let (puts_else, dels_else) = check_intervals(&t.failure)?;
        for k in &puts_then {
            if puts.contains(k) || intersects(&dels, k) {
                return Err(EtcdError::DuplicateKey);
            }
            puts.insert(k.clone());
        }
        for k in &puts_else {
            if puts.contains(k) && !puts_then.contains(k) {
                return Err(EtcdError::DuplicateKey);
            }
            if intersects(&dels, k) {
                return Err(EtcdError::DuplicateKey);
            }
            puts.insert(k.clone());
        }
        dels.extend(
            dels_then
                .into_iter()
                .chain(dels_else)
                .filter(|d| everything.overlaps(d)),
        );
    }

    for op in reqs {
        let Some(Request::RequestPut(p)) = &op.request else {
            continue;
        };
        if puts.contains(&p.key) || intersects(&dels, &p.key) {
            return Err(EtcdError::DuplicateKey);
        }
        puts.insert(p.key.clone());
    }
    Ok((puts, dels))
}

#[cfg(test)]
mod tests {
    use super::*;
    use timon_proto::etcdserverpb::Compare;

    fn put(k: &str) -> RequestOp {
        RequestOp {
            request: Some(Request::RequestPut(PutRequest {
                key: k.into(),
                ..Default::default()
            })),
        }
    }
    fn del(k: &str, end: &str) -> RequestOp {
        RequestOp {
            request: Some(Request::RequestDeleteRange(DeleteRangeRequest {
                key: k.into(),
                range_end: end.into(),
                ..Default::default()
            })),
        }
    }
    fn get(k: &str) -> RequestOp {
        RequestOp {
            request: Some(Request::RequestRange(RangeRequest {
                key: k.into(),
                ..Default::default()
            })),
        }
    }
    fn nested(success: Vec<RequestOp>, failure: Vec<RequestOp>) -> RequestOp {
        RequestOp {
            request: Some(Request::RequestTxn(TxnRequest {
                compare: vec![],
                success,
                failure,
            })),
        }
    }
    fn txn(success: Vec<RequestOp>) -> TxnRequest {
        TxnRequest {
            compare: vec![],
            success,
            failure: vec![],
        }
    }

    #[test]
    fn empty_keys() {
        assert_eq!(check_range(&RangeRequest::default()), Err(EtcdError::EmptyKey));
        assert_eq!(check_put(&PutRequest::default()), Err(EtcdError::EmptyKey));
        assert_eq!(
            check_delete_range(&DeleteRangeRequest::default()),
            Err(EtcdError::EmptyKey)
        );
        assert_eq!(
            check_range(&RangeRequest {
                key: b"a".to_vec(),
                ..Default::default()
            }),
            Ok(())
        );
        let c = TxnRequest {
            compare: vec![Compare::default()],
            ..Default::default()
        };
        assert_eq!(check_txn(&c, 128), Err(EtcdError::EmptyKey));
        assert_eq!(check_txn(&txn(vec![get("")]), 128), Err(EtcdError::EmptyKey));
        assert_eq!(
            check_txn(&txn(vec![nested(vec![put("")], vec![])]), 128),
            Err(EtcdError::EmptyKey)
        );
    }

    #[test]
    fn put_flags() {
        let p = PutRequest {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            ignore_value: true,
            ..Default::default()
        };
        assert_eq!(check_put(&p), Err(EtcdError::ValueProvided));
        let p = PutRequest {
            key: b"k".to_vec(),
            lease: 5,
            ignore_lease: true,
            ..Default::default()
        };
        assert_eq!(check_put(&p), Err(EtcdError::LeaseProvided));
        let p = PutRequest {
            key: b"k".to_vec(),
            ignore_value: true,
            ignore_lease: true,
            ..Default::default()
        };
        assert_eq!(check_put(&p), Ok(()));
    }

    #[test]
    fn op_without_request() {
        assert_eq!(
            check_txn(&txn(vec![RequestOp { request: None }]), 128),
            Err(EtcdError::KeyNotFound)
        );
    }

    #[test]
    fn too_many_ops() {
        let ops: Vec<RequestOp> = (0..3).map(|i| get(&format!("k{i}"))).collect();
        assert_eq!(check_txn(&txn(ops.clone()), 3), Ok(()));
        assert_eq!(check_txn(&txn(ops.clone()), 2), Err(EtcdError::TooManyOps));
        let cmps = TxnRequest {
            compare: (0..3)
                .map(|_| Compare {
                    key: b"a".to_vec(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        assert_eq!(check_txn(&cmps, 2), Err(EtcdError::TooManyOps));
        // The nested txn may use only what its parent leaves: 4 - 2 = 2.
        let t = txn(vec![get("a"), nested(ops, vec![])]);
        assert_eq!(check_txn(&t, 5), Ok(()));
        assert_eq!(check_txn(&t, 4), Err(EtcdError::TooManyOps));
    }

    #[test]
    fn duplicate_puts_and_deletes() {
        let dup = Err(EtcdError::DuplicateKey);
        assert_eq!(check_txn(&txn(vec![put("a"), put("a")]), 128), dup);
        assert_eq!(check_txn(&txn(vec![put("a"), put("b")]), 128), Ok(()));
        assert_eq!(check_txn(&txn(vec![del("a", ""), put("a")]), 128), dup);
        assert_eq!(
            check_txn(&txn(vec![del("a", "c"), put("b")]), 128),
            dup,
            "put inside a deleted range"
        );
        assert_eq!(
            check_txn(&txn(vec![del("a", "c"), put("c")]), 128),
            Ok(()),
            "range end is exclusive"
        );
        assert_eq!(
            check_txn(&txn(vec![del("a", "\0"), put("b")]), 128),
            Ok(()),
            "etcd: a >= range never conflicts"
        );
        assert_eq!(
            check_txn(&txn(vec![del("a", ""), del("a", "")]), 128),
            Ok(()),
            "deletes may overlap"
        );
        assert_eq!(check_txn(&txn(vec![get("a"), put("a")]), 128), Ok(()));
        // The failure branch is checked on its own.
        let t = TxnRequest {
            compare: vec![],
            success: vec![put("a")],
            failure: vec![put("a"), put("a")],
        };
        assert_eq!(check_txn(&t, 128), dup);
    }

    #[test]
    fn duplicates_across_nested_txns() {
        let dup = Err(EtcdError::DuplicateKey);
        // Same key on both branches of one nested txn: only one runs.
        assert_eq!(
            check_txn(&txn(vec![nested(vec![put("a")], vec![put("a")])]), 128),
            Ok(())
        );
        // Outer put and nested put of the same key.
        assert_eq!(
            check_txn(&txn(vec![put("a"), nested(vec![put("a")], vec![])]), 128),
            dup
        );
        assert_eq!(
            check_txn(&txn(vec![put("a"), nested(vec![], vec![put("a")])]), 128),
            dup
        );
        // Two nested txns putting the same key.
        let t = txn(vec![nested(vec![put("a")], vec![]), nested(vec![put("a")], vec![])]);
        assert_eq!(check_txn(&t, 128), dup);
        let t = txn(vec![nested(vec![put("a")], vec![]), nested(vec![], vec![put("a")])]);
        assert_eq!(check_txn(&t, 128), dup);
        // Outer delete vs nested put, and nested delete vs outer put.
        assert_eq!(
            check_txn(&txn(vec![del("a", "b"), nested(vec![put("a")], vec![])]), 128),
            dup
        );
        assert_eq!(
            check_txn(&txn(vec![nested(vec![del("a", "")], vec![]), put("a")]), 128),
            dup
        );
        // Deletes in different nested txns do not conflict with each other.
        let t = txn(vec![
            nested(vec![del("a", "")], vec![]),
            nested(vec![del("a", "")], vec![]),
        ]);
        assert_eq!(check_txn(&t, 128), Ok(()));
    }

    #[test]
    fn interval_overlap_is_etcds() {
        let iv = |b: &str, e: &str| Interval {
            begin: b.into(),
            end: e.into(),
        };
        assert!(Interval::point(b"b").overlaps(&iv("a", "c")));
        assert!(!Interval::point(b"c").overlaps(&iv("a", "c")));
        assert!(!Interval::point(b"a").overlaps(&iv("b", "c")));
        assert!(!Interval::point(b"z").overlaps(&iv("a", "\0")));
        assert!(Interval::point(b"z").overlaps(&iv("a", "")), "empty end is +infinity");
    }
}
