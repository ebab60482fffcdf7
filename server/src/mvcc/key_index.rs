//! The revision history of one key: etcd's `keyIndex`.
//!
//! A key's history is a list of *generations*. A generation runs from the put
//! that created the key to the delete (tombstone) that ended it; the last
//! generation is the live one and is empty while the key does not exist. The
//! version of a key is its position within its generation, which is why a
//! delete resets it.
//!
//! Worked example: `put(1.0); put(2.0); tombstone(3.0); put(4.0);
//! tombstone(5.0)` on key "foo" gives
//!
//! ```text
//! generations:  {1.0, 2.0, 3.0(t)}  {4.0, 5.0(t)}  {}
//! ```
//!
//! Reading at revision 2 finds the first generation and answers modified 2.0,
//! created 1.0, version 2. Reading at 3 finds nothing: revision 3 deleted the
//! key, and so does reading at 5 or later.
//!
//! Compacting at `rev` drops every revision `<= rev` except the largest one
//! of the generation that is live at `rev`, because that one still answers
//! reads at `rev`. A tombstone kept that way answers nothing, so it is dropped
//! with its generation. Empty generations other than the last go too; once
//! only the empty live generation is left, the key leaves the index.
//!
//! ```text
//! compact(2):  {2.0, 3.0(t)}  {4.0, 5.0(t)}  {}
//! compact(4):  {4.0, 5.0(t)}  {}
//! compact(5):  {}            -> the key is removed from the index
//! ```

use std::collections::BTreeSet;

use super::revision::Revision;

/// One life of a key: from the put that created it to its tombstone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Generation {
    /// Number of writes in this generation, counted from its creation (kept
    /// through compaction, so versions stay right when early revisions go).
    pub ver: i64,
    /// The revision that created the key in this generation.
    pub created: Revision,
    /// Every revision of this generation still present, ascending; the last
    /// one is the tombstone when the generation is closed.
    pub revs: Vec<Revision>,
}

impl Generation {
    fn is_empty(&self) -> bool {
        self.revs.is_empty()
    }

    /// Index of the newest revision with `main <= at_rev`, walking from the
    /// newest.
    fn newest_at_or_below(&self, at_rev: i64) -> Option<usize> {
        self.revs.iter().rposition(|r| r.main <= at_rev)
    }
}

/// The history of one key. Built only through [`KeyIndex::put`],
/// [`KeyIndex::restore`] and [`KeyIndex::tombstone`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyIndex {
    pub key: Vec<u8>,
    /// The latest revision that touched the key (put or tombstone).
    pub modified: Revision,
    pub generations: Vec<Generation>,
}

/// What a read at a revision sees of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyAt {
    pub modified: Revision,
    pub created: Revision,
    pub version: i64,
}

impl KeyIndex {
    pub fn new(key: Vec<u8>) -> Self {
        Self {
            key,
            modified: Revision::default(),
            generations: Vec::new(),
        }
    }

    /// Records a put at `rev`. Revisions only grow; a put at or below
    /// `modified` is a caller bug and is ignored so the history stays sorted.
    pub fn put(&mut self, rev: Revision) {
        debug_assert!(rev > self.modified, "put {rev:?} not after {:?}", self.modified);
        if rev <= self.modified {
            return;
        }
        if self.generations.is_empty() {
            self.generations.push(Generation::default());
        }
        let g = self.generations.last_mut().expect("pushed above");
        if g.revs.is_empty() {
            g.created = rev;
        }
        g.revs.push(rev);
        g.ver += 1;
        self.modified = rev;
    }

    /// Starts a history from a stored value whose earlier revisions were
    /// compacted away (used when rebuilding the index at start-up).
    pub fn restore(&mut self, created: Revision, modified: Revision, ver: i64) {
        debug_assert!(self.generations.is_empty());
        self.modified = modified;
        self.generations.push(Generation {
            ver,
            created,
            revs: vec![modified],
        });
    }

    /// Records a deletion at `rev` and opens a new, empty generation.
    /// Returns `false` (and changes nothing) when the key does not exist.
    pub fn tombstone(&mut self, rev: Revision) -> bool {
        match self.generations.last() {
            Some(g) if !g.is_empty() => {}
            _ => return false,
        }
        self.put(rev);
        self.generations.push(Generation::default());
        true
    }

    /// Only the empty live generation is left: the key has no history.
    pub fn is_empty(&self) -> bool {
        self.generations.len() == 1 && self.generations[0].is_empty()
    }

    /// The generation holding the key's state at `rev`, or `None` when the
    /// key did not exist at `rev` (before its first put, or in the gap after
    /// a tombstone).
    fn find_generation(&self, rev: i64) -> Option<&Generation> {
        let last = self.generations.len().checked_sub(1)?;
        for (i, g) in self.generations.iter().enumerate().rev() {
            let (Some(first), Some(newest)) = (g.revs.first(), g.revs.last()) else {
                continue;
            };
            if i != last && newest.main <= rev {
                // A closed generation whose tombstone is at or below rev: the
                // key was deleted and not yet recreated at rev.
                return None;
            }
            if first.main <= rev {
                return Some(g);
            }
        }
        None
    }

    /// The key's state as a read at `at_rev` sees it.
    pub fn get(&self, at_rev: i64) -> Option<KeyAt> {
        let g = self.find_generation(at_rev)?;
        let n = g.newest_at_or_below(at_rev)?;
        Some(KeyAt {
            modified: g.revs[n],
            created: g.created,
            version: g.ver - (g.revs.len() - n - 1) as i64,
        })
    }

    /// Whether a read at `at_rev` sees the key (`get(at_rev).is_some()`).
    /// When nothing changed the key after `at_rev`, its state then is its
    /// state now, known without walking the revisions: the count of a
    /// range read asks this of every key after the page it returns.
    pub fn exists_at(&self, at_rev: i64) -> bool {
        if self.modified.main <= at_rev {
            // A tombstone leaves an empty live generation behind it.
            return self.generations.last().is_some_and(|g| !g.is_empty());
        }
        self.get(at_rev).is_some()
    }

    /// Every revision with `main >= rev`, oldest first; when one main
    /// revision touched the key several times, only its last change counts
    /// (the earlier ones were never visible outside their txn).
    pub fn since(&self, rev: i64) -> Vec<Revision> {
        let since = Revision::new(rev, 0);
        // Start from the newest generation created before `since`.
        let mut gi = self.generations.len().saturating_sub(1);
        while gi > 0 {
            let g = &self.generations[gi];
            if !g.is_empty() && since > g.created {
                break;
            }
            gi -= 1;
        }
        let mut revs: Vec<Revision> = Vec::new();
        let mut last = 0;
        for g in &self.generations[gi..] {
            for &r in &g.revs {
                if since > r {
                    continue;
                }
                if r.main == last {
                    if let Some(slot) = revs.last_mut() {
                        *slot = r;
                    }
                    continue;
                }
                revs.push(r);
                last = r.main;
            }
        }
        revs
    }

    /// Finds the generation live at `at_rev` and adds the revision a read at
    /// `at_rev` needs to `available`. Returns the generation's index and the
    /// kept revision's index in it.
    fn do_compact(&self, at_rev: i64, available: &mut BTreeSet<Revision>) -> (usize, Option<usize>) {
        let mut gi = 0;
        // Skip closed generations whose tombstone is at or below at_rev.
        while gi + 1 < self.generations.len() {
            match self.generations[gi].revs.last() {
                Some(t) if t.main > at_rev => break,
                _ => gi += 1,
            }
        }
        let ri = self.generations[gi].newest_at_or_below(at_rev);
        if let Some(i) = ri {
            available.insert(self.generations[gi].revs[i]);
        }
        (gi, ri)
    }

    /// Drops the history a read at `at_rev` or later cannot need; records the
    /// revisions that stay in `available`. See the module doc for an example.
    pub fn compact(&mut self, at_rev: i64, available: &mut BTreeSet<Revision>) {
        if self.generations.is_empty() || self.is_empty() {
            return;
        }
        let (mut gi, ri) = self.do_compact(at_rev, available);
        let last = self.generations.len() - 1;
        let g = &mut self.generations[gi];
        if !g.is_empty() {
            if let Some(i) = ri {
                g.revs.drain(..i);
            }
            // Only the tombstone of a closed generation is left: it answers
            // no read, so the generation goes.
            if g.revs.len() == 1 && gi != last {
                available.remove(&g.revs[0]);
                gi += 1;
            }
        }
        self.generations.drain(..gi);
    }

    /// Adds to `available` the revisions [`KeyIndex::compact`] at `at_rev`
    /// would keep, without changing anything.
    pub fn keep(&self, at_rev: i64, available: &mut BTreeSet<Revision>) {
        if self.generations.is_empty() || self.is_empty() {
            return;
        }
        let (gi, ri) = self.do_compact(at_rev, available);
        let g = &self.generations[gi];
        if let Some(i) = ri {
            if i == g.revs.len() - 1 && gi != self.generations.len() - 1 {
                available.remove(&g.revs[i]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(main: i64) -> Revision {
        Revision::new(main, 0)
    }

    /// put(2) put(4) tomb(6) put(8) put(10) tomb(12) put(14) put(16): the
    /// history etcd's own key_index tests use.
    fn sample() -> KeyIndex {
        let mut ki = KeyIndex::new(b"foo".to_vec());
        ki.put(r(2));
        ki.put(r(4));
        assert!(ki.tombstone(r(6)));
        ki.put(r(8));
        ki.put(r(10));
        assert!(ki.tombstone(r(12)));
        ki.put(r(14));
        ki.put(r(16));
        ki
    }

    fn at(modified: i64, created: i64, version: i64) -> Option<KeyAt> {
        Some(KeyAt {
            modified: r(modified),
            created: r(created),
            version,
        })
    }

    #[test]
    fn exists_at_agrees_with_get_through_compactions() {
        let mut histories = vec![sample(), KeyIndex::new(b"never".to_vec())];
        let mut restored = KeyIndex::new(b"restored".to_vec());
        restored.restore(r(3), r(7), 4);
        histories.push(restored);
        for compact_at in [0, 3, 6, 9, 12, 15, 16, 18] {
            let mut ki = sample();
            ki.compact(compact_at, &mut BTreeSet::new());
            histories.push(ki);
        }
        for ki in &histories {
            for rev in 0..20 {
                assert_eq!(ki.exists_at(rev), ki.get(rev).is_some(), "{ki:?} at {rev}");
            }
        }
    }

    #[test]
    fn get_at_revisions() {
        let ki = sample();
        let cases = [
            (17, at(16, 14, 2)),
            (16, at(16, 14, 2)),
            (15, at(14, 14, 1)),
            (14, at(14, 14, 1)),
            (13, None),
            (12, None),
            (11, at(10, 8, 2)),
            (9, at(8, 8, 1)),
            (7, None),
            (6, None),
            (5, at(4, 2, 2)),
            (3, at(2, 2, 1)),
            (1, None),
            (0, None),
        ];
        for (rev, want) in cases {
            assert_eq!(ki.get(rev), want, "get at {rev}");
        }
    }

    #[test]
    fn tombstone_needs_a_live_key() {
        let mut ki = KeyIndex::new(b"k".to_vec());
        ki.put(r(5));
        assert!(ki.tombstone(r(7)));
        assert!(!ki.tombstone(r(8)), "second tombstone on a deleted key");
        assert_eq!(ki.modified, r(7));
        ki.put(r(9));
        assert_eq!(ki.get(9), at(9, 9, 1), "recreation starts a new version count");
    }

    #[test]
    fn since_keeps_last_sub_of_each_main() {
        let mut ki = KeyIndex::new(b"k".to_vec());
        ki.put(Revision::new(2, 0));
        ki.put(Revision::new(2, 1));
        ki.put(Revision::new(3, 0));
        assert!(ki.tombstone(Revision::new(4, 0)));
        ki.put(Revision::new(5, 0));
        assert_eq!(ki.since(0), vec![Revision::new(2, 1), r(3), r(4), r(5)]);
        assert_eq!(ki.since(3), vec![r(3), r(4), r(5)]);
        assert_eq!(ki.since(5), vec![r(5)]);
        assert_eq!(ki.since(6), vec![]);
    }

    fn revs(ki: &KeyIndex) -> Vec<Vec<i64>> {
        ki.generations
            .iter()
            .map(|g| g.revs.iter().map(|r| r.main).collect())
            .collect()
    }

    #[test]
    fn compact_walkthrough() {
        // (compact at, remaining generations, kept revisions)
        let cases: [(i64, Vec<Vec<i64>>, Vec<i64>); 9] = [
            (1, vec![vec![2, 4, 6], vec![8, 10, 12], vec![14, 16]], vec![]),
            (2, vec![vec![2, 4, 6], vec![8, 10, 12], vec![14, 16]], vec![2]),
            (4, vec![vec![4, 6], vec![8, 10, 12], vec![14, 16]], vec![4]),
            (6, vec![vec![8, 10, 12], vec![14, 16]], vec![]),
            (8, vec![vec![8, 10, 12], vec![14, 16]], vec![8]),
            (11, vec![vec![10, 12], vec![14, 16]], vec![10]),
            (12, vec![vec![14, 16]], vec![]),
            (15, vec![vec![14, 16]], vec![14]),
            (16, vec![vec![16]], vec![16]),
        ];
        for (rev, want_gens, want_keep) in cases {
            // Compacting a fresh copy and compacting incrementally agree.
            let mut ki = sample();
            let mut avail = BTreeSet::new();
            ki.compact(rev, &mut avail);
            assert_eq!(revs(&ki), want_gens, "compact({rev})");
            let kept: Vec<i64> = avail.iter().map(|r| r.main).collect();
            assert_eq!(kept, want_keep, "available after compact({rev})");

            let mut keep = BTreeSet::new();
            sample().keep(rev, &mut keep);
            assert_eq!(keep, avail, "keep({rev}) agrees with compact({rev})");
        }
        // Incremental compaction reaches the same state.
        let mut ki = sample();
        for rev in [2, 4, 6, 8, 11, 12, 15, 16] {
            ki.compact(rev, &mut BTreeSet::new());
        }
        assert_eq!(revs(&ki), vec![vec![16]]);
        assert_eq!(ki.get(16), at(16, 14, 2), "version survives compaction");
    }

    #[test]
    fn compact_removes_deleted_key() {
        let mut ki = KeyIndex::new(b"k".to_vec());
        ki.put(r(1));
        ki.put(r(2));
        assert!(ki.tombstone(r(3)));
        ki.put(r(4));
        assert!(ki.tombstone(r(5)));
        ki.compact(2, &mut BTreeSet::new());
        assert_eq!(revs(&ki), vec![vec![2, 3], vec![4, 5], vec![]]);
        ki.compact(4, &mut BTreeSet::new());
        assert_eq!(revs(&ki), vec![vec![4, 5], vec![]]);
        ki.compact(5, &mut BTreeSet::new());
        assert!(ki.is_empty());
    }

    #[test]
    fn restore_keeps_created_and_version() {
        let mut ki = KeyIndex::new(b"k".to_vec());
        ki.restore(r(3), r(9), 4);
        assert_eq!(ki.get(9), at(9, 3, 4));
        ki.put(r(10));
        assert_eq!(ki.get(10), at(10, 3, 5));
        assert_eq!(ki.get(8), None, "revisions before the restored one are gone");
    }
}
