//! A failing disk under a member (lazyfs): when fsync answers EIO, or writes
//! answer ENOSPC, the member must not acknowledge what it could not make
//! durable, must not go on serving as if it had (the "fsyncgate" lesson: a
//! retried fsync may succeed having written nothing), and must stop, as
//! etcd's `lg.Fatal` stops etcd; once the disk is healthy again a restart
//! recovers every acknowledged write.

mod support;

use std::time::Duration;

use support::disk::Disk;
use timon_proto::etcdserverpb::{PutRequest, RangeRequest};
use tokio::time::Instant;

async fn put(endpoint: &str, key: &str) -> Result<(), String> {
    let (mut kv, _) = support::connect(endpoint).await;
    let req = PutRequest {
        key: key.into(),
        value: b"v".to_vec(),
        ..Default::default()
    };
    match tokio::time::timeout(Duration::from_secs(15), kv.put(req)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".into()),
    }
}

async fn exists(endpoint: &str, key: &str) -> bool {
    let (mut kv, _) = support::connect(endpoint).await;
    let req = RangeRequest {
        key: key.into(),
        ..Default::default()
    };
    !kv.range(req).await.expect("range").into_inner().kvs.is_empty()
}

/// Waits (up to 30 s) for the member's process to exit.
async fn wait_exit(member: &mut support::Member) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while member.is_running() {
        assert!(
            Instant::now() < deadline,
            "the member went on running on a failing disk; log:\n{}",
            member.stderr_tail(4000)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Puts keys, turns `fault` on, and checks that a put during the fault is
/// not acknowledged and the member stops; then, fault off and everything
/// unsynced lost, the member restarts with every acknowledged key.
async fn the_member_stops_and_recovers(fault: impl Fn(&lazyfs::Control, bool)) {
    let disk = Disk::new();
    let mut member = support::start_timon(Some(&disk.data_dir()), &[]);
    for i in 0..10 {
        put(&member.endpoint(), &format!("k{i}"))
            .await
            .expect("put before the fault");
    }
    fault(&disk.control(), true);
    let during = put(&member.endpoint(), "during").await;
    assert!(during.is_err(), "a put was acknowledged on a failing disk");
    wait_exit(&mut member).await;
    let log = member.stderr_tail(20_000);
    assert!(log.contains("raft stopped on a storage error"), "{log}");

    fault(&disk.control(), false);
    disk.control().lose_unsynced(false);
    member.restart();
    for i in 0..10 {
        assert!(
            exists(&member.endpoint(), &format!("k{i}")).await,
            "k{i} was acknowledged, then lost; log:\n{}",
            member.stderr_tail(4000)
        );
    }
    put(&member.endpoint(), "after")
        .await
        .expect("a put once the disk is healthy");
    drop(member);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_fsync_that_fails_with_eio_stops_the_member() {
    the_member_stops_and_recovers(|c, on| c.set_fsync_error(on)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_the_member_until_space_returns() {
    the_member_stops_and_recovers(|c, on| c.set_disk_full(on)).await;
}
