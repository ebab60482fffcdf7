//! etcd's backend quota arithmetic (`etcdserver/quota.go`): what a request
//! is estimated to add to the store. The rpc layer refuses a request whose
//! cost would take the store past `--quota-backend-bytes` (and raises the
//! NOSPACE alarm); apply refuses requests with a cost while NOSPACE is
//! active ([`super::alarm::gate`]).

use timon_proto::etcdserverpb::{PutRequest, RequestOp, TxnRequest};

/// etcd's estimate of a lease's storage (`leaseOverhead`).
pub const LEASE_COST: u64 = 64;
/// etcd's estimate of a key's metadata (`kvOverhead`).
const KV_OVERHEAD: u64 = 256;

/// etcd's `costPut`.
pub fn put_cost(p: &PutRequest) -> u64 {
    KV_OVERHEAD + p.key.len() as u64 + p.value.len() as u64
}

/// etcd's `costTxn`: the costlier branch, counting the puts at its top
/// level only (etcd 3.4 does not look into nested txns).
pub fn txn_cost(t: &TxnRequest) -> u64 {
    fn branch(ops: &[RequestOp]) -> u64 {
        ops.iter()
            .filter_map(|op| match &op.request {
                Some(timon_proto::etcdserverpb::request_op::Request::RequestPut(p)) => Some(put_cost(p)),
                _ => None,
            })
            .sum()
    }
    branch(&t.success).max(branch(&t.failure))
}

#[cfg(test)]
mod tests {
    use timon_proto::etcdserverpb::request_op::Request;

    use super::*;

    fn put(k: &str, v: &str) -> RequestOp {
        RequestOp {
            request: Some(Request::RequestPut(PutRequest {
                key: k.into(),
                value: v.into(),
                ..Default::default()
            })),
        }
    }

    #[test]
    fn costs_are_etcds() {
        assert_eq!(
            put_cost(&PutRequest {
                key: b"ab".to_vec(),
                value: vec![0; 10],
                ..Default::default()
            }),
            268
        );
        let nested = RequestOp {
            request: Some(Request::RequestTxn(TxnRequest {
                success: vec![put("x", "y")],
                ..Default::default()
            })),
        };
        let t = TxnRequest {
            success: vec![put("a", "1"), nested],
            failure: vec![put("bb", "22"), put("c", "")],
            ..Default::default()
        };
        assert_eq!(txn_cost(&t), (256 + 4) + (256 + 1));
        let reads_only = TxnRequest {
            success: vec![RequestOp {
                request: Some(Request::RequestRange(Default::default())),
            }],
            ..Default::default()
        };
        assert_eq!(txn_cost(&reads_only), 0);
    }
}
