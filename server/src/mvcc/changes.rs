//! Watch catch-up reads: every change to a key range between two revisions,
//! in revision order, for watchers that are behind.
//!
//! Two ways to find them, chosen per call by which touches less:
//! - by key: each key of the range says which of its revisions are newer
//!   (the index), and those are fetched one by one. Cheap for one key or a
//!   few, but every pass visits every key of the range.
//! - by revision: scan storage from the first revision to the last and keep
//!   the changes in the range, as etcd's `syncWatchers` does. Cheap when the
//!   range holds many more keys than the pass has revisions (a prefix
//!   watched by many watchers, fed one revision at a time).

use timon_proto::mvccpb::KeyValue;

use super::index::RangeEnd;
use super::range::decode_kv;
use super::revision::Revision;
use super::store::ReadTxn;
use super::MvccError;
use crate::storage::{Cf, Scan};

/// A pass scans storage by revision when the range holds at least this many
/// keys per revision it covers.
const KEYS_PER_REVISION: usize = 2;

impl ReadTxn<'_> {
    /// Every change in the range with main revision `>= rev`, in revision
    /// order, with its key-value (deletions as the key with `mod_revision`
    /// set and `create_revision` 0); for watch catch-up.
    pub fn changes_since(&self, key: &[u8], end: &[u8], rev: i64) -> Result<Vec<(Revision, KeyValue)>, MvccError> {
        Ok(self.changes_between(key, end, rev, i64::MAX, usize::MAX)?.0)
    }

    /// [`Self::changes_since`] limited to main revisions `<= until` and to
    /// about `max_bytes` of values, whole revisions only (at least one), so
    /// a watcher far behind catches up in bounded batches. Also answers the
    /// last revision the batch covers: `until`, or the last revision taken
    /// when the byte limit stopped it.
    pub fn changes_between(
        &self,
        key: &[u8],
        end: &[u8],
        rev: i64,
        until: i64,
        max_bytes: usize,
    ) -> Result<(Vec<(Revision, KeyValue)>, i64), MvccError> {
        let last = until.min(self.state.current_rev);
        let revisions = usize::try_from(last.saturating_sub(rev) + 1).unwrap_or(0);
        let many_keys = self
            .state
            .index
            .has_at_least(key, end, revisions.saturating_mul(KEYS_PER_REVISION).max(1));
        if revisions > 0 && many_keys {
            self.changes_by_revision(key, end, rev, last, until, max_bytes)
        } else {
            self.changes_by_key(key, end, rev, until, max_bytes)
        }
    }

    /// [`Self::changes_between`] through the index.
    pub(crate) fn changes_by_key(
        &self,
        key: &[u8],
        end: &[u8],
        rev: i64,
        until: i64,
        max_bytes: usize,
    ) -> Result<(Vec<(Revision, KeyValue)>, i64), MvccError> {
        let mut batch = Batch::new(max_bytes);
        for r in self.state.index.range_since(key, end, rev) {
            if r.main > until {
                break;
            }
            let raw = match self.engine.get(Cf::Kv, &r.to_bytes())? {
                Some(raw) => raw,
                None => match self.engine.get(Cf::Kv, &r.to_tombstone_bytes())? {
                    Some(raw) => raw,
                    None => return Err(MvccError::Corrupt(format!("revision {r:?} missing from storage"))),
                },
            };
            if !batch.take(r, &raw, decode_kv(&raw, r)?) {
                return Ok(batch.cut());
            }
        }
        Ok((batch.out, until))
    }

    /// [`Self::changes_between`] by scanning storage over revisions
    /// `rev..=last` (`last`: `until`, or the view's revision if lower).
    pub(crate) fn changes_by_revision(
        &self,
        key: &[u8],
        end: &[u8],
        rev: i64,
        last: i64,
        until: i64,
        max_bytes: usize,
    ) -> Result<(Vec<(Revision, KeyValue)>, i64), MvccError> {
        let range_end = RangeEnd::from_raw(end);
        let mut batch = Batch::new(max_bytes);
        let mut failed = None;
        let mut stopped = false;
        let from = Revision::new(rev.max(0), 0).to_bytes();
        let to = Revision::new(last + 1, 0).to_bytes();
        self.engine.scan(Cf::Kv, &from, Some(&to), &mut |k, raw| {
            let Some(r) = Revision::from_bytes(k) else {
                return Scan::Continue;
            };
            let kv = match decode_kv(raw, r) {
                Ok(kv) => kv,
                Err(e) => {
                    failed = Some(e);
                    return Scan::Stop;
                }
            };
            if !range_end.contains(key, &kv.key) {
                return Scan::Continue;
            }
            if batch.take(r, raw, kv) {
                Scan::Continue
            } else {
                stopped = true;
                Scan::Stop
            }
        })?;
        if let Some(e) = failed {
            return Err(e);
        }
        if stopped {
            return Ok(batch.cut());
        }
        Ok((batch.out, until))
    }
}

/// The changes of one pass, within a byte budget, whole revisions only.
struct Batch {
    out: Vec<(Revision, KeyValue)>,
    /// The stored size of each change in `out`.
    sizes: Vec<usize>,
    bytes: usize,
    max_bytes: usize,
}

impl Batch {
    fn new(max_bytes: usize) -> Self {
        Self {
            out: Vec::new(),
            sizes: Vec::new(),
            bytes: 0,
            max_bytes,
        }
    }

    /// Adds the change at `r` (stored as `raw`), or answers false when the
    /// budget is spent and `r` starts a new revision.
    fn take(&mut self, r: Revision, raw: &[u8], mut kv: KeyValue) -> bool {
        let last_main = self.out.last().map(|(l, _)| l.main);
        if self.bytes + raw.len() > self.max_bytes && last_main.is_some_and(|m| m != r.main) {
            return false;
        }
        if kv.create_revision == 0 {
            // A tombstone: the deletion's revision is its own.
            kv.mod_revision = r.main;
        }
        // A key changed twice in one revision counts once, with its last
        // change (as the index keeps it).
        let mut same_rev = self.out.iter().rev().take_while(|(l, _)| l.main == r.main);
        if let Some(back) = same_rev.position(|(_, o)| o.key == kv.key) {
            let at = self.out.len() - 1 - back;
            self.out.remove(at);
            self.bytes -= self.sizes.remove(at);
        }
        self.bytes += raw.len();
        self.sizes.push(raw.len());
        self.out.push((r, kv));
        true
    }

    /// The batch so far, which ends at its last whole revision.
    fn cut(self) -> (Vec<(Revision, KeyValue)>, i64) {
        let last = self.out.last().map_or(0, |(l, _)| l.main);
        (self.out, last)
    }
}
