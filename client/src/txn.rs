//! Transactions: compares, operations and the `when / and_then / or_else`
//! builder.
//!
//! ```no_run
//! # async fn demo(client: timon_client::Client) -> timon_client::Result<()> {
//! use timon_client::{Compare, Op};
//! let response = client
//!     .txn()
//!     .when([Compare::mod_revision("k").eq(0)])
//!     .and_then([Op::put("k", "v")])
//!     .or_else([Op::get("k")])
//!     .await?;
//! # let _ = response; Ok(()) }
//! ```

use timon_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use timon_proto::etcdserverpb::kv_client::KvClient;
use timon_proto::etcdserverpb::request_op::Request;
use timon_proto::etcdserverpb::{Compare as PbCompare, RequestOp, TxnRequest as PbTxnRequest, TxnResponse};

use crate::client::Client;
use crate::kv::{prefix_range_end, DeleteRequest, GetRequest, PutRequest};
use crate::retry::{self, Kind};

/// One condition of a txn.
#[derive(Debug, Clone, PartialEq)]
pub struct Compare(PbCompare);

/// The first half of a compare on a numeric field: pick the relation next.
#[derive(Debug, Clone)]
#[must_use = "finish the compare with eq, ne, gt or lt"]
pub struct NumberCompare {
    key: Vec<u8>,
    target: CompareTarget,
}

/// The first half of a compare on the value: pick the relation next.
#[derive(Debug, Clone)]
#[must_use = "finish the compare with eq, ne, gt or lt"]
pub struct ValueCompare {
    key: Vec<u8>,
}

impl Compare {
    /// Compares the key's version (number of puts since creation; 0 if absent).
    pub fn version(key: impl Into<Vec<u8>>) -> NumberCompare {
        NumberCompare::new(key, CompareTarget::Version)
    }

    /// Compares the key's create revision (0 if absent).
    pub fn create_revision(key: impl Into<Vec<u8>>) -> NumberCompare {
        NumberCompare::new(key, CompareTarget::Create)
    }

    /// Compares the key's mod revision (0 if absent).
    pub fn mod_revision(key: impl Into<Vec<u8>>) -> NumberCompare {
        NumberCompare::new(key, CompareTarget::Mod)
    }

    /// Compares the key's lease id (0 if none).
    pub fn lease(key: impl Into<Vec<u8>>) -> NumberCompare {
        NumberCompare::new(key, CompareTarget::Lease)
    }

    /// Compares the key's value (bytewise).
    pub fn value(key: impl Into<Vec<u8>>) -> ValueCompare {
        ValueCompare { key: key.into() }
    }

    /// Applies the compare to every key in `[key, end)`.
    pub fn with_range_end(mut self, end: impl Into<Vec<u8>>) -> Self {
        self.0.range_end = end.into();
        self
    }

    /// Applies the compare to every key starting with the key.
    pub fn with_prefix(mut self) -> Self {
        self.0.range_end = prefix_range_end(&self.0.key);
        self
    }

    /// The wire compare.
    pub fn into_inner(self) -> PbCompare {
        self.0
    }

    fn build(key: Vec<u8>, target: CompareTarget, result: CompareResult, union: TargetUnion) -> Self {
        Compare(PbCompare {
            result: result as i32,
            target: target as i32,
            key,
            range_end: Vec::new(),
            target_union: Some(union),
        })
    }
}

impl From<PbCompare> for Compare {
    fn from(compare: PbCompare) -> Self {
        Compare(compare)
    }
}

impl NumberCompare {
    fn new(key: impl Into<Vec<u8>>, target: CompareTarget) -> Self {
        NumberCompare {
            key: key.into(),
            target,
        }
    }

    fn finish(self, result: CompareResult, number: i64) -> Compare {
        let union = match self.target {
            CompareTarget::Version => TargetUnion::Version(number),
            CompareTarget::Create => TargetUnion::CreateRevision(number),
            CompareTarget::Mod => TargetUnion::ModRevision(number),
            CompareTarget::Lease => TargetUnion::Lease(number),
            // Not constructible: value compares go through ValueCompare.
            CompareTarget::Value => TargetUnion::Value(number.to_string().into_bytes()),
        };
        Compare::build(self.key, self.target, result, union)
    }

    /// Holds when the field equals `number`.
    pub fn eq(self, number: i64) -> Compare {
        self.finish(CompareResult::Equal, number)
    }

    /// Holds when the field differs from `number`.
    pub fn ne(self, number: i64) -> Compare {
        self.finish(CompareResult::NotEqual, number)
    }

    /// Holds when the field is greater than `number`.
    pub fn gt(self, number: i64) -> Compare {
        self.finish(CompareResult::Greater, number)
    }

    /// Holds when the field is less than `number`.
    pub fn lt(self, number: i64) -> Compare {
        self.finish(CompareResult::Less, number)
    }

    /// Finishes with an explicit relation.
    pub fn with(self, result: CompareResult, number: i64) -> Compare {
        self.finish(result, number)
    }
}

impl ValueCompare {
    fn finish(self, result: CompareResult, value: Vec<u8>) -> Compare {
        Compare::build(self.key, CompareTarget::Value, result, TargetUnion::Value(value))
    }

    /// Holds when the value equals `value`.
    pub fn eq(self, value: impl Into<Vec<u8>>) -> Compare {
        self.finish(CompareResult::Equal, value.into())
    }

    /// Holds when the value differs from `value`.
    pub fn ne(self, value: impl Into<Vec<u8>>) -> Compare {
        self.finish(CompareResult::NotEqual, value.into())
    }

    /// Holds when the value sorts after `value`.
    pub fn gt(self, value: impl Into<Vec<u8>>) -> Compare {
        self.finish(CompareResult::Greater, value.into())
    }

    /// Holds when the value sorts before `value`.
    pub fn lt(self, value: impl Into<Vec<u8>>) -> Compare {
        self.finish(CompareResult::Less, value.into())
    }

    /// Finishes with an explicit relation.
    pub fn with(self, result: CompareResult, value: impl Into<Vec<u8>>) -> Compare {
        self.finish(result, value.into())
    }
}

/// One operation of a txn branch.
#[derive(Debug, Clone, PartialEq)]
pub struct Op(RequestOp);

impl Op {
    /// Reads one key; use `Op::from(GetRequest::new(k).prefix())` for options.
    pub fn get(key: impl Into<Vec<u8>>) -> Op {
        GetRequest::new(key).into()
    }

    /// Writes one key; use `Op::from(PutRequest::new(k, v).prev_kv())` for options.
    pub fn put(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Op {
        PutRequest::new(key, value).into()
    }

    /// Deletes one key; use `Op::from(DeleteRequest::new(k).prefix())` for options.
    pub fn delete(key: impl Into<Vec<u8>>) -> Op {
        DeleteRequest::new(key).into()
    }

    /// A nested transaction.
    pub fn txn(txn: TxnRequest) -> Op {
        txn.into()
    }

    /// The wire operation.
    pub fn into_inner(self) -> RequestOp {
        self.0
    }

    fn wrap(request: Request) -> Op {
        Op(RequestOp { request: Some(request) })
    }
}

impl From<GetRequest> for Op {
    fn from(request: GetRequest) -> Self {
        Op::wrap(Request::RequestRange(request.into_inner()))
    }
}

impl From<PutRequest> for Op {
    fn from(request: PutRequest) -> Self {
        Op::wrap(Request::RequestPut(request.into_inner()))
    }
}

impl From<DeleteRequest> for Op {
    fn from(request: DeleteRequest) -> Self {
        Op::wrap(Request::RequestDeleteRange(request.into_inner()))
    }
}

impl From<TxnRequest> for Op {
    fn from(request: TxnRequest) -> Self {
        Op::wrap(Request::RequestTxn(request.into_inner()))
    }
}

impl From<RequestOp> for Op {
    fn from(op: RequestOp) -> Self {
        Op(op)
    }
}

/// A Txn request under construction. Calls append, so a branch may be
/// built up over several calls.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TxnRequest(PbTxnRequest);

impl TxnRequest {
    /// An empty txn: no compares (so it succeeds) and no operations.
    pub fn new() -> Self {
        TxnRequest::default()
    }

    /// Adds conditions; the success branch runs if all of them hold.
    pub fn when(mut self, compares: impl IntoIterator<Item = Compare>) -> Self {
        self.0.compare.extend(compares.into_iter().map(Compare::into_inner));
        self
    }

    /// Adds operations to the success branch.
    pub fn and_then<O: Into<Op>>(mut self, ops: impl IntoIterator<Item = O>) -> Self {
        self.0.success.extend(ops.into_iter().map(|op| op.into().into_inner()));
        self
    }

    /// Adds operations to the failure branch.
    pub fn or_else<O: Into<Op>>(mut self, ops: impl IntoIterator<Item = O>) -> Self {
        self.0.failure.extend(ops.into_iter().map(|op| op.into().into_inner()));
        self
    }

    /// The wire request.
    pub fn into_inner(self) -> PbTxnRequest {
        self.0
    }
}

/// An awaitable Txn request; see [`TxnRequest`].
#[derive(Debug, Clone)]
#[must_use = "a request does nothing until awaited"]
pub struct Txn {
    client: Client,
    request: TxnRequest,
}

impl Txn {
    /// See [`TxnRequest::when`].
    pub fn when(mut self, compares: impl IntoIterator<Item = Compare>) -> Self {
        self.request = self.request.when(compares);
        self
    }

    /// See [`TxnRequest::and_then`].
    pub fn and_then<O: Into<Op>>(mut self, ops: impl IntoIterator<Item = O>) -> Self {
        self.request = self.request.and_then(ops);
        self
    }

    /// See [`TxnRequest::or_else`].
    pub fn or_else<O: Into<Op>>(mut self, ops: impl IntoIterator<Item = O>) -> Self {
        self.request = self.request.or_else(ops);
        self
    }
}

await_as!(Txn => TxnResponse, |this| async move {
    let request = this.request.into_inner();
    let kind = if writes(&request) { Kind::Write } else { Kind::Read };
    let needs_leader = !serializable(&request);
    this.client
        .call(kind, |channel| {
            let request = retry::request(request.clone(), needs_leader);
            async move { KvClient::new(channel).txn(request).await }
        })
        .await
});

/// The operations of both branches, nested txns included.
fn ops(txn: &PbTxnRequest) -> impl Iterator<Item = &Request> {
    txn.success
        .iter()
        .chain(&txn.failure)
        .filter_map(|op| op.request.as_ref())
}

/// True when either branch (at any depth) puts or deletes.
fn writes(txn: &PbTxnRequest) -> bool {
    ops(txn).any(|op| match op {
        Request::RequestRange(_) => false,
        Request::RequestPut(_) | Request::RequestDeleteRange(_) => true,
        Request::RequestTxn(nested) => writes(nested),
    })
}

/// True when the txn only reads, and every read is serializable: etcd then
/// serves it from the member's local state, without a leader.
fn serializable(txn: &PbTxnRequest) -> bool {
    ops(txn).all(|op| match op {
        Request::RequestRange(range) => range.serializable,
        Request::RequestPut(_) | Request::RequestDeleteRange(_) => false,
        Request::RequestTxn(nested) => serializable(nested),
    })
}

impl Client {
    /// Starts a transaction; add compares and branches, then `.await`.
    pub fn txn(&self) -> Txn {
        self.txn_request(TxnRequest::new())
    }

    /// Sends a prepared [`TxnRequest`].
    pub fn txn_request(&self, request: TxnRequest) -> Txn {
        Txn {
            client: self.clone(),
            request,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_compare_fills_the_matching_union_field() {
        let c = Compare::mod_revision("k").eq(5).into_inner();
        assert_eq!(c.target, CompareTarget::Mod as i32);
        assert_eq!(c.result, CompareResult::Equal as i32);
        assert_eq!(c.target_union, Some(TargetUnion::ModRevision(5)));
        let c = Compare::create_revision("k").lt(2).into_inner();
        assert_eq!(c.target_union, Some(TargetUnion::CreateRevision(2)));
        assert_eq!(c.result, CompareResult::Less as i32);
    }

    #[test]
    fn value_compare_with_prefix_sets_range_end() {
        let c = Compare::value("ab").ne("x").with_prefix().into_inner();
        assert_eq!(c.range_end, b"ac".to_vec());
        assert_eq!(c.target_union, Some(TargetUnion::Value(b"x".to_vec())));
    }

    #[test]
    fn txns_with_a_write_anywhere_are_writes() {
        let read = TxnRequest::new()
            .and_then([Op::get("a")])
            .or_else([Op::txn(TxnRequest::new().and_then([Op::get("b")]))])
            .into_inner();
        assert!(!writes(&read));
        assert!(!serializable(&read));
        let nested_put = TxnRequest::new()
            .and_then([Op::get("a")])
            .or_else([Op::txn(TxnRequest::new().and_then([Op::put("b", "1")]))])
            .into_inner();
        assert!(writes(&nested_put));
        let local = TxnRequest::new()
            .and_then([Op::from(GetRequest::new("a").serializable())])
            .into_inner();
        assert!(serializable(&local) && !writes(&local));
    }

    #[test]
    fn branches_accumulate_in_order() {
        let t = TxnRequest::new()
            .and_then([Op::put("a", "1")])
            .and_then([Op::get("a"), Op::delete("b")])
            .or_else([Op::from(GetRequest::new("p").prefix())])
            .into_inner();
        assert_eq!(t.success.len(), 3);
        assert!(matches!(t.success[2].request, Some(Request::RequestDeleteRange(_))));
        assert_eq!(t.failure.len(), 1);
    }
}
