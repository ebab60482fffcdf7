//! The auth store and the auth applier over the in-memory engine; expected
//! answers are etcd 3.4's (`auth/store_test.go`, `apply_auth.go`).

use std::sync::Arc;

use timon_proto::authpb::permission::Type as PermType;
use timon_proto::authpb::{Permission, UserAddOptions};
use timon_proto::etcdserverpb::request_op::Request as Op;
use timon_proto::etcdserverpb::*;
use timon_proto::timonpb::internal_raft_request::Request;
use timon_proto::timonpb::{AsUser, InternalAuthenticateRequest, InternalRaftRequest};

use super::auth::AuthResponse;
use super::*;
use crate::auth::{password, state, AuthError};
use crate::mvcc::MvccStore;
use crate::storage::mem::MemEngine;
use crate::storage::WriteBatch;

fn store() -> MvccStore {
    MvccStore::open(Arc::new(MemEngine::new())).unwrap()
}

fn run(s: &MvccStore, req: InternalRaftRequest) -> Result<Response, EtcdError> {
    let mut t = s.write();
    let out = execute(&mut t, req);
    t.commit(WriteBatch::new()).unwrap();
    out
}

/// `req` as nobody.
fn anon(s: &MvccStore, req: Request) -> Result<Response, EtcdError> {
    run(s, InternalRaftRequest { request: Some(req) })
}

/// `req` as `user`, with a token checked at the current auth revision.
fn as_user(s: &MvccStore, user: &str, req: Request) -> Result<Response, EtcdError> {
    let revision = state::revision(s.engine().as_ref()).unwrap();
    as_user_at(s, user, revision, req)
}

fn as_user_at(s: &MvccStore, user: &str, revision: u64, req: Request) -> Result<Response, EtcdError> {
    run(
        s,
        InternalRaftRequest {
            request: Some(Request::AsUser(Box::new(AsUser {
                username: user.into(),
                auth_revision: revision,
                request: Some(Box::new(InternalRaftRequest { request: Some(req) })),
            }))),
        },
    )
}

fn auth_err(e: AuthError) -> Result<Response, EtcdError> {
    Err(EtcdError::Auth(e))
}

fn user_add(name: &str, pw: &str) -> Request {
    Request::AuthUserAdd(AuthUserAddRequest {
        name: name.into(),
        hashed_password: password::hash(pw, 4).unwrap(),
        ..Default::default()
    })
}

fn grant_role(user: &str, role: &str) -> Request {
    Request::AuthUserGrantRole(AuthUserGrantRoleRequest {
        user: user.into(),
        role: role.into(),
    })
}

fn role_add(name: &str) -> Request {
    Request::AuthRoleAdd(AuthRoleAddRequest { name: name.into() })
}

fn grant_perm(role: &str, key: &[u8], end: &[u8], t: PermType) -> Request {
    Request::AuthRoleGrantPermission(AuthRoleGrantPermissionRequest {
        name: role.into(),
        perm: Some(Permission {
            perm_type: t as i32,
            key: key.to_vec(),
            range_end: end.to_vec(),
        }),
    })
}

fn put(key: &str) -> Request {
    Request::Put(PutRequest {
        key: key.into(),
        value: b"v".to_vec(),
        ..Default::default()
    })
}

fn range(key: &[u8], end: &[u8]) -> RangeRequest {
    RangeRequest {
        key: key.to_vec(),
        range_end: end.to_vec(),
        ..Default::default()
    }
}

fn revision(s: &MvccStore) -> u64 {
    state::revision(s.engine().as_ref()).unwrap()
}

/// root (with the root role) and auth enabled.
fn enabled_store() -> MvccStore {
    let s = store();
    anon(&s, user_add("root", "rootpw")).unwrap();
    anon(&s, grant_role("root", "root")).unwrap();
    anon(&s, Request::AuthEnable(AuthEnableRequest {})).unwrap();
    s
}

#[test]
fn enable_needs_root_with_the_root_role() {
    let s = store();
    assert_eq!(
        anon(&s, Request::AuthEnable(AuthEnableRequest {})),
        auth_err(AuthError::RootUserNotExist)
    );
    anon(&s, user_add("root", "pw")).unwrap();
    assert_eq!(
        anon(&s, Request::AuthEnable(AuthEnableRequest {})),
        auth_err(AuthError::RootRoleNotExist)
    );
    // The root role need not exist as a role to be granted.
    anon(&s, grant_role("root", "root")).unwrap();
    anon(&s, Request::AuthEnable(AuthEnableRequest {})).unwrap();
    assert!(state::enabled(s.engine().as_ref()).unwrap());
}

#[test]
fn every_change_raises_the_auth_revision_and_failures_change_nothing() {
    let s = store();
    assert_eq!(revision(&s), 1);
    anon(&s, user_add("alice", "pw")).unwrap();
    assert_eq!(revision(&s), 2);
    assert_eq!(anon(&s, user_add("alice", "pw")), auth_err(AuthError::UserAlreadyExist));
    assert_eq!(revision(&s), 2);
    anon(&s, role_add("r")).unwrap();
    anon(&s, grant_role("alice", "r")).unwrap();
    assert_eq!(revision(&s), 4);
    // Granting it again changes nothing.
    anon(&s, grant_role("alice", "r")).unwrap();
    assert_eq!(revision(&s), 4);
    assert_eq!(anon(&s, grant_role("alice", "nope")), auth_err(AuthError::RoleNotFound));
    assert_eq!(anon(&s, grant_role("bob", "r")), auth_err(AuthError::UserNotFound));
    assert_eq!(anon(&s, role_add("r")), auth_err(AuthError::RoleAlreadyExist));
    assert_eq!(anon(&s, role_add("")), auth_err(AuthError::RoleEmpty));
    assert_eq!(anon(&s, user_add("", "pw")), auth_err(AuthError::UserEmpty));
    assert_eq!(revision(&s), 4);
}

#[test]
fn lists_are_sorted_and_roles_sorted_per_user() {
    let s = store();
    for u in ["carol", "alice", "bob"] {
        anon(&s, user_add(u, "pw")).unwrap();
    }
    for r in ["zz", "aa", "mm"] {
        anon(&s, role_add(r)).unwrap();
        anon(&s, grant_role("bob", r)).unwrap();
    }
    match anon(&s, Request::AuthUserList(AuthUserListRequest {})).unwrap() {
        Response::Auth(AuthResponse::UserList(l)) => assert_eq!(l.users, ["alice", "bob", "carol"]),
        other => panic!("{other:?}"),
    }
    match anon(&s, Request::AuthRoleList(AuthRoleListRequest {})).unwrap() {
        Response::Auth(AuthResponse::RoleList(l)) => assert_eq!(l.roles, ["aa", "mm", "zz"]),
        other => panic!("{other:?}"),
    }
    match anon(&s, Request::AuthUserGet(AuthUserGetRequest { name: "bob".into() })).unwrap() {
        Response::Auth(AuthResponse::UserGet(g)) => assert_eq!(g.roles, ["aa", "mm", "zz"]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn permissions_sort_by_key_and_a_same_range_grant_updates() {
    let s = store();
    anon(&s, role_add("r")).unwrap();
    anon(&s, grant_perm("r", b"m", b"", PermType::Read)).unwrap();
    anon(&s, grant_perm("r", b"a", b"b", PermType::Write)).unwrap();
    anon(&s, grant_perm("r", b"m", b"", PermType::Readwrite)).unwrap();
    match anon(&s, Request::AuthRoleGet(AuthRoleGetRequest { role: "r".into() })).unwrap() {
        Response::Auth(AuthResponse::RoleGet(g)) => {
            let got: Vec<_> = g.perm.iter().map(|p| (p.key.clone(), p.perm_type)).collect();
            assert_eq!(got, [(b"a".to_vec(), 1), (b"m".to_vec(), 2)]);
        }
        other => panic!("{other:?}"),
    }
    let revoke = |key: &[u8], end: &[u8]| {
        Request::AuthRoleRevokePermission(AuthRoleRevokePermissionRequest {
            role: "r".into(),
            key: key.to_vec(),
            range_end: end.to_vec(),
        })
    };
    assert_eq!(anon(&s, revoke(b"a", b"")), auth_err(AuthError::PermissionNotGranted));
    anon(&s, revoke(b"a", b"b")).unwrap();
}

#[test]
fn root_stays_while_enabled() {
    let s = enabled_store();
    let del = Request::AuthUserDelete(AuthUserDeleteRequest { name: "root".into() });
    assert_eq!(as_user(&s, "root", del.clone()), auth_err(AuthError::InvalidAuthMgmt));
    let revoke = Request::AuthUserRevokeRole(AuthUserRevokeRoleRequest {
        name: "root".into(),
        role: "root".into(),
    });
    assert_eq!(
        as_user(&s, "root", revoke.clone()),
        auth_err(AuthError::InvalidAuthMgmt)
    );
    let del_role = Request::AuthRoleDelete(AuthRoleDeleteRequest { role: "root".into() });
    assert_eq!(as_user(&s, "root", del_role), auth_err(AuthError::InvalidAuthMgmt));
    as_user(&s, "root", Request::AuthDisable(AuthDisableRequest {})).unwrap();
    anon(&s, revoke).unwrap();
    anon(&s, del).unwrap();
}

#[test]
fn administration_needs_root_but_users_read_themselves() {
    let s = enabled_store();
    as_user(&s, "root", user_add("alice", "pw")).unwrap();
    as_user(&s, "root", role_add("r")).unwrap();
    as_user(&s, "root", grant_role("alice", "r")).unwrap();
    as_user(&s, "root", role_add("other")).unwrap();
    assert_eq!(anon(&s, role_add("x")), auth_err(AuthError::UserEmpty));
    assert_eq!(
        as_user(&s, "alice", role_add("x")),
        auth_err(AuthError::PermissionDenied)
    );
    assert_eq!(as_user(&s, "ghost", role_add("x")), auth_err(AuthError::UserNotFound));
    let get_alice = Request::AuthUserGet(AuthUserGetRequest { name: "alice".into() });
    as_user(&s, "alice", get_alice).unwrap();
    let get_root = Request::AuthUserGet(AuthUserGetRequest { name: "root".into() });
    assert_eq!(as_user(&s, "alice", get_root), auth_err(AuthError::PermissionDenied));
    as_user(
        &s,
        "alice",
        Request::AuthRoleGet(AuthRoleGetRequest { role: "r".into() }),
    )
    .unwrap();
    assert_eq!(
        as_user(
            &s,
            "alice",
            Request::AuthRoleGet(AuthRoleGetRequest { role: "other".into() })
        ),
        auth_err(AuthError::PermissionDenied)
    );
    assert_eq!(
        as_user(&s, "alice", Request::AuthUserList(AuthUserListRequest {})),
        auth_err(AuthError::PermissionDenied)
    );
    // AuthStatus is for root too (etcd 3.5).
    assert_eq!(
        as_user(&s, "alice", Request::AuthStatus(AuthStatusRequest {})),
        auth_err(AuthError::PermissionDenied)
    );
    match as_user(&s, "root", Request::AuthStatus(AuthStatusRequest {})).unwrap() {
        Response::Auth(AuthResponse::Status(st)) => assert!(st.enabled && st.auth_revision == revision(&s)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn kv_requests_are_checked_against_the_users_permissions() {
    let s = enabled_store();
    as_user(&s, "root", user_add("alice", "pw")).unwrap();
    as_user(&s, "root", role_add("r")).unwrap();
    as_user(&s, "root", grant_role("alice", "r")).unwrap();
    as_user(&s, "root", grant_perm("r", b"foo", b"fop", PermType::Write)).unwrap();
    let rev = s.current_revision();
    assert_eq!(anon(&s, put("foo1")), auth_err(AuthError::UserEmpty));
    as_user(&s, "alice", put("foo1")).unwrap();
    assert_eq!(as_user(&s, "alice", put("bar")), auth_err(AuthError::PermissionDenied));
    // prev_kv needs read too.
    let with_prev = Request::Put(PutRequest {
        key: b"foo1".to_vec(),
        prev_kv: true,
        ..Default::default()
    });
    assert_eq!(as_user(&s, "alice", with_prev), auth_err(AuthError::PermissionDenied));
    // A txn is checked on its compares and every op, nested ones too.
    let nested = TxnRequest {
        success: vec![RequestOp {
            request: Some(Op::RequestRange(range(b"foo1", b""))),
        }],
        ..Default::default()
    };
    let txn = Request::Txn(TxnRequest {
        success: vec![
            RequestOp {
                request: Some(Op::RequestPut(PutRequest {
                    key: b"foo2".to_vec(),
                    ..Default::default()
                })),
            },
            RequestOp {
                request: Some(Op::RequestTxn(nested)),
            },
        ],
        ..Default::default()
    });
    assert_eq!(as_user(&s, "alice", txn), auth_err(AuthError::PermissionDenied));
    // Only the one permitted put changed anything.
    assert_eq!(s.current_revision(), rev + 1);
    // A token older than the store is refused.
    let old = revision(&s);
    as_user(&s, "root", role_add("bump")).unwrap();
    assert_eq!(
        as_user_at(&s, "alice", old, put("foo3")),
        auth_err(AuthError::AuthOldRevision)
    );
}

#[test]
fn lease_revoke_needs_write_on_every_attached_key() {
    let s = enabled_store();
    as_user(&s, "root", user_add("alice", "pw")).unwrap();
    as_user(&s, "root", role_add("r")).unwrap();
    as_user(&s, "root", grant_role("alice", "r")).unwrap();
    as_user(&s, "root", grant_perm("r", b"a", b"", PermType::Readwrite)).unwrap();
    as_user(&s, "root", Request::LeaseGrant(LeaseGrantRequest { id: 7, ttl: 60 })).unwrap();
    let attach = |k: &str| {
        Request::Put(PutRequest {
            key: k.into(),
            lease: 7,
            ..Default::default()
        })
    };
    as_user(&s, "alice", attach("a")).unwrap();
    as_user(&s, "root", attach("b")).unwrap();
    // Alice may not attach a lease that holds a key she cannot write.
    assert_eq!(as_user(&s, "alice", attach("a")), auth_err(AuthError::PermissionDenied));
    let revoke = Request::LeaseRevoke(LeaseRevokeRequest { id: 7 });
    assert_eq!(
        as_user(&s, "alice", revoke.clone()),
        auth_err(AuthError::PermissionDenied)
    );
    as_user(&s, "root", revoke).unwrap();
}

#[test]
fn authenticate_needs_auth_on_and_a_password_user() {
    let s = store();
    let authn = |name: &str| {
        Request::Authenticate(InternalAuthenticateRequest {
            name: name.into(),
            simple_token: "abc".into(),
        })
    };
    assert_eq!(anon(&s, authn("root")), auth_err(AuthError::AuthNotEnabled));
    let s = enabled_store();
    as_user(
        &s,
        "root",
        Request::AuthUserAdd(AuthUserAddRequest {
            name: "np".into(),
            options: Some(UserAddOptions { no_password: true }),
            ..Default::default()
        }),
    )
    .unwrap();
    match anon(&s, authn("root")).unwrap() {
        Response::Auth(AuthResponse::Authenticate { name, revision, .. }) => {
            assert_eq!(name, "root");
            assert_eq!(revision, self::revision(&s));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(anon(&s, authn("np")), auth_err(AuthError::AuthFailed));
    assert_eq!(anon(&s, authn("ghost")), auth_err(AuthError::AuthFailed));
}

#[test]
fn deleting_a_role_takes_it_from_its_users() {
    let s = store();
    anon(&s, user_add("alice", "pw")).unwrap();
    anon(&s, role_add("r")).unwrap();
    anon(&s, grant_role("alice", "r")).unwrap();
    anon(&s, Request::AuthRoleDelete(AuthRoleDeleteRequest { role: "r".into() })).unwrap();
    let alice = state::user(s.engine().as_ref(), "alice").unwrap().unwrap();
    assert!(alice.roles.is_empty());
    assert_eq!(
        anon(&s, Request::AuthRoleDelete(AuthRoleDeleteRequest { role: "r".into() })),
        auth_err(AuthError::RoleNotFound)
    );
}
