//! A member snapshots once its raft log grew by 256 MiB, however few
//! entries that is (`raft::log_growth`): 300 puts of 1 MiB are far from
//! `--snapshot-count`'s default of 100000 entries, yet a snapshot is taken,
//! so the log up to it can be purged. Snapshots copy nothing, so the
//! snapshot directory holds its meta file only.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::{connect, start_member, timon_bin};
use timon_proto::etcdserverpb::PutRequest;

fn snapshot_files(data_dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(data_dir.join("member").join("snap"))
        .map(|d| d.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test]
async fn a_log_of_large_entries_is_snapshotted_by_size_not_only_by_count() {
    let member = start_member(timon_bin(), &[]);
    let (kv, _) = connect(&member.endpoint()).await;
    let put_mibs = |keys: std::ops::Range<u32>| {
        let mut kv = kv.clone();
        async move {
            for i in keys {
                let put = PutRequest {
                    key: format!("big/{i:03}").into(),
                    value: vec![7u8; 1 << 20],
                    ..Default::default()
                };
                kv.put(put).await.expect("put");
            }
        }
    };
    put_mibs(0..150).await;
    // 150 MiB: no snapshot yet.
    assert_eq!(snapshot_files(member.data_dir()), Vec::<String>::new());
    put_mibs(150..300).await;
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
