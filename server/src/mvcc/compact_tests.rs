//! The background compaction (`compact.rs`): a Compaction's commit does not
//! wait for storage, reads are right while storage is compacted, writes
//! made meanwhile are kept, a restart finishes an unfinished compaction,
//! and waiting for a compaction ends when it is done or stopped.

use std::collections::BTreeSet;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::test_store::{compact, del, engine, get_at, put, stored};
use super::*;
use crate::storage::keys::meta;
use crate::storage::{Cf, SharedEngine, WriteBatch};

/// One revision per batch, then an hour's pause: the compaction stays
/// unfinished for as long as a test looks.
const STALLED: Pacing = Pacing {
    batch_limit: 1,
    sleep: Duration::from_secs(3600),
};

/// One revision per batch, no pause: as many interleavings with the test's
/// writes as can be.
const FINE: Pacing = Pacing {
    batch_limit: 1,
    sleep: Duration::ZERO,
};

fn value_at(s: &MvccStore, k: &str, rev: i64) -> Result<Option<Vec<u8>>, MvccError> {
    Ok(get_at(s, k, rev)?.map(|kv| kv.value))
}

fn finished_meta(e: &SharedEngine) -> Option<i64> {
    let raw = e.get(Cf::Meta, meta::FINISHED_COMPACT_REV).unwrap()?;
    Some(i64::from_be_bytes(raw.try_into().unwrap()))
}

/// Runs `f` on another thread and fails the test if it takes a minute
/// (instead of hanging it).
fn within_a_minute(what: &str, f: impl FnOnce() + Send + 'static) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        f();
        let _ = tx.send(());
    });
    rx.recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("{what} did not return within a minute"));
}

#[test]
fn the_commit_refuses_old_reads_at_once_and_storage_follows() {
    let e = engine();
    let s = Arc::new(MvccStore::open(e.clone()).unwrap());
    s.set_compaction_pacing(STALLED);
    for i in 0..10 {
        put(&s, "a", &i.to_string()); // 2..=11
    }
    put(&s, "b", "x"); // 12
    compact(&s, 11);

    assert_eq!(s.compact_revision(), 11);
    assert!(matches!(value_at(&s, "a", 10), Err(MvccError::Compacted)));
    assert_eq!(value_at(&s, "a", 11).unwrap(), Some(b"9".to_vec()));
    assert_eq!(value_at(&s, "b", 0).unwrap(), Some(b"x".to_vec()));
    let p = s.compaction();
    assert_eq!((p.scheduled, p.stopped), (11, false));
    assert!(p.finished < 11, "{p:?}");
    assert!(
        stored(&e).len() >= 10,
        "one batch of one revision at most before the pause: {}",
        stored(&e).len()
    );
    // Written with the compaction: the store had no record of it before.
    assert_eq!(finished_meta(&e), Some(-1));

    let stopping = s.clone();
    within_a_minute("stopping a paused compaction", move || stopping.stop_compaction());
    assert!(s.compaction().stopped);
    let waiting = s.clone();
    within_a_minute("waiting on a stopped compaction", move || waiting.wait_compaction());
    drop(s);

    // The restart finishes it.
    let s = MvccStore::open(e.clone()).unwrap();
    s.wait_compaction();
    let want: Vec<Vec<u8>> = vec![Revision::new(11, 0).to_bytes(), Revision::new(12, 0).to_bytes()];
    assert_eq!(stored(&e), want);
    assert_eq!(finished_meta(&e), Some(11));
    assert_eq!(
        s.compaction(),
        Progress {
            scheduled: 11,
            finished: 11,
            stopped: false
        }
    );
    assert_eq!(value_at(&s, "a", 11).unwrap(), Some(b"9".to_vec()));
}

#[test]
fn writes_made_while_compacting_are_kept_as_if_it_had_finished_at_once() {
    let (e_bg, e_ref) = (engine(), engine());
    let background = MvccStore::open(e_bg.clone()).unwrap();
    background.set_compaction_pacing(FINE);
    let reference = MvccStore::open(e_ref.clone()).unwrap();
    let mut rng = StdRng::seed_from_u64(7);
    for op in 0..600 {
        let key = format!("k{}", rng.gen_range(0..8));
        if rng.gen_bool(0.25) {
            del(&background, &key);
            del(&reference, &key);
        } else {
            put(&background, &key, &op.to_string());
            put(&reference, &key, &op.to_string());
        }
        if op % 25 == 24 {
            let at = reference.current_revision() - rng.gen_range(0..6);
            if at > reference.compact_revision() {
                compact(&background, at);
                compact(&reference, at);
                reference.wait_compaction();
            }
        }
        let (a, b) = (background.read(), reference.read());
        let all = |v: &dyn ReadView, rev| {
            v.range(
                b"",
                b"\0",
                RangeOptions {
                    rev,
                    ..Default::default()
                },
            )
            .unwrap()
        };
        let oldest = reference.compact_revision().max(0);
        assert_eq!(all(&a, 0), all(&b, 0), "current reads after op {op}");
        assert_eq!(
            all(&a, oldest),
            all(&b, oldest),
            "reads at the compaction after op {op}"
        );
    }
    assert!(background.compact_revision() > 300, "compactions ran");
    background.wait_compaction();
    assert_eq!(stored(&e_bg), stored(&e_ref), "storage compacted alike");
    assert_eq!(
        background.state.read().unwrap().index,
        reference.state.read().unwrap().index,
        "index compacted alike"
    );
    assert_eq!(finished_meta(&e_bg), Some(background.compact_revision()));
    // And both hold exactly what the index still lists (an oracle that
    // does not share the deletion code).
    let indexed: BTreeSet<Revision> = background
        .state
        .read()
        .unwrap()
        .index
        .range_since(b"", b"\0", 0)
        .into_iter()
        .collect();
    let kept: BTreeSet<Revision> = stored(&e_bg).iter().map(|k| Revision::from_bytes(k).unwrap()).collect();
    assert_eq!(kept, indexed);
}

#[test]
fn long_runs_of_dropped_revisions_go_in_range_deletions_and_nothing_else_does() {
    let e = engine();
    let s = MvccStore::open(e.clone()).unwrap();
    // a is overwritten 100 times, b twice in the middle, c stays: the
    // compaction at 105 drops two runs of a's revisions around b's.
    for i in 0..50 {
        put(&s, "a", &i.to_string()); // 2..=51
    }
    put(&s, "b", "1"); // 52
    put(&s, "c", "1"); // 53
    for i in 50..100 {
        put(&s, "a", &i.to_string()); // 54..=103
    }
    put(&s, "b", "2"); // 104
    put(&s, "a", "last"); // 105
    s.set_compaction_pacing(Pacing {
        batch_limit: 40,
        sleep: Duration::ZERO,
    });
    compact(&s, 104);
    s.wait_compaction();
    let want: Vec<Vec<u8>> = [53, 103, 104, 105]
        .into_iter()
        .map(|main| Revision::new(main, 0).to_bytes())
        .collect();
    assert_eq!(stored(&e), want);
    assert_eq!(value_at(&s, "a", 104).unwrap(), Some(b"99".to_vec()));
    assert_eq!(value_at(&s, "c", 0).unwrap(), Some(b"1".to_vec()));
}

#[test]
fn a_store_from_before_background_compaction_counts_its_compaction_finished() {
    let e = engine();
    let s = MvccStore::open(e.clone()).unwrap();
    put(&s, "a", "1"); // 2
    put(&s, "a", "2"); // 3
    compact(&s, 2);
    s.wait_compaction();
    drop(s);
    // Those stores recorded only the compaction revision.
    let mut b = WriteBatch::new();
    b.delete(Cf::Meta, meta::FINISHED_COMPACT_REV.to_vec());
    e.write(b, false).unwrap();

    let s = MvccStore::open(e.clone()).unwrap();
    assert_eq!(
        s.compaction(),
        Progress {
            scheduled: 2,
            finished: 2,
            stopped: false
        },
        "nothing to resume"
    );
    s.set_compaction_pacing(STALLED);
    put(&s, "a", "3"); // 4
    compact(&s, 3);
    assert_eq!(
        finished_meta(&e),
        Some(2),
        "recorded with the next compaction, until that one finishes"
    );
    s.stop_compaction();
    drop(s);
    let s = MvccStore::open(e.clone()).unwrap();
    s.wait_compaction();
    assert_eq!(finished_meta(&e), Some(3));
    let revs: BTreeSet<Vec<u8>> = stored(&e).into_iter().collect();
    assert_eq!(
        revs,
        [Revision::new(3, 0).to_bytes(), Revision::new(4, 0).to_bytes()].into()
    );
}

#[tokio::test]
async fn waiting_for_a_compaction_ends_when_it_finishes_or_stops() {
    let s = Arc::new(MvccStore::open(engine()).unwrap());
    s.set_compaction_pacing(FINE);
    for i in 0..50 {
        put(&s, "a", &i.to_string());
    }
    let waiter = tokio::spawn({
        let s = s.clone();
        async move { s.compacted(40).await }
    });
    compact(&s, 40);
    tokio::time::timeout(Duration::from_secs(60), waiter)
        .await
        .expect("the wait ends")
        .unwrap();
    assert!(s.compaction().finished >= 40);

    s.set_compaction_pacing(STALLED);
    compact(&s, 45);
    let waiter = tokio::spawn({
        let s = s.clone();
        async move { s.compacted(45).await }
    });
    tokio::task::spawn_blocking({
        let s = s.clone();
        move || s.stop_compaction()
    })
    .await
    .unwrap();
    tokio::time::timeout(Duration::from_secs(60), waiter)
        .await
        .expect("a stopped compaction ends the wait")
        .unwrap();
    assert!(s.compaction().finished < 45);
}
