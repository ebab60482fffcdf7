//! The reader answers what a read txn answers, and loads the values of a
//! large range with the store lock free: an engine whose snapshot reads
//! try to take the lock for writing, as an apply would, records whether
//! they could.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use super::super::state::State;
use super::super::test_store::{compact, del, put};
use super::super::{MvccStore, RangeOptions, ReadView};
use crate::storage::mem::MemEngine;
use crate::storage::{Cf, Engine, KvRead, Result, Scan, SharedEngine, WriteBatch};

/// A MemEngine whose snapshots' point reads try the store lock.
#[derive(Default)]
struct Probe {
    inner: MemEngine,
    state: OnceLock<Arc<RwLock<State>>>,
    /// Snapshot reads that found the lock free, and that did not.
    free: AtomicUsize,
    held: AtomicUsize,
}

struct ProbeSnapshot<'a> {
    probe: &'a Probe,
    inner: Box<dyn KvRead + Send + 'a>,
}

impl KvRead for ProbeSnapshot<'_> {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(state) = self.probe.state.get() {
            let counter = match state.try_write() {
                Ok(_) => &self.probe.free,
                Err(_) => &self.probe.held,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        self.inner.get(cf, key)
    }
    fn scan(&self, cf: Cf, start: &[u8], end: Option<&[u8]>, f: &mut dyn FnMut(&[u8], &[u8]) -> Scan) -> Result<()> {
        self.inner.scan(cf, start, end, f)
    }
    fn last_in(&self, cf: Cf, start: &[u8], end: Option<&[u8]>) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        self.inner.last_in(cf, start, end)
    }
}

impl KvRead for Probe {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.inner.get(cf, key)
    }
    fn scan(&self, cf: Cf, start: &[u8], end: Option<&[u8]>, f: &mut dyn FnMut(&[u8], &[u8]) -> Scan) -> Result<()> {
        self.inner.scan(cf, start, end, f)
    }
    fn last_in(&self, cf: Cf, start: &[u8], end: Option<&[u8]>) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        self.inner.last_in(cf, start, end)
    }
}

impl Engine for Probe {
    fn write(&self, batch: WriteBatch, sync: bool) -> Result<()> {
        self.inner.write(batch, sync)
    }
    fn sync(&self) -> Result<()> {
        self.inner.sync()
    }
    fn snapshot(&self) -> Box<dyn KvRead + Send + '_> {
        Box::new(ProbeSnapshot {
            probe: self,
            inner: self.inner.snapshot(),
        })
    }
    fn size_on_disk(&self) -> u64 {
        self.inner.size_on_disk()
    }
    fn size_of(&self, cfs: &[Cf]) -> u64 {
        self.inner.size_of(cfs)
    }
    fn compact_all(&self) -> Result<()> {
        self.inner.compact_all()
    }
}

fn all(rev: i64) -> RangeOptions {
    RangeOptions {
        rev,
        ..Default::default()
    }
}

#[test]
fn a_large_range_loads_its_values_with_the_lock_free_and_answers_as_a_read_txn() {
    let probe = Arc::new(Probe::default());
    let engine: SharedEngine = probe.clone();
    let s = MvccStore::open(engine).unwrap();
    probe.state.set(s.state.clone()).unwrap();
    for i in 0..300 {
        put(&s, &format!("k{i:03}"), &i.to_string());
    }
    for i in 0..50 {
        del(&s, &format!("k{i:03}"));
    }
    compact(&s, 200);
    s.wait_compaction();
    let at_compaction = s.read().range(b"", b"\0", all(200)).unwrap();
    let now = s.read().range(b"", b"\0", all(0)).unwrap();
    assert_eq!(now.kvs.len(), 250);

    assert_eq!(s.reader().range(b"", b"\0", all(0)).unwrap(), now);
    assert_eq!(s.reader().range(b"", b"\0", all(200)).unwrap(), at_compaction);
    let (free, held) = (probe.free.load(Ordering::Relaxed), probe.held.load(Ordering::Relaxed));
    assert_eq!((free, held), (250 + 199, 0), "every value read with the lock free");

    // Small ranges read under the lock, and limits, counts and keys-only
    // answer as a read txn's.
    for opts in [
        RangeOptions { limit: 10, ..all(0) },
        RangeOptions {
            count_only: true,
            ..all(0)
        },
        RangeOptions {
            keys_only: true,
            ..all(0)
        },
        RangeOptions { limit: 64, ..all(250) },
        RangeOptions { limit: 65, ..all(250) },
    ] {
        assert_eq!(
            s.reader().range(b"k1", b"k3", opts).unwrap(),
            s.read().range(b"k1", b"k3", opts).unwrap(),
            "{opts:?}"
        );
    }
    assert_eq!(s.reader().range(b"k100", b"", all(0)).unwrap().kvs[0].value, b"100");
    assert!(s.reader().range(b"", b"\0", all(199)).is_err(), "compacted");
    assert!(s.reader().range(b"", b"\0", all(400)).is_err(), "future");
}
