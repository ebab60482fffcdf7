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
//!   RocksDB's memtable, written without the write-ahead log, and so is
//!   every other unsynced write (the state machine's, the saved commit
//!   index). A kill -9 of every member then loses them all, as a power cut
//!   would lose what the OS had not fsynced (kill -9 alone keeps the page
//!   cache, so this is the in-process model of power loss, not the real
//!   thing). Were the state machine's writes logged, it would keep what the
//!   log lost, and a kill-all run would catch the bug only when a kill fell
//!   between a commit and its apply (5 of 6 runs on an idle machine, 4 of 6
//!   under load, 0 of 5 in one CI run, when it was so).
//! - `ack-before-wal-sync`: raft log appends are written to RocksDB's
//!   write-ahead log but not fsynced before they are reported flushed. A
//!   kill -9 keeps them (the OS still has the pages), so only a power loss
//!   loses them: the harness's `lose-unsynced-all` nemesis on lazyfs.
//! - `renew-before-apply`: the leader applies lease revokes 300 ms late
//!   (the `slow-leader-apply` fault below) and answers keep-alives without
//!   first catching up with its commit index (etcd's `waitAppliedIndex`),
//!   so a lease whose revoke other members already applied (and answered)
//!   is renewed.
//! - `wall-clock-lease`: the leader keeps lease deadlines on the wall clock
//!   ([`wall_instant`]) instead of the monotonic one, so a wall clock that
//!   jumps forward expires leases early (caught by the `clock-skew`
//!   nemesis).
//! - `short-lease-deadline`: the leader expires a lease at 60 % of its TTL
//!   (a unit or rounding slip). The lease checker's margin (a renewal
//!   invoked at s vouches only until s + TTL/2) hides it at the real clock
//!   rate; the `clock-rate` nemesis, which runs the leader's clocks up to
//!   1.9x fast, brings the expiry below the margin.
//! - `leaderless-read`: a member that knows no leader (just restarted, or
//!   in an election) answers linearizable reads from its own state instead
//!   of waiting for one (caught by `rolling-restart`).
//! - `joined-stale-read`: a member started with `--initial-cluster-state
//!   existing` ([`joined`]) answers linearizable reads from its own state,
//!   as if a member that joined were caught up (caught by `member-replace`).
//! - `handoff-stale-read`: for [`HANDOFF_STALE`] after it handed its
//!   leadership over ([`note_handoff`]), the old leader answers
//!   linearizable reads from its own state, a leader lease outliving the
//!   transfer (caught by `move-leader`).
//! - `compact-drops-latest`: compaction at revision R also drops the live
//!   version of every key not written after R (caught by `compact-defrag`
//!   with the lease workload: a leased key vanishes while its lease lives).
//! - `skip-dir-fsync`: the member never fsyncs the directories it makes at
//!   start (`DataDir::sync_layout`): its raft log is fsynced, but the
//!   entries naming the database (`member/`, `member/db`) are not, so a
//!   power loss (the harness's `lose-unsynced-all` nemesis on lazyfs) takes
//!   the whole database away and the member starts again empty.
//! - `snapshot-keeps-old-index`: after installing a snapshot from the
//!   leader, the member keeps the MVCC store (key index, current revision)
//!   it had before: the snapshot's data is on disk, but reads, watches and
//!   later applies go through the pre-install index, so the member answers
//!   values from when it fell behind at header revisions below writes
//!   acknowledged long before (caught by `snapshot-restore`, the nemesis
//!   that makes a member install a snapshot; under the others the members
//!   keep the default `--snapshot-count` of 100 000 and a leader keeps
//!   5000 entries after its snapshot, so no member of a test's run, which
//!   applies a few thousand entries, is ever sent one).
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

/// How long `handoff-stale-read` serves local reads after a hand-off.
pub const HANDOFF_STALE: std::time::Duration = std::time::Duration::from_secs(3);

/// `wall-clock-lease`'s clock: an `Instant` that moves with the wall clock
/// (the first call's instant plus the wall time since; a wall clock set
/// back before that first call stands still).
#[cfg(feature = "planted-bugs")]
pub fn wall_instant() -> std::time::Instant {
    use std::sync::OnceLock;
    use std::time::{Instant, SystemTime};
    static BASE: OnceLock<(Instant, SystemTime)> = OnceLock::new();
    let (mono, wall) = *BASE.get_or_init(|| (Instant::now(), SystemTime::now()));
    mono + SystemTime::now().duration_since(wall).unwrap_or_default()
}

/// `wall-clock-lease`'s clock: the monotonic one, in a normal build.
#[cfg(not(feature = "planted-bugs"))]
#[inline(always)]
pub fn wall_instant() -> std::time::Instant {
    std::time::Instant::now()
}

/// Whether this process was started with `--initial-cluster-state
/// existing` (read from its command line: only the planted bugs ask).
#[cfg(feature = "planted-bugs")]
pub fn joined() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--initial-cluster-state=existing")
        || args
            .windows(2)
            .any(|w| w[0] == "--initial-cluster-state" && w[1] == "existing")
}

/// Never, in a normal build.
#[cfg(not(feature = "planted-bugs"))]
#[inline(always)]
pub fn joined() -> bool {
    false
}

#[cfg(feature = "planted-bugs")]
static HANDED_OFF: std::sync::Mutex<Option<std::time::Instant>> = std::sync::Mutex::new(None);

/// This member handed its leadership over (`handoff-stale-read`).
#[cfg(feature = "planted-bugs")]
pub fn note_handoff() {
    *HANDED_OFF.lock().unwrap_or_else(|e| e.into_inner()) = Some(std::time::Instant::now());
}

/// Nothing, in a normal build.
#[cfg(not(feature = "planted-bugs"))]
#[inline(always)]
pub fn note_handoff() {}

/// Whether this member handed its leadership over less than
/// [`HANDOFF_STALE`] ago.
#[cfg(feature = "planted-bugs")]
pub fn recently_handed_off() -> bool {
    HANDED_OFF
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .is_some_and(|t| t.elapsed() < HANDOFF_STALE)
}

/// Never, in a normal build.
#[cfg(not(feature = "planted-bugs"))]
#[inline(always)]
pub fn recently_handed_off() -> bool {
    false
}

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
