//! Fills one member's store before a defrag is measured: new keys with
//! random (incompressible) values until the database size the member
//! reports in Status reaches 3/4 of the target, then overwrites of those
//! keys until it reaches the target, then a physical Compaction at the
//! latest revision, so the old versions are garbage for defrag to reclaim.
//! Puts go in Txns of `batch` puts from `clients` concurrent clients
//! ([`bulk`]). Unmeasured (only its duration is reported).

use std::time::Instant;

use anyhow::Context;
use timon_proto::etcdserverpb::kv_client::KvClient;
use timon_proto::etcdserverpb::CompactionRequest;
use tonic::transport::Channel;

use crate::bulk::{self, KeySpace, Keys, Shape, Until};
use crate::conns::Pool;
use crate::progress::Progress;

/// Every key the bench writes: `defrag/` + a 10-digit index.
pub fn space() -> KeySpace {
    KeySpace::new(b"defrag/", 10)
}

/// How the store is filled.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Database size (Status.dbSize) to reach, in bytes.
    pub size: u64,
    pub value_size: usize,
    pub clients: usize,
    /// Puts per Txn.
    pub batch: usize,
}

/// What the load left in the store.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// Distinct keys, indexes `0..keys`.
    pub keys: u64,
    /// Puts that replaced an existing key's value.
    pub overwrites: u64,
    /// The revision compacted at (the latest after the load).
    pub compact_revision: i64,
    /// Txns sent again after the server was unavailable.
    pub retries: u64,
    pub secs: f64,
}

/// Fills the member behind `pool` (and `status`, a channel to the same
/// member) as the module doc says.
pub async fn fill(pool: &Pool, status: &Channel, plan: &Plan, progress: &Progress) -> anyhow::Result<Loaded> {
    let started = Instant::now();
    let shape = Shape {
        value_size: plan.value_size,
        clients: plan.clients,
        batch: plan.batch,
    };
    let space = space();
    let until = |bytes| Until::DbSize(status.clone(), bytes);
    let fresh = bulk::put(
        pool,
        &space,
        Keys::Fresh,
        &shape,
        until(plan.size / 4 * 3),
        0xdef7a9,
        progress,
    )
    .await?;
    let fresh_puts = fresh.puts;
    anyhow::ensure!(fresh_puts > 0, "no key was written before the store reached its size");
    let overwrites = bulk::put(
        pool,
        &space,
        Keys::Overwrite(fresh_puts),
        &shape,
        until(plan.size),
        0xdef7a9 + (1 << 32),
        progress,
    )
    .await?;
    let compact_revision = fresh.revision.max(overwrites.revision);
    KvClient::new(status.clone())
        .compact(CompactionRequest {
            revision: compact_revision,
            physical: true,
        })
        .await
        .with_context(|| format!("Compaction at revision {compact_revision}"))?;
    Ok(Loaded {
        keys: fresh_puts,
        overwrites: overwrites.puts,
        compact_revision,
        retries: fresh.retries + overwrites.retries,
        secs: started.elapsed().as_secs_f64(),
    })
}
