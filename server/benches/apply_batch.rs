//! Micro-benchmark of applying a batch of committed entries: 100 Put
//! commands, each executed in its own write txn and committed (as the state
//! machine applies raft entries), on the in-memory engine so the number is
//! apply's own CPU cost, not the disk's.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use timon_proto::etcdserverpb::PutRequest;
use timon_proto::timonpb::internal_raft_request::Request;
use timon_proto::timonpb::InternalRaftRequest;
use timon_server::apply::execute;
use timon_server::mvcc::MvccStore;
use timon_server::storage::mem::MemEngine;
use timon_server::storage::WriteBatch;

const BATCH: usize = 100;

fn entries() -> Vec<InternalRaftRequest> {
    (0..BATCH)
        .map(|i| InternalRaftRequest {
            request: Some(Request::Put(PutRequest {
                key: format!("{:08}", i % 1000).into_bytes(),
                value: vec![b'v'; 256],
                ..Default::default()
            })),
        })
        .collect()
}

fn apply(c: &mut Criterion) {
    let mut g = c.benchmark_group("apply_batch");
    g.throughput(Throughput::Elements(BATCH as u64));
    let store = MvccStore::open(Arc::new(MemEngine::new())).expect("open store");
    g.bench_function("put_100_entries", |b| {
        b.iter_batched(
            entries,
            |batch| {
                for req in batch {
                    let mut txn = store.write();
                    execute(&mut txn, req).expect("put applies");
                    txn.commit(WriteBatch::new()).expect("commit");
                }
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, apply);
criterion_main!(benches);
