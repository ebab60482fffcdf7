//! Wire compatibility with etcd's own .proto definitions.
//!
//! etcd 3.4's .proto files (installed under /usr/share/gocode by the test
//! setup) are the reference. Two kinds of check:
//! - byte level: protoc encodes a text-format message with etcd's schema and
//!   the bytes must equal prost's encoding of the same message built from
//!   our generated types;
//! - schema level: every etcd 3.4 message, field (name, number, type, label,
//!   oneof), enum value and rpc must exist identically in our schema.
//!
//! When etcd's sources are absent the tests print a note and pass.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use prost::Message;
use prost_types::{DescriptorProto, FileDescriptorSet};
use timon_proto::etcdserverpb::{
    compare, range_request, request_op, Compare, DeleteRangeRequest, DowngradeInfo, PutRequest, RangeRequest,
    RequestOp, ResponseHeader, StatusResponse, TxnRequest,
};
use timon_proto::timonpb::{internal_raft_request, InternalRaftRequest};

const GOCODE: &str = "/usr/share/gocode/src";
const ETCD_RPC: &str = "etcd/etcdserver/etcdserverpb/rpc.proto";
const ETCD_PROTOS: &[&str] = &[
    ETCD_RPC,
    "etcd/etcdserver/api/v3lock/v3lockpb/v3lock.proto",
    "etcd/etcdserver/api/v3election/v3electionpb/v3election.proto",
];
const OUR_PROTOS: &[&str] = &[
    "mvccpb/kv.proto",
    "authpb/auth.proto",
    "etcdserverpb/rpc.proto",
    "v3lockpb/v3lock.proto",
    "v3electionpb/v3election.proto",
    "timonpb/internal.proto",
];
/// Packages whose contents must match etcd's.
const PACKAGES: &[&str] = &["etcdserverpb", "mvccpb", "authpb", "v3lockpb", "v3electionpb"];

fn protoc() -> PathBuf {
    protoc_bin_vendored::protoc_bin_path().expect("vendored protoc for this platform")
}

/// Include paths that resolve etcd's imports (its own files, gogoproto,
/// google.api annotations, google.protobuf descriptor), or None when the
/// sources are not installed.
fn etcd_includes() -> Option<Vec<PathBuf>> {
    let src = Path::new(GOCODE);
    let etcd_root = src.join("go.etcd.io");
    if !etcd_root.join(ETCD_RPC).exists() {
        eprintln!("note: {GOCODE}/go.etcd.io/{ETCD_RPC} not found; skipping etcd comparison");
        return None;
    }
    Some(vec![
        etcd_root,
        protoc_bin_vendored::include_path().expect("vendored protobuf includes"),
        src.join("github.com/gogo/protobuf"),
        src.join("github.com/grpc-ecosystem/grpc-gateway/third_party/googleapis"),
    ])
}

fn include_args(includes: &[PathBuf]) -> Vec<String> {
    includes.iter().map(|i| format!("-I{}", i.display())).collect()
}

/// Encodes `text` (protobuf text format) as message `type_name` using
/// etcd's own rpc.proto.
fn etcd_encode(includes: &[PathBuf], type_name: &str, text: &str) -> Vec<u8> {
    let mut child = Command::new(protoc())
        .args(include_args(includes))
        .arg(format!("--encode={type_name}"))
        .arg(ETCD_RPC)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run protoc");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write text message");
    let out = child.wait_with_output().expect("protoc output");
    assert!(
        out.status.success(),
        "protoc --encode failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn descriptor_set(includes: &[PathBuf], files: &[&str]) -> FileDescriptorSet {
    let dir = std::env::temp_dir().join(format!("timon-proto-wire-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let out_file = dir.join(format!("{}.pb", files.len() + includes.len() * 100));
    let status = Command::new(protoc())
        .args(include_args(includes))
        .arg("--include_imports")
        .arg(format!("--descriptor_set_out={}", out_file.display()))
        .args(files)
        .status()
        .expect("run protoc");
    assert!(status.success(), "protoc --descriptor_set_out failed for {files:?}");
    let bytes = std::fs::read(&out_file).expect("read descriptor set");
    let _ = std::fs::remove_file(&out_file);
    FileDescriptorSet::decode(bytes.as_slice()).expect("decode descriptor set")
}

fn our_descriptor_set() -> FileDescriptorSet {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("proto");
    descriptor_set(&[root], OUR_PROTOS)
}

#[test]
fn put_request_bytes_match_etcd() {
    let Some(inc) = etcd_includes() else { return };
    let ours = PutRequest {
        key: b"foo".to_vec(),
        value: b"bar\x00baz".to_vec(),
        lease: 7_587_862_342_163_432_000,
        prev_kv: true,
        ignore_value: true,
        ignore_lease: true,
    };
    let text = r#"key: "foo" value: "bar\000baz" lease: 7587862342163432000
        prev_kv: true ignore_value: true ignore_lease: true"#;
    assert_eq!(ours.encode_to_vec(), etcd_encode(&inc, "etcdserverpb.PutRequest", text));
}

#[test]
fn range_request_with_every_field_matches_etcd() {
    let Some(inc) = etcd_includes() else { return };
    let ours = RangeRequest {
        key: b"/registry/pods/".to_vec(),
        range_end: b"/registry/pods0".to_vec(),
        limit: 500,
        revision: 42,
        sort_order: range_request::SortOrder::Descend as i32,
        sort_target: range_request::SortTarget::Mod as i32,
        serializable: true,
        keys_only: true,
        count_only: true,
        min_mod_revision: 3,
        max_mod_revision: 40,
        min_create_revision: -1,
        max_create_revision: 41,
    };
    let text = r#"key: "/registry/pods/" range_end: "/registry/pods0" limit: 500
        revision: 42 sort_order: DESCEND sort_target: MOD serializable: true
        keys_only: true count_only: true min_mod_revision: 3 max_mod_revision: 40
        min_create_revision: -1 max_create_revision: 41"#;
    assert_eq!(
        ours.encode_to_vec(),
        etcd_encode(&inc, "etcdserverpb.RangeRequest", text)
    );
}

#[test]
fn txn_request_with_compares_and_nested_ops_matches_etcd() {
    let Some(inc) = etcd_includes() else { return };
    let put = |k: &str, v: &str| RequestOp {
        request: Some(request_op::Request::RequestPut(PutRequest {
            key: k.as_bytes().to_vec(),
            value: v.as_bytes().to_vec(),
            ..Default::default()
        })),
    };
    let ours = TxnRequest {
        compare: vec![
            Compare {
                result: compare::CompareResult::Equal as i32,
                target: compare::CompareTarget::Mod as i32,
                key: b"a".to_vec(),
                target_union: Some(compare::TargetUnion::ModRevision(0)),
                range_end: Vec::new(),
            },
            Compare {
                result: compare::CompareResult::NotEqual as i32,
                target: compare::CompareTarget::Value as i32,
                key: b"b".to_vec(),
                target_union: Some(compare::TargetUnion::Value(b"x".to_vec())),
                range_end: b"c".to_vec(),
            },
            Compare {
                result: compare::CompareResult::Greater as i32,
                target: compare::CompareTarget::Lease as i32,
                key: b"l".to_vec(),
                target_union: Some(compare::TargetUnion::Lease(9)),
                range_end: Vec::new(),
            },
        ],
        success: vec![
            put("a", "1"),
            RequestOp {
                request: Some(request_op::Request::RequestTxn(TxnRequest {
                    compare: vec![Compare {
                        result: compare::CompareResult::Less as i32,
                        target: compare::CompareTarget::Version as i32,
                        key: b"n".to_vec(),
                        target_union: Some(compare::TargetUnion::Version(2)),
                        range_end: Vec::new(),
                    }],
                    success: vec![RequestOp {
                        request: Some(request_op::Request::RequestDeleteRange(DeleteRangeRequest {
                            key: b"d".to_vec(),
                            range_end: b"e".to_vec(),
                            prev_kv: true,
                        })),
                    }],
                    failure: vec![put("n", "2")],
                })),
            },
        ],
        failure: vec![RequestOp {
            request: Some(request_op::Request::RequestRange(RangeRequest {
                key: b"a".to_vec(),
                limit: 1,
                ..Default::default()
            })),
        }],
    };
    let text = r#"
        compare { result: EQUAL target: MOD key: "a" mod_revision: 0 }
        compare { result: NOT_EQUAL target: VALUE key: "b" value: "x" range_end: "c" }
        compare { result: GREATER target: LEASE key: "l" lease: 9 }
        success { request_put { key: "a" value: "1" } }
        success { request_txn {
            compare { result: LESS target: VERSION key: "n" version: 2 }
            success { request_delete_range { key: "d" range_end: "e" prev_kv: true } }
            failure { request_put { key: "n" value: "2" } }
        } }
        failure { request_range { key: "a" limit: 1 } }"#;
    assert_eq!(ours.encode_to_vec(), etcd_encode(&inc, "etcdserverpb.TxnRequest", text));
}

#[test]
fn status_response_matches_etcd_for_3_4_fields() {
    let Some(inc) = etcd_includes() else { return };
    let ours = StatusResponse {
        header: Some(ResponseHeader {
            cluster_id: 0xcdf8_18194e3a8c32,
            member_id: 0x8e9e_05c52164694d,
            revision: 17,
            raft_term: 3,
        }),
        version: "3.6.0".to_string(),
        db_size: 20480,
        leader: 0x8e9e_05c52164694d,
        raft_index: 99,
        raft_term: 3,
        raft_applied_index: 98,
        errors: vec!["memberID:1 alarm:NOSPACE ".to_string(), "second".to_string()],
        db_size_in_use: 16384,
        is_learner: true,
        ..Default::default()
    };
    let text = r#"header { cluster_id: 14841639068965178418 member_id: 10276657743932975437
            revision: 17 raft_term: 3 }
        version: "3.6.0" dbSize: 20480 leader: 10276657743932975437 raftIndex: 99
        raftTerm: 3 raftAppliedIndex: 98 errors: "memberID:1 alarm:NOSPACE "
        errors: "second" dbSizeInUse: 16384 isLearner: true"#;
    assert_eq!(
        ours.encode_to_vec(),
        etcd_encode(&inc, "etcdserverpb.StatusResponse", text)
    );
}

/// Every message of `set` in one of `PACKAGES`, keyed by full name, nested
/// messages included.
fn messages(set: &FileDescriptorSet) -> BTreeMap<String, DescriptorProto> {
    fn walk(prefix: &str, msg: &DescriptorProto, out: &mut BTreeMap<String, DescriptorProto>) {
        let name = format!("{prefix}.{}", msg.name());
        for nested in &msg.nested_type {
            walk(&name, nested, out);
        }
        out.insert(name, msg.clone());
    }
    let mut out = BTreeMap::new();
    for file in set.file.iter().filter(|f| PACKAGES.contains(&f.package())) {
        for msg in &file.message_type {
            walk(&format!(".{}", file.package()), msg, &mut out);
        }
    }
    out
}

/// Every enum as full name -> (value name -> number).
fn enums(set: &FileDescriptorSet) -> BTreeMap<String, BTreeMap<String, i32>> {
    let values = |e: &prost_types::EnumDescriptorProto| {
        e.value
            .iter()
            .map(|v| (v.name().to_string(), v.number()))
            .collect::<BTreeMap<_, _>>()
    };
    let mut out = BTreeMap::new();
    for (msg_name, msg) in messages(set) {
        for e in &msg.enum_type {
            out.insert(format!("{msg_name}.{}", e.name()), values(e));
        }
    }
    for file in set.file.iter().filter(|f| PACKAGES.contains(&f.package())) {
        for e in &file.enum_type {
            out.insert(format!(".{}.{}", file.package(), e.name()), values(e));
        }
    }
    out
}

/// Every rpc as "package.Service/Method" -> (input, output, client streaming,
/// server streaming).
fn rpcs(set: &FileDescriptorSet) -> BTreeMap<String, (String, String, bool, bool)> {
    let mut out = BTreeMap::new();
    for file in set.file.iter().filter(|f| PACKAGES.contains(&f.package())) {
        for svc in &file.service {
            for m in &svc.method {
                out.insert(
                    format!("{}.{}/{}", file.package(), svc.name(), m.name()),
                    (
                        m.input_type().to_string(),
                        m.output_type().to_string(),
                        m.client_streaming(),
                        m.server_streaming(),
                    ),
                );
            }
        }
    }
    out
}

/// A field as everything that determines its wire form and generated API.
fn field_shape(msg: &DescriptorProto, f: &prost_types::FieldDescriptorProto) -> String {
    let oneof = f
        .oneof_index
        .and_then(|i| msg.oneof_decl.get(usize::try_from(i).ok()?))
        .map(|o| o.name().to_string());
    format!(
        "{} = {} type={:?} label={:?} type_name={} oneof={:?}",
        f.name(),
        f.number(),
        f.r#type(),
        f.label(),
        f.type_name(),
        oneof
    )
}

#[test]
fn schema_contains_every_etcd_3_4_message_field_enum_and_rpc() {
    let Some(inc) = etcd_includes() else { return };
    let etcd = descriptor_set(&inc, ETCD_PROTOS);
    let ours = our_descriptor_set();

    let (etcd_msgs, our_msgs) = (messages(&etcd), messages(&ours));
    assert!(
        etcd_msgs.len() > 100,
        "expected etcd's full API, got {}",
        etcd_msgs.len()
    );
    let mut problems = Vec::new();
    for (name, emsg) in &etcd_msgs {
        let Some(omsg) = our_msgs.get(name) else {
            problems.push(format!("missing message {name}"));
            continue;
        };
        for ef in &emsg.field {
            let want = field_shape(emsg, ef);
            match omsg.field.iter().find(|f| f.number() == ef.number()) {
                Some(of) if field_shape(omsg, of) == want => {}
                Some(of) => problems.push(format!("{name}: {} != etcd {want}", field_shape(omsg, of))),
                None => problems.push(format!("{name}: missing field {want}")),
            }
        }
    }

    let our_enums = enums(&ours);
    for (name, values) in enums(&etcd) {
        for (value, number) in values {
            if our_enums.get(&name).and_then(|v| v.get(&value)) != Some(&number) {
                problems.push(format!("enum {name}: value {value} = {number} differs or is missing"));
            }
        }
    }

    let our_rpcs = rpcs(&ours);
    for (name, shape) in rpcs(&etcd) {
        if our_rpcs.get(&name) != Some(&shape) {
            problems.push(format!(
                "rpc {name} {shape:?} differs or is missing: {:?}",
                our_rpcs.get(&name)
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "schema differs from etcd 3.4:\n{}",
        problems.join("\n")
    );
}

#[test]
fn schema_has_the_3_5_and_3_6_additions() {
    let ours = our_descriptor_set();
    let msgs = messages(&ours);
    let field = |msg: &str, name: &str| {
        msgs.get(msg)
            .and_then(|m| m.field.iter().find(|f| f.name() == name))
            .map(|f| f.number())
    };
    assert_eq!(field(".etcdserverpb.StatusResponse", "storageVersion"), Some(11));
    assert_eq!(field(".etcdserverpb.StatusResponse", "dbSizeQuota"), Some(12));
    assert_eq!(field(".etcdserverpb.StatusResponse", "downgradeInfo"), Some(13));
    assert_eq!(field(".etcdserverpb.HashKVResponse", "hash_revision"), Some(4));
    assert_eq!(field(".etcdserverpb.SnapshotResponse", "version"), Some(4));
    assert_eq!(field(".etcdserverpb.MemberListRequest", "linearizable"), Some(1));
    assert_eq!(field(".etcdserverpb.AuthUserAddRequest", "hashedPassword"), Some(4));
    assert_eq!(
        field(".etcdserverpb.AuthUserChangePasswordRequest", "hashedPassword"),
        Some(3)
    );
    assert_eq!(field(".etcdserverpb.AuthStatusResponse", "authRevision"), Some(3));
    assert_eq!(field(".etcdserverpb.DowngradeRequest", "version"), Some(2));
    let rpcs = rpcs(&ours);
    assert!(rpcs.contains_key("etcdserverpb.Maintenance/Downgrade"));
    assert!(rpcs.contains_key("etcdserverpb.Auth/AuthStatus"));
}

#[test]
fn status_response_3_6_fields_use_their_etcd_numbers() {
    let msg = StatusResponse {
        storage_version: "3.6.0".to_string(),
        db_size_quota: 1,
        downgrade_info: Some(DowngradeInfo {
            enabled: true,
            target_version: "3.5".to_string(),
        }),
        ..Default::default()
    };
    // field 11 (string), 12 (varint), 13 (message {1: true, 2: "3.5"}).
    let want: Vec<u8> = [&[0x5a, 5][..], b"3.6.0", &[0x60, 1, 0x6a, 7, 0x08, 1, 0x12, 3], b"3.5"].concat();
    assert_eq!(msg.encode_to_vec(), want);
}

#[test]
fn internal_raft_request_round_trips_through_prost_and_serde() {
    let req = InternalRaftRequest {
        request: Some(internal_raft_request::Request::Txn(TxnRequest {
            compare: vec![Compare {
                key: b"k".to_vec(),
                target_union: Some(compare::TargetUnion::Value(b"v".to_vec())),
                ..Default::default()
            }],
            success: vec![RequestOp {
                request: Some(request_op::Request::RequestPut(PutRequest {
                    key: b"k".to_vec(),
                    value: b"w".to_vec(),
                    ..Default::default()
                })),
            }],
            failure: Vec::new(),
        })),
    };
    let decoded = InternalRaftRequest::decode(req.encode_to_vec().as_slice()).expect("decode");
    assert_eq!(decoded, req);
    let json = serde_json::to_string(&req).expect("serialize");
    let back: InternalRaftRequest = serde_json::from_str(&json).expect("deserialize");
    assert_eq!(back, req);
}
