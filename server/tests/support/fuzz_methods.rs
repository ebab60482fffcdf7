//! The methods the fuzzers call: every client RPC and every peer RPC, with
//! valid seed requests to mutate, whether each may write, and which decoded
//! inputs must not be sent (see `tests/fuzz_rpc.rs` for why).

use prost::Message;
use timon_proto::authpb::{permission::Type as PermType, Permission, UserAddOptions};
use timon_proto::etcdserverpb::*;
use timon_proto::timonpb::{
    internal_raft_request, Batch, ClusterInfoRequest, InternalRaftRequest, RaftMessage, ReadIndexRequest,
};
use timon_proto::v3electionpb::{CampaignRequest, LeaderKey, LeaderRequest, ProclaimRequest, ResignRequest};
use timon_proto::v3lockpb::{LockRequest, UnlockRequest};

/// What a method may do.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// Never writes.
    Read,
    /// May write.
    Write,
}

/// One fuzzed method.
pub struct Method {
    pub path: &'static str,
    pub kind: Kind,
    /// Streams or may block by design: an open call at the timeout is fine.
    pub may_stay_open: bool,
    pub seeds: Vec<Vec<u8>>,
    /// Whether a decoded input must not be sent (see the module doc).
    pub skip: fn(&[u8], &Guard) -> bool,
    /// Sent to the peer port.
    pub peer: bool,
}

pub fn never(_: &[u8], _: &Guard) -> bool {
    false
}

/// The guard keys: a prefix no seed contains.
pub struct Guard {
    pub prefix: Vec<u8>,
    pub member_ids: Vec<u64>,
}

impl Guard {
    pub fn end(&self) -> Vec<u8> {
        let mut e = self.prefix.clone();
        *e.last_mut().unwrap() += 1;
        e
    }

    /// Whether DeleteRange `[key, range_end)` (etcd's conventions) meets
    /// the guard prefix.
    fn range_meets(&self, key: &[u8], range_end: &[u8]) -> bool {
        let end = self.end();
        match range_end {
            [] => key.starts_with(&self.prefix),
            [0] => key < end.as_slice(),
            re => key < end.as_slice() && re > self.prefix.as_slice(),
        }
    }

    fn txn_meets(&self, t: &TxnRequest, depth: usize) -> bool {
        depth > 200
            || t.success.iter().chain(&t.failure).any(|op| match &op.request {
                Some(request_op::Request::RequestDeleteRange(d)) => self.range_meets(&d.key, &d.range_end),
                Some(request_op::Request::RequestTxn(t)) => self.txn_meets(t, depth + 1),
                _ => false,
            })
    }
}

fn skip_delete(m: &[u8], g: &Guard) -> bool {
    DeleteRangeRequest::decode(m).is_ok_and(|d| g.range_meets(&d.key, &d.range_end))
}
fn skip_txn(m: &[u8], g: &Guard) -> bool {
    TxnRequest::decode(m).is_ok_and(|t| g.txn_meets(&t, 0))
}
fn skip_decodable<T: Message + Default>(m: &[u8]) -> bool {
    T::decode(m).is_ok()
}
fn skip_member_add(m: &[u8], _: &Guard) -> bool {
    skip_decodable::<MemberAddRequest>(m)
}
fn skip_member_remove(m: &[u8], g: &Guard) -> bool {
    MemberRemoveRequest::decode(m).is_ok_and(|r| g.member_ids.contains(&r.id))
}
fn skip_member_update(m: &[u8], g: &Guard) -> bool {
    MemberUpdateRequest::decode(m).is_ok_and(|r| g.member_ids.contains(&r.id))
}
fn skip_member_promote(m: &[u8], g: &Guard) -> bool {
    MemberPromoteRequest::decode(m).is_ok_and(|r| g.member_ids.contains(&r.id))
}
fn skip_move_leader(m: &[u8], g: &Guard) -> bool {
    MoveLeaderRequest::decode(m).is_ok_and(|r| g.member_ids.contains(&r.target_id))
}
fn skip_auth_enable(m: &[u8], _: &Guard) -> bool {
    skip_decodable::<AuthEnableRequest>(m)
}
fn skip_alarm(m: &[u8], _: &Guard) -> bool {
    AlarmRequest::decode(m).is_ok_and(|r| r.action == alarm_request::AlarmAction::Activate as i32)
}
fn skip_downgrade(m: &[u8], _: &Guard) -> bool {
    skip_decodable::<DowngradeRequest>(m)
}
/// Without the peer headers a Propose is admitted: any that decodes to a
/// request is a write by a trusted peer, not hostile input.
fn skip_propose(m: &[u8], _: &Guard) -> bool {
    InternalRaftRequest::decode(m).is_ok_and(|r| r.request.is_some())
}
/// The same for each request of a ProposeMany.
fn skip_propose_many(m: &[u8], _: &Guard) -> bool {
    Batch::decode(m).is_ok_and(|b| b.requests.iter().any(|r| r.request.is_some()))
}
fn skip_unlock(m: &[u8], g: &Guard) -> bool {
    UnlockRequest::decode(m).is_ok_and(|r| r.key.starts_with(&g.prefix))
}
fn skip_resign(m: &[u8], g: &Guard) -> bool {
    ResignRequest::decode(m).is_ok_and(|r| r.leader.is_some_and(|l| l.key.starts_with(&g.prefix)))
}
fn skip_proclaim(m: &[u8], g: &Guard) -> bool {
    ProclaimRequest::decode(m).is_ok_and(|r| r.leader.is_some_and(|l| l.key.starts_with(&g.prefix)))
}

fn enc<M: Message>(m: M) -> Vec<u8> {
    m.encode_to_vec()
}

fn m(path: &'static str, kind: Kind, seeds: Vec<Vec<u8>>) -> Method {
    Method {
        path,
        kind,
        may_stay_open: false,
        seeds,
        skip: never,
        peer: false,
    }
}

fn put_op(key: &str) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(PutRequest {
            key: key.into(),
            value: b"v".to_vec(),
            ..Default::default()
        })),
    }
}

pub fn client_methods() -> Vec<Method> {
    use Kind::*;
    let range = RangeRequest {
        key: b"fuzz/a".to_vec(),
        range_end: b"fuzz/z".to_vec(),
        limit: 10,
        ..Default::default()
    };
    let txn = TxnRequest {
        compare: vec![Compare {
            key: b"fuzz/c".to_vec(),
            target: compare::CompareTarget::Value as i32,
            target_union: Some(compare::TargetUnion::Value(b"x".to_vec())),
            ..Default::default()
        }],
        success: vec![
            put_op("fuzz/t"),
            RequestOp {
                request: Some(request_op::Request::RequestTxn(TxnRequest {
                    success: vec![put_op("fuzz/n")],
                    ..Default::default()
                })),
            },
        ],
        failure: vec![
            RequestOp {
                request: Some(request_op::Request::RequestRange(range.clone())),
            },
            RequestOp {
                request: Some(request_op::Request::RequestDeleteRange(DeleteRangeRequest {
                    key: b"fuzz/d".to_vec(),
                    ..Default::default()
                })),
            },
        ],
    };
    let watch = WatchRequest {
        request_union: Some(watch_request::RequestUnion::CreateRequest(WatchCreateRequest {
            key: b"fuzz/".to_vec(),
            range_end: b"fuzz0".to_vec(),
            start_revision: 1,
            progress_notify: true,
            prev_kv: true,
            ..Default::default()
        })),
    };
    let leader = LeaderKey {
        name: b"fuzz-election".to_vec(),
        key: b"fuzz-election/1".to_vec(),
        rev: 1,
        lease: 1,
    };
    let mut v = vec![
        m(
            "/etcdserverpb.KV/Range",
            Read,
            vec![
                enc(range.clone()),
                enc(RangeRequest {
                    key: vec![0],
                    range_end: vec![0],
                    count_only: true,
                    ..Default::default()
                }),
            ],
        ),
        m(
            "/etcdserverpb.KV/Put",
            Write,
            vec![enc(PutRequest {
                key: b"fuzz/k".to_vec(),
                value: b"v".to_vec(),
                prev_kv: true,
                ..Default::default()
            })],
        ),
        Method {
            skip: skip_delete,
            ..m(
                "/etcdserverpb.KV/DeleteRange",
                Write,
                vec![enc(DeleteRangeRequest {
                    key: b"fuzz/k".to_vec(),
                    range_end: b"fuzz/l".to_vec(),
                    ..Default::default()
                })],
            )
        },
        Method {
            skip: skip_txn,
            ..m("/etcdserverpb.KV/Txn", Write, vec![enc(txn)])
        },
        m(
            "/etcdserverpb.KV/Compact",
            Write,
            vec![enc(CompactionRequest {
                revision: 1,
                physical: false,
            })],
        ),
        Method {
            may_stay_open: true,
            ..m(
                "/etcdserverpb.Watch/Watch",
                Read,
                vec![
                    enc(watch),
                    enc(WatchRequest {
                        request_union: Some(watch_request::RequestUnion::CancelRequest(WatchCancelRequest {
                            watch_id: 1,
                        })),
                    }),
                    enc(WatchRequest {
                        request_union: Some(watch_request::RequestUnion::ProgressRequest(WatchProgressRequest {})),
                    }),
                ],
            )
        },
        m(
            "/etcdserverpb.Lease/LeaseGrant",
            Write,
            vec![enc(LeaseGrantRequest { ttl: 5, id: 0 })],
        ),
        m(
            "/etcdserverpb.Lease/LeaseRevoke",
            Write,
            vec![enc(LeaseRevokeRequest { id: 1 })],
        ),
        Method {
            may_stay_open: true,
            ..m(
                "/etcdserverpb.Lease/LeaseKeepAlive",
                Read,
                vec![enc(LeaseKeepAliveRequest { id: 1 })],
            )
        },
        m(
            "/etcdserverpb.Lease/LeaseTimeToLive",
            Read,
            vec![enc(LeaseTimeToLiveRequest { id: 1, keys: true })],
        ),
        m(
            "/etcdserverpb.Lease/LeaseLeases",
            Read,
            vec![enc(LeaseLeasesRequest {})],
        ),
        Method {
            skip: skip_member_add,
            ..m(
                "/etcdserverpb.Cluster/MemberAdd",
                Write,
                vec![enc(MemberAddRequest {
                    peer_ur_ls: vec!["http://127.0.0.1:1".into()],
                    is_learner: true,
                })],
            )
        },
        Method {
            skip: skip_member_remove,
            ..m(
                "/etcdserverpb.Cluster/MemberRemove",
                Write,
                vec![enc(MemberRemoveRequest { id: 0x1234 })],
            )
        },
        Method {
            skip: skip_member_update,
            ..m(
                "/etcdserverpb.Cluster/MemberUpdate",
                Write,
                vec![enc(MemberUpdateRequest {
                    id: 0x1234,
                    peer_ur_ls: vec!["http://127.0.0.1:2".into()],
                })],
            )
        },
        m(
            "/etcdserverpb.Cluster/MemberList",
            Read,
            vec![enc(MemberListRequest { linearizable: true })],
        ),
        Method {
            skip: skip_member_promote,
            ..m(
                "/etcdserverpb.Cluster/MemberPromote",
                Write,
                vec![enc(MemberPromoteRequest { id: 0x1234 })],
            )
        },
        Method {
            skip: skip_alarm,
            ..m(
                "/etcdserverpb.Maintenance/Alarm",
                Read,
                vec![enc(AlarmRequest::default())],
            )
        },
        m("/etcdserverpb.Maintenance/Status", Read, vec![enc(StatusRequest {})]),
        m(
            "/etcdserverpb.Maintenance/Defragment",
            Write,
            vec![enc(DefragmentRequest {})],
        ),
        m("/etcdserverpb.Maintenance/Hash", Read, vec![enc(HashRequest {})]),
        m(
            "/etcdserverpb.Maintenance/HashKV",
            Read,
            vec![enc(HashKvRequest { revision: 0 })],
        ),
        Method {
            may_stay_open: true,
            ..m(
                "/etcdserverpb.Maintenance/Snapshot",
                Read,
                vec![enc(SnapshotRequest {})],
            )
        },
        Method {
            skip: skip_move_leader,
            ..m(
                "/etcdserverpb.Maintenance/MoveLeader",
                Write,
                vec![enc(MoveLeaderRequest { target_id: 0x1234 })],
            )
        },
        Method {
            skip: skip_downgrade,
            ..m("/etcdserverpb.Maintenance/Downgrade", Write, vec![])
        },
        Method {
            skip: skip_auth_enable,
            ..m("/etcdserverpb.Auth/AuthEnable", Write, vec![])
        },
        m(
            "/etcdserverpb.Auth/AuthDisable",
            Write,
            vec![enc(AuthDisableRequest {})],
        ),
        m("/etcdserverpb.Auth/AuthStatus", Read, vec![enc(AuthStatusRequest {})]),
        m(
            "/etcdserverpb.Auth/Authenticate",
            Read,
            vec![enc(AuthenticateRequest {
                name: "fuzz-user".into(),
                password: "pw".into(),
            })],
        ),
        m(
            "/etcdserverpb.Auth/UserAdd",
            Write,
            vec![
                enc(AuthUserAddRequest {
                    name: "fuzz-user".into(),
                    password: "pw".into(),
                    ..Default::default()
                }),
                enc(AuthUserAddRequest {
                    name: "fuzz-np".into(),
                    options: Some(UserAddOptions { no_password: true }),
                    ..Default::default()
                }),
            ],
        ),
        m(
            "/etcdserverpb.Auth/UserGet",
            Read,
            vec![enc(AuthUserGetRequest {
                name: "fuzz-user".into(),
            })],
        ),
        m("/etcdserverpb.Auth/UserList", Read, vec![enc(AuthUserListRequest {})]),
        m(
            "/etcdserverpb.Auth/UserDelete",
            Write,
            vec![enc(AuthUserDeleteRequest {
                name: "fuzz-user".into(),
            })],
        ),
        m(
            "/etcdserverpb.Auth/UserChangePassword",
            Write,
            vec![enc(AuthUserChangePasswordRequest {
                name: "fuzz-user".into(),
                password: "pw2".into(),
                ..Default::default()
            })],
        ),
        m(
            "/etcdserverpb.Auth/UserGrantRole",
            Write,
            vec![enc(AuthUserGrantRoleRequest {
                user: "fuzz-user".into(),
                role: "fuzz-role".into(),
            })],
        ),
        m(
            "/etcdserverpb.Auth/UserRevokeRole",
            Write,
            vec![enc(AuthUserRevokeRoleRequest {
                name: "fuzz-user".into(),
                role: "fuzz-role".into(),
            })],
        ),
        m(
            "/etcdserverpb.Auth/RoleAdd",
            Write,
            vec![enc(AuthRoleAddRequest {
                name: "fuzz-role".into(),
            })],
        ),
        m(
            "/etcdserverpb.Auth/RoleGet",
            Read,
            vec![enc(AuthRoleGetRequest {
                role: "fuzz-role".into(),
            })],
        ),
        m("/etcdserverpb.Auth/RoleList", Read, vec![enc(AuthRoleListRequest {})]),
        m(
            "/etcdserverpb.Auth/RoleDelete",
            Write,
            vec![enc(AuthRoleDeleteRequest {
                role: "fuzz-role".into(),
            })],
        ),
        m(
            "/etcdserverpb.Auth/RoleGrantPermission",
            Write,
            vec![enc(AuthRoleGrantPermissionRequest {
                name: "fuzz-role".into(),
                perm: Some(Permission {
                    perm_type: PermType::Readwrite as i32,
                    key: b"fuzz/".to_vec(),
                    range_end: b"fuzz0".to_vec(),
                }),
            })],
        ),
        m(
            "/etcdserverpb.Auth/RoleRevokePermission",
            Write,
            vec![enc(AuthRoleRevokePermissionRequest {
                role: "fuzz-role".into(),
                key: b"fuzz/".to_vec(),
                range_end: b"fuzz0".to_vec(),
            })],
        ),
        Method {
            may_stay_open: true,
            ..m(
                "/v3lockpb.Lock/Lock",
                Write,
                vec![enc(LockRequest {
                    name: b"fuzz-lock".to_vec(),
                    lease: 1,
                })],
            )
        },
        Method {
            skip: skip_unlock,
            ..m(
                "/v3lockpb.Lock/Unlock",
                Write,
                vec![enc(UnlockRequest {
                    key: b"fuzz-lock/1".to_vec(),
                })],
            )
        },
        Method {
            may_stay_open: true,
            ..m(
                "/v3electionpb.Election/Campaign",
                Write,
                vec![enc(CampaignRequest {
                    name: b"fuzz-election".to_vec(),
                    lease: 1,
                    value: b"v".to_vec(),
                })],
            )
        },
        Method {
            skip: skip_proclaim,
            ..m(
                "/v3electionpb.Election/Proclaim",
                Write,
                vec![enc(ProclaimRequest {
                    leader: Some(leader.clone()),
                    value: b"v".to_vec(),
                })],
            )
        },
        m(
            "/v3electionpb.Election/Leader",
            Read,
            vec![enc(LeaderRequest {
                name: b"fuzz-election".to_vec(),
            })],
        ),
        Method {
            may_stay_open: true,
            ..m(
                "/v3electionpb.Election/Observe",
                Read,
                vec![enc(LeaderRequest {
                    name: b"fuzz-election".to_vec(),
                })],
            )
        },
        Method {
            skip: skip_resign,
            ..m(
                "/v3electionpb.Election/Resign",
                Write,
                vec![enc(ResignRequest { leader: Some(leader) })],
            )
        },
    ];
    for method in &mut v {
        if method.seeds.is_empty() {
            // Methods whose valid requests are not sent: mutations of an
            // empty message (mostly undecodable).
            method.seeds.push(Vec::new());
        }
    }
    v
}

pub fn peer_methods() -> Vec<Method> {
    use Kind::*;
    let raft = |data: Vec<u8>| enc(RaftMessage { data });
    let propose = enc(InternalRaftRequest {
        request: Some(internal_raft_request::Request::Put(PutRequest {
            key: b"fuzz/peer".to_vec(),
            value: b"v".to_vec(),
            ..Default::default()
        })),
    });
    let propose_many = enc(Batch {
        requests: vec![InternalRaftRequest::decode(propose.as_slice()).expect("a proposal"); 2],
    });
    let p = |path, kind, seeds| Method {
        peer: true,
        ..m(path, kind, seeds)
    };
    vec![
        // openraft's messages are bincode inside RaftMessage: random data.
        p(
            "/timonpb.Peer/AppendEntries",
            Write,
            vec![raft(vec![0; 64]), raft((0..200).map(|i| i as u8).collect())],
        ),
        p("/timonpb.Peer/Vote", Write, vec![raft(vec![0; 40])]),
        p("/timonpb.Peer/InstallSnapshot", Write, vec![raft(vec![1; 128])]),
        p("/timonpb.Peer/TimeoutNow", Write, vec![raft(vec![0; 48])]),
        p("/timonpb.Peer/ChangeMembership", Write, vec![raft(vec![9; 24])]),
        Method {
            skip: skip_propose,
            ..p("/timonpb.Peer/Propose", Write, vec![propose])
        },
        Method {
            skip: skip_propose_many,
            ..p("/timonpb.Peer/ProposeMany", Write, vec![propose_many])
        },
        p("/timonpb.Peer/ReadIndex", Read, vec![enc(ReadIndexRequest {})]),
        p("/timonpb.Peer/ClusterInfo", Read, vec![enc(ClusterInfoRequest {})]),
        p(
            "/timonpb.Peer/LeaseRenew",
            Read,
            vec![enc(LeaseKeepAliveRequest { id: 1 })],
        ),
        p(
            "/timonpb.Peer/LeaseTimeToLive",
            Read,
            vec![enc(LeaseTimeToLiveRequest { id: 1, keys: true })],
        ),
        p("/timonpb.Peer/HashKv", Read, vec![enc(HashKvRequest { revision: 0 })]),
    ]
}
