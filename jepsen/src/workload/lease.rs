//! The `lease` workload: clients grant leases, attach one key to each and
//! watch the key live and die with its lease. A client repeatedly:
//!
//! 1. grants a lease of [`Config::ttl`] seconds and starts a renewer task
//!    (`workload::renewer`, a renewal every [`Config::renew_every`]);
//! 2. puts `jepsen/lease/<lease in hex>` with the lease (a `leased-put`);
//! 3. reads the key (linearizable Range, a `leased-read`) every
//!    [`Config::read_every`] for up to [`Config::hold_max`];
//! 4. ends the lease, chosen at random: either revokes it while a reader
//!    (a process of its own) reads the key every [`Config::race_every`],
//!    the renewer still running (it stops when the leader answers "not
//!    found"; a renewal after the revoke completed, or after the reader
//!    found the key gone on a member that applied the revoke first, must
//!    not succeed), then reads the key again; or stops the renewer and
//!    reads until the key is gone (expiry) or TTL + [`Config::expiry_slack`]
//!    passed.
//!
//! A put whose outcome is unknown or that failed abandons the lease (revoke,
//! best effort). `check::lease` reads the history; [`keys_left`] is the
//! liveness half: after the run every lease must expire.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use timon_proto::etcdserverpb::kv_client::KvClient;
use timon_proto::etcdserverpb::lease_client::LeaseClient;
use timon_proto::etcdserverpb::{LeaseGrantRequest, LeaseRevokeRequest, PutRequest, RangeRequest};
use tokio::time::Instant;
use tonic::transport::Channel;

use crate::cluster::Endpoint;
use crate::history::{Kind, Op};
use crate::recorder::Recorder;
use crate::workload::register::{self, Done};
use crate::workload::renewer::{self, Renewer};

/// The prefix of every key of the workload.
pub const PREFIX: &str = "jepsen/lease/";

/// Workload parameters.
#[derive(Debug, Clone)]
pub struct Config {
    pub clients: usize,
    /// Lease TTL in seconds (above etcd's minimum for 1 s elections).
    pub ttl: i64,
    pub renew_every: Duration,
    pub read_every: Duration,
    /// How often the reader that races a revoke reads.
    pub race_every: Duration,
    pub hold_max: Duration,
    /// How long past the TTL a client reads an unrenewed lease's key before
    /// it moves on (the leader may need an election to expire it).
    pub expiry_slack: Duration,
    pub op_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            clients: 5,
            ttl: 3,
            renew_every: Duration::from_millis(100),
            read_every: Duration::from_millis(100),
            race_every: Duration::from_millis(10),
            hold_max: Duration::from_millis(2000),
            expiry_slack: Duration::from_secs(3),
            op_timeout: Duration::from_secs(2),
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
    let processes = Arc::new(AtomicI64::new(cfg.clients as i64));
    let values = Arc::new(AtomicU64::new(1));
    let mut tasks = Vec::new();
    for c in 0..cfg.clients {
        let channel = endpoints[c % endpoints.len()].lazy()?;
        let client = Client {
            process: c as i64,
            channel,
            cfg: cfg.clone(),
            rec: rec.clone(),
            processes: processes.clone(),
            values: values.clone(),
            deadline,
        };
        let rng = StdRng::seed_from_u64(seed.wrapping_mul(7_000_003).wrapping_add(c as u64));
        tasks.push(tokio::spawn(client.run(rng)));
    }
    for t in tasks {
        t.await?;
    }
    Ok(())
}

#[derive(Clone)]
struct Client {
    process: i64,
    channel: Channel,
    cfg: Config,
    rec: Recorder,
    processes: Arc<AtomicI64>,
    values: Arc<AtomicU64>,
    deadline: Instant,
}

impl Client {
    async fn run(mut self, mut rng: StdRng) {
        while Instant::now() < self.deadline {
            let Some(lease) = self.grant().await else {
                // No leader yet, or the member is down: do not spin.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let renewer = Renewer::spawn(
                self.channel.clone(),
                lease,
                self.renewal(),
                Arc::new(AtomicBool::new(false)),
            );
            let key = format!("{PREFIX}{lease:x}");
            if !self.put(&key, lease).await {
                drop(renewer);
                self.revoke(lease).await;
                continue;
            }
            let hold = Instant::now() + Duration::from_millis(rng.gen_range(0..=self.cfg.hold_max.as_millis() as u64));
            while Instant::now() < hold.min(self.deadline) {
                self.read(&key).await;
                tokio::time::sleep(self.cfg.read_every).await;
            }
            if rng.gen_bool(0.5) {
                // The renewer goes on until the leader says "not found".
                renewer.detach();
                if self.revoke_racing_a_reader(lease, &key).await {
                    self.read(&key).await;
                }
            } else {
                drop(renewer);
                let give_up = Instant::now()
                    + Duration::from_secs(u64::try_from(self.cfg.ttl).unwrap_or(0))
                    + self.cfg.expiry_slack;
                while Instant::now() < give_up.min(self.deadline) && self.read(&key).await != Some(None) {
                    tokio::time::sleep(self.cfg.read_every).await;
                }
            }
        }
    }

    fn renewal(&self) -> renewer::Renewal {
        renewer::Renewal {
            rec: self.rec.clone(),
            processes: self.processes.clone(),
            ttl: self.cfg.ttl,
            every: self.cfg.renew_every,
            op_timeout: self.cfg.op_timeout,
            until: Some(self.deadline),
        }
    }

    fn record(&mut self, done: Done, op: Op) {
        match done {
            Done::Ok(op, rev) => self.rec.record(self.process, Kind::Ok, op, rev, None),
            Done::CasMismatch(_, rev) => self.rec.record(self.process, Kind::Fail, op, rev, None),
            Done::Fail(rev, e) => self.rec.record(self.process, Kind::Fail, op, rev, Some(e)),
            Done::Info(e) => {
                self.rec.record(self.process, Kind::Info, op, None, Some(e));
                self.process = self.processes.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    async fn grant(&mut self) -> Option<i64> {
        let ttl = self.cfg.ttl;
        let op = Op::Grant { ttl, lease: None };
        self.rec.record(self.process, Kind::Invoke, op.clone(), None, None);
        let mut client = LeaseClient::new(self.channel.clone());
        let request = async {
            let r = client.lease_grant(LeaseGrantRequest { ttl, id: 0 }).await?.into_inner();
            let rev = r.header.map(|h| h.revision);
            Ok(match r.error.is_empty() {
                true => Done::Ok(Op::Grant { ttl, lease: Some(r.id) }, rev),
                false => Done::Fail(rev, r.error),
            })
        };
        let done = register::classify(false, self.cfg.op_timeout, request).await;
        let lease = match &done {
            Done::Ok(Op::Grant { lease, .. }, _) => *lease,
            _ => None,
        };
        self.record(done, op);
        lease
    }

    /// Answers whether the put certainly happened.
    async fn put(&mut self, key: &str, lease: i64) -> bool {
        let value = self.values.fetch_add(1, Ordering::Relaxed);
        let op = Op::LeasedPut {
            key: key.into(),
            lease,
            value,
        };
        self.rec.record(self.process, Kind::Invoke, op.clone(), None, None);
        let mut kv = KvClient::new(self.channel.clone());
        let request = PutRequest {
            lease,
            ..register::put(key, value)
        };
        let sent = async {
            let r = kv.put(request).await?.into_inner();
            Ok(Done::Ok(op.clone(), r.header.map(|h| h.revision)))
        };
        let done = register::classify(false, self.cfg.op_timeout, sent).await;
        let ok = matches!(done, Done::Ok(..));
        self.record(done, op);
        ok
    }

    /// Reads the key: Some(value) when the read succeeded.
    async fn read(&mut self, key: &str) -> Option<Option<u64>> {
        let op = Op::LeasedRead {
            key: key.into(),
            value: None,
        };
        self.rec.record(self.process, Kind::Invoke, op.clone(), None, None);
        let mut kv = KvClient::new(self.channel.clone());
        let sent = async {
            let r = kv.range(register::range(key)).await?.into_inner();
            let rev = r.header.map(|h| h.revision);
            Ok(
                match r.kvs.first().map(|kv| register::parse_value(&kv.value)).transpose() {
                    Ok(value) => Done::Ok(Op::LeasedRead { key: key.into(), value }, rev),
                    Err(e) => Done::Fail(rev, e),
                },
            )
        };
        let done = register::classify(true, self.cfg.op_timeout, sent).await;
        let value = match &done {
            Done::Ok(Op::LeasedRead { value, .. }, _) => Some(*value),
            _ => None,
        };
        let refused = matches!(&done, Done::Fail(_, e) if e.contains("refused"));
        self.record(done, op);
        if refused {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        value
    }

    /// Revokes the lease while another process reads its key until it is
    /// gone; answers whether the revoke certainly happened.
    async fn revoke_racing_a_reader(&mut self, lease: i64, key: &str) -> bool {
        let stop = Arc::new(AtomicBool::new(false));
        let mut reader = self.clone();
        reader.process = self.processes.fetch_add(1, Ordering::Relaxed);
        let reading = {
            let (stop, key) = (stop.clone(), key.to_string());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) && reader.read(&key).await != Some(None) {
                    tokio::time::sleep(reader.cfg.race_every).await;
                }
            })
        };
        let revoked = self.revoke(lease).await;
        stop.store(true, Ordering::Relaxed);
        let _ = reading.await;
        revoked
    }

    /// Revokes the lease; answers whether it certainly happened.
    async fn revoke(&mut self, lease: i64) -> bool {
        let op = Op::Revoke { lease };
        self.rec.record(self.process, Kind::Invoke, op.clone(), None, None);
        let mut client = LeaseClient::new(self.channel.clone());
        let sent = async {
            let r = client
                .lease_revoke(LeaseRevokeRequest { id: lease })
                .await?
                .into_inner();
            Ok(Done::Ok(op.clone(), r.header.map(|h| h.revision)))
        };
        let mut done = register::classify(false, self.cfg.op_timeout, sent).await;
        if let Done::Info(e) = &done {
            // An etcd error naming the lease: it was already gone.
            if e.contains("lease not found") {
                done = Done::Fail(None, e.clone());
            }
        }
        let ok = matches!(done, Done::Ok(..));
        self.record(done, op);
        ok
    }
}

/// The workload's keys still present, read through any member that answers
/// (linearizably) until none are left or `deadline`. After the run no lease
/// is renewed, so every key must go within a TTL and an election.
pub async fn keys_left(endpoints: &[Endpoint], deadline: Instant) -> Result<Vec<String>, String> {
    let mut last = Err("no member answered".to_string());
    loop {
        for e in endpoints {
            let Ok(mut kv) = register::client(e) else { continue };
            let range = RangeRequest {
                key: PREFIX.as_bytes().to_vec(),
                range_end: prefix_end(PREFIX),
                keys_only: true,
                ..Default::default()
            };
            match tokio::time::timeout(Duration::from_secs(2), kv.range(range)).await {
                Ok(Ok(r)) => {
                    let keys: Vec<String> = r
                        .into_inner()
                        .kvs
                        .iter()
                        .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
                        .collect();
                    if keys.is_empty() {
                        return Ok(keys);
                    }
                    last = Ok(keys);
                    break;
                }
                Ok(Err(status)) => last = Err(register::describe(&status)),
                Err(_) => last = Err("timeout".into()),
            }
        }
        if Instant::now() >= deadline {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    end
}
