//! The in-memory index: every key's [`KeyIndex`], ordered by key, so a range
//! read finds the revisions to fetch without touching storage.
//!
//! Range ends follow etcd: an empty end means the single key `key`; the end
//! `"\0"` means every key `>= key`; otherwise the range is `[key, end)` (empty
//! when `end <= key`).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use super::key_index::{KeyAt, KeyIndex};
use super::revision::Revision;

/// How a raw `range_end` bounds a range starting at `key`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeEnd<'a> {
    /// Only the start key itself.
    Single,
    /// Every key at or after the start key.
    Unbounded,
    /// Keys strictly before this one.
    Before(&'a [u8]),
}

impl<'a> RangeEnd<'a> {
    pub fn from_raw(end: &'a [u8]) -> Self {
        match end {
            [] => RangeEnd::Single,
            [0] => RangeEnd::Unbounded,
            e => RangeEnd::Before(e),
        }
    }

    fn admits(self, key: &[u8]) -> bool {
        match self {
            RangeEnd::Single => false,
            RangeEnd::Unbounded => true,
            RangeEnd::Before(e) => key < e,
        }
    }

    /// Whether `key` lies in the range that starts at `start`.
    pub fn contains(self, start: &[u8], key: &[u8]) -> bool {
        match self {
            RangeEnd::Single => key == start,
            end => key >= start && end.admits(key),
        }
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TreeIndex {
    tree: BTreeMap<Vec<u8>, KeyIndex>,
}

impl TreeIndex {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of keys with a history (live or deleted but not compacted).
    pub fn len(&self) -> usize {
        self.tree.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }

    pub fn get(&self, key: &[u8], at_rev: i64) -> Option<KeyAt> {
        self.tree.get(key)?.get(at_rev)
    }

    pub fn key_index(&self, key: &[u8]) -> Option<&KeyIndex> {
        self.tree.get(key)
    }

    pub fn key_index_mut(&mut self, key: &[u8]) -> Option<&mut KeyIndex> {
        self.tree.get_mut(key)
    }

    /// Puts back (or removes, with `None`) a key's whole history; used to
    /// undo an aborted write txn and to rebuild the index.
    pub fn set_key_index(&mut self, key: &[u8], ki: Option<KeyIndex>) {
        match ki {
            Some(ki) => {
                self.tree.insert(key.to_vec(), ki);
            }
            None => {
                self.tree.remove(key);
            }
        }
    }

    /// The key indexes in the range, in key order. The range is handed to
    /// the tree as bounds, so walking it compares no keys: a read that
    /// counts every key after its page (a paginated list) walks most of
    /// the range on each page.
    fn in_range<'s>(&'s self, key: &'s [u8], end: &'s [u8]) -> impl Iterator<Item = &'s KeyIndex> + 's {
        let upper = match RangeEnd::from_raw(end) {
            RangeEnd::Single => Some(Bound::Included(key)),
            RangeEnd::Unbounded => Some(Bound::Unbounded),
            RangeEnd::Before(e) if e > key => Some(Bound::Excluded(e)),
            // Empty; the tree refuses bounds that cross.
            RangeEnd::Before(_) => None,
        };
        upper
            .into_iter()
            .flat_map(move |upper| self.tree.range::<[u8], _>((Bound::Included(key), upper)))
            .map(|(_, ki)| ki)
    }

    /// The revision a read at `at_rev` sees for each of the first `limit`
    /// keys of the range that existed then (every one for `None`), in key
    /// order, and how many keys of the range existed then (etcd's `count`,
    /// which counts past the limit).
    pub fn revisions(&self, key: &[u8], end: &[u8], at_rev: i64, limit: Option<usize>) -> (Vec<Revision>, usize) {
        let limit = limit.unwrap_or(usize::MAX);
        let mut revs = Vec::new();
        let mut keys = self.in_range(key, end);
        while revs.len() < limit {
            let Some(ki) = keys.next() else { break };
            if let Some(at) = ki.get(at_rev) {
                revs.push(at.modified);
            }
        }
        let past_limit = keys.filter(|ki| ki.exists_at(at_rev)).count();
        let count = revs.len() + past_limit;
        (revs, count)
    }

    /// Like [`TreeIndex::revisions`], with the keys.
    pub fn range(&self, key: &[u8], end: &[u8], at_rev: i64) -> Vec<(Vec<u8>, Revision)> {
        self.in_range(key, end)
            .filter_map(|ki| ki.get(at_rev).map(|at| (ki.key.clone(), at.modified)))
            .collect()
    }

    /// Records a put of `key` at `rev`.
    pub fn put(&mut self, key: &[u8], rev: Revision) {
        match self.tree.get_mut(key) {
            Some(ki) => ki.put(rev),
            None => {
                let mut ki = KeyIndex::new(key.to_vec());
                ki.put(rev);
                self.tree.insert(key.to_vec(), ki);
            }
        }
    }

    /// Records a deletion of `key` at `rev`; `false` when the key does not
    /// exist.
    pub fn tombstone(&mut self, key: &[u8], rev: Revision) -> bool {
        self.tree.get_mut(key).is_some_and(|ki| ki.tombstone(rev))
    }

    /// Every change in the range with `main >= rev`, in revision order (the
    /// watch catch-up path).
    pub fn range_since(&self, key: &[u8], end: &[u8], rev: i64) -> Vec<Revision> {
        let mut revs: Vec<Revision> = self.in_range(key, end).flat_map(|ki| ki.since(rev)).collect();
        revs.sort();
        revs
    }

    /// Whether the range holds at least `n` keys (counting stops there).
    pub fn has_at_least(&self, key: &[u8], end: &[u8], n: usize) -> bool {
        self.in_range(key, end).take(n).count() == n
    }

    /// Compacts every key at `rev`, drops keys left without history and
    /// returns the revisions that must stay in storage. The store compacts
    /// a step at a time ([`TreeIndex::compact_some`]); this is the whole
    /// compaction the tests check steps and [`TreeIndex::keep`] against.
    #[cfg(test)]
    pub fn compact(&mut self, rev: i64) -> BTreeSet<Revision> {
        let mut available = BTreeSet::new();
        let mut from = Vec::new();
        while let Some(next) = self.compact_some(rev, &from, usize::MAX, &mut available) {
            from = next;
        }
        available
    }

    /// Compacts at most `max` keys at `rev`, from `from` on, and drops those
    /// left without history (the background compaction takes the index
    /// lock once per such step).
    /// Adds the revisions that must stay in storage to `available` and
    /// returns the key to go on from, `None` when no key is left.
    pub fn compact_some(
        &mut self,
        rev: i64,
        from: &[u8],
        max: usize,
        available: &mut BTreeSet<Revision>,
    ) -> Option<Vec<u8>> {
        // Planted (`compact-drops-latest`): a key not written since `rev`
        // loses its live version too.
        let drop_latest = crate::planted::active("compact-drops-latest");
        let mut emptied = Vec::new();
        let mut next = None;
        let keys = self
            .tree
            .range_mut::<[u8], _>((Bound::Included(from), Bound::Unbounded));
        for (i, (key, ki)) in keys.enumerate() {
            if i == max {
                next = Some(key.clone());
                break;
            }
            ki.compact(rev, available);
            if ki.is_empty() || (drop_latest && ki.modified.main <= rev) {
                emptied.push(key.clone());
            }
        }
        for key in emptied {
            self.tree.remove(&key);
        }
        next
    }

    /// The revisions a compaction at `rev` would keep.
    pub fn keep(&self, rev: i64) -> BTreeSet<Revision> {
        let mut available = BTreeSet::new();
        for ki in self.tree.values() {
            ki.keep(rev, &mut available);
        }
        available
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(main: i64) -> Revision {
        Revision::new(main, 0)
    }

    fn index() -> TreeIndex {
        let mut ti = TreeIndex::new();
        ti.put(b"a", r(2));
        ti.put(b"b", r(3));
        ti.put(b"c", r(4));
        ti.put(b"b", r(5));
        assert!(ti.tombstone(b"c", r(6)));
        ti
    }

    #[test]
    fn range_end_forms() {
        let ti = index();
        let revs = |key: &[u8], end: &[u8], at: i64| ti.revisions(key, end, at, None).0;
        assert_eq!(revs(b"b", b"", 6), vec![r(5)], "empty end: one key");
        assert_eq!(revs(b"a", b"\0", 6), vec![r(2), r(5)], "\\0: all keys >= key");
        assert_eq!(revs(b"", b"\0", 4), vec![r(2), r(3), r(4)]);
        assert_eq!(revs(b"a", b"c", 6), vec![r(2), r(5)]);
        assert_eq!(revs(b"a", b"b", 6), vec![r(2)], "end is exclusive");
        assert_eq!(revs(b"c", b"a", 6), vec![], "end before key");
        assert_eq!(revs(b"b", b"b", 6), vec![], "end equal to key");
        assert_eq!(revs(b"zz", b"", 6), vec![]);
        assert_eq!(revs(b"c", b"", 5), vec![r(4)], "deleted key read before its delete");
        let keys: Vec<Vec<u8>> = ti.range(b"a", b"\0", 4).into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
    }

    #[test]
    fn a_limit_collects_the_first_keys_and_counts_them_all() {
        let ti = index();
        assert_eq!(ti.revisions(b"", b"\0", 4, Some(2)), (vec![r(2), r(3)], 3));
        assert_eq!(ti.revisions(b"", b"\0", 6, Some(1)), (vec![r(2)], 2), "c deleted at 6");
        assert_eq!(ti.revisions(b"", b"\0", 6, Some(0)), (vec![], 2), "count only");
        assert_eq!(ti.revisions(b"", b"\0", 6, Some(5)), (vec![r(2), r(5)], 2));
    }

    #[test]
    fn tombstone_missing_key() {
        let mut ti = index();
        assert!(!ti.tombstone(b"zz", r(7)));
        assert!(!ti.tombstone(b"c", r(7)), "already deleted");
    }

    #[test]
    fn range_since_sorted_by_revision() {
        let ti = index();
        assert_eq!(ti.range_since(b"a", b"\0", 3), vec![r(3), r(4), r(5), r(6)]);
        assert_eq!(ti.range_since(b"b", b"", 0), vec![r(3), r(5)]);
    }

    #[test]
    fn compact_drops_deleted_keys_and_agrees_with_keep() {
        let mut ti = index();
        let keep = ti.keep(6);
        let avail = ti.compact(6);
        assert_eq!(keep, avail);
        assert_eq!(avail.into_iter().collect::<Vec<_>>(), vec![r(2), r(5)]);
        assert_eq!(ti.len(), 2, "c was deleted at 6 and leaves the index");
        assert_eq!(ti.get(b"b", 6).map(|a| a.version), Some(2));
    }

    #[test]
    fn compaction_in_steps_equals_compaction_at_once() {
        let mut whole = index();
        let want = whole.compact(6);
        let mut stepped = index();
        let (mut got, mut from, mut steps) = (BTreeSet::new(), Vec::new(), 0);
        while let Some(next) = stepped.compact_some(6, &from, 1, &mut got) {
            assert!(next > from, "each step goes on after the last");
            from = next;
            steps += 1;
        }
        assert_eq!(steps, 2, "three keys, one per step");
        assert_eq!((got, stepped), (want, whole));
    }
}
