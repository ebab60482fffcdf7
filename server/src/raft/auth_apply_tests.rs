//! Auth through the state machine: the auth store travels in snapshots, and
//! every member registers a simple token `<prefix>.<log index>` when it
//! applies the Authenticate entry (and forgets it when the user goes).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use openraft::storage::RaftStateMachine;
use openraft::testing::{log_id, membership_ent};
use openraft::{EntryPayload, RaftSnapshotBuilder};
use timon_proto::etcdserverpb::{
    AuthEnableRequest, AuthRoleAddRequest, AuthUserAddRequest, AuthUserDeleteRequest, AuthUserGrantRoleRequest,
};
use timon_proto::timonpb::internal_raft_request::Request;
use timon_proto::timonpb::{InternalAuthenticateRequest, InternalRaftRequest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::state_machine::StateMachine;
use super::types::{Entry, TypeConfig};
use crate::apply::auth::AuthResponse;
use crate::apply::Response;
use crate::auth::simple_token::SimpleTokens;
use crate::auth::{password, state, Tokens};
use crate::storage::mem::MemEngine;

fn entry(index: u64, req: Request) -> Entry {
    Entry {
        log_id: log_id(1, 1, index),
        payload: EntryPayload::Normal(InternalRaftRequest { request: Some(req) }),
    }
}

/// Membership, root with the root role, a role, auth enabled: entries 1-5.
fn setup() -> Vec<Entry> {
    vec![
        membership_ent::<TypeConfig>(1, 1, 1, vec![BTreeSet::from([1])]),
        entry(
            2,
            Request::AuthUserAdd(AuthUserAddRequest {
                name: "root".into(),
                hashed_password: password::hash("pw", 4).unwrap(),
                ..Default::default()
            }),
        ),
        entry(
            3,
            Request::AuthUserGrantRole(AuthUserGrantRoleRequest {
                user: "root".into(),
                role: "root".into(),
            }),
        ),
        entry(4, Request::AuthRoleAdd(AuthRoleAddRequest { name: "r".into() })),
        entry(5, Request::AuthEnable(AuthEnableRequest {})),
    ]
}

#[tokio::test]
async fn the_auth_store_travels_in_snapshots() {
    let leader_dir = tempfile::tempdir().unwrap();
    let mut leader = StateMachine::open(Arc::new(MemEngine::new()), leader_dir.path()).unwrap();
    leader.apply(setup()).await.unwrap();
    let snap = leader.get_snapshot_builder().await.build_snapshot().await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let mut follower = StateMachine::open(Arc::new(MemEngine::new()), dir.path()).unwrap();
    let mut data = Vec::new();
    let mut source = snap.snapshot;
    source.read_to_end(&mut data).await.unwrap();
    let mut received = follower.begin_receiving_snapshot().await.unwrap();
    received.write_all(&data).await.unwrap();
    received.shutdown().await.unwrap();
    follower.install_snapshot(&snap.meta, received).await.unwrap();

    let view = follower.store().current();
    let engine = view.engine().as_ref();
    assert!(state::enabled(engine).unwrap());
    assert_eq!(state::revision(engine).unwrap(), 4);
    let root = state::user(engine, "root").unwrap().unwrap();
    assert_eq!(root.roles, ["root"]);
    assert!(password::verify("pw", &root.password));
    assert!(state::role(engine, "r").unwrap().is_some());
}

fn as_root(index: u64, req: Request) -> Entry {
    Entry {
        log_id: log_id(1, 1, index),
        payload: EntryPayload::Normal(crate::auth::as_root(InternalRaftRequest { request: Some(req) })),
    }
}

fn authenticate(index: u64, name: &str, prefix: &str) -> Entry {
    entry(
        index,
        Request::Authenticate(InternalAuthenticateRequest {
            name: name.into(),
            simple_token: prefix.into(),
        }),
    )
}

#[tokio::test]
async fn every_member_registers_the_simple_token_of_an_applied_authenticate() {
    let dir = tempfile::tempdir().unwrap();
    let mut sm = StateMachine::open(Arc::new(MemEngine::new()), dir.path()).unwrap();
    let tokens = Arc::new(Tokens::Simple(SimpleTokens::new(Duration::from_secs(300))));
    sm.set_auth_tokens(tokens.clone());
    sm.apply(setup()).await.unwrap();
    let alice = AuthUserAddRequest {
        name: "alice".into(),
        hashed_password: password::hash("pw", 4).unwrap(),
        ..Default::default()
    };
    let out = sm
        .apply([
            as_root(6, Request::AuthUserAdd(alice)),
            authenticate(7, "root", "rootrootrootroot"),
            authenticate(8, "alice", "alicealicealicea"),
        ])
        .await
        .unwrap();
    match &out[1].0 {
        Ok(Response::Auth(AuthResponse::Authenticate { resp, .. })) => assert_eq!(resp.token, "rootrootrootroot.7"),
        other => panic!("{other:?}"),
    }
    assert_eq!(tokens.info("alicealicealicea.8", 5).unwrap().username, "alice");
    // A deleted user's tokens end; others stay.
    sm.apply([as_root(
        9,
        Request::AuthUserDelete(AuthUserDeleteRequest { name: "alice".into() }),
    )])
    .await
    .unwrap();
    assert!(tokens.info("alicealicealicea.8", 6).is_err());
    assert_eq!(tokens.info("rootrootrootroot.7", 6).unwrap().username, "root");
    // Auth turned off: every token ends.
    sm.apply([as_root(10, Request::AuthDisable(Default::default()))])
        .await
        .unwrap();
    assert!(tokens.info("rootrootrootroot.7", 7).is_err());
}
