//! Txn requests (etcd's `applierV3backend.Txn`): compare, then run the
//! success or failure branch, recursing into nested txns.
//!
//! Order of work, as in etcd:
//! 1. Every compare of the txn and of the nested txns on the chosen branches
//!    is evaluated up front, against the store before the txn, giving the
//!    *path* (one bool per txn, pre-order).
//! 2. Checks that could fail midway run before any write: puts with
//!    `ignore_value`/`ignore_lease` need their key, ranges need a revision
//!    that is neither compacted nor in the future.
//! 3. The ops run in order; reads see the txn's earlier writes.
//!
//! The outer header carries the txn's revision; inner put/delete/range
//! responses carry their own header revision; a nested txn's header is
//! present but empty (etcd never fills it).

use timon_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use timon_proto::etcdserverpb::request_op::Request;
use timon_proto::etcdserverpb::response_op::Response;
use timon_proto::etcdserverpb::{
    Compare, DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse, RequestOp, ResponseHeader, ResponseOp,
    TxnRequest, TxnResponse,
};
use timon_proto::mvccpb::KeyValue;

use super::{delete, header, put, range, EtcdError};
use crate::mvcc::{MvccError, RangeOptions, RangeResult, ReadView, WriteTxn};

/// A txn target: a view plus the writes a txn may make.
trait TxnTarget: ReadView {
    fn put(&mut self, p: &PutRequest) -> Result<PutResponse, EtcdError>;
    fn delete_range(&mut self, d: &DeleteRangeRequest) -> Result<DeleteRangeResponse, EtcdError>;
    fn changed(&self) -> bool;
    /// etcd's lease check of a put (0: no lease).
    fn check_lease(&self, id: i64) -> Result<(), EtcdError>;
}

impl TxnTarget for WriteTxn<'_> {
    fn put(&mut self, p: &PutRequest) -> Result<PutResponse, EtcdError> {
        put::put(self, p)
    }
    fn delete_range(&mut self, d: &DeleteRangeRequest) -> Result<DeleteRangeResponse, EtcdError> {
        delete::delete_range(self, d)
    }
    fn changed(&self) -> bool {
        self.has_changes()
    }
    fn check_lease(&self, id: i64) -> Result<(), EtcdError> {
        super::lease::check_exists(self.engine(), id)
    }
}

/// A read view running a read-only txn: it never receives a write.
struct ReadOnly<'v, V>(&'v V);

impl<V: ReadView> ReadView for ReadOnly<'_, V> {
    fn rev(&self) -> i64 {
        self.0.rev()
    }
    fn first_rev(&self) -> i64 {
        self.0.first_rev()
    }
    fn range(&self, key: &[u8], end: &[u8], opts: RangeOptions) -> Result<RangeResult, MvccError> {
        self.0.range(key, end, opts)
    }
}

impl<V: ReadView> TxnTarget for ReadOnly<'_, V> {
    fn put(&mut self, _: &PutRequest) -> Result<PutResponse, EtcdError> {
        Err(EtcdError::Internal("write in a read-only txn".into()))
    }
    fn delete_range(&mut self, _: &DeleteRangeRequest) -> Result<DeleteRangeResponse, EtcdError> {
        Err(EtcdError::Internal("write in a read-only txn".into()))
    }
    fn changed(&self) -> bool {
        false
    }
    fn check_lease(&self, _: i64) -> Result<(), EtcdError> {
        Err(EtcdError::Internal("write in a read-only txn".into()))
    }
}

/// Runs a txn inside the write txn of its raft entry.
pub fn txn(txn: &mut WriteTxn<'_>, rt: &TxnRequest) -> Result<TxnResponse, EtcdError> {
    run(txn, rt)
}

/// Runs a txn whose ops are all ranges ([`is_txn_read_only`]) on a read view,
/// as etcd serves such txns without raft. Any other txn gets an
/// [`EtcdError::Internal`] error.
pub fn txn_read_only(view: &impl ReadView, rt: &TxnRequest) -> Result<TxnResponse, EtcdError> {
    if !is_txn_read_only(rt) {
        return Err(EtcdError::Internal("txn with writes on a read view".into()));
    }
    run(&mut ReadOnly(view), rt)
}

/// Whether every op on both branches is a range (nested txns count as
/// writes, as in etcd).
pub fn is_txn_read_only(rt: &TxnRequest) -> bool {
    rt.success
        .iter()
        .chain(&rt.failure)
        .all(|op| matches!(op.request, Some(Request::RequestRange(_))))
}

fn run<T: TxnTarget>(t: &mut T, rt: &TxnRequest) -> Result<TxnResponse, EtcdError> {
    let mut path = Vec::new();
    compare_to_path(&*t, rt, &mut path);
    if !is_txn_read_only(rt) {
        check_requests(&*t, rt, &path, &mut 0, check_put::<T>)?;
    }
    check_requests(&*t, rt, &path, &mut 0, check_range)?;
    let mut resp = apply_txn(t, rt, &path, &mut 0)?;
    let rev = if t.changed() { t.rev() + 1 } else { t.rev() };
    resp.header = header(rev);
    Ok(resp)
}

fn branch(rt: &TxnRequest, succeeded: bool) -> &[RequestOp] {
    if succeeded {
        &rt.success
    } else {
        &rt.failure
    }
}

/// Appends, in pre-order, whether each txn on the chosen branches succeeds.
fn compare_to_path(view: &impl ReadView, rt: &TxnRequest, path: &mut Vec<bool>) {
    let ok = rt.compare.iter().all(|c| apply_compare(view, c));
    path.push(ok);
    for op in branch(rt, ok) {
        if let Some(Request::RequestTxn(nested)) = &op.request {
            compare_to_path(view, nested, path);
        }
    }
}

/// Every key of the compare's range must satisfy it. An empty range compares
/// a zero key-value, except for VALUE targets, which then fail (a missing
/// value cannot be told from an empty one).
fn apply_compare(view: &impl ReadView, c: &Compare) -> bool {
    let Ok(rr) = view.range(&c.key, &c.range_end, RangeOptions::default()) else {
        return false;
    };
    if rr.kvs.is_empty() {
        if c.target == CompareTarget::Value as i32 {
            return false;
        }
        return compare_kv(c, &KeyValue::default());
    }
    rr.kvs.iter().all(|kv| compare_kv(c, kv))
}

fn compare_kv(c: &Compare, kv: &KeyValue) -> bool {
    let tu = c.target_union.as_ref();
    let ord = match CompareTarget::try_from(c.target) {
        Ok(CompareTarget::Value) => {
            let want: &[u8] = match tu {
                Some(TargetUnion::Value(v)) => v,
                _ => &[],
            };
            kv.value.as_slice().cmp(want)
        }
        Ok(CompareTarget::Create) => {
            let want = match tu {
                Some(TargetUnion::CreateRevision(r)) => *r,
                _ => 0,
            };
            kv.create_revision.cmp(&want)
        }
        Ok(CompareTarget::Mod) => {
            let want = match tu {
                Some(TargetUnion::ModRevision(r)) => *r,
                _ => 0,
            };
            kv.mod_revision.cmp(&want)
        }
        Ok(CompareTarget::Version) => {
            let want = match tu {
                Some(TargetUnion::Version(v)) => *v,
                _ => 0,
            };
            kv.version.cmp(&want)
        }
        Ok(CompareTarget::Lease) => {
            let want = match tu {
                Some(TargetUnion::Lease(l)) => *l,
                _ => 0,
            };
            kv.lease.cmp(&want)
        }
        // An unknown target compares as equal, like etcd's empty switch.
        Err(_) => std::cmp::Ordering::Equal,
    };
    match CompareResult::try_from(c.result) {
        Ok(CompareResult::Equal) => ord.is_eq(),
        Ok(CompareResult::NotEqual) => ord.is_ne(),
        Ok(CompareResult::Greater) => ord.is_gt(),
        Ok(CompareResult::Less) => ord.is_lt(),
        Err(_) => true,
    }
}

type Check<V> = fn(&V, &RequestOp) -> Result<(), EtcdError>;

/// Runs `f` on every non-txn op of the chosen branches; `at` walks `path`.
fn check_requests<V: ReadView>(
    view: &V,
    rt: &TxnRequest,
    path: &[bool],
    at: &mut usize,
    f: Check<V>,
) -> Result<(), EtcdError> {
    let ok = path.get(*at).copied().unwrap_or(false);
    *at += 1;
    for op in branch(rt, ok) {
        match &op.request {
            Some(Request::RequestTxn(nested)) => check_requests(view, nested, path, at, f)?,
            _ => f(view, op)?,
        }
    }
    Ok(())
}

/// A put that keeps the value or lease needs the key to exist now; a put's
/// lease must exist (etcd's `checkRequestPut`, in that order).
fn check_put<V: TxnTarget>(view: &V, op: &RequestOp) -> Result<(), EtcdError> {
    let Some(Request::RequestPut(p)) = &op.request else {
        return Ok(());
    };
    if p.ignore_value || p.ignore_lease {
        let rr = view.range(&p.key, &[], RangeOptions::default())?;
        if rr.kvs.is_empty() {
            return Err(EtcdError::KeyNotFound);
        }
    }
    view.check_lease(p.lease)
}

/// A range at an explicit revision must be readable from the txn's start.
fn check_range<V: ReadView>(view: &V, op: &RequestOp) -> Result<(), EtcdError> {
    let Some(Request::RequestRange(r)) = &op.request else {
        return Ok(());
    };
    if r.revision == 0 {
        Ok(())
    } else if r.revision > view.rev() {
        Err(EtcdError::FutureRev)
    } else if r.revision < view.first_rev() {
        Err(EtcdError::Compacted)
    } else {
        Ok(())
    }
}

fn apply_txn<T: TxnTarget>(
    t: &mut T,
    rt: &TxnRequest,
    path: &[bool],
    at: &mut usize,
) -> Result<TxnResponse, EtcdError> {
    let succeeded = path.get(*at).copied().unwrap_or(false);
    *at += 1;
    let ops = branch(rt, succeeded);
    let mut responses = Vec::with_capacity(ops.len());
    for op in ops {
        let response = match &op.request {
            Some(Request::RequestRange(r)) => Some(Response::ResponseRange(range::range(&*t, r)?)),
            Some(Request::RequestPut(p)) => Some(Response::ResponsePut(t.put(p)?)),
            Some(Request::RequestDeleteRange(d)) => Some(Response::ResponseDeleteRange(t.delete_range(d)?)),
            Some(Request::RequestTxn(nested)) => {
                let mut inner = apply_txn(t, nested, path, at)?;
                inner.header = Some(ResponseHeader::default());
                Some(Response::ResponseTxn(inner))
            }
            None => None,
        };
        responses.push(ResponseOp { response });
    }
    Ok(TxnResponse {
        header: None,
        succeeded,
        responses,
    })
}
