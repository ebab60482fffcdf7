//! Compaction in the background, as etcd runs it: a Compact call answers
//! once the compaction is applied (reads below it refused from then on),
//! storage follows at the pace of `--experimental-compaction-batch-limit`
//! and `--experimental-compaction-sleep-interval`, a `physical` compaction
//! answers only once storage is compacted, and `/metrics` counts both with
//! etcd's names.

mod support;

use support::http::{request, Target};
use support::{connect, start_timon};
use timon_proto::etcdserverpb::{CompactionRequest, PutRequest, RangeRequest};

const TOTAL: &str = "etcd_debugging_mvcc_db_compaction_total_duration_milliseconds_count";
const KEYS: &str = "etcd_debugging_mvcc_db_compaction_keys_total";

/// The value of the metric `name` on the member's client port.
async fn metric(port: u16, name: &str) -> f64 {
    let target = Target { port, tls: None };
    let (status, body) = request(&target, "GET", "/metrics", "", &[]).await;
    assert_eq!(status, 200, "{body}");
    let prefix = format!("{name} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{body}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_compaction_answers_before_storage_is_compacted_and_a_physical_one_after() {
    // Ten revisions per batch, a second between batches.
    let member = start_timon(
        None,
        &[
            "--experimental-compaction-batch-limit=10",
            "--experimental-compaction-sleep-interval=1s",
        ],
    );
    let port = member.client_port();
    let (mut kv, _) = connect(&member.endpoint()).await;
    let mut rev = 0;
    for i in 0..60 {
        let resp = kv
            .put(PutRequest {
                key: b"k".to_vec(),
                value: i.to_string().into_bytes(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        rev = resp.header.unwrap().revision;
    }
    assert_eq!(rev, 61);
    assert_eq!(metric(port, TOTAL).await, 0.0);

    // Revisions 2..=31 are 3 full batches: storage needs 3 pauses of a
    // second, the answer none.
    kv.compact(CompactionRequest {
        revision: 31,
        physical: false,
    })
    .await
    .unwrap();
    let err = kv
        .range(RangeRequest {
            key: b"k".to_vec(),
            revision: 30,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.message(), "etcdserver: mvcc: required revision has been compacted");
    assert_eq!(metric(port, TOTAL).await, 0.0, "answered before storage was compacted");

    kv.compact(CompactionRequest {
        revision: 61,
        physical: true,
    })
    .await
    .unwrap();
    assert!(
        metric(port, TOTAL).await >= 1.0,
        "a physical compaction answers once storage is compacted"
    );
    assert_eq!(metric(port, KEYS).await, 59.0, "every revision but the last one went");
    let kvs = kv
        .range(RangeRequest {
            key: b"k".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .kvs;
    assert_eq!(kvs[0].value, b"59");
}
