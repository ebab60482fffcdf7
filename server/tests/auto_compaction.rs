//! Auto-compaction as etcd 3.5 runs it, periodic mode, on a real member:
//! compactions come on their own, the first after one retention period, and
//! never compact a revision younger than the retention.
//! (Revision mode runs every 5 minutes: its logic is unit-tested in
//! `compactor::tests`.)

mod support;

use std::time::{Duration, Instant};

use support::{connect, start_timon};
use timon_proto::etcdserverpb::{HashKvRequest, PutRequest};

const RETENTION: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread")]
async fn periodic_auto_compaction_keeps_the_retention() {
    // The member samples its first revision after this instant.
    let launched = Instant::now();
    let member = start_timon(
        None,
        &["--auto-compaction-mode=periodic", "--auto-compaction-retention=2s"],
    );
    let (mut kv, mut maint) = connect(&member.endpoint()).await;
    // When each revision's put was sent (a revision cannot exist before).
    let mut sent: Vec<(i64, Instant)> = Vec::new();
    let started = Instant::now();
    let mut seen = Vec::new();
    // Two compactions, 5 retention periods each at most (on the test's
    // monotonic clock; the bound only stops a hang).
    while seen.len() < 2 {
        assert!(
            started.elapsed() < 5 * RETENTION * 3,
            "compactions seen: {seen:?}; stderr:\n{}",
            member.stderr_tail(4000)
        );
        let at = Instant::now();
        let rev = kv
            .put(PutRequest {
                key: b"k".to_vec(),
                value: b"v".to_vec(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .header
            .unwrap()
            .revision;
        sent.push((rev, at));
        let compacted = maint
            .hash_kv(HashKvRequest { revision: 0 })
            .await
            .unwrap()
            .into_inner()
            .compact_revision;
        // The compaction happened before this instant.
        let observed = Instant::now();
        if compacted > 0 && seen.last().map(|&(c, _)| c) != Some(compacted) {
            seen.push((compacted, observed));
            // The correctness bound: the compacted revision was written a
            // retention period or more before the compaction.
            // (A revision from before the first put was sampled after
            // `launched`.)
            let written = sent.iter().find(|(r, _)| *r == compacted).map_or(launched, |&(_, t)| t);
            assert!(
                written + RETENTION <= observed,
                "revision {compacted} compacted {:?} after it was sent, before the retention of {RETENTION:?}",
                observed - written
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "compactions at (revision, seconds since start): {:?}",
        seen.iter()
            .map(|(c, t)| (c, (*t - started).as_secs_f32()))
            .collect::<Vec<_>>()
    );
    // Not before one retention period after the member started.
    assert!(seen[0].1 - launched >= RETENTION);
    assert!(member
        .stderr_tail(1 << 20)
        .contains("completed auto periodic compaction"));
}
