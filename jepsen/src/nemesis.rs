//! Nemeses: the faults a run injects, on a timed schedule — quiet for 3–5 s,
//! fault for 3–5 s, heal, and again until the time limit; the last fault is
//! always healed before [`run`] returns. Every action is recorded in the
//! history as `Op::Nemesis` (process -1), invocation then completion;
//! [`window::windows`] turns those entries into fault windows (summary.json,
//! timeline.svg).
//!
//! Besides faults, operations an operator runs under traffic ([`ops`]):
//! rolling restarts with SIGTERM (a leader hands its leadership over before
//! it exits, with timon's leadership transfer as with etcd's), member
//! replacement, learner promotion, MoveLeader, compaction with defrag and
//! a member restored from its leader's snapshot; and clock faults through libfaketime ([`clock`]).

pub mod clock;
pub mod disk;
pub mod links;
pub mod membership;
pub mod ops;
pub mod window;

use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::cluster::Cluster;
use crate::history::{Kind as EntryKind, Op};
use crate::recorder::Recorder;

/// Which faults a run injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// No faults.
    None,
    /// kill -9 the leader or a random member, restart it on heal.
    Kill,
    /// SIGSTOP the leader or a random member, SIGCONT on heal.
    Pause,
    /// Isolate the leader from every other member.
    PartitionLeader,
    /// Split the members into a random minority and majority.
    PartitionRandom,
    /// The leader cannot reach the others, or they cannot reach it
    /// (connections one side opens are cut; see `cluster::proxy`).
    PartitionOneWay,
    /// 50–200 ms of jittered latency on every peer link, or on one member's.
    LinkDelay,
    /// kill -9 every member at the same moment; restart them all on heal.
    KillAll,
    /// MemberRemove a follower and wipe its data dir; on heal MemberAdd it
    /// back and start it empty with `--initial-cluster-state existing`.
    MemberReadd,
    /// One member's wall clock jumps forward or back, or runs fast or slow
    /// (libfaketime; timon only: Go's clock bypasses libc).
    ClockSkew,
    /// One member's monotonic and wall clocks run 1.2–1.9x fast or
    /// 0.5–0.8x slow, without jumps (libfaketime; timon only).
    ClockRate,
    /// SIGTERM every member in turn, restarting each before the next.
    RollingRestart,
    /// MemberRemove a random member, wipe it, MemberAdd a new member (new
    /// name and data dir) in its place.
    MemberReplace,
    /// Replace a random member by a learner, then promote it.
    LearnerPromote,
    /// Maintenance.MoveLeader from the leader to a random follower.
    MoveLeader,
    /// Compact to a recent revision, then Defragment every member.
    CompactDefrag,
    /// Stop a member, write until the raft log moved past it, restart it:
    /// its leader must send it a snapshot (members run with
    /// `--snapshot-count 100`).
    SnapshotRestore,
    /// kill -9 a member and drop what its disk holds unsynced (lazyfs).
    LoseUnsynced,
    /// kill -9 every member and drop what every disk holds unsynced.
    LoseUnsyncedAll,
    /// One member's fsyncs fail with EIO.
    FsyncError,
    /// One member's writes fail with ENOSPC.
    DiskFull,
    /// Fsyncs answer 200 ms–2 s late on one member or on all.
    SlowDisk,
}

/// The nemeses added with issue 5's second round, for a longer suite
/// (kill-all is in `run::QUICK` too).
pub const MORE: [Kind; 4] = [Kind::PartitionOneWay, Kind::LinkDelay, Kind::KillAll, Kind::MemberReadd];

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::None => "none",
            Kind::Kill => "kill",
            Kind::Pause => "pause",
            Kind::PartitionLeader => "partition-leader",
            Kind::PartitionRandom => "partition-random",
            Kind::PartitionOneWay => "partition-one-way",
            Kind::LinkDelay => "link-delay",
            Kind::KillAll => "kill-all",
            Kind::MemberReadd => "member-readd",
            Kind::ClockSkew => "clock-skew",
            Kind::ClockRate => "clock-rate",
            Kind::RollingRestart => "rolling-restart",
            Kind::MemberReplace => "member-replace",
            Kind::LearnerPromote => "learner-promote",
            Kind::MoveLeader => "move-leader",
            Kind::CompactDefrag => "compact-defrag",
            Kind::SnapshotRestore => "snapshot-restore",
            Kind::LoseUnsynced => "lose-unsynced",
            Kind::LoseUnsyncedAll => "lose-unsynced-all",
            Kind::FsyncError => "fsync-error",
            Kind::DiskFull => "disk-full",
            Kind::SlowDisk => "slow-disk",
        }
    }
}

fn record(rec: &Recorder, kind: EntryKind, action: &str, error: Option<String>) {
    rec.record(
        -1,
        kind,
        Op::Nemesis {
            action: action.to_string(),
        },
        None,
        error,
    );
}

/// Sleeps until `at` or the deadline, whichever is first; false if the
/// deadline came first.
async fn wait_until(at: Instant, deadline: Instant) -> bool {
    tokio::time::sleep_until(at.min(deadline)).await;
    at < deadline
}

/// The leader, or a random member when none is known or by coin flip.
async fn target(cluster: &mut Cluster, rng: &mut StdRng, prefer_leader: bool) -> usize {
    if prefer_leader || rng.gen_bool(0.5) {
        if let Some(l) = cluster.leader().await {
            return l;
        }
    }
    rng.gen_range(0..cluster.len())
}

/// Injects one fault; answers its description.
async fn inject(kind: Kind, cluster: &mut Cluster, rng: &mut StdRng) -> anyhow::Result<String> {
    let n = cluster.len();
    Ok(match kind {
        Kind::None => unreachable!("no faults to inject"),
        Kind::Kill => {
            let i = target(cluster, rng, false).await;
            cluster.kill(i);
            format!("kill {}", cluster.members[i].name)
        }
        Kind::Pause => {
            let i = target(cluster, rng, false).await;
            cluster.pause(i)?;
            format!("pause {}", cluster.members[i].name)
        }
        Kind::PartitionLeader => {
            let l = target(cluster, rng, true).await;
            let others: Vec<usize> = (0..n).filter(|i| *i != l).collect();
            cluster.partition(&[vec![l], others]);
            format!("isolate {}", cluster.members[l].name)
        }
        Kind::PartitionRandom => {
            let mut all: Vec<usize> = (0..n).collect();
            all.shuffle(rng);
            let minority = all.split_off(n - n / 2);
            cluster.partition(&[minority.clone(), all.clone()]);
            let names = |g: &[usize]| {
                g.iter()
                    .map(|i| cluster.members[*i].name.clone())
                    .collect::<Vec<_>>()
                    .join(",")
            };
            format!("partition [{}] | [{}]", names(&minority), names(&all))
        }
        Kind::PartitionOneWay => {
            let l = target(cluster, rng, true).await;
            links::one_way(cluster, l, rng.gen_bool(0.5))
        }
        Kind::LinkDelay => links::delay(cluster, rng),
        Kind::KillAll => {
            cluster.kill_all();
            "kill -9 all members".to_string()
        }
        Kind::MemberReadd => membership::remove_follower(cluster, rng).await?,
        Kind::ClockSkew => clock::skew(cluster, rng).await?,
        Kind::ClockRate => clock::rate(cluster, rng).await?,
        Kind::RollingRestart => ops::rolling_restart(cluster, rng).await?,
        Kind::MemberReplace => ops::replace(cluster, rng, false).await?,
        Kind::LearnerPromote => ops::replace(cluster, rng, true).await?,
        Kind::MoveLeader => ops::move_leader(cluster, rng).await?,
        Kind::CompactDefrag => ops::compact_defrag(cluster, rng).await?,
        Kind::SnapshotRestore => ops::snapshot_restore(cluster, rng).await?,
        Kind::LoseUnsynced | Kind::LoseUnsyncedAll | Kind::FsyncError | Kind::DiskFull | Kind::SlowDisk => {
            disk::inject(kind, cluster, rng).await?
        }
    })
}

/// Runs the schedule until `deadline`, then heals.
pub async fn run(kind: Kind, cluster: Arc<Mutex<Cluster>>, rec: Recorder, mut rng: StdRng, deadline: Instant) {
    if kind == Kind::None {
        tokio::time::sleep_until(deadline).await;
        return;
    }
    let span = |rng: &mut StdRng| Duration::from_millis(rng.gen_range(3000..=5000));
    loop {
        let quiet = span(&mut rng);
        if !wait_until(Instant::now() + quiet, deadline).await {
            break;
        }
        record(&rec, EntryKind::Invoke, kind.name(), None);
        let injected = inject(kind, &mut *cluster.lock().await, &mut rng).await;
        match &injected {
            Ok(what) => record(&rec, EntryKind::Ok, what, None),
            Err(e) => record(&rec, EntryKind::Fail, kind.name(), Some(format!("{e:#}"))),
        }
        let fault = span(&mut rng);
        let more = wait_until(Instant::now() + fault, deadline).await;
        heal(&cluster, &rec).await;
        if !more {
            break;
        }
    }
}

/// Heals everything: removed members are added back, faked clocks are set
/// back (`+0`: see `cluster::clock`), links pass, paused members continue,
/// killed ones restart.
pub async fn heal(cluster: &Arc<Mutex<Cluster>>, rec: &Recorder) {
    record(rec, EntryKind::Invoke, "heal", None);
    let mut cluster = cluster.lock().await;
    let readded = membership::readd_removed(&mut cluster).await;
    let clocks = cluster.reset_clocks();
    let healed = cluster.heal();
    match readded.and(clocks).and(healed) {
        Ok(()) => record(rec, EntryKind::Ok, "heal", None),
        Err(e) => record(rec, EntryKind::Fail, "heal", Some(format!("{e:#}"))),
    }
}
