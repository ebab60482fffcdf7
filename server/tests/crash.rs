//! Durability under kill -9 (DESIGN.md invariants 3 and 4): a member killed
//! in the middle of a stream of writes comes back with every acknowledged
//! write, and its revision carries on from where it was.

mod support;

use std::sync::{Arc, Mutex};

use timon_proto::etcdserverpb::{PutRequest, RangeRequest};
use tokio::task::JoinSet;

/// Writers running concurrently against the member while it is killed.
const WRITERS: usize = 4;
/// Acknowledged writes to wait for before each kill.
const ACKED_BEFORE_KILL: usize = 150;
const ROUNDS: usize = 3;

#[derive(Debug, Clone)]
struct Acked {
    key: String,
    value: String,
    revision: i64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_during_writes_loses_no_acknowledged_write() {
    let mut member = support::start_timon(None, &[]);
    let acked: Arc<Mutex<Vec<Acked>>> = Arc::default();

    for round in 0..ROUNDS {
        let (kv, _) = support::connect(&member.endpoint()).await;
        let start = acked.lock().unwrap().len();
        let mut writers = JoinSet::new();
        for w in 0..WRITERS {
            let mut kv = kv.clone();
            let acked = acked.clone();
            writers.spawn(async move {
                for i in 0.. {
                    let key = format!("r{round}/w{w}/k{i:05}");
                    let value = format!("value of {key}");
                    let put = PutRequest {
                        key: key.clone().into(),
                        value: value.clone().into(),
                        ..Default::default()
                    };
                    match kv.put(put).await {
                        Ok(resp) => {
                            let revision = resp.into_inner().header.expect("put header").revision;
                            acked.lock().unwrap().push(Acked { key, value, revision });
                        }
                        // The member was killed: outcome unknown, stop writing.
                        Err(_) => return,
                    }
                }
            });
        }
        // Kill once enough writes are acknowledged, while writers are still sending.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(120);
        while acked.lock().unwrap().len() < start + ACKED_BEFORE_KILL {
            assert!(
                tokio::time::Instant::now() < deadline,
                "writes too slow: {}",
                member.stderr_tail(2000)
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        member.kill9();
        while writers.join_next().await.is_some() {}

        member.restart();
        let (mut kv, _) = support::connect(&member.endpoint()).await;
        let all = acked.lock().unwrap().clone();
        let max_acked_rev = all.iter().map(|a| a.revision).max().unwrap_or(0);
        for a in &all {
            let resp = kv
                .range(RangeRequest {
                    key: a.key.clone().into(),
                    ..Default::default()
                })
                .await
                .expect("range after restart")
                .into_inner();
            assert_eq!(
                resp.kvs.len(),
                1,
                "acknowledged write {a:?} lost after kill -9 in round {round}"
            );
            assert_eq!(resp.kvs[0].value, a.value.as_bytes(), "{a:?}");
            assert_eq!(resp.kvs[0].mod_revision, a.revision, "{a:?}");
        }
        // The revision continues: no acknowledged revision is handed out again.
        let put = PutRequest {
            key: b"after-restart".to_vec(),
            value: b"x".to_vec(),
            ..Default::default()
        };
        let rev = kv
            .put(put)
            .await
            .expect("put after restart")
            .into_inner()
            .header
            .unwrap()
            .revision;
        assert!(rev > max_acked_rev, "revision went back: {rev} <= {max_acked_rev}");
    }
}
