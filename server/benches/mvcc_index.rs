//! Micro-benchmark of the in-memory MVCC key index (`mvcc::index::TreeIndex`):
//! recording puts of new and existing keys, and point lookups at the latest
//! revision — the index work every Put and every Range does.

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use timon_server::mvcc::index::TreeIndex;
use timon_server::mvcc::Revision;

const KEYS: i64 = 10_000;

fn key(i: i64) -> Vec<u8> {
    format!("/registry/pods/default/{i:08}").into_bytes()
}

/// An index holding KEYS keys, one revision each (revisions 2..).
fn filled() -> TreeIndex {
    let mut idx = TreeIndex::new();
    for i in 0..KEYS {
        idx.put(&key(i), Revision::new(i + 2, 0));
    }
    idx
}

fn index(c: &mut Criterion) {
    let keys: Vec<Vec<u8>> = (0..KEYS).map(key).collect();
    let mut g = c.benchmark_group("mvcc_index");
    g.throughput(Throughput::Elements(KEYS as u64));
    g.bench_function("put_new_keys_10k", |b| {
        b.iter_batched(
            TreeIndex::new,
            |mut idx| {
                for (i, k) in keys.iter().enumerate() {
                    idx.put(k, Revision::new(i as i64 + 2, 0));
                }
                idx
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("put_existing_keys_10k", |b| {
        b.iter_batched(
            filled,
            |mut idx| {
                for (i, k) in keys.iter().enumerate() {
                    idx.put(k, Revision::new(KEYS + i as i64 + 2, 0));
                }
                idx
            },
            BatchSize::LargeInput,
        )
    });
    let idx = filled();
    let at = KEYS + 2;
    g.bench_function("get_latest_10k", |b| {
        b.iter(|| {
            for k in &keys {
                black_box(idx.get(k, at));
            }
        })
    });
    g.finish();
}

criterion_group!(benches, index);
criterion_main!(benches);
