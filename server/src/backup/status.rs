//! `snapshot status`: what etcd's `snapshot.Status` computes from a backend
//! file, for `timonctl snapshot status` to print as etcdctl and etcdutl do.

use std::fs::File;
use std::path::Path;

use serde::Serialize;

use super::bolt::{BoltReader, Item};
use super::etcd_schema as etcd;

/// etcd's `snapshot.Status`, with its JSON field names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Status {
    /// CRC-32C (Castagnoli) of every bucket name and its keys and values.
    pub hash: u32,
    /// The main revision of the last key of the `key` bucket.
    pub revision: i64,
    #[serde(rename = "totalKey")]
    pub total_key: u64,
    /// Bytes the database's pages span (bbolt's `Tx.Size`).
    #[serde(rename = "totalSize")]
    pub total_size: u64,
}

/// CRC-32C, bitwise-reflected, as Go's `crc32.Castagnoli` table computes it.
pub struct Crc32c {
    table: [u32; 256],
    crc: u32,
}

impl Crc32c {
    pub fn new() -> Self {
        let mut table = [0u32; 256];
        for (i, slot) in table.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 { 0x82f6_3b78 ^ (c >> 1) } else { c >> 1 };
            }
            *slot = c;
        }
        Self { table, crc: !0 }
    }

    pub fn update(&mut self, data: &[u8]) {
        for &b in data {
            self.crc = self.table[((self.crc ^ u32::from(b)) & 0xff) as usize] ^ (self.crc >> 8);
        }
    }

    pub fn sum(&self) -> u32 {
        !self.crc
    }
}

impl Default for Crc32c {
    fn default() -> Self {
        Self::new()
    }
}

/// Reads the status of the backend file at `path` (a trailing sha256, if
/// any, is ignored, as bbolt ignores bytes past its pages).
pub fn status(path: &Path) -> anyhow::Result<Status> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    let db = BoltReader::open(file, len)?;
    let mut h = Crc32c::new();
    let mut buckets = Vec::new();
    db.for_each(&db.root(), &mut |item| {
        match item {
            Item::Bucket(name, root) => buckets.push((name.to_vec(), root)),
            Item::Value(name, _) => {
                return Err(super::bolt::BoltError::Corrupt(format!(
                    "cannot get hash of bucket {}",
                    String::from_utf8_lossy(name)
                )))
            }
        }
        Ok(())
    })?;
    let (mut revision, mut total_key) = (0i64, 0u64);
    for (name, root) in buckets {
        h.update(&name);
        let is_key = name == etcd::KEY;
        db.for_each(&root, &mut |item| {
            let (k, v) = match item {
                Item::Value(k, v) => (k, v),
                // A nested bucket's value reads as nil in etcd's ForEach.
                Item::Bucket(k, _) => (k, &[][..]),
            };
            h.update(k);
            h.update(v);
            if is_key {
                revision = etcd::main_revision(k).unwrap_or(revision);
            }
            total_key += 1;
            Ok(())
        })?;
    }
    Ok(Status {
        hash: h.sum(),
        revision,
        total_key,
        total_size: db.size(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_castagnoli_check_value() {
        let mut h = Crc32c::new();
        h.update(b"123456789");
        assert_eq!(h.sum(), 0xe306_9283);
    }
}
