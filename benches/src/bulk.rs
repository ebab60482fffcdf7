//! Bulk loading through the API, unmeasured: Txns of `batch` puts of
//! random (incompressible) values from `clients` concurrent clients, until
//! a number of puts was made or the member's database size reached a
//! target. The defrag and scale benches fill their stores with it.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use timon_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use timon_proto::etcdserverpb::request_op::Request;
use timon_proto::etcdserverpb::{PutRequest, RequestOp, StatusRequest, TxnRequest};
use tonic::transport::Channel;

use crate::conns::Pool;
use crate::keys;
use crate::progress::Progress;

/// Keys `prefix` + an index zero-padded to `digits`, so they sort by index.
#[derive(Debug, Clone)]
pub struct KeySpace {
    pub prefix: Vec<u8>,
    pub digits: usize,
}

impl KeySpace {
    pub fn new(prefix: &[u8], digits: usize) -> KeySpace {
        KeySpace {
            prefix: prefix.to_vec(),
            digits,
        }
    }

    /// The key of index `i`.
    pub fn key(&self, i: u64) -> Vec<u8> {
        keys::key(&self.prefix, self.digits, i)
    }

    /// The end of a Range over every key of the space.
    pub fn end(&self) -> Vec<u8> {
        keys::prefix_end(&self.prefix)
    }
}

/// `size` random bytes: LZ4 (timon) cannot shrink them, bbolt (etcd) does
/// not compress, so both stores hold the same bytes.
pub fn random_value(rng: &mut StdRng, size: usize) -> Vec<u8> {
    let mut v = vec![0; size];
    rng.fill_bytes(&mut v);
    v
}

/// The database size a member reports in Status (etcd: its bbolt file;
/// timon: its state-machine column families).
pub async fn db_size(member: &Channel) -> anyhow::Result<u64> {
    let s = MaintenanceClient::new(member.clone())
        .status(StatusRequest {})
        .await
        .context("Status")?
        .into_inner();
    Ok(s.db_size.max(0) as u64)
}

/// How the puts are sent.
#[derive(Debug, Clone)]
pub struct Shape {
    pub value_size: usize,
    pub clients: usize,
    /// Puts per Txn.
    pub batch: usize,
}

/// When a load stops.
#[derive(Clone)]
pub enum Until {
    /// After exactly this many puts.
    Puts(u64),
    /// Once the member behind the channel reports this database size
    /// (checked every 200 ms, so a few Txns more may land).
    DbSize(Channel, u64),
}

/// Which key put number `n` writes.
#[derive(Debug, Clone, Copy)]
pub enum Keys {
    /// Index `n`: every put writes a new key.
    Fresh,
    /// Index `n mod count`: overwrites of keys `0..count`, in order.
    Overwrite(u64),
}

/// What a load did.
#[derive(Debug, Clone, Copy)]
pub struct Done {
    /// Puts made; with [`Keys::Fresh`] the keys written are exactly
    /// indexes `0..puts`.
    pub puts: u64,
    /// The highest revision a Txn answered with.
    pub revision: i64,
    /// Txns sent again after the server was unavailable (see [`ATTEMPTS`]).
    pub retries: u64,
}

/// Sends of one Txn before an unavailable server fails the load. A server
/// that times a Txn out (etcd's `request timed out`, after 7 s) may still
/// apply it, and one without a leader for a moment will have one again;
/// sending the Txn again ([`RETRY_AFTER`] later) writes the same keys once
/// more (one more version each), which a bulk load can afford and a long
/// run should not die of. The results count these retries.
pub const ATTEMPTS: u32 = 5;
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

fn unavailable(status: &tonic::Status) -> bool {
    matches!(status.code(), tonic::Code::Unavailable | tonic::Code::DeadlineExceeded)
}

/// Puts into `space` over `pool` until `until`; every Txn sent is awaited.
/// `seed` makes the values repeatable.
pub async fn put(
    pool: &Pool,
    space: &KeySpace,
    which: Keys,
    shape: &Shape,
    until: Until,
    seed: u64,
    progress: &Progress,
) -> anyhow::Result<Done> {
    let limit = match until {
        Until::Puts(n) => n,
        Until::DbSize(..) => u64::MAX,
    };
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let revision = Arc::new(AtomicI64::new(0));
    let retries = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for client in 0..shape.clients.max(1) {
        let mut kv = pool.kv(client);
        let (next, done, stop, revision, retries, progress) = (
            next.clone(),
            done.clone(),
            stop.clone(),
            revision.clone(),
            retries.clone(),
            progress.clone(),
        );
        let (batch, value_size, space) = (shape.batch.max(1) as u64, shape.value_size, space.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed.wrapping_add(client as u64));
            while !stop.load(Ordering::SeqCst) {
                let first = next.fetch_add(batch, Ordering::SeqCst);
                let last = (first + batch).min(limit);
                if first >= last {
                    break;
                }
                let success = (first..last)
                    .map(|n| RequestOp {
                        request: Some(Request::RequestPut(PutRequest {
                            key: space.key(match which {
                                Keys::Fresh => n,
                                Keys::Overwrite(count) => n % count.max(1),
                            }),
                            value: random_value(&mut rng, value_size),
                            ..Default::default()
                        })),
                    })
                    .collect();
                let request = TxnRequest {
                    success,
                    ..Default::default()
                };
                let mut attempt = 1;
                let answer = loop {
                    match kv.txn(request.clone()).await {
                        Ok(answer) => break answer.into_inner(),
                        Err(e) if attempt < ATTEMPTS && unavailable(&e) => {
                            attempt += 1;
                            retries.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(RETRY_AFTER).await;
                        }
                        Err(e) => {
                            return Err(e)
                                .with_context(|| format!("load Txn of puts {first}..{last}, attempt {attempt}"))
                        }
                    }
                };
                revision.fetch_max(answer.header.map_or(0, |h| h.revision), Ordering::SeqCst);
                done.fetch_add(last - first, Ordering::SeqCst);
                progress.inc(last - first);
            }
            anyhow::Ok(())
        }));
    }
    let watched = async {
        loop {
            if tasks.iter().all(|t| t.is_finished()) {
                return anyhow::Ok(());
            }
            if let Until::DbSize(member, target) = &until {
                if tasks.iter().any(|t| t.is_finished()) || db_size(member).await? >= *target {
                    return anyhow::Ok(());
                }
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
    Ok(Done {
        puts: done.load(Ordering::SeqCst),
        revision: revision.load(Ordering::SeqCst),
        retries: retries.load(Ordering::SeqCst),
    })
}
