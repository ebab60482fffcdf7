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
//! - `ack-before-wal-sync`: raft log appends are written to RocksDB's
//!   write-ahead log but not fsynced before they are reported flushed. A
//!   kill -9 keeps them (the OS still has the pages), so only a power loss
//!   loses them: the harness's `lose-unsynced-all` nemesis on lazyfs.
//! - `renew-before-apply`: the leader applies lease revokes 300 ms late
//!   (the `slow-leader-apply` fault below) and answers keep-alives without
//!   first catching up with its commit index (etcd's `waitAppliedIndex`),
//!   so a lease whose revoke other members already applied (and answered)
//!   is renewed.
//! - `skip-dir-fsync`: the member never fsyncs the directories it makes at
//!   start (`DataDir::sync_layout`): its raft log is fsynced, but the
//!   entries naming the database (`member/`, `member/db`) are not, so a
//!   power loss (the harness's `lose-unsynced-all` nemesis on lazyfs) takes
//!   the whole database away and the member starts again empty.
//!
//! And faults that are not bugs, which timon must survive:
//! - `slow-leader-apply`: the leader applies lease revokes 300 ms after
//!   they commit, as a leader with a slow disk would.
//! - `slow-fsync`: a synced raft log write takes [`SLOW_FSYNC`] longer (at
//!   most one every [`SLOW_FSYNC_EVERY`]), as on a disk whose fdatasync
//!   stalls; the delay is inside the timed write, so timon's own
//!   measurement logs etcd's "slow fdatasync" line (server/tests/logs.rs).

/// Which event `drop-watch-event` loses (1-based, counted over the events
/// the hub hands synced watchers). Late enough that the watchers of a run
/// are all streaming.
pub const DROPPED_WATCH_EVENT: u64 = 100;

/// How much longer `slow-fsync` makes a synced log write: above etcd's
/// 1 s warning threshold.
pub const SLOW_FSYNC: std::time::Duration = std::time::Duration::from_millis(1_200);

/// `slow-fsync` delays at most one synced write per this interval, so a
/// cluster under the fault keeps its leader.
pub const SLOW_FSYNC_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// The `slow-fsync` fault: blocks the writing thread as a stalled fdatasync
/// would (called inside the timed region of a synced log write).
#[cfg(feature = "planted-bugs")]
pub fn slow_fsync() {
    use std::sync::Mutex;
    use std::time::Instant;
    static LAST: Mutex<Option<Instant>> = Mutex::new(None);
    if !active("slow-fsync") {
        return;
    }
    let due = {
        let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
        let due = last.is_none_or(|t| t.elapsed() >= SLOW_FSYNC_EVERY);
        if due {
            *last = Some(Instant::now());
        }
        due
    };
    if due {
        std::thread::sleep(SLOW_FSYNC);
    }
}

/// The `slow-fsync` fault: nothing, in a normal build.
#[cfg(not(feature = "planted-bugs"))]
#[inline(always)]
pub fn slow_fsync() {}

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
