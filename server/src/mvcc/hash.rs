//! The store's hashes, as etcd's Maintenance service reports them: `HashKV`
//! (etcd's `store.HashByRev`) over the MVCC revisions, and `Hash` over every
//! replicated byte of the state machine.
//!
//! `HashKV` is etcd's byte for byte: CRC-32C (Castagnoli) over the bucket
//! name `key`, then every stored revision key (17 bytes, 18 for a tombstone)
//! and its `mvccpb.KeyValue` bytes in revision order, up to the hashed
//! revision. Revisions at or below the compaction revision count only if a
//! compaction at the hashed revision would keep them (unless it would keep
//! nothing at all), so members that compacted at different moments, or not
//! physically yet, agree. timon stores revisions in etcd's encoding, so the
//! same history gives the same hash on timon and on etcd (checked by
//! `tests/hash.rs` against etcd 3.4).
//!
//! Both hashes read a storage snapshot taken under the store's read lock,
//! so writes wait only while the snapshot and the keep set are taken, not
//! for the whole scan.

use std::collections::BTreeSet;

use super::revision::Revision;
use super::store::MvccStore;
use super::MvccError;
use crate::storage::keys::meta;
use crate::storage::{Cf, Scan};

/// etcd's key bucket name, the first bytes `HashKV` hashes.
const KEY_BUCKET: &[u8] = b"key";

/// A `HashKV` answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvHash {
    pub hash: u32,
    /// The store revision when the hash was taken (the response header's).
    pub current_rev: i64,
    /// The compaction revision then (-1 before the first compaction).
    pub compact_rev: i64,
    /// The revision hashed: the one asked for, or the current one for 0.
    pub hash_rev: i64,
}

/// A `Hash` answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreHash {
    pub hash: u32,
    pub current_rev: i64,
}

impl MvccStore {
    /// etcd's `HashByRev`: the hash of every revision up to `rev` (`0`: the
    /// current revision). A revision at or below the compaction revision
    /// fails with [`MvccError::Compacted`], one above the current revision
    /// with [`MvccError::FutureRev`].
    pub fn hash_kv(&self, rev: i64) -> Result<KvHash, MvccError> {
        let (snap, current_rev, compact_rev, hash_rev, old_kept) = {
            let state = self.state.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            let (current_rev, compact_rev) = (state.current_rev, state.compact_rev);
            if rev > 0 && rev <= compact_rev {
                return Err(MvccError::Compacted);
            }
            if rev > 0 && rev > current_rev {
                return Err(MvccError::FutureRev);
            }
            let hash_rev = if rev == 0 { current_rev } else { rev };
            let keep = state.index.keep(hash_rev);
            // etcd skips an old revision only when the keep set has
            // something in it; only the old part of it is needed after.
            let old_kept = (!keep.is_empty()).then(|| {
                keep.into_iter()
                    .take_while(|r| r.main <= compact_rev)
                    .collect::<BTreeSet<_>>()
            });
            (self.engine.snapshot(), current_rev, compact_rev, hash_rev, old_kept)
        };
        let mut h = crc32c::crc32c(KEY_BUCKET);
        let mut failure = None;
        snap.scan(Cf::Kv, &[], None, &mut |k, v| {
            let Some(r) = Revision::from_bytes(k) else {
                failure = Some(MvccError::Corrupt(format!("revision key {k:?}")));
                return Scan::Stop;
            };
            if r.main > hash_rev {
                return Scan::Stop;
            }
            if r.main <= compact_rev {
                if let Some(kept) = &old_kept {
                    if !kept.contains(&r) {
                        return Scan::Continue;
                    }
                }
            }
            h = crc32c::crc32c_append(h, k);
            h = crc32c::crc32c_append(h, v);
            Scan::Continue
        })?;
        if let Some(e) = failure {
            return Err(e);
        }
        Ok(KvHash {
            hash: h,
            current_rev,
            compact_rev,
            hash_rev,
        })
    }

    /// etcd's `Hash`: every replicated key and value of the state machine
    /// (the revisions and the meta column family), each column family's
    /// name first. Keys only this member has (its identity, its applied
    /// log position, an install in progress) are left out, as etcd leaves
    /// out its consistent index, so members at the same revision agree.
    pub fn hash_all(&self) -> Result<StoreHash, MvccError> {
        let (snap, current_rev) = {
            let state = self.state.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            (self.engine.snapshot(), state.current_rev)
        };
        let mut h = 0;
        for cf in [Cf::Kv, Cf::Meta] {
            h = crc32c::crc32c_append(h, cf.name().as_bytes());
            snap.scan(cf, &[], None, &mut |k, v| {
                if cf == Cf::Meta && is_local_meta(k) {
                    return Scan::Continue;
                }
                h = crc32c::crc32c_append(h, k);
                h = crc32c::crc32c_append(h, v);
                Scan::Continue
            })?;
        }
        Ok(StoreHash { hash: h, current_rev })
    }
}

/// Meta keys whose values differ between members holding the same data.
fn is_local_meta(k: &[u8]) -> bool {
    [meta::APPLIED, meta::APPLIED_PART, meta::INSTALLING, meta::CLUSTER].contains(&k)
}

#[cfg(test)]
#[path = "hash_tests.rs"]
mod tests;
