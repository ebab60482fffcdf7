//! The bbolt writer and reader against each other (deep trees, overflow
//! pages, empty buckets, corruption), and export → status → restore.
//! That real bbolt reads what the writer writes is proven against etcd's
//! own tools in `tests/snapshot_etcd.rs`.

use std::fs::File;
use std::io::Write;

use prost::Message;
use sha2::{Digest, Sha256};

use super::bolt::{BoltReader, BucketRoot, Item};
use super::bolt_write::{BoltWriter, PAGE_SIZE};
use super::etcd_schema::{self as etcd, Lease};
use super::restore::{restore, RestoreConfig};
use super::{status, write_etcd_db};
use crate::mvcc::Revision;
use crate::storage::keys::meta;
use crate::storage::mem::MemEngine;
use crate::storage::rocks::RocksEngine;
use crate::storage::{Cf, Engine, KvRead, WriteBatch};

type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

fn read_bucket(db: &BoltReader, root: &BucketRoot) -> Pairs {
    let mut out = Vec::new();
    db.for_each(root, &mut |item| {
        if let Item::Value(k, v) = item {
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(())
    })
    .unwrap();
    out
}

fn write_file(buckets: &[(&[u8], &Pairs)]) -> (tempfile::NamedTempFile, u64) {
    let tmp = tempfile::NamedTempFile::new().unwrap();
    let mut db = BoltWriter::new(tmp.reopen().unwrap()).unwrap();
    for (name, pairs) in buckets {
        let mut b = db.bucket(name);
        for (k, v) in pairs.iter() {
            b.put(k, v).unwrap();
        }
        b.finish().unwrap();
    }
    let (_, size) = db.finish().unwrap();
    (tmp, size)
}

#[test]
fn deep_trees_overflow_pages_and_empty_buckets_round_trip() {
    let many: Pairs = (0u64..100_000)
        .map(|i| (i.to_be_bytes().to_vec(), (i * 7).to_le_bytes().to_vec()))
        .collect();
    let mut large: Pairs = (0u8..20).map(|i| (vec![i], vec![i; 10_000])).collect();
    large.push((vec![200], vec![9; 3 * PAGE_SIZE + 1]));
    let empty: Pairs = Vec::new();
    let (tmp, size) = write_file(&[(b"many", &many), (b"empty", &empty), (b"large", &large)]);
    assert_eq!(size % PAGE_SIZE as u64, 0);

    let db = BoltReader::open(tmp.reopen().unwrap(), size).unwrap();
    assert_eq!(db.size(), size);
    let mut names = Vec::new();
    db.for_each(&db.root(), &mut |item| {
        if let Item::Bucket(name, _) = item {
            names.push(name.to_vec());
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(names, vec![b"empty".to_vec(), b"large".to_vec(), b"many".to_vec()]);
    assert_eq!(read_bucket(&db, &db.bucket(b"many").unwrap().unwrap()), many);
    assert_eq!(read_bucket(&db, &db.bucket(b"large").unwrap().unwrap()), large);
    let empty_root = db.bucket(b"empty").unwrap().unwrap();
    assert!(
        matches!(empty_root, BucketRoot::Inline(_)),
        "empty buckets are inline, as bbolt makes them"
    );
    assert!(read_bucket(&db, &empty_root).is_empty());
    assert!(db.bucket(b"missing").unwrap().is_none());
}

#[test]
fn keys_out_of_order_are_refused() {
    let tmp = tempfile::tempfile().unwrap();
    let mut db = BoltWriter::new(tmp).unwrap();
    let mut b = db.bucket(b"b");
    b.put(b"b", b"1").unwrap();
    assert!(b.put(b"a", b"2").is_err());
    assert!(b.put(b"b", b"2").is_err(), "duplicates too");
}

#[test]
fn corrupt_files_are_errors_never_panics() {
    let pairs: Pairs = (0u16..2000).map(|i| (i.to_be_bytes().to_vec(), vec![1; 20])).collect();
    let (tmp, size) = write_file(&[(b"a", &pairs), (b"b", &Vec::new())]);
    let good = std::fs::read(tmp.path()).unwrap();
    let walk = |bytes: &[u8]| -> Result<usize, super::bolt::BoltError> {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(bytes).unwrap();
        let db = BoltReader::open(f, bytes.len() as u64)?;
        let mut n = 0;
        let mut roots = Vec::new();
        db.for_each(&db.root(), &mut |item| {
            if let Item::Bucket(_, r) = item {
                roots.push(r);
            }
            Ok(())
        })?;
        for r in roots {
            db.for_each(&r, &mut |_| {
                n += 1;
                Ok(())
            })?;
        }
        Ok(n)
    };
    assert_eq!(walk(&good).unwrap(), 2000);
    // Every 29th byte (every field of some element or header), flipped two ways.
    for at in (0..good.len()).step_by(29) {
        for flip in [0x01u8, 0xff] {
            let mut bad = good.clone();
            bad[at] ^= flip;
            let _ = walk(&bad);
        }
    }
    for cut in [0, 100, PAGE_SIZE, 2 * PAGE_SIZE + 10, size as usize - 1] {
        assert!(walk(&good[..cut]).is_err(), "cut at {cut}");
    }
    assert_eq!(
        walk(&[b'x'; 3 * PAGE_SIZE]).unwrap_err().to_string(),
        "invalid database"
    );
}

/// A state machine with revisions (a tombstone, a leased key), a lease, a
/// compaction and auth.
fn sample_state() -> MemEngine {
    use timon_proto::authpb::User;
    use timon_proto::mvccpb::KeyValue;
    let e = MemEngine::new();
    let mut b = WriteBatch::new();
    let kv = |key: &[u8], rev: i64, lease: i64| KeyValue {
        key: key.to_vec(),
        create_revision: rev,
        mod_revision: rev,
        version: 1,
        value: b"v".to_vec(),
        lease,
    };
    b.put(Cf::Kv, Revision::new(2, 0).to_bytes(), kv(b"a", 2, 0).encode_to_vec());
    b.put(
        Cf::Kv,
        Revision::new(3, 0).to_bytes(),
        kv(b"leased", 3, 7).encode_to_vec(),
    );
    let gone = KeyValue {
        key: b"a".to_vec(),
        mod_revision: 4,
        ..Default::default()
    };
    b.put(Cf::Kv, Revision::new(4, 0).to_tombstone_bytes(), gone.encode_to_vec());
    b.put(
        Cf::Meta,
        [meta::LEASE, &7u64.to_be_bytes()].concat(),
        60i64.to_be_bytes().to_vec(),
    );
    b.put(
        Cf::Meta,
        [meta::LEASE_KEY, &7u64.to_be_bytes(), b"leased"].concat(),
        Vec::new(),
    );
    b.put(Cf::Meta, meta::COMPACT_REV.to_vec(), 2i64.to_be_bytes().to_vec());
    b.put(Cf::Meta, meta::CURRENT_REV.to_vec(), 4i64.to_be_bytes().to_vec());
    b.put(Cf::Meta, meta::AUTH_ENABLED.to_vec(), vec![1]);
    b.put(Cf::Meta, meta::AUTH_REVISION.to_vec(), 5u64.to_be_bytes().to_vec());
    let user = User {
        name: b"root".to_vec(),
        ..Default::default()
    };
    b.put(Cf::Meta, [meta::AUTH_USER, b"root"].concat(), user.encode_to_vec());
    b.put(Cf::Meta, [meta::ALARM, &NOSPACE_ALARM[..]].concat(), Vec::new());
    b.put(
        Cf::Meta,
        meta::APPLIED.to_vec(),
        br#"{"leader_id":{"term":3,"node_id":1},"index":42}"#.to_vec(),
    );
    e.write(b, true).unwrap();
    e
}

/// AlarmMember{memberID: 9, alarm: NOSPACE} as protobuf.
const NOSPACE_ALARM: [u8; 4] = [0x08, 0x09, 0x10, 0x01];

fn prefixed(view: &dyn KvRead, cf: Cf, prefix: &[u8]) -> Pairs {
    let mut out = Vec::new();
    view.scan(cf, prefix, None, &mut |k, v| {
        if k.starts_with(prefix) {
            out.push((k.to_vec(), v.to_vec()));
        }
        crate::storage::Scan::Continue
    })
    .unwrap();
    out
}

#[test]
fn export_then_restore_keeps_revisions_leases_compaction_and_auth() {
    let src = sample_state();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("snap.db");
    let (mut file, exported) = write_etcd_db(&src, File::create(&path).unwrap(), 0, &mut |_| {}).unwrap();
    assert_eq!(exported.revisions, 3);
    let data = std::fs::read(&path).unwrap();
    file.write_all(&Sha256::digest(&data)).unwrap();

    let db = BoltReader::open(File::open(&path).unwrap(), exported.size).unwrap();
    let meta_bucket = read_bucket(&db, &db.bucket(etcd::META).unwrap().unwrap());
    let get = |k: &[u8]| meta_bucket.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    assert_eq!(get(etcd::CONSISTENT_INDEX), Some(42u64.to_be_bytes().to_vec()));
    assert_eq!(get(etcd::TERM), Some(3u64.to_be_bytes().to_vec()));
    assert_eq!(get(etcd::FINISHED_COMPACT_REV), Some(Revision::new(2, 0).to_bytes()));
    let leases = read_bucket(&db, &db.bucket(etcd::LEASE).unwrap().unwrap());
    assert_eq!(
        leases,
        vec![(
            7u64.to_be_bytes().to_vec(),
            Lease {
                id: 7,
                ttl: 60,
                remaining_ttl: 0
            }
            .encode_to_vec()
        )]
    );
    let alarms = read_bucket(&db, &db.bucket(etcd::ALARM).unwrap().unwrap());
    assert_eq!(alarms, vec![(NOSPACE_ALARM.to_vec(), vec![])]);
    let s = status(&path).unwrap();
    assert_eq!((s.revision, s.total_size), (4, exported.size));
    for name in etcd::BUCKETS {
        assert!(db.bucket(name).unwrap().is_some(), "{}", String::from_utf8_lossy(name));
    }

    let data_dir = tmp.path().join("restored");
    let cfg = RestoreConfig {
        snapshot: path,
        data_dir: data_dir.clone(),
        skip_hash_check: false,
    };
    let restored = restore(&cfg, &mut |_, _| {}).unwrap();
    assert_eq!(
        (
            restored.revision,
            restored.compact_revision,
            restored.leases,
            restored.users
        ),
        (4, 2, 1, 1)
    );
    let dst = RocksEngine::open(&data_dir.join("member").join("db")).unwrap();
    assert_eq!(prefixed(&dst, Cf::Kv, b""), prefixed(&src, Cf::Kv, b""));
    for prefix in [
        meta::LEASE,
        meta::LEASE_KEY,
        meta::AUTH_USER,
        meta::COMPACT_REV,
        meta::CURRENT_REV,
        meta::AUTH_ENABLED,
        meta::AUTH_REVISION,
    ] {
        assert_eq!(
            prefixed(&dst, Cf::Meta, prefix),
            prefixed(&src, Cf::Meta, prefix),
            "{}",
            String::from_utf8_lossy(prefix)
        );
    }
    assert_eq!(
        dst.get(Cf::Meta, meta::APPLIED).unwrap(),
        None,
        "a new cluster's raft log starts empty"
    );
}

#[test]
fn a_compaction_still_running_travels_unfinished_and_the_restored_store_finishes_it() {
    let src = sample_state();
    // Compacted at 4 (the tombstone of `a`): applied, storage not yet done.
    let mut b = WriteBatch::new();
    b.put(Cf::Meta, meta::COMPACT_REV.to_vec(), 4i64.to_be_bytes().to_vec());
    b.put(
        Cf::Meta,
        meta::FINISHED_COMPACT_REV.to_vec(),
        2i64.to_be_bytes().to_vec(),
    );
    src.write(b, true).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("snap.db");
    let (mut file, exported) = write_etcd_db(&src, File::create(&path).unwrap(), 0, &mut |_| {}).unwrap();
    let data = std::fs::read(&path).unwrap();
    file.write_all(&Sha256::digest(&data)).unwrap();
    let db = BoltReader::open(File::open(&path).unwrap(), exported.size).unwrap();
    let meta_bucket = read_bucket(&db, &db.bucket(etcd::META).unwrap().unwrap());
    let get = |k: &[u8]| meta_bucket.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    assert_eq!(get(etcd::SCHEDULED_COMPACT_REV), Some(Revision::new(4, 0).to_bytes()));
    assert_eq!(get(etcd::FINISHED_COMPACT_REV), Some(Revision::new(2, 0).to_bytes()));

    let data_dir = tmp.path().join("restored");
    let cfg = RestoreConfig {
        snapshot: path,
        data_dir: data_dir.clone(),
        skip_hash_check: false,
    };
    assert_eq!(restore(&cfg, &mut |_, _| {}).unwrap().compact_revision, 4);
    let dst: crate::storage::SharedEngine =
        std::sync::Arc::new(RocksEngine::open(&data_dir.join("member").join("db")).unwrap());
    assert_eq!(prefixed(dst.as_ref(), Cf::Kv, b"").len(), 3, "restored as it was");
    let store = crate::mvcc::MvccStore::open(dst.clone()).unwrap();
    store.wait_compaction();
    let left: Vec<Vec<u8>> = prefixed(dst.as_ref(), Cf::Kv, b"")
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(left, vec![Revision::new(3, 0).to_bytes()], "`a` and its tombstone went");
    assert_eq!(
        dst.get(Cf::Meta, meta::FINISHED_COMPACT_REV).unwrap(),
        Some(4i64.to_be_bytes().to_vec())
    );
}
