//! Durability under power loss (DESIGN.md invariant 4): a member whose data
//! dir is on a lazyfs mount (writes durable only when fsynced, directory
//! entries only when their directory is fsynced) is killed, everything
//! unsynced is dropped, and it must come back with every acknowledged write.

mod support;

use support::disk::Disk;

use std::path::Path;

use timon_proto::etcdserverpb::{PutRequest, RangeRequest};

async fn put(endpoint: &str, key: &str, value: &str) -> Result<(), tonic::Status> {
    let (mut kv, _) = support::connect(endpoint).await;
    let req = PutRequest {
        key: key.into(),
        value: value.into(),
        ..Default::default()
    };
    kv.put(req).await.map(|_| ())
}

async fn get(endpoint: &str, key: &str) -> Option<Vec<u8>> {
    let (mut kv, _) = support::connect(endpoint).await;
    let req = RangeRequest {
        key: key.into(),
        ..Default::default()
    };
    let resp = kv.range(req).await.expect("range").into_inner();
    resp.kvs.into_iter().next().map(|kv| kv.value)
}

fn member_on(data_dir: &Path) -> support::Member {
    support::start_timon(Some(data_dir), &[])
}

/// The first power loss right after a fresh member's first writes: before
/// timon fsynced the directories it makes at start (`member/`,
/// `member/db`, `member/snap`), the whole database was lost with their
/// entries and the member came back empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_power_loss_keeps_every_acknowledged_write() {
    let disk = Disk::new();
    let mut member = member_on(&disk.data_dir());
    for round in 0..3 {
        for i in 0..20 {
            put(&member.endpoint(), &format!("r{round}/k{i}"), &format!("v{i}"))
                .await
                .expect("put");
        }
        member.kill9();
        let lost = disk.control().lose_unsynced(round % 2 == 1);
        eprintln!("round {round}: {lost:?}");
        member.restart();
        for r in 0..=round {
            for i in 0..20 {
                let key = format!("r{r}/k{i}");
                assert_eq!(
                    get(&member.endpoint(), &key).await.as_deref(),
                    Some(format!("v{i}").as_bytes()),
                    "{key} was acknowledged, then lost by a power loss (round {round}); log:\n{}",
                    member.stderr_tail(4000)
                );
            }
        }
    }
    drop(member);
}
