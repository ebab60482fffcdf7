//! Request execution against a store over the in-memory engine; expected
//! values follow etcd 3.4's answers to the same requests.

use std::sync::Arc;

use timon_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use timon_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use timon_proto::etcdserverpb::request_op::Request as Op;
use timon_proto::etcdserverpb::response_op::Response as OpResp;
use timon_proto::etcdserverpb::{
    CompactionRequest, Compare, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, ResponseHeader, TxnRequest,
    TxnResponse,
};
use timon_proto::mvccpb::KeyValue;
use timon_proto::timonpb::internal_raft_request::Request;
use timon_proto::timonpb::InternalRaftRequest;

use super::*;
use crate::mvcc::MvccStore;
use crate::storage::mem::MemEngine;
use crate::storage::WriteBatch;

fn store() -> MvccStore {
    MvccStore::open(Arc::new(MemEngine::new())).unwrap()
}

fn apply(s: &MvccStore, req: Request) -> Result<Response, EtcdError> {
    let mut t = s.write();
    let out = execute(&mut t, InternalRaftRequest { request: Some(req) });
    t.commit(WriteBatch::new()).unwrap();
    out
}

/// Grants lease `id` (changes no revision).
fn grant(s: &MvccStore, id: i64, ttl: i64) {
    apply(
        s,
        Request::LeaseGrant(timon_proto::etcdserverpb::LeaseGrantRequest { id, ttl }),
    )
    .unwrap();
}

fn put_req(k: &str, v: &str) -> PutRequest {
    PutRequest {
        key: k.into(),
        value: v.into(),
        ..Default::default()
    }
}

fn put(s: &MvccStore, k: &str, v: &str) -> i64 {
    match apply(s, Request::Put(put_req(k, v))).unwrap() {
        Response::Put(p) => p.header.unwrap().revision,
        other => panic!("unexpected {other:?}"),
    }
}

fn get(s: &MvccStore, r: RangeRequest) -> Result<RangeResponse, EtcdError> {
    range::range(&s.read(), &r)
}

fn rr(k: &str, end: &str) -> RangeRequest {
    RangeRequest {
        key: k.into(),
        range_end: end.into(),
        ..Default::default()
    }
}

fn keys(resp: &RangeResponse) -> Vec<String> {
    resp.kvs
        .iter()
        .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
        .collect()
}

fn hdr(rev: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        revision: rev,
        ..Default::default()
    })
}

use timon_proto::etcdserverpb::RangeResponse;

#[test]
fn put_prev_kv_and_ignore_flags() {
    let s = store();
    grant(&s, 9, 10);
    grant(&s, 4, 10);
    let resp = apply(
        &s,
        Request::Put(PutRequest {
            lease: 9,
            ..put_req("a", "1")
        }),
    )
    .unwrap();
    assert_eq!(
        resp,
        Response::Put(PutResponse {
            header: hdr(2),
            prev_kv: None
        })
    );

    let p = PutRequest {
        prev_kv: true,
        ..put_req("a", "2")
    };
    let Response::Put(resp) = apply(&s, Request::Put(p)).unwrap() else {
        panic!()
    };
    assert_eq!(resp.header, hdr(3));
    let prev = resp.prev_kv.unwrap();
    assert_eq!(
        (prev.value.as_slice(), prev.mod_revision, prev.lease),
        (&b"1"[..], 2, 9)
    );

    // ignore_value keeps the value, takes the new lease.
    let p = PutRequest {
        ignore_value: true,
        lease: 4,
        ..put_req("a", "")
    };
    apply(&s, Request::Put(p)).unwrap();
    let kv = &get(&s, rr("a", "")).unwrap().kvs[0];
    assert_eq!((kv.value.as_slice(), kv.lease, kv.version), (&b"2"[..], 4, 3));
    // ignore_lease keeps the lease, takes the new value.
    let p = PutRequest {
        ignore_lease: true,
        ..put_req("a", "3")
    };
    apply(&s, Request::Put(p)).unwrap();
    let kv = &get(&s, rr("a", "")).unwrap().kvs[0];
    assert_eq!((kv.value.as_slice(), kv.lease), (&b"3"[..], 4));

    // ... and need the key.
    let p = PutRequest {
        ignore_value: true,
        ..put_req("missing", "")
    };
    assert_eq!(apply(&s, Request::Put(p)), Err(EtcdError::KeyNotFound));
    let p = PutRequest {
        ignore_lease: true,
        ..put_req("missing", "v")
    };
    assert_eq!(apply(&s, Request::Put(p)), Err(EtcdError::KeyNotFound));
    assert_eq!(s.current_revision(), 5, "failed puts do not raise the revision");
}

#[test]
fn delete_range_prev_kvs_and_revision() {
    let s = store();
    for k in ["a", "b", "c"] {
        put(&s, k, k);
    }
    let d = DeleteRangeRequest {
        key: "zz".into(),
        ..Default::default()
    };
    let resp = apply(&s, Request::DeleteRange(d)).unwrap();
    assert_eq!(
        resp,
        Response::DeleteRange(DeleteRangeResponse {
            header: hdr(4),
            deleted: 0,
            prev_kvs: vec![]
        })
    );
    let d = DeleteRangeRequest {
        key: "a".into(),
        range_end: "c".into(),
        prev_kv: true,
    };
    let Response::DeleteRange(resp) = apply(&s, Request::DeleteRange(d)).unwrap() else {
        panic!()
    };
    assert_eq!((resp.header, resp.deleted), (hdr(5), 2));
    assert_eq!(
        resp.prev_kvs.iter().map(|kv| kv.key.clone()).collect::<Vec<_>>(),
        vec![b"a".to_vec(), b"b".to_vec()]
    );
    assert_eq!(keys(&get(&s, rr("a", "\0")).unwrap()), vec!["c"]);
}

#[test]
fn range_limit_more_count_and_revision() {
    let s = store();
    for k in ["a", "b", "c", "d"] {
        put(&s, k, k);
    }
    let resp = get(
        &s,
        RangeRequest {
            limit: 2,
            ..rr("a", "\0")
        },
    )
    .unwrap();
    assert_eq!(
        (keys(&resp), resp.more, resp.count, resp.header),
        (vec!["a".into(), "b".into()], true, 4, hdr(5))
    );
    let resp = get(
        &s,
        RangeRequest {
            limit: 4,
            ..rr("a", "\0")
        },
    )
    .unwrap();
    assert!(!resp.more);
    let resp = get(
        &s,
        RangeRequest {
            limit: i64::MAX,
            ..rr("a", "\0")
        },
    )
    .unwrap();
    assert_eq!(
        (resp.kvs.len(), resp.more),
        (4, false),
        "a huge limit does not overflow"
    );
    let resp = get(
        &s,
        RangeRequest {
            limit: -3,
            ..rr("a", "\0")
        },
    )
    .unwrap();
    assert_eq!(
        (resp.kvs.len(), resp.more),
        (4, false),
        "a negative limit means no limit"
    );
    let resp = get(
        &s,
        RangeRequest {
            count_only: true,
            ..rr("a", "\0")
        },
    )
    .unwrap();
    assert_eq!((resp.kvs.len(), resp.count), (0, 4));
    let resp = get(
        &s,
        RangeRequest {
            keys_only: true,
            ..rr("a", "")
        },
    )
    .unwrap();
    assert!(resp.kvs[0].value.is_empty());
    assert_eq!(resp.kvs[0].mod_revision, 2);
    let resp = get(
        &s,
        RangeRequest {
            revision: 3,
            ..rr("a", "\0")
        },
    )
    .unwrap();
    assert_eq!((keys(&resp), resp.header), (vec!["a".into(), "b".into()], hdr(5)));
    assert_eq!(
        get(
            &s,
            RangeRequest {
                revision: 6,
                ..rr("a", "")
            }
        ),
        Err(EtcdError::FutureRev)
    );
    apply(
        &s,
        Request::Compaction(CompactionRequest {
            revision: 4,
            physical: false,
        }),
    )
    .unwrap();
    assert_eq!(
        get(
            &s,
            RangeRequest {
                revision: 3,
                ..rr("a", "")
            }
        ),
        Err(EtcdError::Compacted)
    );
    assert!(get(
        &s,
        RangeRequest {
            revision: 4,
            ..rr("a", "")
        }
    )
    .is_ok());
}

#[test]
fn range_filters_count_before_filtering() {
    let s = store();
    put(&s, "a", "1"); // 2
    put(&s, "b", "1"); // 3
    put(&s, "c", "1"); // 4
    put(&s, "a", "2"); // 5
    let resp = get(
        &s,
        RangeRequest {
            min_mod_revision: 4,
            ..rr("a", "\0")
        },
    )
    .unwrap();
    assert_eq!((keys(&resp), resp.count), (vec!["a".into(), "c".into()], 3));
    let resp = get(
        &s,
        RangeRequest {
            max_mod_revision: 3,
            ..rr("a", "\0")
        },
    )
    .unwrap();
    assert_eq!(keys(&resp), vec!["b"]);
    let resp = get(
        &s,
        RangeRequest {
            min_create_revision: 3,
            ..rr("a", "\0")
        },
    )
    .unwrap();
    assert_eq!(keys(&resp), vec!["b", "c"]);
    let resp = get(
        &s,
        RangeRequest {
            max_create_revision: 2,
            limit: 1,
            ..rr("a", "\0")
        },
    )
    .unwrap();
    assert_eq!(
        (keys(&resp), resp.more),
        (vec!["a".into()], false),
        "filter fetches all, then limits"
    );
}

#[test]
fn range_sorting_is_stable_and_defaults_to_ascend() {
    let s = store();
    put(&s, "a", "x"); // 2
    put(&s, "b", "y"); // 3
    put(&s, "c", "x"); // 4
    put(&s, "b", "z"); // 5
    let sorted = |order: SortOrder, target: SortTarget, limit: i64| {
        let r = RangeRequest {
            sort_order: order as i32,
            sort_target: target as i32,
            limit,
            ..rr("a", "\0")
        };
        let resp = get(&s, r).unwrap();
        (keys(&resp), resp.more)
    };
    assert_eq!(sorted(SortOrder::Descend, SortTarget::Key, 0).0, vec!["c", "b", "a"]);
    assert_eq!(
        sorted(SortOrder::None, SortTarget::Mod, 0).0,
        vec!["a", "c", "b"],
        "NONE with MOD sorts ascending"
    );
    assert_eq!(
        sorted(SortOrder::Descend, SortTarget::Mod, 2),
        (vec!["b".into(), "c".into()], true)
    );
    assert_eq!(
        sorted(SortOrder::Ascend, SortTarget::Value, 0).0,
        vec!["a", "c", "b"],
        "ties keep key order"
    );
    assert_eq!(
        sorted(SortOrder::Descend, SortTarget::Value, 0).0,
        vec!["b", "a", "c"],
        "ties keep key order"
    );
    assert_eq!(
        sorted(SortOrder::Descend, SortTarget::Version, 0).0,
        vec!["b", "a", "c"]
    );
    assert_eq!(sorted(SortOrder::Ascend, SortTarget::Create, 0).0, vec!["a", "b", "c"]);
    // Keys only: values are loaded to sort by them, then left out.
    let r = RangeRequest {
        sort_order: SortOrder::Descend as i32,
        sort_target: SortTarget::Value as i32,
        keys_only: true,
        ..rr("a", "\0")
    };
    let resp = get(&s, r).unwrap();
    assert_eq!(keys(&resp), vec!["b", "a", "c"]);
    assert!(resp.kvs.iter().all(|kv| kv.value.is_empty()));
}

fn cmp(k: &str, target: CompareTarget, result: CompareResult, tu: TargetUnion) -> Compare {
    Compare {
        result: result as i32,
        target: target as i32,
        key: k.into(),
        target_union: Some(tu),
        range_end: vec![],
    }
}

fn op_put(k: &str, v: &str) -> RequestOp {
    RequestOp {
        request: Some(Op::RequestPut(put_req(k, v))),
    }
}

fn op_get(k: &str) -> RequestOp {
    RequestOp {
        request: Some(Op::RequestRange(rr(k, ""))),
    }
}

fn run_txn(s: &MvccStore, t: TxnRequest) -> Result<TxnResponse, EtcdError> {
    match apply(s, Request::Txn(t))? {
        Response::Txn(r) => Ok(r),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn txn_compares() {
    use CompareResult::*;
    use CompareTarget as T;
    let s = store();
    grant(&s, 7, 10);
    put(&s, "a", "v"); // 2
    put(&s, "a", "w"); // 3
    apply(
        &s,
        Request::Put(PutRequest {
            lease: 7,
            ..put_req("b", "x")
        }),
    )
    .unwrap(); // 4
    let cases = [
        (cmp("a", T::Version, Equal, TargetUnion::Version(2)), true),
        (cmp("a", T::Version, Greater, TargetUnion::Version(1)), true),
        (cmp("a", T::Version, Less, TargetUnion::Version(2)), false),
        (cmp("a", T::Create, Equal, TargetUnion::CreateRevision(2)), true),
        (cmp("a", T::Mod, NotEqual, TargetUnion::ModRevision(3)), false),
        (cmp("a", T::Mod, Less, TargetUnion::ModRevision(4)), true),
        (cmp("a", T::Value, Equal, TargetUnion::Value(b"w".to_vec())), true),
        (cmp("a", T::Value, Greater, TargetUnion::Value(b"v".to_vec())), true),
        (cmp("b", T::Lease, Equal, TargetUnion::Lease(7)), true),
        (cmp("a", T::Lease, Equal, TargetUnion::Lease(0)), true),
        // A missing key compares as zero revisions and version...
        (cmp("zz", T::Mod, Equal, TargetUnion::ModRevision(0)), true),
        (cmp("zz", T::Version, Equal, TargetUnion::Version(0)), true),
        (cmp("zz", T::Create, Greater, TargetUnion::CreateRevision(0)), false),
        // ... but a VALUE compare on it always fails.
        (cmp("zz", T::Value, NotEqual, TargetUnion::Value(b"x".to_vec())), false),
        // A target union of another kind compares against zero.
        (cmp("a", T::Mod, Greater, TargetUnion::Version(100)), true),
        // Over a range every key must match.
        (
            Compare {
                range_end: b"c".to_vec(),
                ..cmp("a", T::Create, Greater, TargetUnion::CreateRevision(1))
            },
            true,
        ),
        (
            Compare {
                range_end: b"c".to_vec(),
                ..cmp("a", T::Version, Equal, TargetUnion::Version(2))
            },
            false,
        ),
        (
            Compare {
                range_end: b"\0".to_vec(),
                ..cmp("b", T::Lease, Equal, TargetUnion::Lease(7))
            },
            true,
        ),
    ];
    for (i, (c, want)) in cases.into_iter().enumerate() {
        let t = TxnRequest {
            compare: vec![c],
            success: vec![],
            failure: vec![],
        };
        let resp = run_txn(&s, t).unwrap();
        assert_eq!(resp.succeeded, want, "case {i}");
        assert_eq!(resp.header, hdr(4), "read-only txn keeps the revision");
    }
}

#[test]
fn txn_reads_its_own_writes_and_fills_inner_headers() {
    let s = store();
    put(&s, "a", "1"); // 2
    let t = TxnRequest {
        compare: vec![cmp(
            "a",
            CompareTarget::Value,
            CompareResult::Equal,
            TargetUnion::Value(b"1".to_vec()),
        )],
        success: vec![
            op_get("b"),
            op_put("b", "2"),
            op_get("b"),
            RequestOp {
                request: Some(Op::RequestDeleteRange(DeleteRangeRequest {
                    key: "zz".into(),
                    ..Default::default()
                })),
            },
        ],
        failure: vec![],
    };
    let resp = run_txn(&s, t).unwrap();
    assert!(resp.succeeded);
    assert_eq!(resp.header, hdr(3));
    let r: Vec<_> = resp.responses.into_iter().map(|r| r.response.unwrap()).collect();
    let OpResp::ResponseRange(before) = &r[0] else { panic!() };
    assert_eq!((before.count, before.header), (0, hdr(2)));
    let OpResp::ResponsePut(p) = &r[1] else { panic!() };
    assert_eq!(p.header, hdr(3));
    let OpResp::ResponseRange(after) = &r[2] else { panic!() };
    assert_eq!(after.header, hdr(3));
    assert_eq!(
        after.kvs,
        vec![KeyValue {
            key: b"b".to_vec(),
            value: b"2".to_vec(),
            create_revision: 3,
            mod_revision: 3,
            version: 1,
            lease: 0
        }]
    );
    let OpResp::ResponseDeleteRange(d) = &r[3] else {
        panic!()
    };
    assert_eq!(
        (d.deleted, d.header),
        (0, hdr(3)),
        "a no-op delete after a write reports the new revision"
    );
    assert_eq!(s.current_revision(), 3);
}

#[test]
fn nested_txns_follow_the_precomputed_path() {
    let s = store();
    put(&s, "a", "1"); // 2
    let inner = |v: &str| TxnRequest {
        // Evaluated before the outer ops run: "a" still has version 1.
        compare: vec![cmp(
            "a",
            CompareTarget::Version,
            CompareResult::Equal,
            TargetUnion::Version(1),
        )],
        success: vec![op_put("x", v)],
        failure: vec![op_put("y", v)],
    };
    let t = TxnRequest {
        compare: vec![cmp(
            "a",
            CompareTarget::Value,
            CompareResult::Equal,
            TargetUnion::Value(b"nope".to_vec()),
        )],
        success: vec![],
        failure: vec![
            op_put("a", "2"),
            RequestOp {
                request: Some(Op::RequestTxn(inner("n"))),
            },
        ],
    };
    let resp = run_txn(&s, t).unwrap();
    assert!(!resp.succeeded);
    assert_eq!(resp.header, hdr(3));
    let OpResp::ResponseTxn(nested) = resp.responses[1].response.clone().unwrap() else {
        panic!()
    };
    assert!(nested.succeeded, "compare saw the store before the txn's own put");
    assert_eq!(
        nested.header,
        Some(ResponseHeader::default()),
        "etcd leaves nested headers empty"
    );
    let OpResp::ResponsePut(p) = nested.responses[0].response.clone().unwrap() else {
        panic!()
    };
    assert_eq!(p.header, hdr(3));
    assert_eq!(keys(&get(&s, rr("a", "\0")).unwrap()), vec!["a", "x"]);
}

#[test]
fn txn_checks_before_writing() {
    let s = store();
    put(&s, "a", "1"); // 2
    let t = TxnRequest {
        compare: vec![],
        success: vec![
            op_put("b", "1"),
            RequestOp {
                request: Some(Op::RequestPut(PutRequest {
                    ignore_value: true,
                    ..put_req("zz", "")
                })),
            },
        ],
        failure: vec![],
    };
    assert_eq!(run_txn(&s, t), Err(EtcdError::KeyNotFound));
    assert_eq!(s.current_revision(), 2, "nothing of the failed txn was written");
    assert_eq!(get(&s, rr("b", "")).unwrap().count, 0);

    let future = RequestOp {
        request: Some(Op::RequestRange(RangeRequest {
            revision: 3,
            ..rr("a", "")
        })),
    };
    let t = TxnRequest {
        compare: vec![],
        success: vec![op_put("b", "1"), future],
        failure: vec![],
    };
    assert_eq!(
        run_txn(&s, t),
        Err(EtcdError::FutureRev),
        "the check uses the revision before the txn"
    );

    apply(
        &s,
        Request::Compaction(CompactionRequest {
            revision: 2,
            physical: true,
        }),
    )
    .unwrap();
    put(&s, "a", "2"); // 3
    let old = RequestOp {
        request: Some(Op::RequestRange(RangeRequest {
            revision: 1,
            ..rr("a", "")
        })),
    };
    let t = TxnRequest {
        compare: vec![],
        success: vec![old],
        failure: vec![],
    };
    assert_eq!(run_txn(&s, t), Err(EtcdError::Compacted));
    // The branch not taken is not checked.
    let old = RequestOp {
        request: Some(Op::RequestRange(RangeRequest {
            revision: 1,
            ..rr("a", "")
        })),
    };
    let t = TxnRequest {
        compare: vec![],
        success: vec![op_get("a")],
        failure: vec![old],
    };
    assert!(run_txn(&s, t).unwrap().succeeded);
}

#[test]
fn read_only_txn_on_a_read_view() {
    let s = store();
    put(&s, "a", "1");
    let t = TxnRequest {
        compare: vec![],
        success: vec![op_get("a")],
        failure: vec![],
    };
    assert!(txn::is_txn_read_only(&t));
    let resp = txn::txn_read_only(&s.read(), &t).unwrap();
    assert_eq!(resp.header, hdr(2));
    let t = TxnRequest {
        compare: vec![],
        success: vec![op_put("a", "2")],
        failure: vec![],
    };
    assert!(!txn::is_txn_read_only(&t));
    assert!(txn::txn_read_only(&s.read(), &t).is_err());
}

#[test]
fn compaction_responses_and_errors() {
    let s = store();
    put(&s, "a", "1");
    put(&s, "a", "2");
    let c = |rev| {
        apply(
            &s,
            Request::Compaction(CompactionRequest {
                revision: rev,
                physical: false,
            }),
        )
    };
    assert_eq!(c(4), Err(EtcdError::FutureRev));
    assert_eq!(c(2), Ok(Response::Compaction(CompactionResponse { header: hdr(3) })));
    assert_eq!(c(2), Err(EtcdError::Compacted));
    assert_eq!(s.current_revision(), 3);
}

#[test]
fn execute_without_request_is_empty() {
    let s = store();
    let mut t = s.write();
    assert_eq!(
        execute(&mut t, InternalRaftRequest { request: None }),
        Ok(Response::Empty)
    );
}

#[test]
fn response_round_trips_through_serde() {
    let r = Response::Put(PutResponse {
        header: hdr(5),
        prev_kv: None,
    });
    let json = serde_json::to_string(&r).unwrap();
    assert_eq!(serde_json::from_str::<Response>(&json).unwrap(), r);
}

#[test]
fn several_nested_txns_take_their_own_paths() {
    let s = store();
    put(&s, "a", "1"); // 2
    let yes = cmp(
        "a",
        CompareTarget::Version,
        CompareResult::Equal,
        TargetUnion::Version(1),
    );
    let no = cmp(
        "a",
        CompareTarget::Version,
        CompareResult::Equal,
        TargetUnion::Version(9),
    );
    let nest = |c: &Compare, ok: RequestOp, ko: RequestOp| RequestOp {
        request: Some(Op::RequestTxn(TxnRequest {
            compare: vec![c.clone()],
            success: vec![ok],
            failure: vec![ko],
        })),
    };
    let deep = nest(&no, op_put("n1-deep-ok", "v"), op_put("n1-deep-ko", "v"));
    let n1 = nest(&yes, deep, op_put("n1-ko", "v"));
    let n2 = nest(&no, op_put("n2-ok", "v"), op_put("n2-ko", "v"));
    let t = TxnRequest {
        compare: vec![yes.clone()],
        success: vec![n1, n2],
        failure: vec![],
    };
    let resp = run_txn(&s, t).unwrap();
    assert!(resp.succeeded);
    let outcome: Vec<bool> = resp
        .responses
        .iter()
        .map(|r| match &r.response {
            Some(OpResp::ResponseTxn(t)) => t.succeeded,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(outcome, vec![true, false]);
    assert_eq!(keys(&get(&s, rr("n", "o")).unwrap()), vec!["n1-deep-ko", "n2-ko"]);
    assert_eq!(s.current_revision(), 3);
}

#[test]
fn failure_midway_rolls_the_txn_back() {
    // Passes validation (etcd lets a ">= key" delete overlap puts) and the
    // up-front checks ("b" exists), then the delete removes "b" before the
    // put that keeps its value. etcd crashes here; we answer the error and
    // write nothing.
    let s = store();
    put(&s, "b", "1"); // 2
    let del_all = RequestOp {
        request: Some(Op::RequestDeleteRange(DeleteRangeRequest {
            key: "a".into(),
            range_end: vec![0],
            prev_kv: false,
        })),
    };
    let keep = RequestOp {
        request: Some(Op::RequestPut(PutRequest {
            ignore_value: true,
            ..put_req("b", "")
        })),
    };
    let t = TxnRequest {
        compare: vec![],
        success: vec![del_all, keep],
        failure: vec![],
    };
    assert_eq!(crate::rpc::validate::check_txn(&t, 128), Ok(()));
    assert_eq!(run_txn(&s, t), Err(EtcdError::KeyNotFound));
    assert_eq!(s.current_revision(), 2);
    assert_eq!(keys(&get(&s, rr("b", "")).unwrap()), vec!["b"]);
}

#[test]
fn leases_attach_detach_and_revoke_in_one_revision() {
    use timon_proto::etcdserverpb::{LeaseGrantRequest, LeaseRevokeRequest};
    let s = store();
    let engine = s.engine().clone();
    grant(&s, 5, 10);
    assert_eq!(
        apply(&s, Request::LeaseGrant(LeaseGrantRequest { id: 5, ttl: 3 })),
        Err(EtcdError::LeaseExist)
    );
    assert_eq!(
        apply(
            &s,
            Request::Put(PutRequest {
                lease: 6,
                ..put_req("x", "1")
            })
        ),
        Err(EtcdError::LeaseNotFound)
    );
    for k in ["a", "b", "c", "d"] {
        apply(
            &s,
            Request::Put(PutRequest {
                lease: 5,
                ..put_req(k, "1")
            }),
        )
        .unwrap();
    } // 2..5
    put(&s, "b", "2"); // 6: detached
    apply(
        &s,
        Request::DeleteRange(DeleteRangeRequest {
            key: b"c".to_vec(),
            ..Default::default()
        }),
    )
    .unwrap(); // 7: detached
    apply(
        &s,
        Request::Put(PutRequest {
            ignore_lease: true,
            ..put_req("d", "2")
        }),
    )
    .unwrap(); // 8: kept
    assert_eq!(
        lease::keys(engine.as_ref(), 5).unwrap(),
        vec![b"a".to_vec(), b"d".to_vec()]
    );
    assert_eq!(lease::lookup(engine.as_ref(), 5).unwrap(), Some(10));
    let r = apply(&s, Request::LeaseRevoke(LeaseRevokeRequest { id: 5 })).unwrap();
    assert_eq!(
        r,
        Response::LeaseRevoke(timon_proto::etcdserverpb::LeaseRevokeResponse { header: hdr(9) })
    );
    assert_eq!(s.current_revision(), 9);
    assert!(lease::leases(engine.as_ref()).unwrap().is_empty());
    assert!(lease::keys(engine.as_ref(), 5).unwrap().is_empty());
    assert_eq!(
        apply(&s, Request::LeaseRevoke(LeaseRevokeRequest { id: 5 })),
        Err(EtcdError::LeaseNotFound)
    );
    // A failed txn put leaves no attachment behind.
    grant(&s, 8, 10);
    let t = TxnRequest {
        success: vec![
            RequestOp {
                request: Some(Op::RequestPut(PutRequest {
                    lease: 8,
                    ..put_req("p", "1")
                })),
            },
            RequestOp {
                request: Some(Op::RequestPut(PutRequest {
                    lease: 99,
                    ..put_req("q", "1")
                })),
            },
        ],
        ..Default::default()
    };
    assert_eq!(apply(&s, Request::Txn(t)), Err(EtcdError::LeaseNotFound));
    assert!(lease::keys(engine.as_ref(), 8).unwrap().is_empty());
}

#[test]
fn lease_checkpoints_record_remaining_ttls_without_a_revision() {
    use timon_proto::etcdserverpb::{LeaseCheckpoint, LeaseCheckpointRequest};
    let s = store();
    let engine = s.engine().clone();
    grant(&s, 1, 30);
    grant(&s, 2, 60);
    let checkpoint = |cps: &[(i64, i64)]| {
        let checkpoints = cps
            .iter()
            .map(|(id, remaining_ttl)| LeaseCheckpoint {
                id: *id,
                remaining_ttl: *remaining_ttl,
            })
            .collect();
        apply(&s, Request::LeaseCheckpoint(LeaseCheckpointRequest { checkpoints })).unwrap()
    };
    // Unknown leases (revoked since) are skipped.
    assert_eq!(checkpoint(&[(1, 12), (7, 5)]), Response::Empty);
    assert_eq!(s.current_revision(), 1);
    assert_eq!(
        lease::remaining_ttls(engine.as_ref()).unwrap(),
        std::collections::BTreeMap::from([(1, 12), (2, 60)])
    );
    assert_eq!(lease::lookup(engine.as_ref(), 1).unwrap(), Some(30));
    assert_eq!(lease::checkpointed(engine.as_ref(), 1).unwrap(), Some(12));
    assert_eq!(lease::leases(engine.as_ref()).unwrap().get(&1), Some(&30));
    // Remaining 0 (a renew) clears it.
    checkpoint(&[(1, 0)]);
    assert_eq!(lease::checkpointed(engine.as_ref(), 1).unwrap(), Some(0));
    assert_eq!(lease::remaining_ttls(engine.as_ref()).unwrap().get(&1), Some(&30));
}
