//! Hostile input fuzzers (issue 16 item 5) against a real 3-member timon
//! cluster over real HTTP/2: every client RPC (KV, Watch, Lease, Cluster,
//! Maintenance, Auth, Lock, Election) and every peer RPC (`timonpb.Peer`)
//! receives request bodies built byte for byte (`support::mutate`): random
//! bytes, valid requests mutated (bit flips, truncation, splices, repeated
//! fields, huge varints and length prefixes, deep nesting, unknown groups,
//! invalid UTF-8), in gRPC frames that may lie about their length or flags,
//! come several to a unary call, end mid-frame or stall without ending.
//!
//! What must hold, checked during and after the run:
//! - every call ends within [`CALL_TIMEOUT`] with a gRPC status (methods
//!   that stream or may block by design — Watch, LeaseKeepAlive, Observe,
//!   Snapshot, Lock, Campaign — may instead still be open after
//!   [`OPEN_TIMEOUT`], and a body that stalls on purpose is dropped after
//!   [`STALL_TIMEOUT`]); a call without an answer is a hang and fails the
//!   test;
//! - every member stays up: process alive and `/health` true at the end;
//! - memory stays bounded: each member's RSS (`/proc/PID/status`) stays
//!   under `TIMON_FUZZ_RSS_MIB` (default 1024) at every sample;
//! - the data is unchanged where nothing may write:
//!   * the read-only phase sends only methods that never write (Range,
//!     Watch, lease and member queries, Status, Hash, HashKV, Snapshot,
//!     auth reads, Leader, Observe; on the peer port ReadIndex, ClusterInfo,
//!     HashKv, LeaseTimeToLive, LeaseRenew, and every peer method with a
//!     wrong cluster ID or an unknown sender, which must be refused): the
//!     store revision and HashKV of every member are equal before and after;
//!   * the write phase sends everything, so its mutated requests may
//!     legitimately write; it cannot write the guard keys written before
//!     it (a prefix with a random 128-bit token no seed contains, so no
//!     mutation can name a guard key), except through a range: inputs that
//!     decode to a DeleteRange (alone or in a Txn, at any depth) whose
//!     range meets the guard prefix are not sent. Inputs that decode to
//!     an administrator's command that would change the cluster rather than
//!     its data (MemberAdd, a MemberRemove/Update/Promote or MoveLeader of
//!     a real member, AuthEnable, an alarm ACTIVATE, Downgrade) are not sent
//!     either: etcd obeys them too. After the phase the guard keys are
//!     read back unchanged (values and revisions), and every member's
//!     HashKV at one revision is equal (the replicas agree).
//!
//! Budget: `TIMON_FUZZ_SECS` seconds per test (default 45: both tests
//! together stay under ~3 minutes on 2 cores); seed: `TIMON_FUZZ_SEED`
//! (default: random, printed). A failure prints the seed, the input index,
//! the method and the input's bytes; `TIMON_FUZZ_SEED=S` with the same
//! budget replays the same inputs. Longer runs: see DEVELOPERS.md.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prost::Message;
use support::mutate::Input;
use support::raw_grpc::{call, Outcome};
use support::{start_cluster, timon_bin, Member};
use timon_proto::authpb::{permission::Type as PermType, Permission, UserAddOptions};
use timon_proto::etcdserverpb::*;
use timon_proto::timonpb::{
    internal_raft_request, ClusterInfoRequest, InternalRaftRequest, RaftMessage, ReadIndexRequest,
};
use timon_proto::v3electionpb::{CampaignRequest, LeaderKey, LeaderRequest, ProclaimRequest, ResignRequest};
use timon_proto::v3lockpb::{LockRequest, UnlockRequest};
use tonic::transport::Channel;

/// How long one call may take before it counts as a hang (a write waits up
/// to etcd's request timeout, 7 s here, on a loaded machine).
const CALL_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a call of a method that streams or may block by design is
/// kept open: long enough for its first answer, short enough not to tie up
/// a worker.
const OPEN_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a deliberately stalled body is kept open.
const STALL_TIMEOUT: Duration = Duration::from_millis(200);
/// Calls in flight at once.
const CONCURRENCY: usize = 16;

fn budget() -> Duration {
    let secs = std::env::var("TIMON_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(45);
    Duration::from_secs(secs)
}

fn rss_limit_kib() -> u64 {
    std::env::var("TIMON_FUZZ_RSS_MIB")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(1024)
        * 1024
}

fn run_seed() -> u64 {
    std::env::var("TIMON_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random)
}

/// What a method may do.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// Never writes.
    Read,
    /// May write.
    Write,
}

/// One fuzzed method.
struct Method {
    path: &'static str,
    kind: Kind,
    /// Streams or may block by design: an open call at the timeout is fine.
    may_stay_open: bool,
    seeds: Vec<Vec<u8>>,
    /// Whether a decoded input must not be sent (see the module doc).
    skip: fn(&[u8], &Guard) -> bool,
    /// Sent to the peer port.
    peer: bool,
}

fn never(_: &[u8], _: &Guard) -> bool {
    false
}

/// The guard keys: a prefix no seed contains.
struct Guard {
    prefix: Vec<u8>,
    member_ids: Vec<u64>,
}

impl Guard {
    fn end(&self) -> Vec<u8> {
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

fn client_methods() -> Vec<Method> {
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

fn peer_methods() -> Vec<Method> {
    use Kind::*;
    let raft = |data: Vec<u8>| enc(RaftMessage { data });
    let propose = enc(InternalRaftRequest {
        request: Some(internal_raft_request::Request::Put(PutRequest {
            key: b"fuzz/peer".to_vec(),
            value: b"v".to_vec(),
            ..Default::default()
        })),
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

/// The cluster under fuzzing: channels to each member's client and peer
/// ports, and the processes (for RSS).
struct Target {
    client: Vec<Channel>,
    peer: Vec<Channel>,
    pids: Vec<u32>,
    guard: Guard,
}

async fn lazy(url: String) -> Channel {
    Channel::from_shared(url)
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .connect_lazy()
}

impl Target {
    async fn new(members: &[Member], guard: Guard) -> Target {
        let mut client = Vec::new();
        let mut peer = Vec::new();
        for m in members {
            client.push(lazy(m.endpoint()).await);
            peer.push(lazy(m.peer_url()).await);
        }
        Target {
            client,
            peer,
            pids: members.iter().map(|m| m.pid().unwrap()).collect(),
            guard,
        }
    }
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Tallies of one run.
#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    skipped: AtomicU64,
    outcomes: Mutex<BTreeMap<String, u64>>,
    /// The first message seen with each status code, for the report.
    samples: Mutex<BTreeMap<String, String>>,
    max_rss_kib: AtomicU64,
    failure: Mutex<Option<String>>,
    failed: AtomicBool,
}

impl Tally {
    fn fail(&self, msg: String) {
        let mut f = self.failure.lock().unwrap();
        if f.is_none() {
            *f = Some(msg);
        }
        self.failed.store(true, Ordering::SeqCst);
    }
}

/// Extra headers of a peer call: none (an outsider without them), a wrong
/// cluster ID, or an unknown sender.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PeerHeaders {
    None,
    WrongCluster,
    UnknownSender,
}

/// Whether `code` answers a call that never reached its handler's work:
/// the admission check's `refusal`, or tonic's own decoding errors.
fn refused(code: tonic::Code, refusal: tonic::Code) -> bool {
    use tonic::Code::*;
    code == refusal || matches!(code, Internal | ResourceExhausted | Unimplemented)
}

/// Sends inputs to `methods` until `budget` runs out; returns the tally.
async fn fuzz(
    target: Arc<Target>,
    methods: Arc<Vec<Method>>,
    seed: u64,
    budget: Duration,
    headers: PeerHeaders,
    cluster_id: u64,
) -> Arc<Tally> {
    let tally = Arc::new(Tally::default());
    let next = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + budget;
    let limit = rss_limit_kib();
    let monitor = {
        let (tally, pids) = (tally.clone(), target.pids.clone());
        tokio::spawn(async move {
            while Instant::now() < deadline && !tally.failed.load(Ordering::SeqCst) {
                for &pid in &pids {
                    match rss_kib(pid) {
                        None => tally.fail(format!("member pid {pid} is gone (crashed?)")),
                        Some(kib) => {
                            tally.max_rss_kib.fetch_max(kib, Ordering::SeqCst);
                            if kib > limit {
                                tally.fail(format!("member pid {pid} RSS {kib} KiB over the limit {limit} KiB"));
                            }
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let mut workers = Vec::new();
    for _ in 0..CONCURRENCY {
        let (target, methods, tally, next) = (target.clone(), methods.clone(), tally.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            while Instant::now() < deadline && !tally.failed.load(Ordering::SeqCst) {
                let index = next.fetch_add(1, Ordering::SeqCst);
                let mut rng = support::mutate::rng_for(seed, index.wrapping_add(1 << 62));
                let method = &methods[rand::Rng::gen_range(&mut rng, 0..methods.len())];
                let member = rand::Rng::gen_range(&mut rng, 0..target.client.len());
                let input = Input::generate(seed, index, &method.seeds);
                if headers == PeerHeaders::None && (method.skip)(&input.message, &target.guard) {
                    tally.skipped.fetch_add(1, Ordering::SeqCst);
                    continue;
                }
                let hdrs: Vec<(&str, String)> = match headers {
                    PeerHeaders::None => vec![],
                    PeerHeaders::WrongCluster => vec![
                        ("x-etcd-cluster-id", format!("{:x}", cluster_id ^ 0x5a5a)),
                        ("x-server-from", format!("{:x}", target.guard.member_ids[0])),
                    ],
                    PeerHeaders::UnknownSender => vec![
                        ("x-etcd-cluster-id", format!("{cluster_id:x}")),
                        ("x-server-from", format!("{:x}", 0xbad0_0000_u64 + index)),
                    ],
                };
                let channel = if method.peer {
                    &target.peer[member]
                } else {
                    &target.client[member]
                };
                let timeout = match (input.end_stream, method.may_stay_open) {
                    (false, _) => STALL_TIMEOUT,
                    (true, true) => OPEN_TIMEOUT,
                    (true, false) => CALL_TIMEOUT,
                };
                tally.sent.fetch_add(1, Ordering::SeqCst);
                let outcome = call(
                    channel,
                    method.path,
                    input.body.clone(),
                    input.end_stream,
                    &hdrs,
                    timeout,
                )
                .await;
                let label = match &outcome {
                    Outcome::Status { code, .. } => format!("{code:?}"),
                    Outcome::Open { .. } => "open at timeout".into(),
                    Outcome::NoAnswer => "no answer".into(),
                    Outcome::Transport(_) => "transport error".into(),
                };
                if let Outcome::Status { message, .. } = &outcome {
                    tally
                        .samples
                        .lock()
                        .unwrap()
                        .entry(label.clone())
                        .or_insert_with(|| format!("{}: {message}", method.path));
                }
                *tally.outcomes.lock().unwrap().entry(label).or_default() += 1;
                let describe = || {
                    format!(
                        "seed {seed} input {index}: {} to member {member} ({}): body {} bytes {:02x?}",
                        method.path,
                        input.how,
                        input.body.len(),
                        &input.body[..input.body.len().min(256)]
                    )
                };
                let bad = match (&outcome, headers) {
                    // Refused: by the admission check, or before the
                    // handler ran (tonic's frame and protobuf decoding).
                    (Outcome::Status { code, .. }, PeerHeaders::WrongCluster)
                        if !refused(*code, tonic::Code::FailedPrecondition) =>
                    {
                        Some(format!("a wrong cluster ID was answered {code:?}, not refused"))
                    }
                    (Outcome::Status { code, .. }, PeerHeaders::UnknownSender)
                        if !refused(*code, tonic::Code::NotFound) =>
                    {
                        Some(format!("an unknown sender was answered {code:?}, not refused"))
                    }
                    (
                        Outcome::Status {
                            code: tonic::Code::Internal,
                            message,
                            ..
                        },
                        _,
                    ) if message.contains("panic") => Some(format!("a panic answered: {message}")),
                    (Outcome::Open { .. }, _) if input.end_stream && !method.may_stay_open => {
                        Some("the call was still open after its timeout (hang)".into())
                    }
                    (Outcome::NoAnswer, _) if input.end_stream && !method.may_stay_open => {
                        Some("no answer within the timeout (hang)".into())
                    }
                    (Outcome::Transport(e), _) => Some(format!("transport error {e} (connection lost?)")),
                    _ => None,
                };
                if let Some(why) = bad {
                    tally.fail(format!("{why}: {}", describe()));
                }
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    monitor.await.unwrap();
    tally
}

fn report(name: &str, seed: u64, budget: Duration, tally: &Tally) {
    eprintln!(
        "{name}: seed {seed}, budget {budget:?}: {} inputs sent, {} not sent (filtered), max member RSS {} MiB; outcomes {:?}",
        tally.sent.load(Ordering::SeqCst),
        tally.skipped.load(Ordering::SeqCst),
        tally.max_rss_kib.load(Ordering::SeqCst) / 1024,
        tally.outcomes.lock().unwrap()
    );
    for (code, sample) in tally.samples.lock().unwrap().iter() {
        eprintln!("  {code}: e.g. {sample}");
    }
    if let Some(f) = tally.failure.lock().unwrap().as_ref() {
        panic!(
            "{name} failed (replay: TIMON_FUZZ_SEED={seed} TIMON_FUZZ_SECS={}): {f}",
            budget.as_secs()
        );
    }
}

async fn kv(
    endpoint: &str,
) -> (
    timon_proto::etcdserverpb::kv_client::KvClient<Channel>,
    timon_proto::etcdserverpb::maintenance_client::MaintenanceClient<Channel>,
) {
    support::connect(endpoint).await
}

/// Writes the guard keys; answers the guard and the cluster ID.
async fn write_guard(members: &[Member]) -> (Guard, u64) {
    let token: u128 = rand::random();
    let prefix = format!("guard-{token:032x}/").into_bytes();
    let (mut c, mut mt) = kv(&members[0].endpoint()).await;
    for i in 0..20 {
        let mut key = prefix.clone();
        key.extend(format!("{i:02}").bytes());
        c.put(PutRequest {
            key,
            value: vec![i as u8; 100],
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let status = mt.status(StatusRequest {}).await.unwrap().into_inner();
    let cluster_id = status.header.unwrap().cluster_id;
    let mut member_ids = Vec::new();
    for m in members {
        let (_, mut mt) = kv(&m.endpoint()).await;
        member_ids.push(
            mt.status(StatusRequest {})
                .await
                .unwrap()
                .into_inner()
                .header
                .unwrap()
                .member_id,
        );
    }
    (Guard { prefix, member_ids }, cluster_id)
}

async fn guard_state(members: &[Member], g: &Guard) -> Vec<(Vec<u8>, Vec<u8>, i64, i64, i64)> {
    let (mut c, _) = kv(&members[0].endpoint()).await;
    let r = c
        .range(RangeRequest {
            key: g.prefix.clone(),
            range_end: g.end(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    r.kvs
        .into_iter()
        .map(|k| (k.key, k.value, k.create_revision, k.mod_revision, k.version))
        .collect()
}

/// The store revision and every member's HashKV at it, once all members
/// applied it and agree, or a failure after 30 s.
async fn settled_hashes(members: &[Member]) -> (i64, Vec<u32>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = String::new();
    while Instant::now() < deadline {
        let (_, mut mt) = kv(&members[0].endpoint()).await;
        let rev = mt
            .status(StatusRequest {})
            .await
            .unwrap()
            .into_inner()
            .header
            .unwrap()
            .revision;
        let mut hashes = Vec::new();
        for m in members {
            let (_, mut mt) = kv(&m.endpoint()).await;
            match mt.hash_kv(HashKvRequest { revision: rev }).await {
                Ok(h) => hashes.push(h.into_inner().hash),
                Err(e) => last = format!("HashKV({rev}) on {}: {e}", m.endpoint()),
            }
        }
        if hashes.len() == members.len() && hashes.iter().all(|h| *h == hashes[0]) {
            return (rev, hashes);
        }
        if hashes.len() == members.len() {
            last = format!("members disagree at revision {rev}: {hashes:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the members never agreed on HashKV: {last}");
}

async fn healthy(members: &mut [Member]) {
    for m in members.iter_mut() {
        assert!(
            m.is_running(),
            "member {} exited; stderr:\n{}",
            m.endpoint(),
            m.stderr_tail(4000)
        );
        let target = support::http::Target {
            port: m.client_port(),
            tls: None,
        };
        let (status, body) = support::http::request(&target, "GET", "/health", "", &[]).await;
        assert!(
            status == 200 && body.contains("\"true\""),
            "/health of {}: {status} {body}",
            m.endpoint()
        );
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Read-only phase then write phase over every client RPC.
#[test]
fn client_rpcs_survive_hostile_input() {
    let seed = run_seed();
    let budget = budget();
    eprintln!(
        "client fuzz: TIMON_FUZZ_SEED={seed} TIMON_FUZZ_SECS={}",
        budget.as_secs()
    );
    let mut members = start_cluster(timon_bin(), 3, &[]);
    let rt = runtime();
    rt.block_on(async {
        let (guard, cluster_id) = write_guard(&members).await;
        let guarded = guard_state(&members, &guard).await;
        let target = Arc::new(Target::new(&members, guard).await);
        let reads: Vec<Method> = client_methods().into_iter().filter(|m| m.kind == Kind::Read).collect();

        let before = settled_hashes(&members).await;
        let tally = fuzz(
            target.clone(),
            Arc::new(reads),
            seed,
            budget / 3,
            PeerHeaders::None,
            cluster_id,
        )
        .await;
        report("client fuzz, read-only methods", seed, budget / 3, &tally);
        let after = settled_hashes(&members).await;
        assert_eq!(
            before, after,
            "read-only methods changed the store (revision, HashKV of each member)"
        );

        let tally = fuzz(
            target.clone(),
            Arc::new(client_methods()),
            seed ^ 1,
            budget * 2 / 3,
            PeerHeaders::None,
            cluster_id,
        )
        .await;
        report("client fuzz, all methods", seed ^ 1, budget * 2 / 3, &tally);
        settled_hashes(&members).await;
        assert_eq!(
            guard_state(&members, &target.guard).await,
            guarded,
            "the guard keys changed"
        );
        healthy(&mut members).await;
    });
}

/// Every peer RPC from an outsider without headers (read-only and
/// undecodable inputs), then with a wrong cluster ID and an unknown
/// sender (everything, valid proposals included: all must be refused).
#[test]
fn peer_rpcs_survive_hostile_input_and_refuse_strangers() {
    let seed = run_seed();
    let budget = budget();
    eprintln!("peer fuzz: TIMON_FUZZ_SEED={seed} TIMON_FUZZ_SECS={}", budget.as_secs());
    let mut members = start_cluster(timon_bin(), 3, &[]);
    let rt = runtime();
    rt.block_on(async {
        let (guard, cluster_id) = write_guard(&members).await;
        let guarded = guard_state(&members, &guard).await;
        let target = Arc::new(Target::new(&members, guard).await);
        let methods = Arc::new(peer_methods());
        let before = settled_hashes(&members).await;
        let phase = budget / 3;
        for (i, headers) in [PeerHeaders::None, PeerHeaders::WrongCluster, PeerHeaders::UnknownSender]
            .into_iter()
            .enumerate()
        {
            let s = seed ^ (i as u64 + 10);
            let tally = fuzz(target.clone(), methods.clone(), s, phase, headers, cluster_id).await;
            report(&format!("peer fuzz, headers {headers:?}"), s, phase, &tally);
        }
        let after = settled_hashes(&members).await;
        assert_eq!(
            before, after,
            "hostile peer messages changed the store (revision, HashKV of each member)"
        );
        assert_eq!(
            guard_state(&members, &target.guard).await,
            guarded,
            "the guard keys changed"
        );
        healthy(&mut members).await;
    });
    let logs: String = members.iter().map(|m| m.stderr_tail(1 << 22)).collect();
    assert!(
        logs.contains("request cluster ID mismatch"),
        "a wrong cluster ID is logged"
    );
    assert!(
        logs.contains("failed to find remote peer in cluster"),
        "an unknown sender is logged"
    );
}
