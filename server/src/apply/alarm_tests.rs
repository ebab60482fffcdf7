//! Alarms as etcd's alarm store and capped/corrupt appliers answer them.

use std::sync::Arc;

use timon_proto::etcdserverpb::alarm_request::AlarmAction;
use timon_proto::etcdserverpb::request_op::Request as Op;
use timon_proto::etcdserverpb::{
    AlarmMember, AlarmRequest, AlarmType, CompactionRequest, DeleteRangeRequest, LeaseGrantRequest, LeaseRevokeRequest,
    PutRequest, RequestOp, TxnRequest,
};
use timon_proto::timonpb::internal_raft_request::Request;
use timon_proto::timonpb::InternalRaftRequest;

use super::*;
use crate::mvcc::MvccStore;
use crate::storage::mem::MemEngine;
use crate::storage::WriteBatch;

fn apply(s: &MvccStore, req: Request) -> Result<Response, EtcdError> {
    let mut t = s.write();
    let out = execute(&mut t, InternalRaftRequest { request: Some(req) });
    t.commit(WriteBatch::new()).unwrap();
    out
}

fn alarm(s: &MvccStore, action: AlarmAction, member_id: u64, alarm: AlarmType) -> Vec<AlarmMember> {
    let req = AlarmRequest {
        action: action as i32,
        member_id,
        alarm: alarm as i32,
    };
    match apply(s, Request::Alarm(req)).unwrap() {
        Response::Alarm(a) => a.alarms,
        other => panic!("unexpected {other:?}"),
    }
}

fn member(member_id: u64, alarm: AlarmType) -> AlarmMember {
    AlarmMember {
        member_id,
        alarm: alarm as i32,
    }
}

fn put(k: &str) -> Request {
    Request::Put(PutRequest {
        key: k.into(),
        value: b"v".to_vec(),
        ..Default::default()
    })
}

fn txn(success: Vec<RequestOp>) -> Request {
    Request::Txn(TxnRequest {
        success,
        ..Default::default()
    })
}

#[test]
fn activate_list_and_deactivate_as_etcds_alarm_store() {
    let s = MvccStore::open(Arc::new(MemEngine::new())).unwrap();
    use AlarmAction::*;
    use AlarmType::*;
    assert!(alarm(&s, Get, 0, None).is_empty());
    assert_eq!(alarm(&s, Activate, 7, Nospace), vec![member(7, Nospace)]);
    // Raising it again answers the alarm already there.
    assert_eq!(alarm(&s, Activate, 7, Nospace), vec![member(7, Nospace)]);
    assert_eq!(alarm(&s, Activate, 9, Nospace), vec![member(9, Nospace)]);
    assert_eq!(alarm(&s, Activate, 0, Corrupt), vec![member(0, Corrupt)]);
    assert_eq!(
        alarm(&s, Get, 0, None),
        vec![member(0, Corrupt), member(7, Nospace), member(9, Nospace)]
    );
    assert_eq!(alarm(&s, Get, 0, Nospace), vec![member(7, Nospace), member(9, Nospace)]);
    // Disarming one that is not raised answers nothing.
    assert!(alarm(&s, Deactivate, 8, Nospace).is_empty());
    assert_eq!(alarm(&s, Deactivate, 7, Nospace), vec![member(7, Nospace)]);
    assert_eq!(alarm(&s, Get, 0, None), vec![member(0, Corrupt), member(9, Nospace)]);
    // Alarms change no revision.
    assert_eq!(s.current_revision(), 1);
}

#[test]
fn nospace_refuses_what_grows_the_store_and_nothing_else() {
    let s = MvccStore::open(Arc::new(MemEngine::new())).unwrap();
    apply(&s, put("a")).unwrap();
    apply(&s, Request::LeaseGrant(LeaseGrantRequest { id: 5, ttl: 60 })).unwrap();
    alarm(&s, AlarmAction::Activate, 3, AlarmType::Nospace);
    assert_eq!(apply(&s, put("b")), Err(EtcdError::NoSpace));
    let put_op = RequestOp {
        request: Some(Op::RequestPut(PutRequest {
            key: b"c".to_vec(),
            ..Default::default()
        })),
    };
    assert_eq!(apply(&s, txn(vec![put_op])), Err(EtcdError::NoSpace));
    assert_eq!(
        apply(&s, Request::LeaseGrant(LeaseGrantRequest { id: 6, ttl: 60 })),
        Err(EtcdError::NoSpace)
    );
    // Making room goes on: deletes, txns without puts, compaction, revoke.
    let del = RequestOp {
        request: Some(Op::RequestDeleteRange(DeleteRangeRequest {
            key: b"a".to_vec(),
            ..Default::default()
        })),
    };
    apply(&s, txn(vec![del])).unwrap();
    apply(
        &s,
        Request::Compaction(CompactionRequest {
            revision: 3,
            physical: true,
        }),
    )
    .unwrap();
    apply(&s, Request::LeaseRevoke(LeaseRevokeRequest { id: 5 })).unwrap();
    // Disarmed: writes again.
    alarm(&s, AlarmAction::Deactivate, 3, AlarmType::Nospace);
    apply(&s, put("b")).unwrap();
}

#[test]
fn corrupt_refuses_every_write_before_nospace_does() {
    let s = MvccStore::open(Arc::new(MemEngine::new())).unwrap();
    apply(&s, put("a")).unwrap();
    alarm(&s, AlarmAction::Activate, 3, AlarmType::Nospace);
    alarm(&s, AlarmAction::Activate, 0, AlarmType::Corrupt);
    assert_eq!(apply(&s, put("b")), Err(EtcdError::Corrupt));
    let delete = Request::DeleteRange(DeleteRangeRequest {
        key: b"a".to_vec(),
        ..Default::default()
    });
    assert_eq!(apply(&s, delete.clone()), Err(EtcdError::Corrupt));
    assert_eq!(
        apply(
            &s,
            Request::Compaction(CompactionRequest {
                revision: 1,
                physical: false
            })
        ),
        Err(EtcdError::Corrupt)
    );
    assert_eq!(
        apply(&s, Request::LeaseRevoke(LeaseRevokeRequest { id: 1 })),
        Err(EtcdError::Corrupt)
    );
    alarm(&s, AlarmAction::Deactivate, 0, AlarmType::Corrupt);
    assert_eq!(apply(&s, put("b")), Err(EtcdError::NoSpace));
    apply(&s, delete).unwrap();
}
