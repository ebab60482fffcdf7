//! The leader sends new entries to the followers while it fsyncs them
//! (vendored openraft patch 5, `raft::log_store`'s append): with every
//! member's fsync slowed to 150 ms (lazyfs), a write waits about one fsync,
//! the leader's and the followers' side by side, not the leader's and then
//! a follower's (etcd sends before its WAL fsync as well).

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use support::disk::Disk;
use timon_proto::etcdserverpb::PutRequest;

const DELAY: Duration = Duration::from_millis(150);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_waits_for_one_slow_fsync_not_two() {
    let disks: Vec<Disk> = (0..3).map(|_| Disk::new()).collect();
    let dirs: Vec<PathBuf> = disks.iter().map(Disk::data_dir).collect();
    let ports = support::free_port_pairs(3);
    let members = support::start_cluster_in(support::timon_bin(), &dirs, &ports, &[]);
    let leader = support::agreed_leader(&members, Duration::from_secs(30)).await;
    let l = support::index_of(&members, leader).await;
    let (mut kv, _) = support::connect(&members[l].endpoint()).await;
    let put = |i: usize| PutRequest {
        key: format!("k{i}").into_bytes(),
        value: b"v".to_vec(),
        ..Default::default()
    };
    kv.put(put(0)).await.expect("put before the slow disks");

    for disk in &disks {
        disk.control().set_fsync_delay(DELAY);
    }
    let mut took = Vec::new();
    for i in 1..=7 {
        let start = Instant::now();
        kv.put(put(i)).await.expect("put on slow disks");
        took.push(start.elapsed());
    }
    took.sort();
    eprintln!("put latencies on slow disks: {took:?}");
    let median = took[took.len() / 2];
    assert!(median >= DELAY, "the fsync delay is not in effect: {took:?}");
    assert!(
        median < DELAY * 3 / 2,
        "a write took {median:?} with fsyncs of {DELAY:?}: the leader's fsync and a follower's one \
         after the other; all: {took:?}"
    );
    for disk in &disks {
        disk.control().set_fsync_delay(Duration::ZERO);
    }
    // The members go before the disks under them.
    drop(members);
}
