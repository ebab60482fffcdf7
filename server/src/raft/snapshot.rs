//! The snapshot format: every pair of the state machine's column families
//! (`Kv`, `Meta`) read from one consistent engine view, framed as
//! `[cf u8][key len u32][key][value len u32][value]` (little-endian lengths).
//!
//! A snapshot is the state machine itself, so installing one replaces the
//! state machine's column families wholesale.
// TODO(issue 3): stream snapshots in chunks instead of one buffer.

use crate::storage::{Cf, KvRead, Scan, StorageError, WriteBatch};

const STATE_MACHINE_CFS: [Cf; 2] = [Cf::Kv, Cf::Meta];

fn cf_tag(cf: Cf) -> u8 {
    match cf {
        Cf::Kv => 1,
        Cf::Meta => 2,
        // Only state-machine column families are ever written.
        Cf::RaftLog | Cf::RaftMeta => 0,
    }
}

fn tag_cf(tag: u8) -> Option<Cf> {
    match tag {
        1 => Some(Cf::Kv),
        2 => Some(Cf::Meta),
        _ => None,
    }
}

/// Keys at or above this bound do not exist in the state machine's column
/// families: revisions start with a big-endian i64 and meta keys are ASCII.
const END_OF_CF: [u8; 32] = [0xff; 32];

/// Serialises the state machine's column families from `view`, skipping the
/// meta keys in `skip_meta` (local bookkeeping that must not travel).
pub fn dump(view: &dyn KvRead, skip_meta: &[&[u8]]) -> Result<Vec<u8>, StorageError> {
    let mut out = Vec::new();
    for cf in STATE_MACHINE_CFS {
        view.scan(cf, &[], None, &mut |k, v| {
            if cf == Cf::Meta && skip_meta.contains(&k) {
                return Scan::Continue;
            }
            out.push(cf_tag(cf));
            out.extend_from_slice(&(k.len() as u32).to_le_bytes());
            out.extend_from_slice(k);
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
            out.extend_from_slice(v);
            Scan::Continue
        })?;
    }
    Ok(out)
}

/// A malformed snapshot.
#[derive(Debug, thiserror::Error)]
#[error("malformed snapshot at byte {0}")]
pub struct Malformed(pub usize);

fn take<'a>(data: &'a [u8], pos: &mut usize, n: usize) -> Result<&'a [u8], Malformed> {
    let end = pos.checked_add(n).filter(|e| *e <= data.len()).ok_or(Malformed(*pos))?;
    let s = &data[*pos..end];
    *pos = end;
    Ok(s)
}

fn take_len(data: &[u8], pos: &mut usize) -> Result<usize, Malformed> {
    let b = take(data, pos, 4)?;
    Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
}

/// A batch that replaces the state machine's column families with `data`.
pub fn restore_batch(data: &[u8]) -> Result<WriteBatch, Malformed> {
    let mut batch = WriteBatch::new();
    for cf in STATE_MACHINE_CFS {
        batch.delete_range(cf, Vec::new(), END_OF_CF.to_vec());
    }
    let mut pos = 0;
    while pos < data.len() {
        let at = pos;
        let cf = tag_cf(take(data, &mut pos, 1)?[0]).ok_or(Malformed(at))?;
        let klen = take_len(data, &mut pos)?;
        let key = take(data, &mut pos, klen)?.to_vec();
        let vlen = take_len(data, &mut pos)?;
        let value = take(data, &mut pos, vlen)?.to_vec();
        batch.put(cf, key, value);
    }
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::mem::MemEngine;
    use crate::storage::Engine;

    #[test]
    fn dump_restore_round_trip_replaces_everything() {
        let src = MemEngine::new();
        let mut b = WriteBatch::new();
        b.put(Cf::Kv, vec![0, 0, 1], b"v1".to_vec());
        b.put(Cf::Meta, b"applied".to_vec(), b"x".to_vec());
        b.put(Cf::Meta, b"local".to_vec(), b"skip me".to_vec());
        b.put(Cf::RaftLog, vec![1], b"not state machine".to_vec());
        src.write(b, true).unwrap();
        let data = dump(&src, &[b"local"]).unwrap();

        let dst = MemEngine::new();
        let mut b = WriteBatch::new();
        b.put(Cf::Kv, vec![9], b"stale".to_vec());
        dst.write(b, true).unwrap();
        dst.write(restore_batch(&data).unwrap(), true).unwrap();
        assert_eq!(dst.get(Cf::Kv, &[9]).unwrap(), None);
        assert_eq!(dst.get(Cf::Kv, &[0, 0, 1]).unwrap(), Some(b"v1".to_vec()));
        assert_eq!(dst.get(Cf::Meta, b"applied").unwrap(), Some(b"x".to_vec()));
        assert_eq!(dst.get(Cf::Meta, b"local").unwrap(), None);
        assert_eq!(dst.get(Cf::RaftLog, &[1]).unwrap(), None);
    }

    #[test]
    fn truncated_snapshot_is_an_error_not_a_panic() {
        let src = MemEngine::new();
        let mut b = WriteBatch::new();
        b.put(Cf::Kv, vec![1, 2, 3], b"value".to_vec());
        src.write(b, true).unwrap();
        let data = dump(&src, &[]).unwrap();
        for cut in 0..data.len() {
            if cut == 0 {
                continue;
            }
            assert!(restore_batch(&data[..cut]).is_err(), "cut at {cut}");
        }
        assert!(restore_batch(&[7]).is_err());
    }
}
