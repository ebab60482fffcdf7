//! The compaction metrics etcd exports (`mvcc/metrics.go`), with its
//! names, help texts and buckets; `/metrics` (crate::metrics) shows them.

use std::sync::LazyLock;

use prometheus::{Histogram, IntCounter};

use crate::disk_metrics::histogram;

pub struct CompactionMetrics {
    /// Each hold of the store lock by the index compaction.
    pub index_pause_ms: Histogram,
    /// Each batch of storage deletions.
    pub db_pause_ms: Histogram,
    /// Each whole compaction, index and storage.
    pub total_ms: Histogram,
    /// Revisions deleted from storage.
    pub keys: IntCounter,
}

pub static METRICS: LazyLock<CompactionMetrics> = LazyLock::new(|| CompactionMetrics {
    index_pause_ms: histogram(
        "etcd_debugging_mvcc_index_compaction_pause_duration_milliseconds",
        "Bucketed histogram of index compaction pause duration.",
        0.5,
        14,
    ),
    db_pause_ms: histogram(
        "etcd_debugging_mvcc_db_compaction_pause_duration_milliseconds",
        "Bucketed histogram of db compaction pause duration.",
        1.0,
        13,
    ),
    total_ms: histogram(
        "etcd_debugging_mvcc_db_compaction_total_duration_milliseconds",
        "Bucketed histogram of db compaction total duration.",
        100.0,
        14,
    ),
    keys: IntCounter::new(
        "etcd_debugging_mvcc_db_compaction_keys_total",
        "Total number of db keys compacted.",
    )
    .unwrap_or_else(|e| panic!("counter: {e}")),
});
