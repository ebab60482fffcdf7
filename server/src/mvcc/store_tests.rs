//! Store-level behaviour over the in-memory engine: revisions, versions,
//! reads at old revisions, compaction, restart, txn atomicity.

use std::sync::Arc;

use timon_proto::mvccpb::event::EventType;
use timon_proto::mvccpb::KeyValue;

use super::test_store::{del_range, engine, get_at, put, stored};
use super::*;
use crate::storage::keys::meta;
use crate::storage::{Cf, WriteBatch};

fn kv(k: &str, v: &str, create: i64, m: i64, ver: i64) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: v.into(),
        create_revision: create,
        mod_revision: m,
        version: ver,
        lease: 0,
    }
}

#[test]
fn empty_store_starts_at_revision_one() {
    let s = MvccStore::open(engine()).unwrap();
    assert_eq!(s.current_revision(), 1);
    assert_eq!(s.compact_revision(), -1);
    let rr = s.read().range(b"a", b"\0", RangeOptions::default()).unwrap();
    assert_eq!((rr.kvs.len(), rr.rev, rr.count), (0, 1, 0));
}

#[test]
fn puts_raise_revision_and_version() {
    let s = MvccStore::open(engine()).unwrap();
    assert_eq!(put(&s, "a", "1"), 2);
    assert_eq!(put(&s, "a", "2"), 3);
    assert_eq!(put(&s, "b", "x"), 4);
    assert_eq!(s.current_revision(), 4);
    assert_eq!(get_at(&s, "a", 0).unwrap(), Some(kv("a", "2", 2, 3, 2)));
    assert_eq!(
        get_at(&s, "a", 2).unwrap(),
        Some(kv("a", "1", 2, 2, 1)),
        "read at an old revision"
    );
    assert_eq!(get_at(&s, "b", 3).unwrap(), None, "b did not exist at 3");
}

#[test]
fn delete_writes_tombstone_and_resets_version() {
    let e = engine();
    let s = MvccStore::open(e.clone()).unwrap();
    put(&s, "a", "1");
    put(&s, "a", "2");
    assert_eq!(del_range(&s, "a", ""), (1, 4));
    assert_eq!(get_at(&s, "a", 0).unwrap(), None);
    assert_eq!(get_at(&s, "a", 3).unwrap(), Some(kv("a", "2", 2, 3, 2)));
    assert_eq!(put(&s, "a", "3"), 5);
    assert_eq!(
        get_at(&s, "a", 0).unwrap(),
        Some(kv("a", "3", 5, 5, 1)),
        "new create revision, version 1"
    );
    let tomb = Revision::new(4, 0).to_tombstone_bytes();
    assert!(
        stored(&e).contains(&tomb),
        "the delete is stored as a tombstone revision"
    );
    let raw = e.get(Cf::Kv, &tomb).unwrap().unwrap();
    assert_eq!(
        range::decode_kv(&raw, Revision::new(4, 0)).unwrap(),
        KeyValue {
            key: b"a".to_vec(),
            ..Default::default()
        }
    );
}

#[test]
fn delete_of_missing_key_keeps_revision() {
    let s = MvccStore::open(engine()).unwrap();
    put(&s, "a", "1");
    assert_eq!(del_range(&s, "zz", ""), (0, 2));
    assert_eq!(del_range(&s, "b", "c"), (0, 2));
    assert_eq!(s.current_revision(), 2);
    assert_eq!(put(&s, "b", "1"), 3, "the next write takes the next revision");
}

#[test]
fn range_limit_count_and_ends() {
    let s = MvccStore::open(engine()).unwrap();
    for k in ["a", "b", "c", "d"] {
        put(&s, k, k);
    }
    let r = s.read();
    let rr = r
        .range(
            b"a",
            b"\0",
            RangeOptions {
                limit: 2,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(
        rr.kvs.iter().map(|kv| kv.key.clone()).collect::<Vec<_>>(),
        vec![b"a".to_vec(), b"b".to_vec()]
    );
    assert_eq!((rr.count, rr.rev), (4, 5));
    let rr = r
        .range(
            b"b",
            b"d",
            RangeOptions {
                count_only: true,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!((rr.kvs.len(), rr.count), (0, 2));
    let full = r.range(b"b", b"d", RangeOptions::default()).unwrap();
    let bare = r
        .range(
            b"b",
            b"d",
            RangeOptions {
                keys_only: true,
                ..Default::default()
            },
        )
        .unwrap();
    let without_values: Vec<KeyValue> = full
        .kvs
        .iter()
        .map(|kv| KeyValue {
            value: Default::default(),
            ..kv.clone()
        })
        .collect();
    assert!(full.kvs.iter().all(|kv| !kv.value.is_empty()));
    assert_eq!(bare.kvs, without_values, "keys_only keeps everything but the value");
    let rr = r
        .range(
            b"a",
            b"\0",
            RangeOptions {
                rev: 3,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!((rr.count, rr.rev), (2, 5), "rev in the result is the view's revision");
    assert!(matches!(
        r.range(
            b"a",
            b"",
            RangeOptions {
                rev: 6,
                ..Default::default()
            }
        ),
        Err(MvccError::FutureRev)
    ));
}

#[test]
fn txn_changes_share_one_revision_with_sub_revisions() {
    let e = engine();
    let s = MvccStore::open(e.clone()).unwrap();
    put(&s, "x", "0");
    let mut t = s.write();
    assert_eq!(t.put(b"a", b"1", 0), 3);
    assert_eq!(t.put(b"a", b"2", 7), 3);
    assert_eq!(t.delete_range(b"x", b""), (1, 3));
    // Reads inside the txn see its own writes, at the new revision.
    let rr = t.range(b"a", b"", RangeOptions::default()).unwrap();
    assert_eq!(rr.rev, 3);
    assert_eq!(
        rr.kvs,
        vec![KeyValue {
            lease: 7,
            ..kv("a", "2", 3, 3, 2)
        }]
    );
    assert_eq!(t.range(b"x", b"", RangeOptions::default()).unwrap().count, 0);
    let events = t.commit(WriteBatch::new()).unwrap();
    assert_eq!(s.current_revision(), 3);
    let types: Vec<i32> = events.iter().map(|e| e.r#type).collect();
    assert_eq!(
        types,
        vec![EventType::Put as i32, EventType::Put as i32, EventType::Delete as i32]
    );
    assert_eq!(
        events[2].kv.as_ref().unwrap().mod_revision,
        3,
        "delete event carries the revision"
    );
    let revs: Vec<Revision> = stored(&e).iter().filter_map(|k| Revision::from_bytes(k)).collect();
    assert_eq!(
        revs,
        vec![
            Revision::new(2, 0),
            Revision::new(3, 0),
            Revision::new(3, 1),
            Revision::new(3, 2)
        ]
    );
}

#[test]
fn commit_writes_extra_and_current_rev_even_without_changes() {
    let e = engine();
    let s = MvccStore::open(e.clone()).unwrap();
    put(&s, "a", "1");
    let mut extra = WriteBatch::new();
    extra.put(Cf::Meta, meta::APPLIED, b"log-7".to_vec());
    let t = s.write();
    assert!(t.commit(extra).unwrap().is_empty());
    assert_eq!(e.get(Cf::Meta, meta::APPLIED).unwrap(), Some(b"log-7".to_vec()));
    assert_eq!(
        e.get(Cf::Meta, meta::CURRENT_REV).unwrap(),
        Some(2i64.to_be_bytes().to_vec())
    );
    assert_eq!(s.current_revision(), 2);
}

#[test]
fn dropped_txn_leaves_no_trace() {
    let e = engine();
    let s = MvccStore::open(e.clone()).unwrap();
    put(&s, "a", "1");
    {
        let mut t = s.write();
        t.put(b"a", b"2", 0);
        t.put(b"b", b"2", 0);
        t.delete_range(b"a", b"");
    }
    assert_eq!(s.current_revision(), 2);
    assert_eq!(get_at(&s, "a", 0).unwrap(), Some(kv("a", "1", 2, 2, 1)));
    assert_eq!(get_at(&s, "b", 0).unwrap(), None);
    assert_eq!(stored(&e).len(), 1);
    // Rolled back in place, then committed: only the revision meta lands.
    let mut t = s.write();
    t.put(b"c", b"1", 0);
    t.rollback();
    assert!(!t.has_changes());
    t.commit(WriteBatch::new()).unwrap();
    assert_eq!(s.current_revision(), 2);
    assert_eq!(put(&s, "a", "3"), 3);
    assert_eq!(get_at(&s, "a", 0).unwrap(), Some(kv("a", "3", 2, 3, 2)));
}

#[test]
fn compaction_keeps_latest_revision_of_live_keys() {
    let e = engine();
    let s = MvccStore::open(e.clone()).unwrap();
    put(&s, "a", "1"); // 2
    put(&s, "a", "2"); // 3
    put(&s, "b", "1"); // 4
    del_range(&s, "b", ""); // 5
    put(&s, "c", "1"); // 6
    put(&s, "a", "3"); // 7

    let mut t = s.write();
    assert!(matches!(t.compact(8), Err(MvccError::FutureRev)));
    t.compact(6).unwrap();
    t.commit(WriteBatch::new()).unwrap();
    assert_eq!(s.compact_revision(), 6);
    s.wait_compaction();
    assert_eq!(s.current_revision(), 7, "compaction does not raise the revision");

    let revs: Vec<Revision> = stored(&e).iter().filter_map(|k| Revision::from_bytes(k)).collect();
    assert_eq!(
        revs,
        vec![Revision::new(3, 0), Revision::new(6, 0), Revision::new(7, 0)]
    );
    assert_eq!(
        e.get(Cf::Meta, meta::COMPACT_REV).unwrap(),
        Some(6i64.to_be_bytes().to_vec())
    );

    assert!(matches!(get_at(&s, "a", 5), Err(MvccError::Compacted)));
    assert_eq!(
        get_at(&s, "a", 6).unwrap(),
        Some(kv("a", "2", 2, 3, 2)),
        "reading at the compacted revision works"
    );
    assert_eq!(get_at(&s, "b", 6).unwrap(), None);
    assert_eq!(get_at(&s, "a", 0).unwrap(), Some(kv("a", "3", 2, 7, 3)));

    let mut t = s.write();
    assert!(matches!(t.compact(6), Err(MvccError::Compacted)));
    assert!(matches!(t.compact(5), Err(MvccError::Compacted)));
    t.compact(7).unwrap();
    t.commit(WriteBatch::new()).unwrap();
    s.wait_compaction();
    let revs: Vec<Revision> = stored(&e).iter().filter_map(|k| Revision::from_bytes(k)).collect();
    assert_eq!(revs, vec![Revision::new(6, 0), Revision::new(7, 0)]);
}

#[test]
fn compaction_drops_keys_deleted_at_or_before_it() {
    let e = engine();
    let s = MvccStore::open(e.clone()).unwrap();
    put(&s, "a", "1"); // 2
    del_range(&s, "a", ""); // 3
    let mut t = s.write();
    t.compact(3).unwrap();
    t.commit(WriteBatch::new()).unwrap();
    s.wait_compaction();
    assert!(stored(&e).is_empty(), "value and tombstone both go");
    assert!(s.state.read().unwrap().index.is_empty());
    // After a restart the revision survives though no revision is stored.
    let s = MvccStore::open(e).unwrap();
    assert_eq!((s.current_revision(), s.compact_revision()), (3, 3));
    assert_eq!(put(&s, "a", "2"), 4);
}

#[test]
fn restart_rebuilds_index_and_revisions() {
    let e = engine();
    let s = MvccStore::open(e.clone()).unwrap();
    put(&s, "a", "1"); // 2
    put(&s, "a", "2"); // 3
    put(&s, "b", "1"); // 4
    del_range(&s, "b", ""); // 5
    put(&s, "c", "1"); // 6
    let mut t = s.write();
    t.compact(3).unwrap();
    t.commit(WriteBatch::new()).unwrap();
    put(&s, "a", "3"); // 7
    put(&s, "b", "2"); // 8
    s.wait_compaction();
    let before = s.state.read().unwrap().index.clone();
    drop(s);

    let s = MvccStore::open(e).unwrap();
    assert_eq!(s.current_revision(), 8);
    assert_eq!(s.compact_revision(), 3);
    assert_eq!(
        s.state.read().unwrap().index,
        before,
        "rebuilt index equals the live one"
    );
    assert_eq!(get_at(&s, "a", 0).unwrap(), Some(kv("a", "3", 2, 7, 3)));
    assert_eq!(get_at(&s, "b", 0).unwrap(), Some(kv("b", "2", 8, 8, 1)));
    assert_eq!(get_at(&s, "b", 5).unwrap(), None);
    assert_eq!(get_at(&s, "b", 4).unwrap(), Some(kv("b", "1", 4, 4, 1)));
    assert!(matches!(get_at(&s, "a", 2), Err(MvccError::Compacted)));
}

#[test]
fn changes_since_lists_puts_and_deletes() {
    let s = MvccStore::open(engine()).unwrap();
    put(&s, "a", "1"); // 2
    del_range(&s, "a", ""); // 3
    put(&s, "b", "1"); // 4
    let got = s.read().changes_since(b"a", b"\0", 3).unwrap();
    let summary: Vec<(i64, i64, i64)> = got
        .iter()
        .map(|(r, kv)| (r.main, kv.create_revision, kv.mod_revision))
        .collect();
    assert_eq!(summary, vec![(3, 0, 3), (4, 4, 4)]);
}

#[test]
fn store_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<MvccStore>();
    let s = Arc::new(MvccStore::open(engine()).unwrap());
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let s = s.clone();
            std::thread::spawn(move || {
                for j in 0..25 {
                    put(&s, &format!("k{i}-{j}"), "v");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(s.current_revision(), 101);
    assert_eq!(s.read().range(b"k", b"l", RangeOptions::default()).unwrap().count, 100);
}

#[test]
fn changes_between_stops_at_whole_revisions_within_a_byte_budget() {
    let s = MvccStore::open(engine()).unwrap();
    for _ in 0..5 {
        let mut t = s.write();
        t.put(b"a", &[b'x'; 100], 0);
        t.put(b"b", &[b'y'; 100], 0);
        t.commit(WriteBatch::new()).unwrap();
    }
    let r = s.read();
    // Revisions 2..=6 hold two changes of ~100 bytes each.
    let (all, covered) = r.changes_between(b"a", b"\0", 2, 6, usize::MAX).unwrap();
    assert_eq!((all.len(), covered), (10, 6));
    let (some, covered) = r.changes_between(b"a", b"\0", 2, 6, 450).unwrap();
    assert_eq!(covered, 3, "two whole revisions fit in 450 bytes");
    assert_eq!(some.len(), 4);
    let (one, covered) = r.changes_between(b"a", b"\0", 2, 6, 1).unwrap();
    assert_eq!((one.len(), covered), (2, 2), "one whole revision always comes");
}
