//! The hub on an in-memory store: synced delivery, catch-up from storage,
//! a full queue falling back to catch-up without loss, compaction.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::mvcc::MvccStore;
use crate::storage::mem::MemEngine;
use crate::storage::{SharedEngine, WriteBatch};

fn hub() -> (Arc<WatchHub>, Arc<StoreHandle>) {
    let engine: SharedEngine = Arc::new(MemEngine::new());
    let store = Arc::new(StoreHandle::new(MvccStore::open(engine).unwrap()));
    (WatchHub::start(store.clone()), store)
}

/// Puts `key` and publishes the revision, as apply does.
fn put(hub: &WatchHub, store: &StoreHandle, key: &str) -> i64 {
    let s = store.current();
    let mut txn = s.write();
    txn.put(key.as_bytes(), b"v", 0);
    let events = txn.commit(WriteBatch::new()).unwrap();
    let rev = events[0].kv.as_ref().unwrap().mod_revision;
    hub.notify(rev, &events);
    rev
}

fn spec(key: &str, start_rev: i64) -> WatchSpec {
    WatchSpec {
        key: key.as_bytes().to_vec(),
        range_end: vec![0],
        start_rev,
        filters: vec![],
    }
}

/// Receives deliveries until `n` events arrived; their revisions in order.
async fn revisions(rx: &mut QueueReceiver, n: usize) -> Vec<i64> {
    let mut out = Vec::new();
    while out.len() < n {
        let got = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
        match got.expect("delivery in time").expect("queue open") {
            Outbound::Delivery(d) => {
                out.extend(d.events.as_slice().iter().map(|e| e.kv.as_ref().unwrap().mod_revision))
            }
            Outbound::Control(_) => {}
        }
    }
    out
}

const KEY: WatcherKey = WatcherKey { stream: 1, watch_id: 0 };

#[tokio::test]
async fn synced_watchers_get_each_revision() {
    let (hub, store) = hub();
    let (tx, mut rx) = queue(16, 1 << 20);
    hub.watch(KEY, spec("a", 2), tx);
    for _ in 0..3 {
        put(&hub, &store, "a");
    }
    assert_eq!(revisions(&mut rx, 3).await, vec![2, 3, 4]);
    assert_eq!(hub.counts(), (1, 0));
}

#[tokio::test]
async fn old_start_revisions_catch_up_from_storage() {
    let (hub, store) = hub();
    for _ in 0..5 {
        put(&hub, &store, "a");
    }
    let (tx, mut rx) = queue(16, 1 << 20);
    hub.watch(KEY, spec("a", 3), tx);
    assert_eq!(revisions(&mut rx, 4).await, vec![3, 4, 5, 6]);
    put(&hub, &store, "a");
    assert_eq!(revisions(&mut rx, 1).await, vec![7]);
}

#[tokio::test]
async fn a_full_queue_falls_back_to_catch_up_without_loss() {
    let (hub, store) = hub();
    let (tx, mut rx) = queue(2, 1 << 20);
    hub.watch(KEY, spec("a", 2), tx);
    for _ in 0..20 {
        put(&hub, &store, "a");
    }
    // The queue held 2; the rest come from storage once there is room.
    assert_eq!(hub.counts(), (0, 1));
    let revs = revisions(&mut rx, 20).await;
    assert_eq!(revs, (2..22).collect::<Vec<_>>());
    // Synced again, it gets new revisions directly.
    tokio::time::timeout(Duration::from_secs(5), async {
        while hub.counts() != (1, 0) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("synced again");
}

/// The delivery of one revision to each receiver, in order.
async fn delivery(rx: &mut QueueReceiver) -> Delivery {
    loop {
        let got = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
        if let Outbound::Delivery(d) = got.expect("delivery in time").expect("queue open") {
            return d;
        }
    }
}

#[tokio::test]
async fn watchers_that_want_a_whole_revision_share_one_copy_of_it() {
    let (hub, store) = hub();
    let key = |watch_id| WatcherKey { stream: 1, watch_id };
    let mut receivers = Vec::new();
    let mut no_delete = spec("a", 2);
    no_delete.filters = vec![Filter::NoDelete];
    // From "a", from "", from "b" (a part of the revision), and from "a"
    // without deletes (a filter that lets this revision through).
    for (id, spec) in [spec("a", 2), spec("", 2), spec("b", 2), no_delete]
        .into_iter()
        .enumerate()
    {
        let (tx, rx) = queue(16, 1 << 20);
        hub.watch(key(id as i64), spec, tx);
        receivers.push(rx);
    }
    let s = store.current();
    let mut txn = s.write();
    txn.put(b"a", b"v", 0);
    txn.put(b"b", b"v", 0);
    let events = txn.commit(WriteBatch::new()).unwrap();
    hub.notify(2, &events);
    let mut got = Vec::new();
    for rx in &mut receivers {
        got.push(delivery(rx).await.events);
    }
    let [Events::Shared(a), Events::Shared(all), Events::Own(b), Events::Shared(filtered)] = &got[..] else {
        panic!("whole revisions shared, a part owned: {got:?}");
    };
    assert!(
        Arc::ptr_eq(a, all) && Arc::ptr_eq(a, filtered),
        "one copy for every watcher of the whole revision"
    );
    assert_eq!(a.events(), &events[..]);
    assert_eq!(b, &events[1..]);
    assert!(!a.is_encoded(), "encoded only when a stream sends it");
}
