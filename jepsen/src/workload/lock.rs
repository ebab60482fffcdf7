//! The `lock` workload: clients contend for one etcd `v3lock` lock
//! ([`NAME`]), each with its own lease kept alive by a renewer task, and
//! fence their writes with the lock key. A client repeatedly:
//!
//! 1. grants a lease ([`Config::ttl`]) when it has none or lost it, and
//!    starts renewing it every [`Config::renew_every`] (each renewal is a
//!    `keep-alive` operation of the renewer's own process);
//! 2. `Lock(NAME, lease)`: an `acquire` whose completion carries the lock
//!    key and the fencing revision (the header revision);
//! 3. a fenced write: `Txn(if create_revision(key) > 0 then put(OWNER, v))`,
//!    a `fenced` operation (`fail` when the key was gone);
//! 4. holds for up to [`Config::hold_max`], then `Unlock(key)`: a `release`.
//!
//! A lock or unlock whose outcome is unknown may still create or delete the
//! key later, so the client abandons that lease (revokes it, best effort)
//! and grants a new one; `check::lock` relies on this. Unknown outcomes are
//! `info` and the client continues as a new process, as in the register
//! workload. [`OWNER`] is outside the lock's prefix `NAME/`, where every
//! key is a waiter.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use timon_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use timon_proto::etcdserverpb::kv_client::KvClient;
use timon_proto::etcdserverpb::lease_client::LeaseClient;
use timon_proto::etcdserverpb::request_op::Request;
use timon_proto::etcdserverpb::{Compare, LeaseGrantRequest, LeaseRevokeRequest, RequestOp, TxnRequest};
use timon_proto::v3lockpb::lock_client::LockClient;
use timon_proto::v3lockpb::{LockRequest, UnlockRequest};
use tokio::time::Instant;
use tonic::transport::Channel;
use tonic::Status;

use crate::cluster::Endpoint;
use crate::history::{Kind, Op};
use crate::recorder::Recorder;
use crate::workload::register::{self, Done};
use crate::workload::renewer::{self, Renewer};

/// The lock's name: its keys are `NAME/<lease in hex>`.
pub const NAME: &str = "jepsen/lock";
/// The key fenced writes put.
pub const OWNER: &str = "jepsen/lock-owner";

/// Workload parameters.
#[derive(Debug, Clone)]
pub struct Config {
    pub clients: usize,
    /// Lease TTL in seconds.
    pub ttl: i64,
    pub renew_every: Duration,
    /// How long a Lock may wait: above the TTL, so a holder that died is
    /// waited out.
    pub lock_timeout: Duration,
    /// Every other request is abandoned (`info`) after this.
    pub op_timeout: Duration,
    pub hold_max: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            clients: 5,
            ttl: 5,
            renew_every: Duration::from_secs(1),
            lock_timeout: Duration::from_secs(8),
            op_timeout: Duration::from_secs(2),
            hold_max: Duration::from_millis(200),
        }
    }
}

/// Runs `cfg.clients` clients (client i on member i mod n) until `deadline`.
pub async fn run(
    endpoints: &[Endpoint],
    cfg: &Config,
    rec: &Recorder,
    seed: u64,
    deadline: Instant,
) -> anyhow::Result<()> {
    let shared = Arc::new(Shared {
        cfg: cfg.clone(),
        rec: rec.clone(),
        processes: Arc::new(AtomicI64::new(cfg.clients as i64)),
        values: AtomicU64::new(1),
    });
    let mut tasks = Vec::new();
    for c in 0..cfg.clients {
        let channel = endpoints[c % endpoints.len()].lazy()?;
        let client = Client {
            process: c as i64,
            channel,
            shared: shared.clone(),
        };
        let rng = StdRng::seed_from_u64(seed.wrapping_mul(1_000_037).wrapping_add(c as u64));
        tasks.push(tokio::spawn(client.run(rng, deadline)));
    }
    for t in tasks {
        t.await?;
    }
    Ok(())
}

/// What every client and renewer shares.
struct Shared {
    cfg: Config,
    rec: Recorder,
    /// The next fresh process id (after an `info`, and for renewers).
    processes: Arc<AtomicI64>,
    /// Fenced writes' values, unique in the history.
    values: AtomicU64,
}

impl Shared {
    fn fresh(&self) -> i64 {
        self.processes.fetch_add(1, Ordering::Relaxed)
    }

    /// How this workload's renewers renew.
    fn renewal(&self) -> renewer::Renewal {
        renewer::Renewal {
            rec: self.rec.clone(),
            processes: self.processes.clone(),
            ttl: self.cfg.ttl,
            every: self.cfg.renew_every,
            op_timeout: self.cfg.op_timeout,
            until: None,
        }
    }
}

/// A granted lease and its renewer, which stops when this is dropped.
struct Lease {
    id: i64,
    /// Set when the lease is (or may be) gone: it cannot be renewed.
    lost: Arc<AtomicBool>,
    _renewer: Renewer,
}

struct Client {
    process: i64,
    channel: Channel,
    shared: Arc<Shared>,
}

/// How a lock request ended.
enum Acquired {
    Key(String),
    /// Certainly not held; the lease may be gone.
    Refused,
    Unknown,
}

impl Client {
    async fn run(mut self, mut rng: StdRng, deadline: Instant) {
        let mut lease: Option<Lease> = None;
        while Instant::now() < deadline {
            let id = match &lease {
                Some(l) if !l.lost.load(Ordering::Relaxed) => l.id,
                _ => {
                    lease = self.grant().await;
                    if lease.is_none() {
                        // No leader yet, or the member is down: do not spin.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    continue;
                }
            };
            let key = match self.acquire(id).await {
                Acquired::Key(key) => key,
                Acquired::Refused => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                Acquired::Unknown => {
                    self.abandon(lease.take()).await;
                    continue;
                }
            };
            if !self.fenced(&key).await {
                if let Some(l) = &lease {
                    l.lost.store(true, Ordering::Relaxed);
                }
            }
            let hold = rng.gen_range(0..=self.shared.cfg.hold_max.as_millis() as u64);
            tokio::time::sleep(Duration::from_millis(hold)).await;
            if !self.release(&key).await {
                self.abandon(lease.take()).await;
            }
        }
    }

    fn record(&mut self, kind: Kind, op: Op, revision: Option<i64>, error: Option<String>) {
        let unknown = kind == Kind::Info;
        self.shared.rec.record(self.process, kind, op, revision, error);
        if unknown {
            self.process = self.shared.fresh();
        }
    }

    /// Records a failed request's completion: `fail` if it certainly did
    /// not happen, else `info`. Answers whether it failed for certain.
    async fn failed(&mut self, op: Op, error: Result<Status, tokio::time::error::Elapsed>) -> bool {
        let text = match error {
            Ok(status) => register::describe(&status),
            Err(_) => "timeout".to_string(),
        };
        let certain =
            register::not_applied(&text) || text.contains("lease not found") || text.contains("session expired");
        let refused = text.contains("refused");
        let kind = if certain { Kind::Fail } else { Kind::Info };
        self.record(kind, op, None, Some(text));
        if refused {
            // The member is down: do not spin on refused connections.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        certain
    }

    async fn grant(&mut self) -> Option<Lease> {
        let ttl = self.shared.cfg.ttl;
        let op = Op::Grant { ttl, lease: None };
        self.record(Kind::Invoke, op.clone(), None, None);
        let mut client = LeaseClient::new(self.channel.clone());
        let request = LeaseGrantRequest { ttl, id: 0 };
        match tokio::time::timeout(self.shared.cfg.op_timeout, client.lease_grant(request)).await {
            Ok(Ok(r)) if r.get_ref().error.is_empty() => {
                let r = r.into_inner();
                let granted = Op::Grant { ttl, lease: Some(r.id) };
                self.record(Kind::Ok, granted, r.header.map(|h| h.revision), None);
                let lost = Arc::new(AtomicBool::new(false));
                let renewer = Renewer::spawn(self.channel.clone(), r.id, self.shared.renewal(), lost.clone());
                Some(Lease {
                    id: r.id,
                    lost,
                    _renewer: renewer,
                })
            }
            Ok(Ok(r)) => {
                self.record(Kind::Fail, op, None, Some(r.into_inner().error));
                None
            }
            Ok(Err(status)) => {
                self.failed(op, Ok(status)).await;
                None
            }
            Err(elapsed) => {
                self.failed(op, Err(elapsed)).await;
                None
            }
        }
    }

    async fn acquire(&mut self, lease: i64) -> Acquired {
        let op = |key| Op::Acquire {
            name: NAME.into(),
            lease,
            key,
        };
        self.record(Kind::Invoke, op(None), None, None);
        let mut client = LockClient::new(self.channel.clone());
        let request = LockRequest {
            name: NAME.as_bytes().to_vec(),
            lease,
        };
        match tokio::time::timeout(self.shared.cfg.lock_timeout, client.lock(request)).await {
            Ok(Ok(r)) => {
                let r = r.into_inner();
                let key = String::from_utf8_lossy(&r.key).into_owned();
                self.record(Kind::Ok, op(Some(key.clone())), r.header.map(|h| h.revision), None);
                Acquired::Key(key)
            }
            Ok(Err(status)) => match self.failed(op(None), Ok(status)).await {
                true => Acquired::Refused,
                false => Acquired::Unknown,
            },
            Err(elapsed) => {
                self.failed(op(None), Err(elapsed)).await;
                Acquired::Unknown
            }
        }
    }

    /// The fenced write; answers false if the lock key was gone.
    async fn fenced(&mut self, key: &str) -> bool {
        let value = self.shared.values.fetch_add(1, Ordering::Relaxed);
        let op = Op::Fenced {
            lock: key.into(),
            value,
        };
        self.record(Kind::Invoke, op.clone(), None, None);
        let mut kv = KvClient::new(self.channel.clone());
        let txn = TxnRequest {
            compare: vec![Compare {
                result: CompareResult::Greater as i32,
                target: CompareTarget::Create as i32,
                key: key.as_bytes().to_vec(),
                target_union: Some(TargetUnion::CreateRevision(0)),
                range_end: Vec::new(),
            }],
            success: vec![RequestOp {
                request: Some(Request::RequestPut(register::put(OWNER, value))),
            }],
            failure: Vec::new(),
        };
        let request = async {
            let r = kv.txn(txn).await?.into_inner();
            let rev = r.header.map(|h| h.revision);
            Ok(if r.succeeded {
                Done::Ok(op.clone(), rev)
            } else {
                Done::CasMismatch(0, rev)
            })
        };
        match register::classify(false, self.shared.cfg.op_timeout, request).await {
            Done::Ok(op, rev) => self.record(Kind::Ok, op, rev, None),
            Done::CasMismatch(_, rev) => {
                self.record(Kind::Fail, op, rev, Some("lock key gone".into()));
                return false;
            }
            Done::Fail(rev, e) => self.record(Kind::Fail, op, rev, Some(e)),
            Done::Info(e) => self.record(Kind::Info, op, None, Some(e)),
        }
        true
    }

    /// Unlocks; answers false unless the unlock certainly happened.
    async fn release(&mut self, key: &str) -> bool {
        let op = Op::Release { key: key.into() };
        self.record(Kind::Invoke, op.clone(), None, None);
        let mut client = LockClient::new(self.channel.clone());
        let request = UnlockRequest {
            key: key.as_bytes().to_vec(),
        };
        match tokio::time::timeout(self.shared.cfg.op_timeout, client.unlock(request)).await {
            Ok(Ok(r)) => {
                self.record(Kind::Ok, op, r.into_inner().header.map(|h| h.revision), None);
                true
            }
            Ok(Err(status)) => {
                self.failed(op, Ok(status)).await;
                false
            }
            Err(elapsed) => {
                self.failed(op, Err(elapsed)).await;
                false
            }
        }
    }

    /// Gives a lease up: its renewer stops, and it is revoked (best effort;
    /// if that fails it expires).
    async fn abandon(&mut self, lease: Option<Lease>) {
        let Some(lease) = lease else { return };
        let id = lease.id;
        drop(lease);
        let op = Op::Revoke { lease: id };
        self.record(Kind::Invoke, op.clone(), None, None);
        let mut client = LeaseClient::new(self.channel.clone());
        match tokio::time::timeout(
            self.shared.cfg.op_timeout,
            client.lease_revoke(LeaseRevokeRequest { id }),
        )
        .await
        {
            Ok(Ok(r)) => self.record(Kind::Ok, op, r.into_inner().header.map(|h| h.revision), None),
            Ok(Err(status)) => _ = self.failed(op, Ok(status)).await,
            Err(elapsed) => _ = self.failed(op, Err(elapsed)).await,
        }
    }
}
