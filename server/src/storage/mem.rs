//! An in-memory engine for unit tests: one ordered map per column family
//! behind a lock, so a batch is atomic and a snapshot is a clone.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::RwLock;

use super::{Cf, Engine, KvRead, Result, Scan, WriteBatch, WriteOp};

type Tables = HashMap<Cf, BTreeMap<Vec<u8>, Vec<u8>>>;

#[derive(Default)]
pub struct MemEngine {
    tables: RwLock<Tables>,
}

impl MemEngine {
    pub fn new() -> Self {
        Self::default()
    }
}

fn range_of(start: &[u8], end: Option<&[u8]>) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let hi = match end {
        Some(e) => Bound::Excluded(e.to_vec()),
        None => Bound::Unbounded,
    };
    (Bound::Included(start.to_vec()), hi)
}

fn read_tables(t: &Tables, cf: Cf, start: &[u8], end: Option<&[u8]>, f: &mut dyn FnMut(&[u8], &[u8]) -> Scan) {
    if end.is_some_and(|e| e <= start) {
        return;
    }
    if let Some(m) = t.get(&cf) {
        for (k, v) in m.range(range_of(start, end)) {
            if f(k, v) == Scan::Stop {
                break;
            }
        }
    }
}

fn last_of(t: &Tables, cf: Cf, start: &[u8], end: Option<&[u8]>) -> Option<(Vec<u8>, Vec<u8>)> {
    if end.is_some_and(|e| e <= start) {
        return None;
    }
    t.get(&cf)?
        .range(range_of(start, end))
        .next_back()
        .map(|(k, v)| (k.clone(), v.clone()))
}

impl KvRead for MemEngine {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.tables.read().unwrap().get(&cf).and_then(|m| m.get(key).cloned()))
    }
    fn scan(&self, cf: Cf, start: &[u8], end: Option<&[u8]>, f: &mut dyn FnMut(&[u8], &[u8]) -> Scan) -> Result<()> {
        read_tables(&self.tables.read().unwrap(), cf, start, end, f);
        Ok(())
    }
    fn last_in(&self, cf: Cf, start: &[u8], end: Option<&[u8]>) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        Ok(last_of(&self.tables.read().unwrap(), cf, start, end))
    }
}

/// A frozen copy of the tables.
struct MemSnapshot(Tables);

impl KvRead for MemSnapshot {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.0.get(&cf).and_then(|m| m.get(key).cloned()))
    }
    fn scan(&self, cf: Cf, start: &[u8], end: Option<&[u8]>, f: &mut dyn FnMut(&[u8], &[u8]) -> Scan) -> Result<()> {
        read_tables(&self.0, cf, start, end, f);
        Ok(())
    }
    fn last_in(&self, cf: Cf, start: &[u8], end: Option<&[u8]>) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        Ok(last_of(&self.0, cf, start, end))
    }
}

impl Engine for MemEngine {
    fn write(&self, batch: WriteBatch, _sync: bool) -> Result<()> {
        let mut t = self.tables.write().unwrap();
        for op in batch.ops {
            match op {
                WriteOp::Put { cf, key, value } => {
                    t.entry(cf).or_default().insert(key, value);
                }
                WriteOp::Delete { cf, key } => {
                    t.entry(cf).or_default().remove(&key);
                }
                WriteOp::DeleteRange { cf, start, end } => {
                    let m = t.entry(cf).or_default();
                    if start < end {
                        let doomed: Vec<Vec<u8>> = m.range(start..end).map(|(k, _)| k.clone()).collect();
                        for k in doomed {
                            m.remove(&k);
                        }
                    }
                }
            }
        }
        Ok(())
    }
    fn sync(&self) -> Result<()> {
        Ok(())
    }
    fn snapshot(&self) -> Box<dyn KvRead + Send + '_> {
        Box::new(MemSnapshot(self.tables.read().unwrap().clone()))
    }
    fn size_on_disk(&self) -> u64 {
        self.size_of(&Cf::ALL)
    }
    fn size_of(&self, cfs: &[Cf]) -> u64 {
        let t = self.tables.read().unwrap();
        cfs.iter()
            .filter_map(|cf| t.get(cf))
            .flat_map(|m| m.iter())
            .map(|(k, v)| (k.len() + v.len()) as u64)
            .sum()
    }
    fn compact_all(&self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_scan_and_snapshot() {
        let e = MemEngine::new();
        let mut b = WriteBatch::new();
        b.put(Cf::Kv, b"a".to_vec(), b"1".to_vec());
        b.put(Cf::Kv, b"b".to_vec(), b"2".to_vec());
        b.put(Cf::Kv, b"c".to_vec(), b"3".to_vec());
        e.write(b, true).unwrap();
        let snap = e.snapshot();
        let mut b = WriteBatch::new();
        b.delete_range(Cf::Kv, b"a".to_vec(), b"c".to_vec());
        e.write(b, true).unwrap();
        let mut seen = vec![];
        e.scan(Cf::Kv, b"", None, &mut |k, _| {
            seen.push(k.to_vec());
            Scan::Continue
        })
        .unwrap();
        assert_eq!(seen, vec![b"c".to_vec()]);
        assert_eq!(snap.get(Cf::Kv, b"a").unwrap(), Some(b"1".to_vec()));
        assert_eq!(e.last_in(Cf::Kv, b"a", Some(b"c")).unwrap(), None);
        assert_eq!(
            snap.last_in(Cf::Kv, b"a", Some(b"c")).unwrap().unwrap().0,
            b"b".to_vec()
        );
    }
}
