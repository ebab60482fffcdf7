//! The `register` workload: each key is a register. Client tasks, each with
//! one outstanding operation at a time and bound to one member, pick a key
//! and read it (linearizable Range), write it (Put, a value unique in the
//! history) or compare-and-set it (Txn: MOD revision == the one the client
//! last saw, then Put, else Range; [`guarded`] also serves the kubernetes
//! workload's creates and deletes). Every operation is recorded as an
//! invocation and a completion: `Ok`; `Fail` when it certainly did not take
//! effect (any failed read, a refused connection, an etcd error meaning "not
//! applied"); `Info` when a write's outcome is unknown (timeouts, transport
//! errors). A client whose write ended `Info` continues as a new process
//! (id + number of clients), as in Jepsen, since its old operation may still
//! be in flight.
//!
//! Also: the final read of every key on every member after the cluster is
//! healed ([`final_reads`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use timon_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use timon_proto::etcdserverpb::kv_client::KvClient;
use timon_proto::etcdserverpb::request_op::Request;
use timon_proto::etcdserverpb::response_op::Response;
use timon_proto::etcdserverpb::{Compare, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest};
use tokio::time::Instant;
use tonic::transport::Channel;

use crate::cluster::Endpoint;
use crate::history::{Kind, Op};
use crate::recorder::Recorder;

/// Workload parameters.
#[derive(Debug, Clone)]
pub struct Config {
    pub clients: usize,
    pub keys: usize,
    /// A request not answered within this is abandoned (Info for writes).
    pub op_timeout: Duration,
    /// The share of reads; the rest are half writes, half cas.
    pub read_fraction: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            clients: 5,
            keys: 3,
            op_timeout: Duration::from_secs(2),
            read_fraction: 0.5,
        }
    }
}

/// The name of register `i`.
pub fn key(i: usize) -> String {
    format!("jepsen/register/{i}")
}

/// A lazily connecting KV client for `endpoint` (reconnects after kills).
pub fn client(endpoint: &Endpoint) -> anyhow::Result<KvClient<Channel>> {
    Ok(KvClient::new(endpoint.lazy()?))
}

/// Runs `cfg.clients` clients against `endpoints` (client i on member i mod
/// n) until `deadline`, recording into `rec`.
pub async fn run(
    endpoints: &[Endpoint],
    cfg: &Config,
    rec: &Recorder,
    seed: u64,
    deadline: Instant,
) -> anyhow::Result<()> {
    let values = Arc::new(AtomicU64::new(1));
    let mut tasks = Vec::new();
    for c in 0..cfg.clients {
        let kv = client(&endpoints[c % endpoints.len()])?;
        let (cfg, rec, values) = (cfg.clone(), rec.clone(), values.clone());
        let rng = StdRng::seed_from_u64(seed.wrapping_mul(1_000_003).wrapping_add(c as u64));
        tasks.push(tokio::spawn(async move {
            client_loop(c, kv, cfg, rec, values, rng, deadline).await;
        }));
    }
    for t in tasks {
        t.await?;
    }
    Ok(())
}

async fn client_loop(
    index: usize,
    mut kv: KvClient<Channel>,
    cfg: Config,
    rec: Recorder,
    values: Arc<AtomicU64>,
    mut rng: StdRng,
    deadline: Instant,
) {
    let mut process = index as i64;
    // The mod_revision this client last saw per key (0: absent / unknown).
    let mut seen: HashMap<String, i64> = HashMap::new();
    while Instant::now() < deadline {
        let k = key(rng.gen_range(0..cfg.keys));
        let roll: f64 = rng.gen();
        let op = if roll < cfg.read_fraction {
            Op::Read {
                key: k.clone(),
                value: None,
                mod_revision: None,
            }
        } else if roll < cfg.read_fraction + (1.0 - cfg.read_fraction) / 2.0 {
            Op::Write {
                key: k.clone(),
                value: values.fetch_add(1, Ordering::Relaxed),
            }
        } else {
            Op::Cas {
                key: k.clone(),
                expect: seen.get(&k).copied().unwrap_or(0),
                value: values.fetch_add(1, Ordering::Relaxed),
            }
        };
        rec.record(process, Kind::Invoke, op.clone(), None, None);
        let done = execute(&mut kv, &op, cfg.op_timeout).await;
        let refused = matches!(&done, Done::Fail(_, e) if e.contains("refused"));
        match done {
            Done::Ok(op, rev) => {
                if let Op::Read { key, mod_revision, .. } = &op {
                    seen.insert(key.clone(), mod_revision.unwrap_or(0));
                }
                if let Op::Cas { key, .. } = &op {
                    // Our put is the key's newest version now, at the header revision.
                    if let Some(r) = rev {
                        seen.insert(key.clone(), r);
                    }
                }
                rec.record(process, Kind::Ok, op, rev, None);
            }
            Done::CasMismatch(current, rev) => {
                seen.insert(k, current);
                rec.record(process, Kind::Fail, op, rev, Some("compare failed".into()));
            }
            Done::Fail(rev, e) => rec.record(process, Kind::Fail, op, rev, Some(e)),
            Done::Info(e) => {
                rec.record(process, Kind::Info, op, None, Some(e));
                process += cfg.clients as i64;
            }
        }
        if refused {
            // The member is down: do not spin on refused connections.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// How an operation ended.
pub(crate) enum Done {
    /// Succeeded: the op with its result filled in, and the header revision.
    Ok(Op, Option<i64>),
    /// A CAS whose compare failed: the key's current mod_revision.
    CasMismatch(i64, Option<i64>),
    Fail(Option<i64>, String),
    Info(String),
}

pub(crate) async fn execute(kv: &mut KvClient<Channel>, op: &Op, timeout: Duration) -> Done {
    let is_read = matches!(op, Op::Read { .. });
    classify(is_read, timeout, send(kv, op)).await
}

/// Waits up to `timeout` for a request and says how it ended: a read that
/// got no answer failed; a write did not happen only if the error says so.
pub(crate) async fn classify(
    is_read: bool,
    timeout: Duration,
    request: impl std::future::Future<Output = Result<Done, tonic::Status>>,
) -> Done {
    let answer = tokio::time::timeout(timeout, request).await;
    match answer {
        Ok(Ok(done)) => done,
        Ok(Err(status)) => {
            let text = describe(&status);
            if is_read || not_applied(&text) {
                Done::Fail(None, text)
            } else {
                Done::Info(text)
            }
        }
        Err(_) if is_read => Done::Fail(None, "timeout".into()),
        Err(_) => Done::Info("timeout".into()),
    }
}

async fn send(kv: &mut KvClient<Channel>, op: &Op) -> Result<Done, tonic::Status> {
    match op {
        Op::Read { key, .. } => {
            let r = kv.range(range(key)).await?.into_inner();
            let rev = r.header.map(|h| h.revision);
            let kv0 = r.kvs.first();
            let value = match kv0.map(|kv| parse_value(&kv.value)).transpose() {
                Ok(v) => v,
                Err(e) => return Ok(Done::Fail(rev, e)),
            };
            Ok(Done::Ok(
                Op::Read {
                    key: key.clone(),
                    value,
                    mod_revision: kv0.map(|kv| kv.mod_revision),
                },
                rev,
            ))
        }
        Op::Write { key, value } => {
            let r = kv.put(put(key, *value)).await?.into_inner();
            Ok(Done::Ok(op.clone(), r.header.map(|h| h.revision)))
        }
        Op::Cas { key, expect, value } => {
            let success = Request::RequestPut(put(key, *value));
            guarded(kv, op, mod_is(key, *expect), success).await
        }
        Op::Delete { key, expect } => {
            let success = Request::RequestDeleteRange(DeleteRangeRequest {
                key: key.as_bytes().to_vec(),
                ..Default::default()
            });
            guarded(kv, op, mod_is(key, *expect), success).await
        }
        _ => Ok(Done::Fail(None, "not a register operation".into())),
    }
}

/// Compares the key's mod_revision with `rev` (0: absent).
fn mod_is(key: &str, rev: i64) -> Compare {
    Compare {
        result: CompareResult::Equal as i32,
        target: CompareTarget::Mod as i32,
        key: key.as_bytes().to_vec(),
        target_union: Some(TargetUnion::ModRevision(rev)),
        range_end: Vec::new(),
    }
}

/// `op` as a Txn: if `compare` then `success` else read the key, as the
/// Kubernetes apiserver writes. A false compare answers the key's current
/// mod_revision (0: absent).
pub(crate) async fn guarded(
    kv: &mut KvClient<Channel>,
    op: &Op,
    compare: Compare,
    success: Request,
) -> Result<Done, tonic::Status> {
    let key = op_key(op);
    let txn = TxnRequest {
        compare: vec![compare],
        success: vec![RequestOp { request: Some(success) }],
        failure: vec![RequestOp {
            request: Some(Request::RequestRange(range(key))),
        }],
    };
    let r = kv.txn(txn).await?.into_inner();
    let rev = r.header.map(|h| h.revision);
    if r.succeeded {
        return Ok(Done::Ok(op.clone(), rev));
    }
    let current = r
        .responses
        .iter()
        .find_map(|resp| match &resp.response {
            Some(Response::ResponseRange(rr)) => Some(rr.kvs.first().map_or(0, |kv| kv.mod_revision)),
            _ => None,
        })
        .unwrap_or(0);
    Ok(Done::CasMismatch(current, rev))
}

fn op_key(op: &Op) -> &str {
    match op {
        Op::Read { key, .. } | Op::Write { key, .. } | Op::Cas { key, .. } | Op::Delete { key, .. } => key,
        _ => "",
    }
}

pub(crate) fn range(key: &str) -> RangeRequest {
    RangeRequest {
        key: key.as_bytes().to_vec(),
        ..Default::default()
    }
}

pub(crate) fn put(key: &str, value: u64) -> PutRequest {
    PutRequest {
        key: key.as_bytes().to_vec(),
        value: value.to_string().into_bytes(),
        ..Default::default()
    }
}

pub(crate) fn parse_value(bytes: &[u8]) -> Result<u64, String> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("unparsable value {:?}", String::from_utf8_lossy(bytes)))
}

/// A status with its source chain (tonic hides "connection refused" there).
pub(crate) fn describe(status: &tonic::Status) -> String {
    use std::error::Error;
    let mut text = format!("{:?}: {}", status.code(), status.message());
    let mut source = status.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Errors after which a write certainly did not take effect: the request
/// never reached a server, or etcd refused it before proposing.
pub(crate) fn not_applied(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    [
        "connection refused",
        "etcdserver: no leader",
        "etcdserver: too many requests",
        "etcdserver: not capable",
        "etcdserver: request is too large",
    ]
    .iter()
    .any(|m| lower.contains(m))
}

/// The final state: for every key, what each member answers to a
/// linearizable read (retried until `deadline`); `Err` when a member never
/// answered.
pub type FinalReads = Vec<(String, Vec<Result<Option<u64>, String>>)>;

/// Reads every key on every member after the cluster healed.
pub async fn final_reads(endpoints: &[Endpoint], keys: usize, deadline: Instant) -> FinalReads {
    let mut out = Vec::new();
    for k in 0..keys {
        let key = key(k);
        let mut per_member = Vec::new();
        for ep in endpoints {
            let mut last = String::from("no attempt");
            let mut got = None;
            while Instant::now() < deadline {
                let Ok(mut kv) = client(ep) else { break };
                match tokio::time::timeout(Duration::from_secs(2), kv.range(range(&key))).await {
                    Ok(Ok(r)) => {
                        got = Some(r.into_inner().kvs.first().map(|kv| parse_value(&kv.value)).transpose());
                        break;
                    }
                    Ok(Err(s)) => last = describe(&s),
                    Err(_) => last = "timeout".into(),
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            per_member.push(got.unwrap_or(Err(last)));
        }
        out.push((key, per_member));
    }
    out
}
