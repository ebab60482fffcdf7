//! The experimental flags timon acts on. etcd 3.6 renamed the graduated
//! ones (`--watch-progress-notify-interval`) or made them feature gates
//! (`--feature-gates=LeaseCheckpoint=true`); `config::args` rewrites those
//! spellings onto these flags before parsing.

use std::time::Duration;

use clap::Args;

/// etcd's default `--experimental-warning-apply-duration`.
pub const DEFAULT_WARNING_APPLY_DURATION: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Experimental")]
pub struct ExperimentalFlags {
    /// Interval of progress notifications to watchers that asked for them
    /// (a Go duration such as 10m or 500ms).
    #[arg(long, env = "ETCD_EXPERIMENTAL_WATCH_PROGRESS_NOTIFY_INTERVAL")]
    pub experimental_watch_progress_notify_interval: Option<String>,

    /// Whether the leader checkpoints remaining lease TTLs through raft, so
    /// a leader change does not restart leases from their full TTL. etcd
    /// 3.4's default is false; timon's is true.
    #[arg(long, env = "ETCD_EXPERIMENTAL_ENABLE_LEASE_CHECKPOINT", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub experimental_enable_lease_checkpoint: Option<bool>,

    /// Accepted: timon always persists checkpoints (as etcd 3.6 does).
    #[arg(long, env = "ETCD_EXPERIMENTAL_ENABLE_LEASE_CHECKPOINT_PERSIST", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub experimental_enable_lease_checkpoint_persist: Option<bool>,

    /// How often each long lease's remaining TTL is checkpointed (a Go
    /// duration; etcd's default 5m; at least 1s).
    #[arg(long, env = "ETCD_EXPERIMENTAL_LEASE_CHECKPOINT_INTERVAL")]
    pub experimental_lease_checkpoint_interval: Option<String>,

    /// Compare this member's HashKV with its peers' before serving clients,
    /// and refuse to start on a mismatch (3.6:
    /// --feature-gates=InitialCorruptCheck=true).
    #[arg(long, env = "ETCD_EXPERIMENTAL_INITIAL_CORRUPT_CHECK", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub experimental_initial_corrupt_check: Option<bool>,

    /// How often the leader compares its HashKV with its peers' and raises
    /// the CORRUPT alarm on a mismatch (a Go duration; 0s: never; 3.6:
    /// --corrupt-check-time).
    #[arg(long, env = "ETCD_EXPERIMENTAL_CORRUPT_CHECK_TIME")]
    pub experimental_corrupt_check_time: Option<String>,

    /// Time duration after which a warning is generated if applying a
    /// request takes more time (a Go duration; etcd's default 100ms; 3.6's
    /// `--warning-apply-duration`).
    #[arg(long, env = "ETCD_EXPERIMENTAL_WARNING_APPLY_DURATION")]
    pub experimental_warning_apply_duration: Option<String>,

    /// The most revisions the background compaction deletes per batch
    /// (etcd's default 1000; 0: the default; negative: all in one batch;
    /// 3.6: --compaction-batch-limit).
    #[arg(
        long,
        env = "ETCD_EXPERIMENTAL_COMPACTION_BATCH_LIMIT",
        allow_negative_numbers = true
    )]
    pub experimental_compaction_batch_limit: Option<i64>,

    /// The pause between the background compaction's batches (a Go
    /// duration; etcd's default 10ms; 0s: the default; 3.6:
    /// --compaction-sleep-interval).
    #[arg(long, env = "ETCD_EXPERIMENTAL_COMPACTION_SLEEP_INTERVAL")]
    pub experimental_compaction_sleep_interval: Option<String>,
}
