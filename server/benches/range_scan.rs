//! Micro-benchmark of a range read through the MVCC store on the in-memory
//! engine: the index walk, the value fetches and the decode, for a
//! Kubernetes-sized page (500 of 10 000 objects of 256 bytes) and for a
//! single key, as `apply::range::range` serves them.

use std::sync::Arc;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use timon_proto::etcdserverpb::RangeRequest;
use timon_server::apply::range::range;
use timon_server::mvcc::MvccStore;
use timon_server::storage::mem::MemEngine;
use timon_server::storage::WriteBatch;

const OBJECTS: usize = 10_000;
const PREFIX: &str = "/registry/pods/default/";

fn store() -> MvccStore {
    let s = MvccStore::open(Arc::new(MemEngine::new())).expect("open store");
    let value = vec![b'v'; 256];
    for chunk in (0..OBJECTS).collect::<Vec<_>>().chunks(100) {
        let mut txn = s.write();
        for i in chunk {
            txn.put(format!("{PREFIX}{i:08}").as_bytes(), &value, 0);
        }
        txn.commit(WriteBatch::new()).expect("commit");
    }
    s
}

fn scan(c: &mut Criterion) {
    let s = store();
    let mut g = c.benchmark_group("range_scan");
    let page = RangeRequest {
        key: PREFIX.into(),
        range_end: "/registry/pods/default0".into(),
        limit: 500,
        ..Default::default()
    };
    g.throughput(Throughput::Elements(500));
    g.bench_function("prefix_page_500_of_10k", |b| {
        b.iter(|| black_box(range(&s.read(), &page).expect("range")))
    });
    let one = RangeRequest {
        key: format!("{PREFIX}{:08}", OBJECTS / 2).into_bytes(),
        ..Default::default()
    };
    g.throughput(Throughput::Elements(1));
    g.bench_function("single_key", |b| {
        b.iter(|| black_box(range(&s.read(), &one).expect("range")))
    });
    let count = RangeRequest {
        count_only: true,
        ..page.clone()
    };
    g.throughput(Throughput::Elements(OBJECTS as u64));
    g.bench_function("count_only_10k", |b| {
        b.iter(|| black_box(range(&s.read(), &count).expect("range")))
    });
    g.finish();
}

criterion_group!(benches, scan);
criterion_main!(benches);
