//! `HashKV` and `Hash` over the in-memory engine. Equality with etcd's own
//! hashes is checked against a real etcd in `tests/hash.rs`.

use super::super::test_store::{self, del, engine, put};
use super::super::{MvccError, MvccStore};
use crate::storage::keys::meta;
use crate::storage::{Cf, Scan, WriteBatch};

fn store() -> MvccStore {
    MvccStore::open(engine()).unwrap()
}

/// Compacts at `rev`, storage included.
fn compact(s: &MvccStore, rev: i64) {
    test_store::compact(s, rev);
    s.wait_compaction();
}

/// The hash written out by hand: "key", then every stored revision key and
/// value with main revision <= `rev`, in storage order.
fn expected(s: &MvccStore, rev: i64) -> u32 {
    let mut bytes = b"key".to_vec();
    s.engine()
        .scan(Cf::Kv, &[], None, &mut |k, v| {
            if i64::from_be_bytes(k[0..8].try_into().unwrap()) <= rev {
                bytes.extend_from_slice(k);
                bytes.extend_from_slice(v);
            }
            Scan::Continue
        })
        .unwrap();
    crc32c::crc32c(&bytes)
}

#[test]
fn hashes_every_revision_up_to_the_one_asked_for() {
    let s = store();
    put(&s, "a", "1");
    put(&s, "b", "2");
    del(&s, "a");
    let r4 = put(&s, "a", "3");
    put(&s, "b", "4");
    for rev in 1..=r4 + 1 {
        let h = s.hash_kv(rev).unwrap();
        assert_eq!(h.hash, expected(&s, rev), "rev {rev}");
        assert_eq!((h.current_rev, h.compact_rev, h.hash_rev), (r4 + 1, -1, rev));
    }
    // Every prefix of the history hashes differently (tombstones included).
    let hashes: std::collections::BTreeSet<u32> = (1..=r4 + 1).map(|r| s.hash_kv(r).unwrap().hash).collect();
    assert_eq!(hashes.len() as i64, r4 + 1);
    let now = s.hash_kv(0).unwrap();
    assert_eq!((now.hash, now.hash_rev), (s.hash_kv(r4 + 1).unwrap().hash, r4 + 1));
}

#[test]
fn refuses_compacted_and_future_revisions_as_etcd() {
    let s = store();
    for i in 0..5 {
        put(&s, "k", &i.to_string());
    }
    compact(&s, 4);
    assert!(matches!(s.hash_kv(3), Err(MvccError::Compacted)));
    assert!(matches!(s.hash_kv(4), Err(MvccError::Compacted)));
    assert!(matches!(s.hash_kv(7), Err(MvccError::FutureRev)));
    let h = s.hash_kv(5).unwrap();
    assert_eq!((h.compact_rev, h.current_rev), (4, 6));
}

#[test]
fn old_revisions_count_only_if_a_compaction_at_the_hashed_revision_keeps_them() {
    // x is kept by compaction at 3 (its value at 3) but overwritten at 5:
    // hashed at 4 it counts, hashed at 5 it does not. y's old value stays
    // the live one and counts at both.
    let s = store();
    put(&s, "x", "1"); // rev 2
    put(&s, "y", "1"); // rev 3
    put(&s, "z", "1"); // rev 4
    put(&s, "x", "2"); // rev 5
    compact(&s, 3);
    let stored = |main: i64| {
        let mut n = 0;
        s.engine()
            .scan(Cf::Kv, &[], None, &mut |k, _| {
                n += (i64::from_be_bytes(k[0..8].try_into().unwrap()) == main) as usize;
                Scan::Continue
            })
            .unwrap();
        n
    };
    assert_eq!((stored(2), stored(3)), (1, 1), "compaction at 3 keeps x@2 and y@3");
    assert_eq!(s.hash_kv(4).unwrap().hash, expected(&s, 4));
    let without_x2 = {
        let mut bytes = b"key".to_vec();
        s.engine()
            .scan(Cf::Kv, &[], None, &mut |k, v| {
                if i64::from_be_bytes(k[0..8].try_into().unwrap()) != 2 {
                    bytes.extend_from_slice(k);
                    bytes.extend_from_slice(v);
                }
                Scan::Continue
            })
            .unwrap();
        crc32c::crc32c(&bytes)
    };
    assert_eq!(s.hash_kv(5).unwrap().hash, without_x2);
}

#[test]
fn an_empty_keep_set_skips_nothing() {
    // Everything deleted: a compaction at the hashed revision keeps nothing,
    // and etcd then counts every old revision still stored.
    let s = store();
    put(&s, "a", "1"); // 2
    put(&s, "b", "1"); // 3
    compact(&s, 3);
    del(&s, "a"); // 4
    del(&s, "b"); // 5
    assert_eq!(s.hash_kv(5).unwrap().hash, expected(&s, 5));
}

#[test]
fn the_whole_store_hash_ignores_what_only_this_member_has() {
    let s = store();
    put(&s, "a", "1");
    let before = s.hash_all().unwrap();
    let mut b = WriteBatch::new();
    b.put(Cf::Meta, meta::APPLIED, b"elsewhere".to_vec());
    b.put(Cf::Meta, meta::CLUSTER, b"another member".to_vec());
    s.engine().write(b, false).unwrap();
    assert_eq!(s.hash_all().unwrap(), before);
    let mut b = WriteBatch::new();
    b.put(Cf::Meta, meta::AUTH_ENABLED, vec![1]);
    s.engine().write(b, false).unwrap();
    assert_ne!(s.hash_all().unwrap().hash, before.hash, "replicated meta counts");
    put(&s, "a", "2");
    let after = s.hash_all().unwrap();
    assert_eq!(after.current_rev, 3);
}
