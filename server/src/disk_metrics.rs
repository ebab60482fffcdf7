//! etcd's metrics that the write path observes as it runs, with etcd's
//! names, help texts and buckets, which etcd-mixin's standard alerts read
//! (etcdHighFsyncDurations, etcdHighCommitDurations,
//! etcdHighNumberOfLeaderChanges):
//! - `etcd_disk_wal_fsync_duration_seconds` (etcd's `wal/metrics.go`): each
//!   synced write of the raft log or the vote (`raft::log_store`);
//! - `etcd_disk_backend_commit_duration_seconds` (`mvcc/backend/metrics.go`):
//!   each write batch of the state machine and of the compaction (`mvcc`);
//! - `etcd_server_leader_changes_seen_total` (`etcdserver/metrics.go`): each
//!   time this member learns of a leader other than the last it knew
//!   (`raft::leader_log`).
//!
//! A leaf: it imports no timon module; `/metrics` (`crate::metrics`)
//! registers these at each scrape.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus::{exponential_buckets, Histogram, HistogramOpts, IntCounter};

pub struct DiskMetrics {
    pub wal_fsync: Histogram,
    pub backend_commit: Histogram,
    pub leader_changes: IntCounter,
}

/// A histogram as etcd declares its own: `count` buckets from `start`,
/// each twice the last (Prometheus' `ExponentialBuckets(start, 2, count)`).
/// Also `mvcc::compact_metrics`'.
pub fn histogram(name: &str, help: &str, start: f64, count: usize) -> Histogram {
    let buckets = exponential_buckets(start, 2.0, count).unwrap_or_default();
    Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
        .unwrap_or_else(|e| panic!("histogram {name}: {e}"))
}

/// etcd's buckets for both: 1 ms doubling to 8.192 s.
fn seconds(name: &str, help: &str) -> Histogram {
    histogram(name, help, 0.001, 14)
}

pub static METRICS: LazyLock<DiskMetrics> = LazyLock::new(|| DiskMetrics {
    wal_fsync: seconds(
        "etcd_disk_wal_fsync_duration_seconds",
        "The latency distributions of fsync called by WAL.",
    ),
    backend_commit: seconds(
        "etcd_disk_backend_commit_duration_seconds",
        "The latency distributions of commit called by backend.",
    ),
    leader_changes: IntCounter::new(
        "etcd_server_leader_changes_seen_total",
        "The number of leader changes seen.",
    )
    .unwrap_or_else(|e| panic!("counter: {e}")),
});

/// Records one write of the raft log or vote that was synced.
pub fn wal_fsync(took: Duration) {
    METRICS.wal_fsync.observe(took.as_secs_f64());
}

/// Records one state-machine or compaction write batch.
pub fn backend_commit(took: Duration) {
    METRICS.backend_commit.observe(took.as_secs_f64());
}
