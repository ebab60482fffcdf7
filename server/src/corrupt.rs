//! etcd's corruption checks (`etcdserver/corrupt.go`): members holding the
//! same revisions must hold the same bytes (DESIGN.md invariant 2), and
//! HashKV (`mvcc::hash`) is how they compare.
//!
//! - The initial check (`--experimental-initial-corrupt-check`; 3.6:
//!   `--feature-gates=InitialCorruptCheck=true`) runs before this member
//!   serves clients: every peer hashes at this member's revision, and a
//!   different hash at the same compaction revision stops the start-up with
//!   etcd's error, `<id> found data inconsistency with peers`.
//! - The periodic check (`--experimental-corrupt-check-time`; 3.6:
//!   `--corrupt-check-time`) runs on the leader: a peer at a newer revision
//!   or compaction than the leader's, or with another hash at the leader's
//!   compaction revision, raises the CORRUPT alarm through raft, which then
//!   refuses every write (`apply::alarm`).
//!
//! Log lines and fields are etcd 3.4's.

use std::sync::Arc;
use std::time::Duration;

use timon_proto::etcdserverpb::AlarmType;
use tokio::sync::watch;

use crate::raft::RaftNode;
use crate::rpc::Ctx;

/// A member ID as etcd prints it (`types.ID`: lower-case hex).
fn id(n: u64) -> String {
    format!("{n:x}")
}

/// The initial check; an error stops the start-up. Peers get etcd's
/// request timeout to answer.
pub async fn initial_check(raft: &RaftNode) -> anyhow::Result<()> {
    let timeout = raft.request_timeout();
    let me = id(raft.id());
    tracing::info!("local-member-id" = %me, timeout = %timon_go::format_duration(timeout), "starting initial corruption check");
    let store = raft.store();
    let local = tokio::task::spawn_blocking(move || store.hash_kv(0))
        .await?
        .map_err(|e| anyhow::anyhow!("{me} failed to fetch hash ({e})"))?;
    let mut mismatch = 0;
    for p in raft.peer_hash_kvs(local.current_rev, timeout).await {
        let peer = id(p.id);
        match &p.answer {
            Ok(resp) => {
                let peer_rev = resp.header.as_ref().map_or(0, |h| h.revision);
                if resp.hash == local.hash {
                    continue;
                }
                let same_compaction = resp.compact_revision == local.compact_rev;
                let msg = if same_compaction {
                    mismatch += 1;
                    "found different hash values from remote peer"
                } else {
                    "found different compact revision values from remote peer"
                };
                tracing::warn!(
                    "local-member-id" = %me,
                    "local-member-revision" = local.current_rev,
                    "local-member-compact-revision" = local.compact_rev,
                    "local-member-hash" = local.hash,
                    "remote-peer-id" = %peer,
                    "remote-peer-endpoints" = ?p.peer_urls,
                    "remote-peer-revision" = peer_rev,
                    "remote-peer-compact-revision" = resp.compact_revision,
                    "remote-peer-hash" = resp.hash,
                    "{msg}"
                );
            }
            Err(e) if p.future_rev() => tracing::warn!(
                "local-member-id" = %me, "local-member-revision" = local.current_rev,
                "remote-peer-id" = %peer, "remote-peer-endpoints" = ?p.peer_urls, error = %e.message(),
                "cannot fetch hash from slow remote peer"
            ),
            Err(e) if p.compacted() => tracing::warn!(
                "local-member-id" = %me, "local-member-revision" = local.current_rev,
                "remote-peer-id" = %peer, "remote-peer-endpoints" = ?p.peer_urls, error = %e.message(),
                "cannot fetch hash from remote peer; local member is behind"
            ),
            Err(e) => tracing::warn!(
                "remote-peer-id" = %peer, "remote-peer-endpoints" = ?p.peer_urls, error = %e.message(),
                "failed hash kv request"
            ),
        }
    }
    if mismatch > 0 {
        anyhow::bail!("{me} found data inconsistency with peers");
    }
    tracing::info!("local-member-id" = %me, "initial corruption checking passed; no corruption");
    Ok(())
}

/// Starts the periodic check: every `interval`, on the leader.
pub fn spawn_monitor(
    ctx: Arc<Ctx>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        tracing::info!("local-member-id" = %id(ctx.member_id), interval = %timon_go::format_duration(interval), "enabled corruption checking");
        loop {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                _ = tokio::time::sleep(interval) => {}
            }
            if ctx.raft.status().leader != Some(ctx.member_id) {
                continue;
            }
            if let Err(e) = check(&ctx).await {
                tracing::warn!(error = %e, "failed to check hash KV");
            }
        }
    })
}

/// One pass of etcd's `checkHashKV` on the leader; any mismatch raises
/// CORRUPT once, for the whole cluster (member 0: etcd 3.4 cannot tell
/// which member is wrong).
async fn check(ctx: &Ctx) -> anyhow::Result<()> {
    let timeout = ctx.raft.request_timeout();
    let hash_now = || {
        let store = ctx.raft.store();
        async move { tokio::task::spawn_blocking(move || store.hash_kv(0)).await }
    };
    let first = hash_now().await??;
    let peers = ctx.raft.peer_hash_kvs(first.current_rev, timeout).await;
    ctx.raft.read_index().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let second = hash_now().await??;

    let mut mismatch = false;
    if second.hash != first.hash && second.current_rev == first.current_rev && second.compact_rev == first.compact_rev {
        tracing::warn!(
            "revision-1" = first.current_rev,
            "compact-revision-1" = first.compact_rev,
            "hash-1" = first.hash,
            "revision-2" = second.current_rev,
            "compact-revision-2" = second.compact_rev,
            "hash-2" = second.hash,
            "found hash mismatch"
        );
        mismatch = true;
    }
    let mut checked = 0;
    for p in &peers {
        let Ok(resp) = &p.answer else { continue };
        checked += 1;
        let peer_rev = resp.header.as_ref().map_or(0, |h| h.revision);
        if peer_rev > second.current_rev {
            tracing::warn!(
                "leader-revision" = second.current_rev,
                "follower-revision" = peer_rev,
                "follower-peer-id" = %id(p.id),
                "revision from follower must be less than or equal to leader's"
            );
            mismatch = true;
        }
        if resp.compact_revision > second.compact_rev {
            tracing::warn!(
                "leader-compact-revision" = second.compact_rev,
                "follower-compact-revision" = resp.compact_revision,
                "follower-peer-id" = %id(p.id),
                "compact revision from follower must be less than or equal to leader's"
            );
            mismatch = true;
        }
        if resp.compact_revision == first.compact_rev && resp.hash != first.hash {
            tracing::warn!(
                "leader-compact-revision" = second.compact_rev,
                "leader-hash" = first.hash,
                "follower-compact-revision" = resp.compact_revision,
                "follower-hash" = resp.hash,
                "follower-peer-id" = %id(p.id),
                "same compact revision then hashes must match"
            );
            mismatch = true;
        }
    }
    tracing::info!("number-of-peers-checked" = checked, "finished peer corruption check");
    if mismatch {
        ctx.raise_alarm(0, AlarmType::Corrupt).await;
    }
    Ok(())
}
