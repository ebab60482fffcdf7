//! Micro-benchmark of watch fan-out: one committed Put published to the
//! watch hub with N synced watchers on its prefix, until every watcher's
//! queue has received the event.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use timon_server::mvcc::MvccStore;
use timon_server::raft::StoreHandle;
use timon_server::storage::mem::MemEngine;
use timon_server::storage::WriteBatch;
use timon_server::watch::{queue, QueueReceiver, WatchHub, WatchSpec, WatcherKey};

fn fanout(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _enter = rt.enter();
    let mut g = c.benchmark_group("watch_fanout");
    for watchers in [10usize, 100, 1000] {
        let store = Arc::new(StoreHandle::new(
            MvccStore::open(Arc::new(MemEngine::new())).expect("open store"),
        ));
        let hub = WatchHub::start(store.clone());
        let mut receivers: Vec<QueueReceiver> = Vec::with_capacity(watchers);
        for w in 0..watchers {
            let (tx, rx) = queue(1024, 1 << 20);
            let key = WatcherKey {
                stream: w as u64,
                watch_id: 0,
            };
            let spec = WatchSpec {
                key: b"/bench/".to_vec(),
                range_end: b"/bench0".to_vec(),
                start_rev: 0,
                filters: vec![],
            };
            hub.watch(key, spec, tx);
            receivers.push(rx);
        }
        g.throughput(Throughput::Elements(watchers as u64));
        g.bench_with_input(BenchmarkId::new("put_to_all_watchers", watchers), &watchers, |b, _| {
            b.iter(|| {
                let s = store.current();
                let mut txn = s.write();
                txn.put(b"/bench/key", &[b'v'; 256], 0);
                let events = txn.commit(WriteBatch::new()).expect("commit");
                let rev = events[0].kv.as_ref().map_or(0, |kv| kv.mod_revision);
                hub.notify(rev, &events);
                rt.block_on(async {
                    for rx in &mut receivers {
                        rx.recv().await.expect("queue open");
                    }
                });
            })
        });
    }
    g.finish();
}

criterion_group!(benches, fanout);
criterion_main!(benches);
