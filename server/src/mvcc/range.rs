//! A range read at one revision, in two steps: the revisions found in the
//! index under the store lock (`RangePlan::new`), then their values
//! loaded from storage (`RangePlan::fetch`), under the lock (read and
//! write txns) or from an engine snapshot after it (`reader.rs`).

use prost::Message;
use timon_proto::mvccpb::KeyValue;

use super::revision::Revision;
use super::state::State;
use super::{MvccError, RangeOptions, RangeResult};
use crate::storage::{Cf, KvRead};

/// What a range read at one revision returns, found in the index: the
/// revisions to fetch, in key order.
pub(crate) struct RangePlan {
    revs: Vec<Revision>,
    count: i64,
    /// The view's revision, for the answer.
    view_rev: i64,
    keys_only: bool,
}

impl RangePlan {
    /// Finds the revisions under the store lock (`state`): `cur_rev` is the
    /// view's revision.
    pub(crate) fn new(
        state: &State,
        key: &[u8],
        end: &[u8],
        cur_rev: i64,
        opts: RangeOptions,
    ) -> Result<Self, MvccError> {
        if opts.rev > cur_rev {
            return Err(MvccError::FutureRev);
        }
        let rev = if opts.rev <= 0 { cur_rev } else { opts.rev };
        if rev < state.compact_rev {
            return Err(MvccError::Compacted);
        }
        // Only the revisions to fetch are collected; the rest are counted.
        let limit = if opts.count_only {
            Some(0)
        } else {
            usize::try_from(opts.limit).ok().filter(|&l| l > 0)
        };
        let (revs, count) = state.index.revisions(key, end, rev, limit);
        let count = count as i64;
        Ok(Self {
            revs,
            count,
            view_rev: cur_rev,
            keys_only: opts.keys_only,
        })
    }

    /// How many values [`RangePlan::fetch`] loads.
    pub(crate) fn len(&self) -> usize {
        self.revs.len()
    }

    /// Loads the values: `fetch` loads the value of an index revision.
    pub(crate) fn fetch(
        self,
        mut fetch: impl FnMut(Revision) -> Result<KeyValue, MvccError>,
    ) -> Result<RangeResult, MvccError> {
        let kvs = self
            .revs
            .iter()
            .map(|&r| {
                let mut kv = fetch(r)?;
                if self.keys_only {
                    kv.value = Default::default();
                }
                Ok(kv)
            })
            .collect::<Result<Vec<_>, MvccError>>()?;
        Ok(RangeResult {
            kvs,
            rev: self.view_rev,
            count: self.count,
        })
    }
}

/// The range read shared by read views and write txns: `cur_rev` is the
/// view's revision, `fetch` loads the value of an index revision.
pub(crate) fn range_keys(
    state: &State,
    key: &[u8],
    end: &[u8],
    cur_rev: i64,
    opts: RangeOptions,
    fetch: impl FnMut(Revision) -> Result<KeyValue, MvccError>,
) -> Result<RangeResult, MvccError> {
    RangePlan::new(state, key, end, cur_rev, opts)?.fetch(fetch)
}

/// Loads a committed revision's value from storage.
pub(crate) fn fetch_stored(engine: &dyn KvRead, rev: Revision) -> Result<KeyValue, MvccError> {
    match engine.get(Cf::Kv, &rev.to_bytes())? {
        Some(raw) => decode_kv(&raw, rev),
        None => Err(MvccError::Corrupt(format!(
            "index revision {rev:?} missing from storage"
        ))),
    }
}

pub(crate) fn decode_kv(raw: &[u8], rev: Revision) -> Result<KeyValue, MvccError> {
    KeyValue::decode(raw).map_err(|e| MvccError::Corrupt(format!("value at revision {rev:?}: {e}")))
}
