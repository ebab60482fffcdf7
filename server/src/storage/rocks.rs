//! The RocksDB engine: one database, one column family per [`Cf`], one
//! write-ahead log shared by all of them so a batch spanning column families
//! is atomic.

use std::path::Path;

use rocksdb::{ColumnFamilyDescriptor, Options, ReadOptions, WriteOptions, DB};

use super::{Cf, Engine, KvRead, Result, Scan, StorageError, WriteBatch, WriteOp};

pub struct RocksEngine {
    db: DB,
}

fn err(e: rocksdb::Error) -> StorageError {
    StorageError(e.into_string())
}

/// The write-ahead log's size past which RocksDB flushes the column
/// families holding its oldest entries, so their log files can go. At
/// RocksDB's default (four times every column family's memtable budget,
/// 2.5 GiB here) a rarely written column family pins every log file since
/// its last flush: a 1 GiB bulk load left 2.1 GiB of logs beside the data
/// (benches/README.md, `timon-bench defrag`). etcd keeps five 64 MB WAL
/// files.
const MAX_TOTAL_WAL_BYTES: u64 = 256 << 20;

impl RocksEngine {
    /// Opens (creating if missing) the database at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with_wal_limit(path, MAX_TOTAL_WAL_BYTES)
    }

    fn open_with_wal_limit(path: &Path, max_total_wal_bytes: u64) -> Result<Self> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        // The raft log is fsynced per append; the rest relies on the WAL.
        opts.set_max_background_jobs(2);
        opts.set_max_total_wal_size(max_total_wal_bytes);
        let cfs = Cf::ALL
            .iter()
            .map(|cf| ColumnFamilyDescriptor::new(cf.name(), Options::default()));
        let db = DB::open_cf_descriptors(&opts, path, cfs).map_err(err)?;
        Ok(Self { db })
    }

    /// Reads one key of an existing database without writing anything in
    /// `path`: opened read-only, with RocksDB's info log (which an open
    /// otherwise rotates inside the database directory) sent to a temporary
    /// directory. `None` when the key is absent.
    pub fn read_only_get(path: &Path, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let log_dir =
            tempfile::tempdir().map_err(|e| StorageError(format!("cannot create a temporary log dir: {e}")))?;
        let mut opts = Options::default();
        opts.set_db_log_dir(log_dir.path());
        let db = DB::open_cf_for_read_only(&opts, path, [cf.name()], false).map_err(err)?;
        let handle = db
            .cf_handle(cf.name())
            .ok_or_else(|| StorageError(format!("column family {} missing", cf.name())))?;
        db.get_cf(handle, key).map_err(err)
    }

    fn cf(&self, cf: Cf) -> &rocksdb::ColumnFamily {
        // Every Cf is created at open, so the handle always exists.
        self.db.cf_handle(cf.name()).expect("column family created at open")
    }

    fn scan_with(
        &self,
        snap: Option<&rocksdb::Snapshot<'_>>,
        cf: Cf,
        start: &[u8],
        end: Option<&[u8]>,
        f: &mut dyn FnMut(&[u8], &[u8]) -> Scan,
    ) -> Result<()> {
        if end.is_some_and(|e| e <= start) {
            return Ok(());
        }
        let mut ro = ReadOptions::default();
        if let Some(e) = end {
            ro.set_iterate_upper_bound(e.to_vec());
        }
        if let Some(s) = snap {
            ro.set_snapshot(s);
        }
        // The raw iterator lends each key and value from RocksDB's blocks;
        // the plain one copies both into fresh boxes, which on a scan of a
        // GiB (a snapshot build, a compaction) is most of the work.
        let mut iter = self.db.raw_iterator_cf_opt(self.cf(cf), ro);
        iter.seek(start);
        while let Some((k, v)) = iter.item() {
            if f(k, v) == Scan::Stop {
                return Ok(());
            }
            iter.next();
        }
        iter.status().map_err(err)
    }

    fn last_with(
        &self,
        snap: Option<&rocksdb::Snapshot<'_>>,
        cf: Cf,
        start: &[u8],
        end: Option<&[u8]>,
    ) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        if end.is_some_and(|e| e <= start) {
            return Ok(None);
        }
        let mut ro = ReadOptions::default();
        ro.set_iterate_lower_bound(start.to_vec());
        if let Some(e) = end {
            ro.set_iterate_upper_bound(e.to_vec());
        }
        if let Some(s) = snap {
            ro.set_snapshot(s);
        }
        let mut iter = self.db.raw_iterator_cf_opt(self.cf(cf), ro);
        iter.seek_to_last();
        iter.status().map_err(err)?;
        Ok(iter.item().map(|(k, v)| (k.to_vec(), v.to_vec())))
    }
}

impl KvRead for RocksEngine {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.db.get_cf(self.cf(cf), key).map_err(err)
    }
    fn scan(&self, cf: Cf, start: &[u8], end: Option<&[u8]>, f: &mut dyn FnMut(&[u8], &[u8]) -> Scan) -> Result<()> {
        self.scan_with(None, cf, start, end, f)
    }
    fn last_in(&self, cf: Cf, start: &[u8], end: Option<&[u8]>) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        self.last_with(None, cf, start, end)
    }
}

struct RocksSnapshot<'a> {
    engine: &'a RocksEngine,
    snap: rocksdb::Snapshot<'a>,
}

impl KvRead for RocksSnapshot<'_> {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.snap.get_cf(self.engine.cf(cf), key).map_err(err)
    }
    fn scan(&self, cf: Cf, start: &[u8], end: Option<&[u8]>, f: &mut dyn FnMut(&[u8], &[u8]) -> Scan) -> Result<()> {
        self.engine.scan_with(Some(&self.snap), cf, start, end, f)
    }
    fn last_in(&self, cf: Cf, start: &[u8], end: Option<&[u8]>) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        self.engine.last_with(Some(&self.snap), cf, start, end)
    }
}

impl RocksEngine {
    fn write_with(&self, batch: WriteBatch, wo: &WriteOptions) -> Result<()> {
        let mut wb = rocksdb::WriteBatch::default();
        for op in &batch.ops {
            match op {
                WriteOp::Put { cf, key, value } => wb.put_cf(self.cf(*cf), key, value),
                WriteOp::Delete { cf, key } => wb.delete_cf(self.cf(*cf), key),
                WriteOp::DeleteRange { cf, start, end } => {
                    if start < end {
                        wb.delete_range_cf(self.cf(*cf), start, end)
                    }
                }
            }
        }
        self.db.write_opt(wb, wo).map_err(err)
    }
}

impl Engine for RocksEngine {
    fn write(&self, batch: WriteBatch, sync: bool) -> Result<()> {
        if !sync && crate::planted::active("ack-before-fsync") {
            // The planted bug's model of a power cut in a kill -9: what was
            // not fsynced does not survive it (`crate::planted`).
            return self.write_unlogged(batch);
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(sync);
        self.write_with(batch, &wo)
    }
    fn write_unlogged(&self, batch: WriteBatch) -> Result<()> {
        let mut wo = WriteOptions::default();
        wo.disable_wal(true);
        self.write_with(batch, &wo)
    }
    fn sync(&self) -> Result<()> {
        self.db.flush_wal(true).map_err(err)
    }
    fn snapshot(&self) -> Box<dyn KvRead + Send + '_> {
        Box::new(RocksSnapshot {
            engine: self,
            snap: self.db.snapshot(),
        })
    }
    fn size_on_disk(&self) -> u64 {
        self.size_of(&Cf::ALL)
    }
    fn size_of(&self, cfs: &[Cf]) -> u64 {
        let prop = |cf: Cf, name: &str| {
            self.db
                .property_int_value_cf(self.cf(cf), name)
                .ok()
                .flatten()
                .unwrap_or(0)
        };
        cfs.iter()
            .map(|&cf| prop(cf, "rocksdb.total-sst-files-size") + prop(cf, "rocksdb.cur-size-all-mem-tables"))
            .sum()
    }
    fn compact_all(&self) -> Result<()> {
        let mut opts = rocksdb::CompactOptions::default();
        // Rewrite the bottom level too, so tombstones and the values they
        // shadow are dropped rather than moved down.
        opts.set_bottommost_level_compaction(rocksdb::BottommostLevelCompaction::Force);
        for cf in Cf::ALL {
            self.db.flush_cf(self.cf(cf)).map_err(err)?;
            self.db
                .compact_range_cf_opt(self.cf(cf), None::<&[u8]>, None::<&[u8]>, &opts);
        }
        Ok(())
    }
    fn drop_files_in(&self, cf: Cf, first: &[u8], last: &[u8]) -> Result<()> {
        // RocksDB's DeleteFilesInRange: both ends included; files in level 0
        // stay (their ranges overlap), and so does the range deletion.
        self.db.delete_file_in_range_cf(self.cf(cf), first, last).map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_reopen_scan_last() {
        let dir = tempfile::tempdir().unwrap();
        {
            let e = RocksEngine::open(dir.path()).unwrap();
            let mut b = WriteBatch::new();
            for k in [b"a", b"b", b"c"] {
                b.put(Cf::Kv, k.to_vec(), k.to_vec());
            }
            b.put(Cf::Meta, b"m".to_vec(), b"x".to_vec());
            e.write(b, true).unwrap();
        }
        let e = RocksEngine::open(dir.path()).unwrap();
        let snap = e.snapshot();
        let mut b = WriteBatch::new();
        b.delete(Cf::Kv, b"b".to_vec());
        e.write(b, true).unwrap();
        let mut seen = vec![];
        e.scan(Cf::Kv, b"a", Some(b"z"), &mut |k, _| {
            seen.push(k.to_vec());
            Scan::Continue
        })
        .unwrap();
        assert_eq!(seen, vec![b"a".to_vec(), b"c".to_vec()]);
        assert_eq!(snap.get(Cf::Kv, b"b").unwrap(), Some(b"b".to_vec()));
        assert_eq!(e.last_in(Cf::Kv, b"a", Some(b"c")).unwrap().unwrap().0, b"a".to_vec());
        assert_eq!(e.get(Cf::Meta, b"m").unwrap(), Some(b"x".to_vec()));
        // Nothing of another column family leaks into a scan.
        assert_eq!(e.last_in(Cf::Kv, b"", None).unwrap().unwrap().0, b"c".to_vec());
    }

    /// Bytes in the write-ahead log files of the database at `dir`.
    fn wal_bytes(dir: &Path) -> u64 {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
            .map(|e| e.metadata().unwrap().len())
            .sum()
    }

    #[test]
    fn a_rarely_written_column_family_does_not_pin_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let e = RocksEngine::open_with_wal_limit(dir.path(), 1 << 20).unwrap();
        e.write(one(Cf::Meta, b"once"), true).unwrap();
        let value = vec![7u8; 64 << 10];
        for i in 0..128u32 {
            let mut b = WriteBatch::new();
            b.put(Cf::RaftLog, i.to_be_bytes().to_vec(), value.clone());
            e.write(b, false).unwrap();
            if i % 8 == 7 {
                // A full memtable: flushed, and the log moves to a new file.
                e.db.flush_cf(e.cf(Cf::RaftLog)).unwrap();
            }
        }
        // 8 MiB went through the log, in 16 files. Every one of them holds
        // entries newer than the meta column family's last flush; past the
        // 1 MiB limit RocksDB flushed meta too and deleted the old files
        // (at RocksDB's default limit all 8 MiB stay).
        let logs = wal_bytes(dir.path());
        assert!(logs <= 3 << 20, "{logs} bytes of write-ahead log after 8 MiB of writes");
        assert_eq!(e.get(Cf::Meta, b"once").unwrap(), Some(b"v".to_vec()));
        assert_eq!(e.get(Cf::RaftLog, &127u32.to_be_bytes()).unwrap(), Some(value));
    }

    /// What a crash right now would leave of `dir`: the database as
    /// recovery reads it (SST files plus the write-ahead log, whose unsynced
    /// writes a process crash keeps), opened read-only beside the live one.
    fn after_crash(dir: &Path, cf: Cf, key: &[u8]) -> Option<Vec<u8>> {
        let names = Cf::ALL.iter().map(|c| c.name());
        let db = DB::open_cf_for_read_only(&Options::default(), dir, names, false).unwrap();
        db.get_cf(db.cf_handle(cf.name()).unwrap(), key).unwrap()
    }

    fn one(cf: Cf, key: &[u8]) -> WriteBatch {
        let mut b = WriteBatch::new();
        b.put(cf, key.to_vec(), b"v".to_vec());
        b
    }

    #[test]
    fn files_of_a_deleted_range_are_dropped_at_once_and_the_rest_stays() {
        let dir = tempfile::tempdir().unwrap();
        let e = RocksEngine::open(dir.path()).unwrap();
        // Incompressible values, in eight files out of level 0 with
        // ranges of their own, as a long log's older entries are.
        let mut x = 1u64;
        let mut value = || -> Vec<u8> {
            (0..4096)
                .map(|_| {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    (x >> 56) as u8
                })
                .collect()
        };
        let mut values = Vec::new();
        for chunk in 0..8u32 {
            let mut b = WriteBatch::new();
            for i in chunk * 1000..(chunk + 1) * 1000 {
                let v = value();
                b.put(Cf::RaftLog, i.to_be_bytes().to_vec(), v.clone());
                values.push(v);
            }
            e.write(b, false).unwrap();
            let cf = e.cf(Cf::RaftLog);
            e.db.flush_cf(cf).unwrap();
            let (from, to) = ((chunk * 1000).to_be_bytes(), ((chunk + 1) * 1000 - 1).to_be_bytes());
            e.db.compact_range_cf(cf, Some(&from[..]), Some(&to[..]));
        }
        let before = e.size_of(&[Cf::RaftLog]);
        assert!(before > 8000 * 4096 / 2, "{before}");
        let mut b = WriteBatch::new();
        b.delete_range(Cf::RaftLog, 0u32.to_be_bytes().to_vec(), 7000u32.to_be_bytes().to_vec());
        e.write(b, true).unwrap();
        assert!(
            e.size_of(&[Cf::RaftLog]) >= before,
            "a range deletion alone frees nothing"
        );
        e.drop_files_in(Cf::RaftLog, &0u32.to_be_bytes(), &6999u32.to_be_bytes())
            .unwrap();
        let after = e.size_of(&[Cf::RaftLog]);
        assert!(after < before / 2, "{after} bytes left of {before}");
        assert_eq!(e.get(Cf::RaftLog, &6999u32.to_be_bytes()).unwrap(), None);
        for i in [7000u32, 7500, 7999] {
            assert_eq!(
                e.get(Cf::RaftLog, &i.to_be_bytes()).unwrap().as_ref(),
                Some(&values[i as usize])
            );
        }
    }

    #[test]
    fn unlogged_writes_are_visible_but_lost_in_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let e = RocksEngine::open(dir.path()).unwrap();
        e.write(one(Cf::RaftLog, b"synced"), true).unwrap();
        e.write(one(Cf::RaftLog, b"logged"), false).unwrap();
        e.write_unlogged(one(Cf::RaftLog, b"unlogged")).unwrap();
        assert!(e.get(Cf::RaftLog, b"unlogged").unwrap().is_some());
        assert!(after_crash(dir.path(), Cf::RaftLog, b"synced").is_some());
        assert!(after_crash(dir.path(), Cf::RaftLog, b"logged").is_some());
        assert_eq!(after_crash(dir.path(), Cf::RaftLog, b"unlogged"), None);
    }
}
