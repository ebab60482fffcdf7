//! `Batch` entries in the state machine: each request gets its own
//! revision and response, as if proposed alone, and a restart in the middle
//! of a batch resumes after the requests already applied (never twice).

use std::collections::BTreeSet;
use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::testing::{log_id, membership_ent};
use openraft::EntryPayload;
use timon_proto::etcdserverpb::{PutRequest, RangeRequest};
use timon_proto::timonpb::internal_raft_request::Request;
use timon_proto::timonpb::{Batch, InternalRaftRequest};

use super::state_machine::StateMachine;
use super::types::{Applied, Entry, TypeConfig};
use crate::apply::range::range;
use crate::apply::Response;
use crate::storage::keys::meta;
use crate::storage::mem::MemEngine;
use crate::storage::{Cf, SharedEngine, WriteBatch};

fn put(key: &str, value: &str) -> InternalRaftRequest {
    InternalRaftRequest {
        request: Some(Request::Put(PutRequest {
            key: key.into(),
            value: value.into(),
            ..Default::default()
        })),
    }
}

fn batch(index: u64, requests: Vec<InternalRaftRequest>) -> Entry {
    Entry {
        log_id: log_id(1, 1, index),
        payload: EntryPayload::Normal(InternalRaftRequest {
            request: Some(Request::Batch(Batch { requests })),
        }),
    }
}

fn members() -> Entry {
    membership_ent::<TypeConfig>(1, 1, 1, vec![BTreeSet::from([1])])
}

/// Every key's (value, mod revision) and the store's revision.
fn state(sm: &StateMachine) -> (Vec<(String, String, i64)>, i64) {
    let store = sm.store().current();
    let r = range(
        &store.read(),
        &RangeRequest {
            key: vec![0],
            range_end: vec![0],
            ..Default::default()
        },
    )
    .unwrap();
    let kvs = r
        .kvs
        .into_iter()
        .map(|kv| {
            (
                String::from_utf8(kv.key).unwrap(),
                String::from_utf8(kv.value).unwrap(),
                kv.mod_revision,
            )
        })
        .collect();
    (kvs, r.header.unwrap().revision)
}

fn put_revisions(applied: &Applied) -> Vec<i64> {
    let Ok(Response::Batch(results)) = &applied.0 else {
        panic!("a batch is answered with a batch: {applied:?}");
    };
    results
        .iter()
        .map(|r| match r {
            Ok(Response::Put(p)) => p.header.as_ref().unwrap().revision,
            other => panic!("{other:?}"),
        })
        .collect()
}

#[tokio::test]
async fn each_request_of_a_batch_gets_its_own_revision_and_answer() {
    let dir = tempfile::tempdir().unwrap();
    let mut sm = StateMachine::open(Arc::new(MemEngine::new()), dir.path()).unwrap();
    sm.apply([members()]).await.unwrap();
    let out = sm
        .apply([batch(2, vec![put("a", "1"), put("b", "2"), put("a", "3")])])
        .await
        .unwrap();
    assert_eq!(put_revisions(&out[0]), vec![2, 3, 4]);
    let (kvs, rev) = state(&sm);
    assert_eq!(rev, 4);
    assert_eq!(kvs, vec![("a".into(), "3".into(), 4), ("b".into(), "2".into(), 3)]);
    let (applied, _) = sm.applied_state().await.unwrap();
    assert_eq!(applied, Some(log_id(1, 1, 2)));
}

#[tokio::test]
async fn a_batch_cut_by_a_crash_resumes_after_what_was_applied() {
    let dir = tempfile::tempdir().unwrap();
    let engine: SharedEngine = Arc::new(MemEngine::new());
    let mut sm = StateMachine::open(engine.clone(), dir.path()).unwrap();
    sm.apply([members()]).await.unwrap();
    // The crash: the first request of entry 2 was written (with the marker
    // saying one is done), the rest never were.
    sm.apply([batch(2, vec![put("a", "1")])]).await.unwrap();
    let mut marker = WriteBatch::new();
    marker.put(
        Cf::Meta,
        meta::APPLIED.to_vec(),
        serde_json::to_vec(&log_id(1, 1, 1)).unwrap(),
    );
    marker.put(
        Cf::Meta,
        meta::APPLIED_PART.to_vec(),
        serde_json::to_vec(&(log_id(1, 1, 2), 1usize)).unwrap(),
    );
    engine.write(marker, true).unwrap();
    let (applied, _) = sm.applied_state().await.unwrap();
    assert_eq!(applied, Some(log_id(1, 1, 1)), "entry 2 is not applied yet");

    // openraft re-applies entry 2 in full after the restart.
    let mut sm = StateMachine::open(engine, dir.path()).unwrap();
    let out = sm
        .apply([batch(2, vec![put("a", "1"), put("b", "2"), put("c", "3")])])
        .await
        .unwrap();
    let Ok(Response::Batch(results)) = &out[0].0 else {
        panic!("{out:?}");
    };
    assert_eq!(results[0], Ok(Response::Empty), "applied before the crash");
    let (kvs, rev) = state(&sm);
    assert_eq!(rev, 4, "a put applied twice would make it 5");
    assert_eq!(
        kvs,
        vec![
            ("a".into(), "1".into(), 2),
            ("b".into(), "2".into(), 3),
            ("c".into(), "3".into(), 4)
        ]
    );
    let (applied, _) = sm.applied_state().await.unwrap();
    assert_eq!(applied, Some(log_id(1, 1, 2)));
}
