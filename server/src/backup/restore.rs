//! An etcd backend file (a snapshot from timon or from etcd 3.4-3.6) into a
//! new timon data dir: `timonctl snapshot restore`.
//!
//! As etcd's restore does, the file's sha256 trailer is checked first
//! (`--skip-hash-check` for a `member/snap/db` copied out of a data dir),
//! then the state is written: the `key` bucket into the `Kv` column family
//! as it is (both use etcd's revision keys and `mvccpb.KeyValue` values),
//! the compaction revision, leases with their TTLs and attached keys,
//! users, roles and the auth flag and revision. Membership is not taken
//! from the file: the member starts a new cluster from its flags
//! (`--initial-cluster`), with the restored state under raft index 1, the
//! same on every member restored from the same file.
//!
//! Everything is written into a temporary directory beside the data dir,
//! renamed into place only when complete: a failed restore leaves nothing.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use prost::Message;
use sha2::{Digest, Sha256};
use timon_proto::mvccpb::KeyValue;

use super::bolt::{BoltReader, BucketRoot, Item};
use super::etcd_schema::{self as etcd, Lease};
use crate::mvcc::revision::{is_tombstone, MARKED_REV_BYTES_LEN, REV_BYTES_LEN};
use crate::storage::keys::meta;
use crate::storage::rocks::RocksEngine;
use crate::storage::{Cf, Engine, WriteBatch};

/// Bytes of keys and values per write batch.
const BATCH_BYTES: usize = 4 << 20;

/// What `timonctl snapshot restore` asks for.
#[derive(Debug, Clone)]
pub struct RestoreConfig {
    pub snapshot: PathBuf,
    pub data_dir: PathBuf,
    pub skip_hash_check: bool,
}

/// What a restore wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Restored {
    pub revision: i64,
    pub compact_revision: i64,
    /// Entries of the `key` bucket (revisions, tombstones included).
    pub revisions: u64,
    pub leases: u64,
    pub users: u64,
    pub roles: u64,
}

/// etcd's test for an appended sha256: 512 is the smallest disk sector,
/// so a bbolt file (whole pages) is a multiple of it and a hashed one is
/// 32 bytes more.
pub fn has_checksum(len: u64) -> bool {
    len % 512 == 32
}

/// Go's `%v` of a byte slice: `[1 2 3]`.
fn go_bytes(b: &[u8]) -> String {
    let items: Vec<String> = b.iter().map(u8::to_string).collect();
    format!("[{}]", items.join(" "))
}

/// Checks the trailer as etcd's `saveDB` does; answers the length of the
/// bbolt data (the file without its hash).
pub fn check_hash(file: &mut File, skip_hash_check: bool) -> anyhow::Result<u64> {
    let len = file.metadata()?.len();
    let has_hash = has_checksum(len);
    if !has_hash && !skip_hash_check {
        bail!("snapshot missing hash but --skip-hash-check=false");
    }
    if !has_hash {
        return Ok(len);
    }
    let data_len = len - 32;
    if !skip_hash_check {
        let mut want = [0u8; 32];
        file.seek(SeekFrom::Start(data_len))?;
        file.read_exact(&mut want)?;
        file.seek(SeekFrom::Start(0))?;
        let mut h = Sha256::new();
        io::copy(&mut (&mut *file).take(data_len), &mut h)?;
        let got = h.finalize();
        if got[..] != want {
            bail!("expected sha256 {}, got {}", go_bytes(&want), go_bytes(&got));
        }
    }
    Ok(data_len)
}

/// etcdutl's refusal to overwrite: the data dir must be missing or empty.
fn check_data_dir(dir: &Path) -> anyhow::Result<()> {
    match fs::read_dir(dir).map(|mut entries| entries.next().is_none()) {
        Ok(true) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        _ => bail!(
            "data-dir {:?} not empty or could not be read",
            dir.display().to_string()
        ),
    }
}

/// Writes batches of about [`BATCH_BYTES`].
struct Loader<'a> {
    engine: &'a RocksEngine,
    batch: WriteBatch,
    bytes: usize,
}

impl Loader<'_> {
    fn put(&mut self, cf: Cf, key: Vec<u8>, value: Vec<u8>) -> anyhow::Result<()> {
        self.bytes += key.len() + value.len();
        self.batch.put(cf, key, value);
        if self.bytes >= BATCH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        self.bytes = 0;
        Ok(self.engine.write(std::mem::take(&mut self.batch), false)?)
    }
}

fn each(
    db: &BoltReader,
    bucket: Option<&BucketRoot>,
    f: &mut dyn FnMut(&[u8], &[u8]) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let Some(root) = bucket else { return Ok(()) };
    let mut failure = None;
    db.for_each(root, &mut |item| {
        if let Item::Value(k, v) = item {
            if failure.is_none() {
                failure = f(k, v).err();
            }
        }
        Ok(())
    })?;
    failure.map_or(Ok(()), Err)
}

/// Restores `cfg.snapshot` into `cfg.data_dir`; `progress(done, total)`
/// reports bytes of the `key` bucket's entries against the file's size.
pub fn restore(cfg: &RestoreConfig, progress: &mut dyn FnMut(u64, u64)) -> anyhow::Result<Restored> {
    check_data_dir(&cfg.data_dir)?;
    let mut file = File::open(&cfg.snapshot)?;
    let data_len = check_hash(&mut file, cfg.skip_hash_check)?;
    let db = BoltReader::open(file, data_len)?;

    let parent = match cfg.data_dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent).with_context(|| format!("cannot create {}", parent.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix(".timon-restore-")
        .tempdir_in(&parent)
        .with_context(|| format!("cannot create a temporary directory in {}", parent.display()))?;
    let db_path = tmp.path().join("member").join("db");
    fs::create_dir_all(&db_path)?;
    let restored = {
        let engine = RocksEngine::open(&db_path)?;
        crate::storage::format::stamp(&engine)?;
        let restored = load(&db, &engine, progress)?;
        engine.sync()?;
        restored
    };
    // Keep an existing empty data dir's place (and permissions) by
    // replacing it.
    if cfg.data_dir.exists() {
        fs::remove_dir(&cfg.data_dir)?;
    }
    let tmp = tmp.keep();
    if let Err(e) = fs::rename(&tmp, &cfg.data_dir) {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e).with_context(|| format!("cannot move the restored data into {}", cfg.data_dir.display()));
    }
    Ok(restored)
}

fn load(db: &BoltReader, engine: &RocksEngine, progress: &mut dyn FnMut(u64, u64)) -> anyhow::Result<Restored> {
    let mut out = Restored::default();
    let mut loader = Loader {
        engine,
        batch: WriteBatch::new(),
        bytes: 0,
    };
    let total = db.size();

    // Keys whose latest revision carries a lease: the attachments.
    let mut leased: HashMap<Vec<u8>, i64> = HashMap::new();
    let mut last_main = 1i64;
    let mut done = 0u64;
    each(db, db.bucket(etcd::KEY)?.as_ref(), &mut |k, v| {
        if k.len() != REV_BYTES_LEN && k.len() != MARKED_REV_BYTES_LEN {
            bail!("corrupt snapshot: key bucket entry of {} bytes", k.len());
        }
        let kv = KeyValue::decode(v).context("corrupt snapshot: key bucket value")?;
        last_main = last_main.max(etcd::main_revision(k).unwrap_or(0));
        if is_tombstone(k) || kv.lease == 0 {
            leased.remove(&kv.key);
        } else {
            leased.insert(kv.key, kv.lease);
        }
        out.revisions += 1;
        done += (k.len() + v.len()) as u64;
        if out.revisions.is_multiple_of(1000) {
            progress(done.min(total), total);
        }
        loader.put(Cf::Kv, k.to_vec(), v.to_vec())
    })?;

    let (mut compact, mut finished) = (-1i64, -1i64);
    each(db, db.bucket(etcd::META)?.as_ref(), &mut |k, v| {
        if k == etcd::FINISHED_COMPACT_REV || k == etcd::SCHEDULED_COMPACT_REV {
            compact = compact.max(etcd::main_revision(v).unwrap_or(-1));
        }
        if k == etcd::FINISHED_COMPACT_REV {
            finished = etcd::main_revision(v).unwrap_or(-1);
        }
        Ok(())
    })?;
    if compact > 0 {
        loader.put(Cf::Meta, meta::COMPACT_REV.to_vec(), compact.to_be_bytes().to_vec())?;
        // Below the scheduled revision: the store finishes the compaction
        // when it opens (etcd's "resume scheduled compaction").
        let finished = finished.min(compact);
        loader.put(
            Cf::Meta,
            meta::FINISHED_COMPACT_REV.to_vec(),
            finished.to_be_bytes().to_vec(),
        )?;
    }
    out.compact_revision = compact;
    out.revision = last_main.max(compact);
    loader.put(
        Cf::Meta,
        meta::CURRENT_REV.to_vec(),
        out.revision.to_be_bytes().to_vec(),
    )?;

    let mut leases = Vec::new();
    each(db, db.bucket(etcd::LEASE)?.as_ref(), &mut |_, v| {
        let lease = Lease::decode(v).context("corrupt snapshot: lease bucket value")?;
        let mut record = lease.ttl.to_be_bytes().to_vec();
        if lease.remaining_ttl > 0 {
            record.extend_from_slice(&lease.remaining_ttl.to_be_bytes());
        }
        leases.push(lease.id);
        out.leases += 1;
        loader.put(
            Cf::Meta,
            [meta::LEASE, &(lease.id as u64).to_be_bytes()].concat(),
            record,
        )
    })?;
    let mut attached: Vec<(i64, Vec<u8>)> = leased
        .into_iter()
        .filter(|(_, id)| leases.contains(id))
        .map(|(key, id)| (id, key))
        .collect();
    attached.sort();
    for (id, key) in attached {
        loader.put(
            Cf::Meta,
            [meta::LEASE_KEY, &(id as u64).to_be_bytes(), &key].concat(),
            Vec::new(),
        )?;
    }

    each(db, db.bucket(etcd::AUTH)?.as_ref(), &mut |k, v| {
        if k == etcd::AUTH_ENABLED {
            loader.put(Cf::Meta, meta::AUTH_ENABLED.to_vec(), vec![u8::from(v == [1])])?;
        } else if k == etcd::AUTH_REVISION && v.len() == 8 {
            loader.put(Cf::Meta, meta::AUTH_REVISION.to_vec(), v.to_vec())?;
        }
        Ok(())
    })?;
    each(db, db.bucket(etcd::AUTH_USERS)?.as_ref(), &mut |k, v| {
        out.users += 1;
        loader.put(Cf::Meta, [meta::AUTH_USER, k].concat(), v.to_vec())
    })?;
    each(db, db.bucket(etcd::AUTH_ROLES)?.as_ref(), &mut |k, v| {
        out.roles += 1;
        loader.put(Cf::Meta, [meta::AUTH_ROLE, k].concat(), v.to_vec())
    })?;
    loader.flush()?;
    progress(total, total);
    Ok(out)
}
