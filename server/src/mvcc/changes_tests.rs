//! Both ways of finding a range's changes (by key, by revision) answer the
//! same, on random histories of puts, deletes and multi-key revisions, for
//! single keys, ranges and whole-keyspace ranges; within a byte budget each
//! answers a prefix that ends with a whole revision.

use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::store::MvccStore;
use crate::storage::mem::MemEngine;
use crate::storage::WriteBatch;

fn random_store(seed: u64) -> MvccStore {
    let s = MvccStore::open(Arc::new(MemEngine::new())).unwrap();
    let mut rng = StdRng::seed_from_u64(seed);
    for _ in 0..200 {
        let mut t = s.write();
        for _ in 0..rng.gen_range(1..4) {
            let k = format!("k{:02}", rng.gen_range(0..30));
            if rng.gen_bool(0.8) {
                let v = vec![b'v'; rng.gen_range(1..60)];
                t.put(k.as_bytes(), &v, 0);
            } else {
                t.delete_range(k.as_bytes(), b"");
            }
        }
        t.commit(WriteBatch::new()).unwrap();
    }
    s
}

#[test]
fn by_key_and_by_revision_agree() {
    for seed in 0..20 {
        let s = random_store(seed);
        let r = s.read();
        let now = s.current_revision();
        let mut rng = StdRng::seed_from_u64(seed + 1000);
        let ranges: [(&[u8], &[u8]); 4] = [(b"k07", b""), (b"k1", b"k2"), (b"k", b"\0"), (b"\0", b"\0")];
        for (key, end) in ranges {
            for _ in 0..10 {
                let rev = rng.gen_range(1..=now + 1);
                let until = if rng.gen_bool(0.2) {
                    i64::MAX
                } else {
                    rng.gen_range(rev..=now + 5)
                };
                let last = until.min(now);
                let by_key = r.changes_by_key(key, end, rev, until, usize::MAX).unwrap();
                let by_rev = r.changes_by_revision(key, end, rev, last, until, usize::MAX).unwrap();
                let case = format!("seed {seed}: {key:?}..{end:?} from {rev} until {until}");
                assert_eq!(by_key, by_rev, "{case}");
                // Within a budget, each way answers a prefix of the whole
                // that ends with a whole revision.
                let budget = rng.gen_range(1..500);
                for (way, (part, covered)) in [
                    ("by key", r.changes_by_key(key, end, rev, until, budget).unwrap()),
                    (
                        "by revision",
                        r.changes_by_revision(key, end, rev, last, until, budget).unwrap(),
                    ),
                ] {
                    assert_eq!(part[..], by_key.0[..part.len()], "{way}, budget {budget}, {case}");
                    if part.len() < by_key.0.len() {
                        assert!(!part.is_empty(), "{way}: one whole revision always comes, {case}");
                        assert_eq!(covered, part.last().unwrap().0.main, "{way}, {case}");
                        assert_ne!(by_key.0[part.len()].0.main, covered, "{way} split a revision, {case}");
                    } else {
                        assert_eq!(covered, until, "{way}, {case}");
                    }
                }
            }
        }
    }
}
