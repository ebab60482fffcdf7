//! Bad input gets etcd's error (same gRPC code, same message), never a panic
//! or a hang, and loses nothing: each case of the foundation issue's list.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use timon_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use timon_proto::etcdserverpb::request_op::Request as Op;
use timon_proto::etcdserverpb::{CompactionRequest, Compare, PutRequest, RangeRequest, RequestOp, TxnRequest};
use tonic::Code;

fn put(key: &str, value: &str) -> PutRequest {
    PutRequest {
        key: key.as_bytes().to_vec(),
        value: value.as_bytes().to_vec(),
        ..Default::default()
    }
}

fn put_op(key: &str) -> RequestOp {
    RequestOp {
        request: Some(Op::RequestPut(put(key, "v"))),
    }
}

fn assert_status<T: std::fmt::Debug>(r: Result<T, tonic::Status>, code: Code, msg: &str) {
    let e = r.expect_err("expected an error");
    assert_eq!((e.code(), e.message()), (code, msg), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_errors_are_etcds() {
    let member = support::start_timon(None, &["--max-txn-ops", "4"]);
    let (mut kv, _) = support::connect(&member.endpoint()).await;

    assert_status(
        kv.put(put("", "v")).await,
        Code::InvalidArgument,
        "etcdserver: key is not provided",
    );
    assert_status(
        kv.range(RangeRequest {
            key: vec![],
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        "etcdserver: key is not provided",
    );
    for i in 0..3 {
        kv.put(put("k", &format!("v{i}"))).await.unwrap();
    }
    // current revision is 4
    assert_status(
        kv.range(RangeRequest {
            key: b"k".to_vec(),
            revision: 5,
            ..Default::default()
        })
        .await,
        Code::OutOfRange,
        "etcdserver: mvcc: required revision is a future revision",
    );
    kv.compact(CompactionRequest {
        revision: 3,
        physical: true,
    })
    .await
    .unwrap();
    assert_status(
        kv.range(RangeRequest {
            key: b"k".to_vec(),
            revision: 2,
            ..Default::default()
        })
        .await,
        Code::OutOfRange,
        "etcdserver: mvcc: required revision has been compacted",
    );
    assert_status(
        kv.compact(CompactionRequest {
            revision: 3,
            physical: false,
        })
        .await,
        Code::OutOfRange,
        "etcdserver: mvcc: required revision has been compacted",
    );
    assert_status(
        kv.compact(CompactionRequest {
            revision: 100,
            physical: false,
        })
        .await,
        Code::OutOfRange,
        "etcdserver: mvcc: required revision is a future revision",
    );

    let too_many = TxnRequest {
        success: (0..5).map(|i| put_op(&format!("t{i}"))).collect(),
        ..Default::default()
    };
    assert_status(
        kv.txn(too_many).await,
        Code::InvalidArgument,
        "etcdserver: too many operations in txn request",
    );
    let dup = TxnRequest {
        success: vec![put_op("d"), put_op("d")],
        ..Default::default()
    };
    assert_status(
        kv.txn(dup).await,
        Code::InvalidArgument,
        "etcdserver: duplicate key given in txn request",
    );

    let big = "x".repeat(1024 * 1024 + 600 * 1024);
    assert_status(
        kv.put(put("big", &big)).await,
        Code::InvalidArgument,
        "etcdserver: request is too large",
    );

    // range_end below key: an empty answer, not an error.
    let resp = kv
        .range(RangeRequest {
            key: b"z".to_vec(),
            range_end: b"a".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(resp.kvs.is_empty() && resp.count == 0 && !resp.more);

    // Nothing was lost on the way: the last good value is still there, at
    // the revision it was written, and failed requests raised no revision.
    let cmp = Compare {
        result: CompareResult::Equal as i32,
        target: CompareTarget::Mod as i32,
        key: b"k".to_vec(),
        target_union: Some(TargetUnion::ModRevision(4)),
        ..Default::default()
    };
    let t = kv
        .txn(TxnRequest {
            compare: vec![cmp],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(t.succeeded);
    assert_eq!(t.header.unwrap().revision, 4);

    // A txn of ranges only is a read, as in etcd: never proposed, so over
    // --max-request-bytes (1.5 MiB) it still answers (a write that size is
    // "request is too large").
    let big_key = vec![b'k'; 1_600_000];
    let read = |serializable| TxnRequest {
        success: vec![RequestOp {
            request: Some(Op::RequestRange(RangeRequest {
                key: big_key.clone(),
                serializable,
                ..Default::default()
            })),
        }],
        ..Default::default()
    };
    for serializable in [false, true] {
        let t = kv
            .txn(read(serializable))
            .await
            .expect("a large read-only txn")
            .into_inner();
        assert_eq!((t.succeeded, t.header.unwrap().revision), (true, 4));
    }
    assert_status(
        kv.txn(TxnRequest {
            success: vec![RequestOp {
                request: Some(Op::RequestPut(PutRequest {
                    key: big_key.clone(),
                    ..Default::default()
                })),
            }],
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        "etcdserver: request is too large",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_client_port_closes_that_connection_only() {
    let member = support::start_timon(None, &[]);
    let mut s = TcpStream::connect(("127.0.0.1", member.client_port())).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"\x00\xffthis is not http/2 at all\r\n\r\n\x16\x03\x01garbage")
        .unwrap();
    let mut buf = [0u8; 4096];
    // The server answers with whatever it can (a GOAWAY frame) and closes:
    // reading reaches EOF or a reset well before the timeout.
    let mut closed = false;
    for _ in 0..100 {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => {
                closed = true;
                break;
            }
            Ok(_) => continue,
        }
    }
    assert!(closed, "connection with garbage was not closed");
    let (mut kv, _) = support::connect(&member.endpoint()).await;
    kv.put(put("still", "serving")).await.unwrap();
}

#[test]
fn a_data_dir_in_use_is_refused_and_left_untouched() {
    let member = support::start_timon(None, &[]);
    let listing = |dir: &std::path::Path| {
        let mut v: Vec<_> = walk(dir)
            .into_iter()
            .map(|(p, len, m)| format!("{p} {len} {m:?}"))
            .collect();
        v.sort();
        v
    };
    // Stop RocksDB background work from changing files under us: compare
    // only names, sizes and mtimes of files the second process could write.
    let before = listing(member.data_dir());
    let out = Command::new(env!("CARGO_BIN_EXE_timon"))
        .args(["--data-dir", &member.data_dir().display().to_string()])
        .args([
            "--listen-client-urls",
            &format!("http://127.0.0.1:{}", support::free_port()),
        ])
        .args(["--advertise-client-urls", "http://127.0.0.1:1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is in use by another running member"), "{stderr}");
    let lock_line = |v: &Vec<String>| v.iter().filter(|l| l.contains("/lock ")).cloned().collect::<Vec<_>>();
    let after = listing(member.data_dir());
    assert_eq!(lock_line(&before), lock_line(&after));
    assert!(
        after.len() <= before.len() + 2,
        "second member created files: {before:?} -> {after:?}"
    );
}

fn walk(dir: &std::path::Path) -> Vec<(String, u64, Option<std::time::SystemTime>)> {
    let mut out = vec![];
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else if let Ok(m) = e.metadata() {
                out.push((p.display().to_string(), m.len(), m.modified().ok()));
            }
        }
    }
    out
}

#[test]
fn unknown_flags_and_bad_values_exit_non_zero_with_a_message() {
    let bin = env!("CARGO_BIN_EXE_timon");
    for args in [
        vec!["--no-such-flag", "x"],
        vec!["--max-txn-ops", "lots"],
        vec!["--listen-client-urls", "not a url"],
        vec!["--initial-cluster-state", "sideways"],
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(bin).args(&args).current_dir(dir.path()).output().unwrap();
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(!out.stderr.is_empty(), "{args:?}: no message");
        // Nothing was written: no data dir was created.
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "{args:?} wrote files"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_environment_variables_configure_the_member() {
    // ETCD_MAX_TXN_OPS read from the environment, as etcd reads it.
    let member = support::start_timon_with_env(None, &[], &[("ETCD_MAX_TXN_OPS", "1")]);
    let (mut kv, _) = support::connect(&member.endpoint()).await;
    let two = TxnRequest {
        success: vec![put_op("a"), put_op("b")],
        ..Default::default()
    };
    assert_status(
        kv.txn(two).await,
        Code::InvalidArgument,
        "etcdserver: too many operations in txn request",
    );
}
