//! Operations under traffic, as an operator runs them on a live cluster
//! (issue 16 item 4): each is one injection that ends with every member
//! serving again, so the heal after it has nothing to undo.
//! - `rolling-restart`: SIGTERM each member in turn (in random order; a
//!   leader hands its leadership over before it exits), start it again and
//!   wait until it serves before the next.
//! - `member-replace`: MemberRemove a random member (the leader too), wipe
//!   its data, MemberAdd a new member with a new name and data dir on the
//!   same ports and start it with `--initial-cluster-state existing`.
//! - `learner-promote`: the same replacement, but the new member joins as a
//!   learner, and is promoted (MemberPromote, retried until the learner has
//!   caught up) once it serves.
//! - `move-leader`: Maintenance.MoveLeader from the leader to a random
//!   follower.
//! - `compact-defrag`: Compact (physical) to at most [`COMPACT_BEHIND`]
//!   revisions below the current one, then Defragment every member.
//! - `snapshot-restore`: kill -9 a random member (the leader too; the
//!   leader itself when it sent a snapshot so recently that it keeps its
//!   whole log: etcd for 30 s), write filler Puts (`cluster::snapshot`)
//!   until the cluster applied enough raft entries past it that its
//!   leader's log no longer holds its next entry (the members run with a
//!   small `--snapshot-count`: `run::RESTORE_SNAPSHOT_COUNT`), start it
//!   again, and wait until a member's log says it sent it a snapshot and
//!   it applied that snapshot; if none was sent the injection fails.
//!   An operator's backup restore (`timonctl`/`etcdutl snapshot restore`)
//!   is not this: it makes a new cluster, and etcd has no way to restore
//!   one member of a live cluster from a backup; what a live cluster does
//!   is this in-cluster restore, which every member that fell behind the
//!   leader's log goes through.

use std::time::Duration;

use anyhow::{bail, Context};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;
use tokio::time::Instant;

use crate::cluster::Cluster;

/// How long a member may take to exit after SIGTERM (a leader's hand-off
/// waits up to its request timeout, 5 s by default, before it stops).
const STOP_PATIENCE: Duration = Duration::from_secs(30);
/// How long a (re)started member may take to serve again.
const READY_PATIENCE: Duration = Duration::from_secs(30);
/// How long `snapshot-restore`'s filler writes may take (etcd needs over
/// 5000 entries; a few seconds on an idle machine).
const FILL_PATIENCE: Duration = Duration::from_secs(90);
/// How long after it serves again a restarted member may take to be sent,
/// and to apply, its leader's snapshot.
const RESTORE_PATIENCE: Duration = Duration::from_secs(30);
/// How long MemberRemove, MemberAdd and MemberPromote keep being retried
/// (refused while the cluster has no leader, in etcd while a member was not
/// connected for 5 s, a promotion while the learner is behind).
const CHANGE_PATIENCE: Duration = Duration::from_secs(30);
/// A retry backoff between Cluster API attempts, not a wait for an event.
const BACKOFF: Duration = Duration::from_millis(500);
/// At most how far below the current revision `compact-defrag` compacts:
/// about the newest history there is, so every key not written in the
/// last few revisions (a leased key, a lock key) has only its live version
/// left. A watcher or paginated list behind it is canceled or fails with
/// etcd's "required revision has been compacted", which the workloads
/// handle.
pub const COMPACT_BEHIND: i64 = 5;

/// Retries `$call` (an expression over the cluster) every [`BACKOFF`]
/// until it succeeds or `$patience` ran out. (A macro: an async closure
/// borrowing the cluster would not be `Send` for every lifetime.)
macro_rules! retry {
    ($patience:expr, $call:expr) => {{
        let deadline = Instant::now() + $patience;
        loop {
            match $call {
                Ok(t) => break Ok::<_, anyhow::Error>(t),
                Err(e) if Instant::now() >= deadline => break Err(e),
                Err(_) => tokio::time::sleep(BACKOFF).await,
            }
        }
    }};
}

/// SIGTERM, restart and wait for each member in turn.
pub async fn rolling_restart(cluster: &mut Cluster, rng: &mut StdRng) -> anyhow::Result<String> {
    let leader = cluster.leader().await;
    let mut order: Vec<usize> = (0..cluster.len()).collect();
    order.shuffle(rng);
    let mut done = Vec::new();
    for i in order {
        let name = cluster.members[i].name.clone();
        let status = cluster.terminate(i, STOP_PATIENCE).await?;
        cluster.start_member(i)?;
        cluster
            .wait_member_ready(i, READY_PATIENCE)
            .await
            .with_context(|| format!("after restarting {name}"))?;
        let led = if Some(i) == leader { " (leader)" } else { "" };
        let exit = match (status.code(), std::os::unix::process::ExitStatusExt::signal(&status)) {
            (Some(code), _) => format!("exit {code}"),
            (None, Some(signal)) => format!("signal {signal}"),
            (None, None) => status.to_string(),
        };
        done.push(format!("{name}{led} {exit}"));
    }
    Ok(format!("rolling restart: {}", done.join(", ")))
}

/// Removes random member and adds a new one (a learner first, promoted
/// once it serves, with `learner`) in its place.
pub async fn replace(cluster: &mut Cluster, rng: &mut StdRng, learner: bool) -> anyhow::Result<String> {
    let Some(leader) = cluster.leader().await else {
        bail!("no leader to ask for the change");
    };
    let i = rng.gen_range(0..cluster.len());
    let led = if i == leader { " (leader)" } else { "" };
    let old = format!("{}{led}", cluster.members[i].name);
    let mut retried = false;
    let old_id = retry!(CHANGE_PATIENCE, {
        let r = cluster.remove_member(i, retried).await;
        retried = true;
        r
    })?;
    let name = cluster.rename_member(i)?;
    let id = retry!(CHANGE_PATIENCE, cluster.add_member(i, learner).await)?;
    // A removed leader's successor must be elected before the new member
    // can be caught up: both waits are in READY_PATIENCE.
    cluster.wait_member_ready(i, READY_PATIENCE).await?;
    if learner {
        retry!(CHANGE_PATIENCE, cluster.promote_member(i).await)?;
        return Ok(format!(
            "replace {old} ({old_id:x}) by learner {name} ({id:x}), promoted"
        ));
    }
    Ok(format!("replace {old} ({old_id:x}) by {name} ({id:x})"))
}

/// MoveLeader from the leader to a random follower.
pub async fn move_leader(cluster: &mut Cluster, rng: &mut StdRng) -> anyhow::Result<String> {
    let Some(leader) = cluster.leader().await else {
        bail!("no leader to move");
    };
    let followers: Vec<usize> = (0..cluster.len())
        .filter(|i| *i != leader && cluster.member_id(*i) != 0)
        .collect();
    let Some(&to) = followers.choose(rng) else {
        bail!("no follower with a known member ID");
    };
    cluster.move_leader(leader, cluster.member_id(to)).await?;
    Ok(format!(
        "move leader {} -> {}",
        cluster.members[leader].name, cluster.members[to].name
    ))
}

/// Compact to a recent revision, then defragment every member.
pub async fn compact_defrag(cluster: &mut Cluster, rng: &mut StdRng) -> anyhow::Result<String> {
    let via = cluster
        .leader()
        .await
        .unwrap_or_else(|| rng.gen_range(0..cluster.len()));
    let current = cluster.revision(via).await?;
    let at = current - rng.gen_range(0..=COMPACT_BEHIND);
    if at < 1 {
        bail!("revision {current}: nothing to compact yet");
    }
    match cluster.compact(via, at).await {
        Ok(()) => {}
        // A compaction at or below an earlier one: etcd's
        // "mvcc: required revision has been compacted".
        Err(e) if format!("{e:#}").contains("compacted") => {}
        Err(e) => return Err(e),
    }
    let mut failed = Vec::new();
    for i in 0..cluster.len() {
        if let Err(e) = cluster.defragment(i).await {
            failed.push(format!("{e:#}"));
        }
    }
    if !failed.is_empty() {
        bail!("compacted at {at}; {}", failed.join("; "));
    }
    Ok(format!("compact at {at} (current {current}), defragment every member"))
}

/// Kill a random member, write until the cluster's raft log moved past it,
/// restart it and wait until its leader's snapshot restored it.
pub async fn snapshot_restore(cluster: &mut Cluster, rng: &mut StdRng) -> anyhow::Result<String> {
    let Some(restore) = cluster.snapshot_restore() else {
        bail!("the members run with the default --snapshot-count: no snapshot would be sent");
    };
    // Learns every running member's ID.
    let leader = cluster.leader().await;
    // A leader that sent a snapshot less than 30 s ago (etcd) keeps its
    // whole log: only a new leader would send one.
    let i = match leader {
        Some(l) if cluster.holds_its_log(l) => l,
        _ => rng.gen_range(0..cluster.len()),
    };
    let name = cluster.members[i].name.clone();
    let id = cluster.member_id(i);
    if id == 0 {
        bail!("{name}'s member ID is not known");
    }
    let led = if Some(i) == leader { " (leader)" } else { "" };
    let mut stopped_at = cluster.raft_indexes(i).await.map_or(0, |r| r.index);
    cluster.kill(i);
    let offsets = cluster.log_offsets();
    for j in (0..cluster.len()).filter(|j| *j != i) {
        if let Ok(r) = cluster.raft_indexes(j).await {
            stopped_at = stopped_at.max(r.index);
        }
    }
    let filling = Instant::now();
    let (puts, applied) = cluster
        .fill_until_applied(stopped_at + restore.outrun, FILL_PATIENCE)
        .await
        .with_context(|| format!("{name} killed at index {stopped_at}"))?;
    let filled = filling.elapsed().as_secs_f64();
    cluster.start_member(i)?;
    cluster
        .wait_member_ready(i, READY_PATIENCE)
        .await
        .with_context(|| format!("after restarting {name}"))?;
    let sent = cluster
        .wait_snapshot_restored(i, &offsets, RESTORE_PATIENCE)
        .await
        .with_context(|| {
            format!("{name} killed at index {stopped_at}, {puts} filler puts to applied index {applied}")
        })?;
    Ok(format!(
        "snapshot restore {name}{led}: killed at index {stopped_at}, {puts} filler puts in {filled:.1} s to applied \
         index {applied}, restarted; {} sent it a snapshot at index {}, applied",
        cluster.members[sent.from].name, sent.index
    ))
}
