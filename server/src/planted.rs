//! Planted bugs: faults the jepsen harness must catch (issue 5). They exist
//! only in builds with the `planted-bugs` feature (the `timon-planted`
//! binary); in normal builds [`active`] is a constant `false` and the
//! compiler removes every branch that asks it.
//!
//! TIMON_PLANTED_BUG selects one:
//! - `stale-read`: a follower answers linearizable reads from its own state
//!   without asking the leader for the read index.
//! - `reuse-revision`: every 20th revision, a Put answers the previous
//!   revision, as if two writes had been given the same one.
//! - `drop-watch-event`: the watch hub loses the [`DROPPED_WATCH_EVENT`]th
//!   event it delivers to synced watchers (counted per process, so once per
//!   member start): that watcher's stream has a gap.
//! - `ack-before-fsync`: raft log appends are reported flushed (so counted
//!   towards a quorum, committed and acknowledged) while they live only in
//!   RocksDB's memtable, written without the write-ahead log. A kill -9 of
//!   every member then loses them, as a power cut would lose log writes the
//!   OS had not fsynced (kill -9 alone keeps the page cache, so this is the
//!   in-process model of power loss, not the real thing).
//! - `renew-before-apply`: the leader applies lease revokes 300 ms late
//!   (the `slow-leader-apply` fault below) and answers keep-alives without
//!   first catching up with its commit index (etcd's `waitAppliedIndex`),
//!   so a lease whose revoke other members already applied (and answered)
//!   is renewed.
//!
//! And one fault that is not a bug, which timon must survive:
//! - `slow-leader-apply`: the leader applies lease revokes 300 ms after
//!   they commit, as a leader with a slow disk would.

/// Which event `drop-watch-event` loses (1-based, counted over the events
/// the hub hands synced watchers). Late enough that the watchers of a run
/// are all streaming.
pub const DROPPED_WATCH_EVENT: u64 = 100;

/// Whether `bug` is the planted bug selected for this process.
#[cfg(feature = "planted-bugs")]
pub fn active(bug: &str) -> bool {
    use std::sync::OnceLock;
    static SELECTED: OnceLock<Option<String>> = OnceLock::new();
    SELECTED
        .get_or_init(|| std::env::var("TIMON_PLANTED_BUG").ok())
        .as_deref()
        == Some(bug)
}

/// Whether `bug` is the planted bug selected: never, in a normal build.
#[cfg(not(feature = "planted-bugs"))]
#[inline(always)]
pub fn active(_bug: &str) -> bool {
    false
}
