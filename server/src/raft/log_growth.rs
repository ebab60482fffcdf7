//! A snapshot when the raft log grew by [`LOG_BYTES_PER_SNAPSHOT`], as well
//! as every `--snapshot-count` entries (openraft's policy).
//!
//! Entries are purged only up to a snapshot (minus the 5000 kept for slow
//! followers), so with etcd's count alone a log of large entries holds
//! gigabytes: a bulk load of 1M keys of 1 KiB in Txns of 64 puts is ~16k
//! entries and 1 GiB, far from `--snapshot-count 100000`, and it stayed on
//! disk beside the store (benches/README.md, scale `keys`). etcd's own WAL
//! has the same shape. A snapshot is only a point in the log here (its data
//! is written when it travels, `snapshot_data`), so one more costs a meta
//! file and an fsync. Entries of a kube-apiserver's size (1-2 KiB) reach
//! `--snapshot-count` first, so this changes nothing for them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

use super::types::Raft;

/// Log bytes appended between snapshots at most (RocksDB's write-ahead log
/// is capped the same way, `storage::rocks`; etcd keeps five 64 MB WAL
/// files).
pub const LOG_BYTES_PER_SNAPSHOT: u64 = 256 << 20;

/// Bytes appended to the log since the last snapshot this asked for.
pub struct LogGrowth {
    since: AtomicU64,
    limit: u64,
    grew: Notify,
}

impl LogGrowth {
    pub fn new(limit: u64) -> Arc<Self> {
        Arc::new(Self {
            since: AtomicU64::new(0),
            limit,
            grew: Notify::new(),
        })
    }

    /// Counts `bytes` appended to the log.
    pub fn appended(&self, bytes: u64) {
        if self.since.fetch_add(bytes, Ordering::Relaxed) + bytes >= self.limit {
            self.grew.notify_one();
        }
    }

    /// Returns once the log grew by the limit since the last return.
    pub async fn past_limit(&self) {
        loop {
            let since = self.since.load(Ordering::Relaxed);
            if since >= self.limit {
                self.since.fetch_sub(since, Ordering::Relaxed);
                return;
            }
            self.grew.notified().await;
        }
    }
}

/// Asks `raft` for a snapshot each time the log grew by the limit, until
/// raft stops.
pub fn spawn(raft: &Raft, growth: Arc<LogGrowth>) {
    let raft = raft.clone();
    let mut metrics = raft.metrics();
    tokio::spawn(async move {
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
        growth.appended(60);
        let waiting = tokio::spawn({
            let growth = growth.clone();
            async move { growth.past_limit().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        growth.appended(50);
        tokio::time::timeout(std::time::Duration::from_secs(10), waiting)
            .await
            .expect("past the limit")
            .unwrap();
        // The count starts again from what was seen.
        growth.appended(99);
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(50), growth.past_limit())
                .await
                .is_err(),
            "99 bytes are not past a limit of 100"
        );
        growth.appended(1);
        tokio::time::timeout(std::time::Duration::from_secs(10), growth.past_limit())
            .await
            .expect("past the limit");
    }
}
