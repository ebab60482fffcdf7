//! Fills one member's store before a defrag is measured: new keys with
//! random (incompressible) values until the database size the member
//! reports in Status reaches 3/4 of the target, then overwrites of those
//! keys until it reaches the target, then a physical Compaction at the
//! latest revision, so the old versions are garbage for defrag to reclaim.
//! Puts go in Txns of `batch` puts from `clients` concurrent clients.
//! Unmeasured (only its duration is reported).

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use timon_proto::etcdserverpb::kv_client::KvClient;
use timon_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use timon_proto::etcdserverpb::request_op::Request;
use timon_proto::etcdserverpb::{CompactionRequest, PutRequest, RequestOp, StatusRequest, TxnRequest};
use tonic::transport::Channel;

use crate::conns::Pool;
use crate::keys;
use crate::progress::Progress;

/// Every key the bench writes: this prefix + a 10-digit index.
pub const PREFIX: &[u8] = b"defrag/";
const KEY_DIGITS: usize = 10;

/// The key of index `i`.
pub fn key(i: u64) -> Vec<u8> {
    keys::key(PREFIX, KEY_DIGITS, i)
}

/// `size` random bytes: LZ4 (timon) cannot shrink them, bbolt (etcd) does
/// not compress, so both stores hold the same bytes.
pub fn random_value(rng: &mut StdRng, size: usize) -> Vec<u8> {
    let mut v = vec![0; size];
    rng.fill_bytes(&mut v);
    v
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
    pub secs: f64,
}

/// The database size a member reports (etcd: its bbolt file).
pub async fn db_size(endpoint: &Channel) -> anyhow::Result<u64> {
    let s = MaintenanceClient::new(endpoint.clone())
        .status(StatusRequest {})
        .await
        .context("Status")?
        .into_inner();
    Ok(s.db_size.max(0) as u64)
}

/// Fills the member behind `pool` (and `status`, a channel to the same
/// member) as the module doc says.
pub async fn fill(pool: &Pool, status: &Channel, plan: &Plan, progress: &Progress) -> anyhow::Result<Loaded> {
    let started = Instant::now();
    let revision = Arc::new(AtomicI64::new(0));
    let fresh = run_phase(pool, status, plan, plan.size / 4 * 3, None, &revision, progress).await?;
    anyhow::ensure!(fresh > 0, "no key was written before the store reached its size");
    let overwrites = run_phase(pool, status, plan, plan.size, Some(fresh), &revision, progress).await?;
    let compact_revision = revision.load(Ordering::SeqCst);
    KvClient::new(status.clone())
        .compact(CompactionRequest {
            revision: compact_revision,
            physical: true,
        })
        .await
        .with_context(|| format!("Compaction at revision {compact_revision}"))?;
    Ok(Loaded {
        keys: fresh,
        overwrites,
        compact_revision,
        secs: started.elapsed().as_secs_f64(),
    })
}

/// Puts until the member's database size reaches `target` and returns how
/// many puts it made: new keys from index 0 on when `overwrite` is None,
/// else keys `0..overwrite` in order, wrapping. Every Txn sent is awaited,
/// so the keys written are exactly indexes `0..returned` (new keys).
async fn run_phase(
    pool: &Pool,
    status: &Channel,
    plan: &Plan,
    target: u64,
    overwrite: Option<u64>,
    revision: &Arc<AtomicI64>,
    progress: &Progress,
) -> anyhow::Result<u64> {
    let next = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for client in 0..plan.clients {
        let mut kv = pool.kv(client);
        let (next, stop, revision, progress) = (next.clone(), stop.clone(), revision.clone(), progress.clone());
        let (batch, value_size) = (plan.batch as u64, plan.value_size);
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(0xdef7a9 + client as u64 + overwrite.map_or(0, |_| 1 << 32));
            while !stop.load(Ordering::SeqCst) {
                let first = next.fetch_add(batch, Ordering::SeqCst);
                let success = (first..first + batch)
                    .map(|n| RequestOp {
                        request: Some(Request::RequestPut(PutRequest {
                            key: key(overwrite.map_or(n, |keys| n % keys)),
                            value: random_value(&mut rng, value_size),
                            ..Default::default()
                        })),
                    })
                    .collect();
                let answer = kv
                    .txn(TxnRequest {
                        success,
                        ..Default::default()
                    })
                    .await
                    .with_context(|| format!("load Txn of keys from index {first}"))?
                    .into_inner();
                revision.fetch_max(answer.header.map_or(0, |h| h.revision), Ordering::SeqCst);
                progress.inc(batch);
            }
            anyhow::Ok(())
        }));
    }
    let watched = async {
        loop {
            if db_size(status).await? >= target || tasks.iter().any(|t| t.is_finished()) {
                return anyhow::Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let watched = watched.await;
    stop.store(true, Ordering::SeqCst);
    for task in tasks {
        task.await.context("load client panicked")??;
    }
    watched?;
    Ok(next.load(Ordering::SeqCst))
}
