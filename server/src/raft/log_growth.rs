//! The raft log's size on disk, bounded in bytes as well as in entries.
//!
//! openraft's policy counts entries: a snapshot every `--snapshot-count`
//! entries, then a purge of all but the last 5000 before it (etcd's
//! numbers). With large entries that holds gigabytes: a bulk load of 1M keys
//! of 1 KiB in Txns of 64 puts is ~16k entries and 1 GiB, far from
//! `--snapshot-count 100000`, and it stayed on disk beside the store
//! (benches/README.md, scale `keys`). Two rules on top, by bytes:
//! - a snapshot each time the log grew by [`LOG_BYTES_PER_SNAPSHOT`]; a
//!   snapshot is only a point in the log here (its data is written when it
//!   travels, `snapshot_data`), so one more costs a meta file and an fsync;
//! - after a snapshot, at most [`KEPT_LOG_BYTES`] of the entries before it
//!   stay for slow followers (5000 entries of a bulk load were 900 MiB); a
//!   follower further behind gets the snapshot, as an etcd follower more
//!   than 5000 entries behind does. On the leader, this never purges an
//!   entry a follower that answers still lacks ([`purge_upto`]): a
//!   follower catching up under a steady load of large entries otherwise
//!   got snapshot after snapshot, each overtaken by the log while it
//!   travelled (6 in 75 s for 2 GiB of 1 MiB puts); such a follower is
//!   bounded by openraft's count, as before.
//!
//! Entries of a kube-apiserver's size (1-2 KiB) reach the counts first, so
//! neither rule changes anything for them.
//!
//! What is counted is the bytes appended since this member started: entries
//! already on disk at a restart are bounded by the counts alone until a
//! purge passes them. A truncated entry's bytes stay counted (a follower's
//! conflicting tail, rare): the kept bytes then come out smaller, never
//! larger.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use super::types::Raft;

/// Log bytes appended between snapshots at most (RocksDB's write-ahead log
/// is capped the same way, `storage::rocks`; etcd keeps five 64 MB WAL
/// files).
pub const LOG_BYTES_PER_SNAPSHOT: u64 = 256 << 20;

/// Bytes of entries kept before a snapshot at most (one etcd WAL file).
pub const KEPT_LOG_BYTES: u64 = 64 << 20;

/// The bytes appended to the log, and where.
pub struct LogGrowth {
    limit: u64,
    state: Mutex<Appends>,
    grew: Notify,
}

#[derive(Default)]
struct Appends {
    /// Bytes appended since the last snapshot this asked for.
    since_snapshot: u64,
    /// Bytes appended in all.
    total: u64,
    /// `(last index, total)` after each append whose entries are on disk,
    /// oldest first.
    ends: VecDeque<(u64, u64)>,
    /// `total` after the last append wholly purged.
    purged_total: u64,
}

impl LogGrowth {
    /// Asks for a snapshot each time the log grew by `limit` bytes.
    pub fn new(limit: u64) -> Arc<Self> {
        Arc::new(Self {
            limit,
            state: Mutex::new(Appends::default()),
            grew: Notify::new(),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Appends> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts `bytes` appended in entries up to `last_index`.
    pub fn appended(&self, last_index: u64, bytes: u64) {
        let mut state = self.state();
        state.since_snapshot += bytes;
        state.total += bytes;
        let total = state.total;
        state.ends.push_back((last_index, total));
        if state.since_snapshot >= self.limit {
            self.grew.notify_one();
        }
    }

    /// Entries from `index` on were deleted (a conflicting tail).
    pub fn truncated(&self, index: u64) {
        let mut state = self.state();
        while state.ends.back().is_some_and(|&(last, _)| last >= index) {
            state.ends.pop_back();
        }
    }

    /// Entries up to `index`, inclusive, were purged.
    pub fn purged(&self, index: u64) {
        let mut state = self.state();
        while let Some(&(last, total)) = state.ends.front() {
            if last > index {
                break;
            }
            state.purged_total = total;
            state.ends.pop_front();
        }
    }

    /// The index to purge up to, inclusive, so that at most `keep` bytes
    /// of the entries up to `snapshot` (the last index of a snapshot)
    /// stay; `None` when they are within `keep` already.
    pub fn purge_point(&self, snapshot: u64, keep: u64) -> Option<u64> {
        let state = self.state();
        let upto = state.ends.partition_point(|&(last, _)| last <= snapshot);
        let &(_, at_snapshot) = state.ends.get(upto.checked_sub(1)?)?;
        if at_snapshot - state.purged_total <= keep {
            return None;
        }
        state
            .ends
            .iter()
            .find(|&&(_, total)| at_snapshot - total <= keep)
            .map(|&(last, _)| last)
    }

    /// Returns once the log grew by the limit since the last return.
    pub async fn past_limit(&self) {
        loop {
            let grew = self.grew.notified();
            {
                let mut state = self.state();
                if state.since_snapshot >= self.limit {
                    state.since_snapshot = 0;
                    return;
                }
            }
            grew.await;
        }
    }
}

/// Where to purge up to by bytes after a snapshot at `snapshot`, if that is
/// further than openraft's policy (`max_keep` entries) purges: `by_bytes`
/// (from [`LogGrowth::purge_point`]), but not past the matched index of a
/// follower that answers (`followers`: matched index, answering); one that
/// does not gets a snapshot when it is back.
pub fn purge_upto(
    snapshot: u64,
    max_keep: u64,
    by_bytes: Option<u64>,
    followers: impl IntoIterator<Item = (Option<u64>, bool)>,
) -> Option<u64> {
    let mut upto = by_bytes?;
    for (matched, answering) in followers {
        if answering {
            upto = upto.min(matched?);
        }
    }
    (upto > snapshot.saturating_sub(max_keep)).then_some(upto)
}

/// Until raft stops: asks `raft` for a snapshot each time the log grew by
/// the limit, and after each snapshot purges what is past [`KEPT_LOG_BYTES`]
/// when that is more than openraft's policy (`max_keep` entries) purges,
/// sparing what followers for which `answering` says true still lack.
pub fn spawn(raft: &Raft, growth: Arc<LogGrowth>, max_keep: u64, answering: impl Fn(u64) -> bool + Send + 'static) {
    let raft = raft.clone();
    let mut metrics = raft.metrics();
    tokio::spawn(async move {
        let mut purged_for = None;
        loop {
            tokio::select! {
                () = growth.past_limit() => {
                    if raft.trigger().snapshot().await.is_err() {
                        return;
                    }
                }
                changed = metrics.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    // Metrics change at every apply; the followers are only
                    // read once a new snapshot is seen.
                    let (snapshot, followers) = {
                        let m = metrics.borrow_and_update();
                        let Some(snapshot) = m.snapshot.map(|id| id.index).filter(|&s| Some(s) != purged_for) else {
                            continue;
                        };
                        let followers: Vec<(Option<u64>, bool)> = m
                            .replication
                            .iter()
                            .flatten()
                            .filter(|(id, _)| **id != m.id)
                            .map(|(id, matched)| (matched.map(|l| l.index), answering(*id)))
                            .collect();
                        (snapshot, followers)
                    };
                    purged_for = Some(snapshot);
                    let by_bytes = growth.purge_point(snapshot, KEPT_LOG_BYTES);
                    if let Some(upto) = purge_upto(snapshot, max_keep, by_bytes, followers) {
                        tracing::debug!(upto, snapshot, "purging the log by bytes");
                        if raft.trigger().purge_log(upto).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn past_limit_returns_once_per_limit_of_growth() {
        let growth = LogGrowth::new(100);
        growth.appended(1, 60);
        let waiting = tokio::spawn({
            let growth = growth.clone();
            async move { growth.past_limit().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        growth.appended(2, 50);
        tokio::time::timeout(std::time::Duration::from_secs(10), waiting)
            .await
            .expect("past the limit")
            .unwrap();
        // The count starts again from nothing.
        growth.appended(3, 99);
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(50), growth.past_limit())
                .await
                .is_err(),
            "99 bytes are not past a limit of 100"
        );
        growth.appended(4, 1);
        tokio::time::timeout(std::time::Duration::from_secs(10), growth.past_limit())
            .await
            .expect("past the limit");
    }

    /// Appends of 10 bytes per entry, `per` entries at a time, up to `last`.
    fn growth_of(last: u64, per: u64) -> Arc<LogGrowth> {
        let growth = LogGrowth::new(u64::MAX);
        for end in (per..=last).step_by(per as usize) {
            growth.appended(end, 10 * per);
        }
        growth
    }

    #[test]
    fn the_purge_point_keeps_at_most_the_bytes_asked_for_before_the_snapshot() {
        let growth = growth_of(100, 1);
        // Entries 71..=90 are 200 bytes.
        assert_eq!(growth.purge_point(90, 200), Some(70));
        assert_eq!(growth.purge_point(90, 205), Some(70));
        // Entries after the snapshot do not count.
        assert_eq!(growth.purge_point(100, 200), Some(80));
        // Everything up to the snapshot fits.
        assert_eq!(growth.purge_point(90, 900), None);
        assert_eq!(growth.purge_point(90, 10_000), None);
        // Nothing is known up to a snapshot before the first append.
        assert_eq!(growth.purge_point(0, 0), None);
    }

    #[test]
    fn appends_of_many_entries_are_purged_up_to_their_last_index() {
        let growth = growth_of(100, 10);
        // Appends end at 10, 20, ... 100. The append ending at 100 is not
        // wholly in a snapshot at 95, so the count stops at 90: keeping
        // 250 bytes keeps 71..=90 (and 91..=95, not counted).
        assert_eq!(growth.purge_point(95, 250), Some(70));
    }

    #[test]
    fn purged_entries_no_longer_count() {
        let growth = growth_of(100, 1);
        growth.purged(70);
        assert_eq!(growth.purge_point(90, 200), None);
        assert_eq!(growth.purge_point(90, 150), Some(75));
        // A purge inside an append keeps that append's bytes counted.
        let growth = growth_of(100, 10);
        growth.purged(75);
        assert_eq!(growth.purge_point(100, 250), Some(80));
        assert_eq!(growth.purge_point(100, 300), None);
    }

    #[test]
    fn the_purge_spares_what_an_answering_follower_lacks() {
        // Bytes say 850; openraft's count (100 kept) says 900 - 100 = 800.
        let none: [(Option<u64>, bool); 0] = [];
        assert_eq!(purge_upto(900, 100, Some(850), none), Some(850));
        assert_eq!(purge_upto(900, 100, Some(800), none), None);
        assert_eq!(purge_upto(900, 100, None, none), None);
        // A follower that answers at 820 keeps 821 on.
        assert_eq!(
            purge_upto(900, 100, Some(850), [(Some(899), true), (Some(820), true)]),
            Some(820)
        );
        // At or behind the count's point, the count decides.
        assert_eq!(
            purge_upto(900, 100, Some(850), [(Some(899), true), (Some(790), true)]),
            None
        );
        // One that answers with nothing matched yet keeps everything.
        assert_eq!(purge_upto(900, 100, Some(850), [(None, true)]), None);
        // One that does not answer gets a snapshot when it is back.
        assert_eq!(
            purge_upto(900, 100, Some(850), [(Some(899), true), (Some(10), false)]),
            Some(850)
        );
        assert_eq!(purge_upto(900, 100, Some(850), [(None, false)]), Some(850));
    }

    #[test]
    fn truncated_entries_are_forgotten_and_appended_again() {
        let growth = growth_of(100, 1);
        growth.truncated(51);
        growth.appended(60, 90);
        // 51..=60 again, 90 bytes on top of the 500 truncated ones, which
        // stay counted: what is kept comes out smaller, never larger.
        assert_eq!(growth.purge_point(60, 100), Some(60));
        assert_eq!(growth.purge_point(60, 600), Some(49));
        // The truncated ends are gone: the last end is 60's.
        assert_eq!(growth.purge_point(100, 0), Some(60));
    }
}
