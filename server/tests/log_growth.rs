//! The raft log is bounded in bytes, however few entries that is
//! (`raft::log_growth`): 300 puts of 1 MiB are far from `--snapshot-count`'s
//! default of 100000 entries and from the 5000 kept after a snapshot.
//! - A member snapshots once its log grew by 256 MiB. Snapshots copy
//!   nothing, so the snapshot directory holds its meta file only.
//! - At most 64 MiB of entries stay before a snapshot, so a follower that
//!   missed more than that catches up from a snapshot, not from entries.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::{
    agreed_leader, applied_up_to, connect, member_id, start_cluster, start_member, status, timon_bin, ELECTION_TIMEOUT,
};
use timon_proto::etcdserverpb::PutRequest;

fn snapshot_files(data_dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(data_dir.join("member").join("snap"))
        .map(|d| d.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

async fn put_mibs(endpoint: &str, keys: std::ops::Range<u32>) {
    let (mut kv, _) = connect(endpoint).await;
    for i in keys {
        let put = PutRequest {
            key: format!("big/{i:03}").into(),
            value: vec![7u8; 1 << 20],
            ..Default::default()
        };
        kv.put(put).await.expect("put");
    }
}

#[tokio::test]
async fn a_log_of_large_entries_is_snapshotted_by_size_not_only_by_count() {
    let member = start_member(timon_bin(), &[]);
    put_mibs(&member.endpoint(), 0..150).await;
    // 150 MiB: no snapshot yet.
    assert_eq!(snapshot_files(member.data_dir()), Vec::<String>::new());
    put_mibs(&member.endpoint(), 150..300).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let files = loop {
        let files = snapshot_files(member.data_dir());
        if !files.is_empty() || Instant::now() > deadline {
            break files;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(files.len(), 1, "{files:?}; stderr:\n{}", member.stderr_tail(4096));
    assert!(files[0].ends_with(".meta.json"), "{files:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_that_missed_more_than_64_mib_of_log_gets_a_snapshot() {
    let members = start_cluster(timon_bin(), 3, &[]);
    let leader_id = agreed_leader(&members, 20 * ELECTION_TIMEOUT).await;
    let mut leader = None;
    let mut follower = None;
    for m in &members {
        if member_id(m).await == leader_id {
            leader = Some(m);
        } else {
            follower = Some(m);
        }
    }
    let (leader, follower) = (leader.unwrap(), follower.unwrap());
    follower.signal("STOP");
    // 300 MiB: a snapshot at ~256 MiB, then all but 64 MiB before it go,
    // which is ~190 of the ~300 entries the follower misses.
    put_mibs(&leader.endpoint(), 0..300).await;
    follower.signal("CONT");
    let target = status(leader).await.expect("leader status").raft_applied_index;
    if let Err(applied) = applied_up_to(follower, target, Duration::from_secs(60)).await {
        panic!(
            "follower stuck at {applied} < {target}; its stderr:\n{}\nthe leader's:\n{}",
            follower.stderr_tail(4000),
            leader.stderr_tail(4000)
        );
    }
    assert!(
        follower.stderr_tail(1 << 20).contains("applied snapshot"),
        "the follower caught up from entries: the leader kept them; its stderr:\n{}",
        leader.stderr_tail(4000)
    );
}
