//! Hostile input fuzzers (issue 16 item 5) against a real 3-member timon
//! cluster over real HTTP/2: every client RPC (KV, Watch, Lease, Cluster,
//! Maintenance, Auth, Lock, Election) and every peer RPC (`timonpb.Peer`)
//! receives request bodies built byte for byte (`support::mutate`): random
//! bytes, valid requests mutated (bit flips, truncation, splices, repeated
//! fields, huge varints and length prefixes, deep nesting, unknown groups,
//! invalid UTF-8), in gRPC frames that may lie about their length or flags,
//! come several to a unary call, end mid-frame or stall without ending.
//!
//! What must hold, checked during and after the run:
//! - every call ends within [`CALL_TIMEOUT`] with a gRPC status (methods
//!   that stream or may block by design — Watch, LeaseKeepAlive, Observe,
//!   Snapshot, Lock, Campaign — may instead still be open after
//!   [`OPEN_TIMEOUT`], and a body that stalls on purpose is dropped after
//!   [`STALL_TIMEOUT`]); a call without an answer is a hang and fails the
//!   test;
//! - every member stays up: process alive and `/health` true at the end;
//! - memory stays bounded: each member's RSS (`/proc/PID/status`) stays
//!   under `TIMON_FUZZ_RSS_MIB` (default 1024) at every sample;
//! - the data is unchanged where nothing may write:
//!   * the read-only phase sends only methods that never write (Range,
//!     Watch, lease and member queries, Status, Hash, HashKV, Snapshot,
//!     auth reads, Leader, Observe; on the peer port ReadIndex, ClusterInfo,
//!     HashKv, LeaseTimeToLive, LeaseRenew, and every peer method with a
//!     wrong cluster ID or an unknown sender, which must be refused): the
//!     store revision and HashKV of every member are equal before and after;
//!   * the write phase sends everything, so its mutated requests may
//!     legitimately write; it cannot write the guard keys written before
//!     it (a prefix with a random 128-bit token no seed contains, so no
//!     mutation can name a guard key), except through a range: inputs that
//!     decode to a DeleteRange (alone or in a Txn, at any depth) whose
//!     range meets the guard prefix are not sent. Inputs that decode to
//!     an administrator's command that would change the cluster rather than
//!     its data (MemberAdd, a MemberRemove/Update/Promote or MoveLeader of
//!     a real member, AuthEnable, an alarm ACTIVATE, Downgrade) are not sent
//!     either: etcd obeys them too. After the phase the guard keys are
//!     read back unchanged (values and revisions), and every member's
//!     HashKV at one revision is equal (the replicas agree).
//!
//! Budget: `TIMON_FUZZ_SECS` seconds per test (default 45: both tests
//! together stay under ~3 minutes on 2 cores); seed: `TIMON_FUZZ_SEED`
//! (default: random, printed). A failure prints the seed, the input index,
//! the method and the input's bytes; `TIMON_FUZZ_SEED=S` with the same
//! budget replays the same inputs. Longer runs: see DEVELOPERS.md.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::fuzz_methods::{client_methods, peer_methods, Guard, Kind, Method};
use support::mutate::Input;
use support::raw_grpc::{call, Outcome};
use support::{start_cluster, timon_bin, Member};
use timon_proto::etcdserverpb::{HashKvRequest, PutRequest, RangeRequest, StatusRequest};
use tonic::transport::Channel;

/// How long one call may take before it counts as a hang (a write waits up
/// to etcd's request timeout, 7 s here, on a loaded machine).
const CALL_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a call of a method that streams or may block by design is
/// kept open: long enough for its first answer, short enough not to tie up
/// a worker.
const OPEN_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a deliberately stalled body is kept open.
const STALL_TIMEOUT: Duration = Duration::from_millis(200);
/// Calls in flight at once.
const CONCURRENCY: usize = 16;

fn budget() -> Duration {
    let secs = std::env::var("TIMON_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(45);
    Duration::from_secs(secs)
}

fn rss_limit_kib() -> u64 {
    std::env::var("TIMON_FUZZ_RSS_MIB")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(1024)
        * 1024
}

fn run_seed() -> u64 {
    std::env::var("TIMON_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random)
}

/// The cluster under fuzzing: channels to each member's client and peer
/// ports, and the processes (for RSS).
struct Target {
    client: Vec<Channel>,
    peer: Vec<Channel>,
    pids: Vec<u32>,
    guard: Guard,
}

async fn lazy(url: String) -> Channel {
    Channel::from_shared(url)
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .connect_lazy()
}

impl Target {
    async fn new(members: &[Member], guard: Guard) -> Target {
        let mut client = Vec::new();
        let mut peer = Vec::new();
        for m in members {
            client.push(lazy(m.endpoint()).await);
            peer.push(lazy(m.peer_url()).await);
        }
        Target {
            client,
            peer,
            pids: members.iter().map(|m| m.pid().unwrap()).collect(),
            guard,
        }
    }
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Tallies of one run.
#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    skipped: AtomicU64,
    outcomes: Mutex<BTreeMap<String, u64>>,
    /// The first message seen with each status code, for the report.
    samples: Mutex<BTreeMap<String, String>>,
    max_rss_kib: AtomicU64,
    failure: Mutex<Option<String>>,
    failed: AtomicBool,
}

impl Tally {
    fn fail(&self, msg: String) {
        let mut f = self.failure.lock().unwrap();
        if f.is_none() {
            *f = Some(msg);
        }
        self.failed.store(true, Ordering::SeqCst);
    }
}

/// Extra headers of a peer call: none (an outsider without them), a wrong
/// cluster ID, or an unknown sender.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PeerHeaders {
    None,
    WrongCluster,
    UnknownSender,
}

/// Whether `code` answers a call that never reached its handler's work:
/// the admission check's `refusal`, or tonic's own decoding errors.
fn refused(code: tonic::Code, refusal: tonic::Code) -> bool {
    use tonic::Code::*;
    code == refusal || matches!(code, Internal | ResourceExhausted | Unimplemented)
}

/// Sends inputs to `methods` until `budget` runs out; returns the tally.
async fn fuzz(
    target: Arc<Target>,
    methods: Arc<Vec<Method>>,
    seed: u64,
    budget: Duration,
    headers: PeerHeaders,
    cluster_id: u64,
) -> Arc<Tally> {
    let tally = Arc::new(Tally::default());
    let next = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + budget;
    let limit = rss_limit_kib();
    let monitor = {
        let (tally, pids) = (tally.clone(), target.pids.clone());
        tokio::spawn(async move {
            while Instant::now() < deadline && !tally.failed.load(Ordering::SeqCst) {
                for &pid in &pids {
                    match rss_kib(pid) {
                        None => tally.fail(format!("member pid {pid} is gone (crashed?)")),
                        Some(kib) => {
                            tally.max_rss_kib.fetch_max(kib, Ordering::SeqCst);
                            if kib > limit {
                                tally.fail(format!("member pid {pid} RSS {kib} KiB over the limit {limit} KiB"));
                            }
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let mut workers = Vec::new();
    for _ in 0..CONCURRENCY {
        let (target, methods, tally, next) = (target.clone(), methods.clone(), tally.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            while Instant::now() < deadline && !tally.failed.load(Ordering::SeqCst) {
                let index = next.fetch_add(1, Ordering::SeqCst);
                let mut rng = support::mutate::rng_for(seed, index.wrapping_add(1 << 62));
                let method = &methods[rand::Rng::gen_range(&mut rng, 0..methods.len())];
                let member = rand::Rng::gen_range(&mut rng, 0..target.client.len());
                let input = Input::generate(seed, index, &method.seeds);
                if headers == PeerHeaders::None && (method.skip)(&input.message, &target.guard) {
                    tally.skipped.fetch_add(1, Ordering::SeqCst);
                    continue;
                }
                let hdrs: Vec<(&str, String)> = match headers {
                    PeerHeaders::None => vec![],
                    PeerHeaders::WrongCluster => vec![
                        ("x-etcd-cluster-id", format!("{:x}", cluster_id ^ 0x5a5a)),
                        ("x-server-from", format!("{:x}", target.guard.member_ids[0])),
                    ],
                    PeerHeaders::UnknownSender => vec![
                        ("x-etcd-cluster-id", format!("{cluster_id:x}")),
                        ("x-server-from", format!("{:x}", 0xbad0_0000_u64 + index)),
                    ],
                };
                let channel = if method.peer {
                    &target.peer[member]
                } else {
                    &target.client[member]
                };
                let timeout = match (input.end_stream, method.may_stay_open) {
                    (false, _) => STALL_TIMEOUT,
                    (true, true) => OPEN_TIMEOUT,
                    (true, false) => CALL_TIMEOUT,
                };
                tally.sent.fetch_add(1, Ordering::SeqCst);
                let outcome = call(
                    channel,
                    method.path,
                    input.body.clone(),
                    input.end_stream,
                    &hdrs,
                    timeout,
                )
                .await;
                let label = match &outcome {
                    Outcome::Status { code, .. } => format!("{code:?}"),
                    Outcome::Open { .. } => "open at timeout".into(),
                    Outcome::NoAnswer => "no answer".into(),
                    Outcome::Transport(_) => "transport error".into(),
                };
                if let Outcome::Status { message, .. } = &outcome {
                    tally
                        .samples
                        .lock()
                        .unwrap()
                        .entry(label.clone())
                        .or_insert_with(|| format!("{}: {message}", method.path));
                }
                *tally.outcomes.lock().unwrap().entry(label).or_default() += 1;
                let describe = || {
                    format!(
                        "seed {seed} input {index}: {} to member {member} ({}): body {} bytes {:02x?}",
                        method.path,
                        input.how,
                        input.body.len(),
                        &input.body[..input.body.len().min(256)]
                    )
                };
                let bad = match (&outcome, headers) {
                    // Refused: by the admission check, or before the
                    // handler ran (tonic's frame and protobuf decoding).
                    (Outcome::Status { code, .. }, PeerHeaders::WrongCluster)
                        if !refused(*code, tonic::Code::FailedPrecondition) =>
                    {
                        Some(format!("a wrong cluster ID was answered {code:?}, not refused"))
                    }
                    (Outcome::Status { code, .. }, PeerHeaders::UnknownSender)
                        if !refused(*code, tonic::Code::NotFound) =>
                    {
                        Some(format!("an unknown sender was answered {code:?}, not refused"))
                    }
                    (
                        Outcome::Status {
                            code: tonic::Code::Internal,
                            message,
                            ..
                        },
                        _,
                    ) if message.contains("panic") => Some(format!("a panic answered: {message}")),
                    (Outcome::Open { .. }, _) if input.end_stream && !method.may_stay_open => {
                        Some("the call was still open after its timeout (hang)".into())
                    }
                    (Outcome::NoAnswer, _) if input.end_stream && !method.may_stay_open => {
                        Some("no answer within the timeout (hang)".into())
                    }
                    (Outcome::Transport(e), _) => Some(format!("transport error {e} (connection lost?)")),
                    _ => None,
                };
                if let Some(why) = bad {
                    tally.fail(format!("{why}: {}", describe()));
                }
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    monitor.await.unwrap();
    tally
}

/// Prints a phase's tally; panics with its failure. `run_seed` is the
/// test's TIMON_FUZZ_SEED (each phase derives its own from it).
fn report(name: &str, run_seed: u64, seed: u64, budget: Duration, tally: &Tally) {
    eprintln!(
        "{name}: phase seed {seed}, budget {budget:?}: {} inputs sent, {} not sent (filtered), max member RSS {} MiB; outcomes {:?}",
        tally.sent.load(Ordering::SeqCst),
        tally.skipped.load(Ordering::SeqCst),
        tally.max_rss_kib.load(Ordering::SeqCst) / 1024,
        tally.outcomes.lock().unwrap()
    );
    for (code, sample) in tally.samples.lock().unwrap().iter() {
        eprintln!("  {code}: e.g. {sample}");
    }
    if let Some(f) = tally.failure.lock().unwrap().as_ref() {
        panic!(
            "{name} failed (replay: TIMON_FUZZ_SEED={run_seed} TIMON_FUZZ_SECS={}): {f}",
            std::env::var("TIMON_FUZZ_SECS").unwrap_or_else(|_| "45".into())
        );
    }
}

async fn kv(
    endpoint: &str,
) -> (
    timon_proto::etcdserverpb::kv_client::KvClient<Channel>,
    timon_proto::etcdserverpb::maintenance_client::MaintenanceClient<Channel>,
) {
    support::connect(endpoint).await
}

/// Writes the guard keys; answers the guard and the cluster ID.
async fn write_guard(members: &[Member]) -> (Guard, u64) {
    let token: u128 = rand::random();
    let prefix = format!("guard-{token:032x}/").into_bytes();
    let (mut c, mut mt) = kv(&members[0].endpoint()).await;
    for i in 0..20 {
        let mut key = prefix.clone();
        key.extend(format!("{i:02}").bytes());
        c.put(PutRequest {
            key,
            value: vec![i as u8; 100],
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let status = mt.status(StatusRequest {}).await.unwrap().into_inner();
    let cluster_id = status.header.unwrap().cluster_id;
    let mut member_ids = Vec::new();
    for m in members {
        let (_, mut mt) = kv(&m.endpoint()).await;
        member_ids.push(
            mt.status(StatusRequest {})
                .await
                .unwrap()
                .into_inner()
                .header
                .unwrap()
                .member_id,
        );
    }
    (Guard { prefix, member_ids }, cluster_id)
}

async fn guard_state(members: &[Member], g: &Guard) -> Vec<(Vec<u8>, Vec<u8>, i64, i64, i64)> {
    let (mut c, _) = kv(&members[0].endpoint()).await;
    let r = c
        .range(RangeRequest {
            key: g.prefix.clone(),
            range_end: g.end(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    r.kvs
        .into_iter()
        .map(|k| (k.key, k.value, k.create_revision, k.mod_revision, k.version))
        .collect()
}

/// The store revision and every member's HashKV at it, once all members
/// applied it and agree, or a failure after 30 s.
async fn settled_hashes(members: &[Member]) -> (i64, Vec<u32>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = String::new();
    while Instant::now() < deadline {
        let (_, mut mt) = kv(&members[0].endpoint()).await;
        let rev = mt
            .status(StatusRequest {})
            .await
            .unwrap()
            .into_inner()
            .header
            .unwrap()
            .revision;
        let mut hashes = Vec::new();
        for m in members {
            let (_, mut mt) = kv(&m.endpoint()).await;
            match mt.hash_kv(HashKvRequest { revision: rev }).await {
                Ok(h) => hashes.push(h.into_inner().hash),
                Err(e) => last = format!("HashKV({rev}) on {}: {e}", m.endpoint()),
            }
        }
        if hashes.len() == members.len() && hashes.iter().all(|h| *h == hashes[0]) {
            return (rev, hashes);
        }
        if hashes.len() == members.len() {
            last = format!("members disagree at revision {rev}: {hashes:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the members never agreed on HashKV: {last}");
}

async fn healthy(members: &mut [Member]) {
    for m in members.iter_mut() {
        assert!(
            m.is_running(),
            "member {} exited; stderr:\n{}",
            m.endpoint(),
            m.stderr_tail(4000)
        );
        let target = support::http::Target {
            port: m.client_port(),
            tls: None,
        };
        let (status, body) = support::http::request(&target, "GET", "/health", "", &[]).await;
        assert!(
            status == 200 && body.contains("\"true\""),
            "/health of {}: {status} {body}",
            m.endpoint()
        );
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Read-only phase then write phase over every client RPC.
#[test]
fn client_rpcs_survive_hostile_input() {
    let seed = run_seed();
    let budget = budget();
    eprintln!(
        "client fuzz: TIMON_FUZZ_SEED={seed} TIMON_FUZZ_SECS={}",
        budget.as_secs()
    );
    let mut members = start_cluster(timon_bin(), 3, &[]);
    let rt = runtime();
    rt.block_on(async {
        let (guard, cluster_id) = write_guard(&members).await;
        let guarded = guard_state(&members, &guard).await;
        let target = Arc::new(Target::new(&members, guard).await);
        let reads: Vec<Method> = client_methods().into_iter().filter(|m| m.kind == Kind::Read).collect();

        let before = settled_hashes(&members).await;
        let tally = fuzz(
            target.clone(),
            Arc::new(reads),
            seed,
            budget / 3,
            PeerHeaders::None,
            cluster_id,
        )
        .await;
        report("client fuzz, read-only methods", seed, seed, budget / 3, &tally);
        let after = settled_hashes(&members).await;
        assert_eq!(
            before, after,
            "read-only methods changed the store (revision, HashKV of each member)"
        );

        let tally = fuzz(
            target.clone(),
            Arc::new(client_methods()),
            seed ^ 1,
            budget * 2 / 3,
            PeerHeaders::None,
            cluster_id,
        )
        .await;
        report("client fuzz, all methods", seed, seed ^ 1, budget * 2 / 3, &tally);
        settled_hashes(&members).await;
        assert_eq!(
            guard_state(&members, &target.guard).await,
            guarded,
            "the guard keys changed"
        );
        healthy(&mut members).await;
    });
}

/// Every peer RPC from an outsider without headers (read-only and
/// undecodable inputs), then with a wrong cluster ID and an unknown
/// sender (everything, valid proposals included: all must be refused).
#[test]
fn peer_rpcs_survive_hostile_input_and_refuse_strangers() {
    let seed = run_seed();
    let budget = budget();
    eprintln!("peer fuzz: TIMON_FUZZ_SEED={seed} TIMON_FUZZ_SECS={}", budget.as_secs());
    let mut members = start_cluster(timon_bin(), 3, &[]);
    let rt = runtime();
    rt.block_on(async {
        let (guard, cluster_id) = write_guard(&members).await;
        let guarded = guard_state(&members, &guard).await;
        let target = Arc::new(Target::new(&members, guard).await);
        let methods = Arc::new(peer_methods());
        let before = settled_hashes(&members).await;
        let phase = budget / 3;
        for (i, headers) in [PeerHeaders::None, PeerHeaders::WrongCluster, PeerHeaders::UnknownSender]
            .into_iter()
            .enumerate()
        {
            let s = seed ^ (i as u64 + 10);
            let tally = fuzz(target.clone(), methods.clone(), s, phase, headers, cluster_id).await;
            report(&format!("peer fuzz, headers {headers:?}"), seed, s, phase, &tally);
        }
        let after = settled_hashes(&members).await;
        assert_eq!(
            before, after,
            "hostile peer messages changed the store (revision, HashKV of each member)"
        );
        assert_eq!(
            guard_state(&members, &target.guard).await,
            guarded,
            "the guard keys changed"
        );
        healthy(&mut members).await;
    });
    let logs: String = members.iter().map(|m| m.stderr_tail(1 << 22)).collect();
    assert!(
        logs.contains("request cluster ID mismatch"),
        "a wrong cluster ID is logged"
    );
    assert!(
        logs.contains("failed to find remote peer in cluster"),
        "an unknown sender is logged"
    );
}
