//! Bad snapshots and bad restores (issue 13): a truncated file, a flipped
//! byte, a file without its sha256, a file that is not bbolt, a non-empty
//! data dir. Each fails with etcdutl's error text where etcdutl has one,
//! and leaves nothing behind. And a Snapshot stream whose client goes away
//! mid-transfer: the member deletes its temporary file and keeps serving.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use support::*;
use timon_proto::etcdserverpb::{PutRequest, RangeRequest, SnapshotRequest};

fn timonctl(args: &[&str]) -> Output {
    Command::new(timonctl_bin())
        .args(args)
        .env_remove("ETCDCTL_ENDPOINTS")
        .output()
        .expect("run timonctl")
}

fn restore(file: &Path, data_dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "snapshot",
        "restore",
        file.to_str().unwrap(),
        "--data-dir",
        data_dir.to_str().unwrap(),
    ];
    args.extend(extra);
    timonctl(&args)
}

/// Fills a member with `n` values of 1 KiB and saves a snapshot of it with
/// `timonctl snapshot save`.
async fn saved_snapshot(member: &Member, n: usize, dir: &Path) -> PathBuf {
    let (mut kv, _) = connect(&member.endpoint()).await;
    for i in 0..n {
        kv.put(PutRequest {
            key: format!("key{i:05}").into_bytes(),
            value: vec![b'v'; 1024],
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let file = dir.join("good.db");
    let out = timonctl(&[
        "--endpoints",
        &member.endpoint(),
        "snapshot",
        "save",
        file.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("Snapshot saved at {}\n", file.display())
    );
    file
}

/// A restore that must fail with `message` and write nothing: no data dir,
/// no temporary directory beside it.
fn assert_refused(file: &Path, extra: &[&str], message: &str) {
    let parent = tempfile::tempdir().unwrap();
    let data_dir = parent.path().join("restored");
    let out = restore(file, &data_dir, extra);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{} {extra:?} was accepted", file.display());
    assert!(
        stderr.contains(message),
        "{} {extra:?}: want {message:?} in {stderr}",
        file.display()
    );
    let left: Vec<_> = std::fs::read_dir(parent.path()).unwrap().collect();
    assert!(left.is_empty(), "{} {extra:?} left {left:?}", file.display());
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_snapshots_are_refused_and_write_nothing() {
    let member = start_timon(None, &[]);
    let tmp = tempfile::tempdir().unwrap();
    let good = saved_snapshot(&member, 200, tmp.path()).await;
    let data = std::fs::read(&good).unwrap();
    assert_eq!(data.len() % 512, 32, "a page-aligned database and its sha256");

    let write = |name: &str, bytes: &[u8]| {
        let path = tmp.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let truncated = write("truncated.db", &data[..data.len() / 2]);
    assert_refused(&truncated, &[], "snapshot missing hash but --skip-hash-check=false");
    assert_refused(&truncated, &["--skip-hash-check"], "truncated");

    let mut flipped = data.clone();
    flipped[data.len() / 2] ^= 0x01;
    let flipped = write("flipped.db", &flipped);
    assert_refused(&flipped, &[], "expected sha256 [");

    let unhashed = write("unhashed.db", &data[..data.len() - 32]);
    assert_refused(&unhashed, &[], "snapshot missing hash but --skip-hash-check=false");
    let ok_dir = tmp.path().join("from-unhashed");
    let out = restore(&unhashed, &ok_dir, &["--skip-hash-check"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(ok_dir.join("member").join("db").is_dir());

    let mut not_bolt = vec![b'x'; 8192];
    not_bolt.extend_from_slice(&[0u8; 32]);
    let not_bolt = write("not-bolt.db", &not_bolt);
    assert_refused(&not_bolt, &["--skip-hash-check"], "invalid database");
    let out = timonctl(&["snapshot", "status", not_bolt.to_str().unwrap()]);
    assert!(!out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stderr), "Error: invalid database\n");

    // A data dir that holds anything is never overwritten.
    let full = tmp.path().join("full");
    std::fs::create_dir_all(&full).unwrap();
    std::fs::write(full.join("precious"), b"keep me").unwrap();
    let out = restore(&good, &full, &[]);
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).lines().last(),
        Some(
            format!(
                "Error: data-dir {:?} not empty or could not be read",
                full.display().to_string()
            )
            .as_str()
        )
    );
    assert_eq!(std::fs::read(full.join("precious")).unwrap(), b"keep me");
    assert_eq!(std::fs::read_dir(&full).unwrap().count(), 1);

    // The good file restores into an empty data dir, and a member starts
    // from it with every key at its revisions.
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let out = restore(&good, &empty, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let want = all_keys(&member.endpoint()).await;
    let restored = start_timon(Some(&empty), &[]);
    let got = all_keys(&restored.endpoint()).await;
    assert_eq!(got.kvs, want.kvs);
    assert_eq!(got.kvs.len(), 200);
    assert_eq!(got.header.unwrap().revision, want.header.unwrap().revision);
}

/// Every key `saved_snapshot` wrote, as `endpoint` serves them.
async fn all_keys(endpoint: &str) -> timon_proto::etcdserverpb::RangeResponse {
    let (mut kv, _) = connect(endpoint).await;
    let range = RangeRequest {
        key: b"key".to_vec(),
        range_end: b"kez".to_vec(),
        ..Default::default()
    };
    kv.range(range).await.unwrap().into_inner()
}

fn snapshot_files(data_dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(data_dir.join("member"))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("snapshot-"))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_snapshot_file_left_by_a_crash_is_removed_at_start() {
    let mut member = start_timon(None, &[]);
    member.kill9();
    let stale = member.data_dir().join("member").join("snapshot-crashed.tmp");
    std::fs::write(&stale, b"half a snapshot").unwrap();
    member.respawn();
    member.await_ready();
    assert!(!stale.exists(), "{} survived a restart", stale.display());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_goes_away_mid_snapshot_frees_it() {
    let member = start_timon(None, &[]);
    let tmp = tempfile::tempdir().unwrap();
    saved_snapshot(&member, 2000, tmp.path()).await;
    let (mut kv, mut maintenance) = connect(&member.endpoint()).await;

    let mut stream = maintenance.snapshot(SnapshotRequest {}).await.unwrap().into_inner();
    let first = stream.message().await.unwrap().expect("a first chunk");
    assert!(first.remaining_bytes > 0, "the snapshot is larger than one chunk");
    assert_eq!(
        snapshot_files(member.data_dir()).len(),
        1,
        "the temporary file exists while sending"
    );
    drop(stream);
    drop(maintenance);

    // Bound: far above the time to notice a reset stream.
    let deadline = Instant::now() + 10 * ELECTION_TIMEOUT;
    while !snapshot_files(member.data_dir()).is_empty() {
        assert!(
            Instant::now() < deadline,
            "temporary file kept: {:?}",
            snapshot_files(member.data_dir())
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    kv.put(PutRequest {
        key: b"still".to_vec(),
        value: b"serving".to_vec(),
        ..Default::default()
    })
    .await
    .expect("the member keeps serving");
    saved_snapshot(&member, 1, tmp.path()).await;
    let log = member.stderr_tail(1 << 20);
    for line in [
        "snapshot client went away; dropping the snapshot",
        "sending database snapshot to client",
        "sending database sha256 checksum to client",
        "successfully sent database snapshot to client",
    ] {
        assert!(log.contains(line), "{line:?} not logged");
    }
}
