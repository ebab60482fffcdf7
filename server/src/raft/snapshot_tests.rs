//! Snapshots through the state machine: a build records a point in the log
//! and copies nothing, the data is written when read (from the state machine
//! as it is then) and kept for later readers until the next build, a snapshot survives a
//! restart, a received snapshot is installed and its data deleted, a corrupt
//! one is refused before anything changes, and an install a crash
//! interrupted is completed when the state machine is opened again.

use std::collections::BTreeSet;
use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::testing::{log_id, membership_ent};
use openraft::{EntryPayload, RaftSnapshotBuilder};
use timon_proto::etcdserverpb::{PutRequest, RangeRequest};
use timon_proto::timonpb::internal_raft_request::Request;
use timon_proto::timonpb::InternalRaftRequest;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::snapshot::{self, Decoder};
use super::snapshot_install;
use super::snapshot_store::SnapshotStore;
use super::state_machine::StateMachine;
use super::types::{Entry, Snapshot, TypeConfig};
use crate::apply::range::range;
use crate::storage::keys::meta;
use crate::storage::mem::MemEngine;
use crate::storage::rocks::RocksEngine;
use crate::storage::{Cf, Engine, KvRead, SharedEngine};

fn put(index: u64, key: &str, value: &str) -> Entry {
    Entry {
        log_id: log_id(1, 1, index),
        payload: EntryPayload::Normal(InternalRaftRequest {
            request: Some(Request::Put(PutRequest {
                key: key.into(),
                value: value.into(),
                ..Default::default()
            })),
        }),
    }
}

fn members() -> Entry {
    membership_ent::<TypeConfig>(1, 1, 1, vec![BTreeSet::from([1])])
}

fn value(sm: &StateMachine, key: &str) -> Option<Vec<u8>> {
    let r = RangeRequest {
        key: key.into(),
        ..Default::default()
    };
    let store = sm.store().current();
    let resp = range(&store.read(), &r).unwrap();
    resp.kvs.into_iter().next().map(|kv| kv.value)
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// What the snapshot directory holds between installs: the meta file.
fn snapshot_files(id: &str) -> Vec<String> {
    vec![format!("{id}.meta.json")]
}

/// The Kv keys a snapshot's data carries, checking that the meta keys that
/// travel in its `SnapshotMeta` are not in it.
fn kv_keys(file: std::fs::File) -> Vec<Vec<u8>> {
    let mut keys = Vec::new();
    let mut d = Decoder::new(BufReader::new(file)).unwrap();
    while let Some(r) = d.next_record().unwrap() {
        assert!(!(r.cf == Cf::Meta && (r.key == meta::APPLIED || r.key == meta::MEMBERSHIP)));
        if r.cf == Cf::Kv {
            keys.push(r.key);
        }
    }
    keys
}

/// A leader-side state machine (in memory) with a membership and two keys,
/// and a snapshot of it.
async fn leader_snapshot(dir: &Path) -> (StateMachine, Snapshot) {
    let mut sm = StateMachine::open(Arc::new(MemEngine::new()), dir).unwrap();
    sm.apply([members(), put(2, "a", "1"), put(3, "b", "2")]).await.unwrap();
    let snap = sm.get_snapshot_builder().await.build_snapshot().await.unwrap();
    (sm, snap)
}

fn open_rocks(dir: &Path) -> SharedEngine {
    Arc::new(RocksEngine::open(&dir.join("db")).unwrap())
}

#[tokio::test]
async fn current_snapshot_is_found_again_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let snap_dir = dir.path().join("snap");
    let (first, second) = {
        let mut sm = StateMachine::open(open_rocks(dir.path()), &snap_dir).unwrap();
        sm.apply([members(), put(2, "a", "1")]).await.unwrap();
        let first = sm.get_snapshot_builder().await.build_snapshot().await.unwrap().meta;
        sm.apply([put(3, "b", "2")]).await.unwrap();
        let second = sm.get_snapshot_builder().await.build_snapshot().await.unwrap().meta;
        (first, second)
    };
    assert_ne!(first.snapshot_id, second.snapshot_id);
    // Only the newest snapshot is kept.
    assert_eq!(files_in(&snap_dir), snapshot_files(&second.snapshot_id));
    // A file of an interrupted build is cleaned up at open.
    std::fs::write(snap_dir.join("7.sending.tmp"), b"half").unwrap();

    let mut sm = StateMachine::open(open_rocks(dir.path()), &snap_dir).unwrap();
    assert_eq!(files_in(&snap_dir), snapshot_files(&second.snapshot_id));
    let current = sm.get_current_snapshot().await.unwrap().expect("a current snapshot");
    assert_eq!(current.meta, second);
    let (file, _) = current.snapshot.into_std().await.unwrap();
    assert_eq!(kv_keys(file).len(), 2);
}

#[tokio::test]
async fn a_build_copies_nothing_and_the_data_is_written_when_read_from_the_state_as_it_is_then() {
    let dir = tempfile::tempdir().unwrap();
    let snap_dir = dir.path().join("snap");
    let mut sm = StateMachine::open(open_rocks(dir.path()), &snap_dir).unwrap();
    sm.apply([members(), put(2, "a", "1")]).await.unwrap();
    let built = sm.get_snapshot_builder().await.build_snapshot().await.unwrap();
    assert_eq!(built.meta.last_log_id, Some(log_id(1, 1, 2)));
    assert_eq!(built.meta.snapshot_id, "1-2-1");
    assert_eq!(files_in(&snap_dir), snapshot_files("1-2-1"));
    drop(built);

    // The state machine moves on: the current snapshot is what it holds now.
    sm.apply([put(3, "b", "2")]).await.unwrap();
    let current = sm.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(current.meta.last_log_id, Some(log_id(1, 1, 3)));
    assert_eq!(current.meta.snapshot_id, "1-3-0");
    assert_eq!(current.meta.last_membership, sm.applied_state().await.unwrap().1);
    // Nothing is written until the data is read...
    assert_eq!(files_in(&snap_dir).len(), 1);
    // ...and writes after the view are not in it.
    sm.apply([put(4, "c", "3")]).await.unwrap();
    let mut data = current.snapshot;
    let end = data.seek(std::io::SeekFrom::End(0)).await.unwrap();
    assert!(end > 0);
    data.seek(std::io::SeekFrom::Start(0)).await.unwrap();
    let mut bytes = Vec::new();
    data.read_to_end(&mut bytes).await.unwrap();
    assert_eq!(bytes.len() as u64, end);
    assert_eq!(snapshot::verify(&bytes[..]).unwrap(), 2 + 1);
    drop(data);
    // The data is kept for the next follower (or the next try): asked
    // again, the state machine answers the same snapshot, not a new copy.
    assert_eq!(
        files_in(&snap_dir),
        vec!["1-2-1.meta.json".to_string(), "1-3-0.snap".to_string()]
    );
    let again = sm.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(again.meta.snapshot_id, "1-3-0");
    let (file, _) = again.snapshot.into_std().await.unwrap();
    let mut again_bytes = Vec::new();
    std::io::Read::read_to_end(&mut { file }, &mut again_bytes).unwrap();
    assert_eq!(again_bytes, bytes);

    // A newer build replaces it: the directory is back to one meta file.
    let newer = sm.get_snapshot_builder().await.build_snapshot().await.unwrap().meta;
    assert_eq!(newer.snapshot_id, "1-4-2");
    assert_eq!(files_in(&snap_dir), snapshot_files("1-4-2"));
    // A current snapshot dropped unread writes nothing.
    let unread = sm.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(unread.meta, newer);
    drop(unread);
    assert_eq!(files_in(&snap_dir), snapshot_files("1-4-2"));
}

#[tokio::test]
async fn received_snapshot_is_installed_and_its_data_deleted() {
    let leader_dir = tempfile::tempdir().unwrap();
    let (_leader, snap) = leader_snapshot(leader_dir.path()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut sm = StateMachine::open(Arc::new(MemEngine::new()), dir.path()).unwrap();
    sm.apply([put(1, "stale", "x")]).await.unwrap();

    // As openraft's chunked receiver does: write chunks, then shut down.
    let mut data = Vec::new();
    let mut source = snap.snapshot;
    source.read_to_end(&mut data).await.unwrap();
    let mut received = sm.begin_receiving_snapshot().await.unwrap();
    for chunk in data.chunks(7) {
        received.write_all(chunk).await.unwrap();
    }
    received.shutdown().await.unwrap();
    let replaced = sm.store().current();
    sm.install_snapshot(&snap.meta, received).await.unwrap();
    assert!(
        replaced.compaction().stopped,
        "the replaced store's background compaction stops before the install writes"
    );
    assert!(!sm.store().current().compaction().stopped);

    assert_eq!(files_in(dir.path()), snapshot_files(&snap.meta.snapshot_id));
    assert_eq!(
        sm.applied_state().await.unwrap(),
        (snap.meta.last_log_id, snap.meta.last_membership.clone())
    );
    assert_eq!(value(&sm, "a"), Some(b"1".to_vec()));
    assert_eq!(value(&sm, "b"), Some(b"2".to_vec()));
    assert_eq!(value(&sm, "stale"), None);
    assert_eq!(sm.get_current_snapshot().await.unwrap().unwrap().meta, snap.meta);
}

#[tokio::test]
async fn corrupt_received_snapshot_changes_nothing() {
    let leader_dir = tempfile::tempdir().unwrap();
    let (_leader, snap) = leader_snapshot(leader_dir.path()).await;
    let dir = tempfile::tempdir().unwrap();
    let engine: SharedEngine = Arc::new(MemEngine::new());
    let mut sm = StateMachine::open(engine.clone(), dir.path()).unwrap();
    sm.apply([put(1, "stale", "x")]).await.unwrap();
    let before = sm.applied_state().await.unwrap();

    let mut data = Vec::new();
    let mut source = snap.snapshot;
    source.read_to_end(&mut data).await.unwrap();
    let mut received = sm.begin_receiving_snapshot().await.unwrap();
    received.write_all(&data[..data.len() - 1]).await.unwrap();
    received.shutdown().await.unwrap();
    assert!(sm.install_snapshot(&snap.meta, received).await.is_err());

    assert!(
        !sm.store().current().compaction().stopped,
        "a refused snapshot leaves the store compacting"
    );
    assert_eq!(sm.applied_state().await.unwrap(), before);
    assert_eq!(value(&sm, "stale"), Some(b"x".to_vec()));
    assert_eq!(engine.get(Cf::Meta, meta::INSTALLING).unwrap(), None);
    assert!(sm.get_current_snapshot().await.unwrap().is_none());
}

#[tokio::test]
async fn install_interrupted_after_the_marker_completes_on_reopen() {
    let leader_dir = tempfile::tempdir().unwrap();
    let (mut leader, snap) = leader_snapshot(leader_dir.path()).await;
    let dir = tempfile::tempdir().unwrap();
    let snap_dir = dir.path().join("snap");
    {
        let mut sm = StateMachine::open(open_rocks(dir.path()), &snap_dir).unwrap();
        sm.apply([put(1, "stale", "x")]).await.unwrap();
    }
    {
        // The install's first steps, then a crash: the snapshot file is in
        // place, the marker written, the old state deleted and one record
        // of the snapshot written.
        let engine = open_rocks(dir.path());
        let store = SnapshotStore::open(&snap_dir).unwrap();
        let (file, path) = snap.snapshot.into_std().await.unwrap();
        let local = store.adopt(&snap.meta, file, &path).unwrap();
        assert_eq!(
            files_in(&snap_dir),
            vec![
                format!("{}.meta.json", snap.meta.snapshot_id),
                format!("{}.snap", snap.meta.snapshot_id)
            ]
        );
        snapshot_install::begin(engine.as_ref(), &snap.meta).unwrap();
        let first = Decoder::new(BufReader::new(local))
            .unwrap()
            .next_record()
            .unwrap()
            .unwrap();
        let mut batch = crate::storage::WriteBatch::new();
        batch.put(first.cf, first.key, first.value);
        engine.write(batch, false).unwrap();
        assert!(engine.get(Cf::Meta, meta::INSTALLING).unwrap().is_some());
    }

    let engine = open_rocks(dir.path());
    let mut sm = StateMachine::open(engine.clone(), &snap_dir).unwrap();
    assert_eq!(engine.get(Cf::Meta, meta::INSTALLING).unwrap(), None);
    // The data is deleted once the install is complete.
    assert_eq!(files_in(&snap_dir), snapshot_files(&snap.meta.snapshot_id));
    assert_eq!(
        sm.applied_state().await.unwrap(),
        (snap.meta.last_log_id, snap.meta.last_membership.clone())
    );
    assert_eq!(value(&sm, "a"), Some(b"1".to_vec()));
    assert_eq!(value(&sm, "b"), Some(b"2".to_vec()));
    assert_eq!(value(&sm, "stale"), None);
    assert_eq!(sm.store().current().current_revision(), 3);
    assert_eq!(sm.get_current_snapshot().await.unwrap().unwrap().meta, snap.meta);
    // The installed state is what a snapshot of it would carry again.
    let rebuilt = sm.get_snapshot_builder().await.build_snapshot().await.unwrap();
    let (file, _) = rebuilt.snapshot.into_std().await.unwrap();
    let (leader_file, _) = leader
        .get_current_snapshot()
        .await
        .unwrap()
        .unwrap()
        .snapshot
        .into_std()
        .await
        .unwrap();
    assert_eq!(kv_keys(file), kv_keys(leader_file));
}

#[tokio::test]
async fn a_directory_of_the_copying_snapshots_keeps_its_meta_and_loses_its_data() {
    // Before snapshots stopped copying the store, every snapshot had its
    // data beside its meta; an upgraded member deletes the data at open.
    let dir = tempfile::tempdir().unwrap();
    let snap_dir = dir.path().join("snap");
    let id = {
        let mut sm = StateMachine::open(open_rocks(dir.path()), &snap_dir).unwrap();
        sm.apply([members(), put(2, "a", "1")]).await.unwrap();
        let built = sm.get_snapshot_builder().await.build_snapshot().await.unwrap();
        let (file, _) = built.snapshot.into_std().await.unwrap();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut { file }, &mut bytes).unwrap();
        std::fs::write(snap_dir.join(format!("{}.snap", built.meta.snapshot_id)), bytes).unwrap();
        built.meta
    };
    assert_eq!(files_in(&snap_dir).len(), 2);
    let mut sm = StateMachine::open(open_rocks(dir.path()), &snap_dir).unwrap();
    assert_eq!(files_in(&snap_dir), snapshot_files(&id.snapshot_id));
    assert_eq!(sm.get_current_snapshot().await.unwrap().unwrap().meta, id);
}

#[test]
fn install_begin_deletes_everything_but_the_marker() {
    let engine = MemEngine::new();
    let mut batch = crate::storage::WriteBatch::new();
    for key in [&b"a"[..], meta::APPLIED, b"installinga", b"zzz"] {
        batch.put(Cf::Meta, key.to_vec(), b"x".to_vec());
    }
    batch.put(Cf::Kv, vec![0, 0, 0, 1], b"x".to_vec());
    engine.write(batch, true).unwrap();
    snapshot_install::begin(&engine, &super::types::SnapshotMeta::default()).unwrap();
    let mut keys = Vec::new();
    for cf in [Cf::Kv, Cf::Meta] {
        engine
            .scan(cf, &[], None, &mut |k, _| {
                keys.push(k.to_vec());
                crate::storage::Scan::Continue
            })
            .unwrap();
    }
    assert_eq!(keys, vec![meta::INSTALLING.to_vec()]);
}
