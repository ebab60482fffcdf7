//! The Lock and Election services (v3lockpb, v3electionpb) and etcdctl's
//! `lock` and `elect`: the same scripts on real etcd 3.4 and on timon
//! answer the same (header revisions, keys, values, error codes and texts;
//! randomly chosen lease IDs normalised), and on a 3-member timon cluster
//! concurrent lock holders never overlap and get increasing fencing
//! revisions.
//!
//! A "still waiting" check can only watch for a bounded time; it uses
//! [`STILL_WAITING`], and every positive wait polls with a timeout.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use support::{etcdctl_bin, skip_without_etcd, start_cluster, start_etcd, start_timon, timon_bin, Member};
use timon_proto::etcdserverpb::lease_client::LeaseClient;
use timon_proto::etcdserverpb::{LeaseGrantRequest, LeaseRevokeRequest, LeaseTimeToLiveRequest, ResponseHeader};
use timon_proto::v3electionpb::election_client::ElectionClient;
use timon_proto::v3electionpb::{CampaignRequest, LeaderRequest, ProclaimRequest, ResignRequest};
use timon_proto::v3lockpb::lock_client::LockClient;
use timon_proto::v3lockpb::{LockRequest, UnlockRequest};
use tonic::transport::Channel;

/// How long a blocked Lock or Campaign is watched to still be blocked.
const STILL_WAITING: Duration = Duration::from_millis(1500);
/// How long anything that should happen may take.
const TIMEOUT: Duration = Duration::from_secs(20);

async fn channel(m: &Member) -> Channel {
    Channel::from_shared(m.endpoint())
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .unwrap()
}

fn rev(h: &Option<ResponseHeader>) -> i64 {
    h.as_ref().map_or(-1, |h| h.revision)
}

fn err(s: &tonic::Status) -> String {
    format!("ERR {:?} {}", s.code(), s.message())
}

/// Replaces every run of 8+ hex digits after a `/` by `<id>`: lease IDs
/// the server picked.
fn normalise(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find('/') {
        out.push_str(&rest[..=i]);
        rest = &rest[i + 1..];
        let n = rest.bytes().take_while(u8::is_ascii_hexdigit).count();
        if n >= 8 {
            out.push_str("<id>");
            rest = &rest[n..];
        }
    }
    out.push_str(rest);
    out
}

/// The Lock and Election API script; one line per step.
async fn api_script(m: &Member) -> Vec<String> {
    let ch = channel(m).await;
    let mut lease = LeaseClient::new(ch.clone());
    let mut lock = LockClient::new(ch.clone());
    let mut el = ElectionClient::new(ch.clone());
    let mut out = Vec::new();
    let (a, b) = (0x1a_i64, 0x2b_i64);
    for id in [a, b] {
        lease.lease_grant(LeaseGrantRequest { ttl: 60, id }).await.unwrap();
    }

    // Uncontended; the same lease again gets the same key at once.
    let l1 = lock
        .lock(LockRequest {
            name: b"L".to_vec(),
            lease: a,
        })
        .await
        .unwrap()
        .into_inner();
    out.push(format!(
        "lock a key={} rev={}",
        String::from_utf8_lossy(&l1.key),
        rev(&l1.header)
    ));
    let again = lock
        .lock(LockRequest {
            name: b"L".to_vec(),
            lease: a,
        })
        .await
        .unwrap()
        .into_inner();
    out.push(format!(
        "lock a again key={} rev={}",
        String::from_utf8_lossy(&again.key),
        rev(&again.header)
    ));

    // A second lease waits until the first unlocks.
    let mut waiter = tokio::spawn({
        let mut lock = lock.clone();
        async move {
            lock.lock(LockRequest {
                name: b"L".to_vec(),
                lease: b,
            })
            .await
        }
    });
    let waited = tokio::time::timeout(STILL_WAITING, &mut waiter).await;
    out.push(format!("lock b waits={}", waited.is_err()));
    let u = lock
        .unlock(UnlockRequest { key: l1.key.clone() })
        .await
        .unwrap()
        .into_inner();
    out.push(format!("unlock a rev={}", rev(&u.header)));
    let l2 = tokio::time::timeout(TIMEOUT, waiter)
        .await
        .unwrap()
        .unwrap()
        .unwrap()
        .into_inner();
    out.push(format!(
        "lock b key={} rev={}",
        String::from_utf8_lossy(&l2.key),
        rev(&l2.header)
    ));

    // Unknown lease; no lease (a 60 s session lease is granted); unlock of nothing.
    match lock
        .lock(LockRequest {
            name: b"M".to_vec(),
            lease: 0x99,
        })
        .await
    {
        Ok(r) => out.push(format!("lock unknown lease ok {:?}", r.into_inner().key)),
        Err(e) => out.push(format!("lock unknown lease {}", err(&e))),
    }
    let l0 = lock
        .lock(LockRequest {
            name: b"M".to_vec(),
            lease: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let key = String::from_utf8_lossy(&l0.key).into_owned();
    let id = i64::from_str_radix(key.trim_start_matches("M/"), 16).unwrap();
    let ttl = lease
        .lease_time_to_live(LeaseTimeToLiveRequest { id, keys: true })
        .await
        .unwrap()
        .into_inner();
    out.push(format!(
        "lock no lease key={} rev={} granted_ttl={} keys={:?}",
        normalise(&key),
        rev(&l0.header),
        ttl.granted_ttl,
        ttl.keys
            .iter()
            .map(|k| normalise(&String::from_utf8_lossy(k)))
            .collect::<Vec<_>>()
    ));
    let u = lock
        .unlock(UnlockRequest {
            key: b"nothing".to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    out.push(format!("unlock nothing rev={}", rev(&u.header)));

    // Elections.
    let name = b"E".to_vec();
    match el.leader(LeaderRequest { name: name.clone() }).await {
        Ok(r) => out.push(format!("leader ok {:?}", r.into_inner().kv)),
        Err(e) => out.push(format!("leader none {}", err(&e))),
    }
    let c1 = el
        .campaign(CampaignRequest {
            name: name.clone(),
            lease: a,
            value: b"v1".to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    let leader_a = c1.leader.clone().unwrap();
    out.push(format!("campaign a rev={} leader={leader_a:?}", rev(&c1.header)));
    let mut observe = el
        .observe(LeaderRequest { name: name.clone() })
        .await
        .unwrap()
        .into_inner();
    let observed = |label: &str, out: &mut Vec<String>, r: Option<timon_proto::v3electionpb::LeaderResponse>| {
        let r = r.unwrap();
        let kv = r.kv.unwrap();
        out.push(format!(
            "observe {label} rev={} key={} value={} create={} mod={} lease={}",
            rev(&r.header),
            String::from_utf8_lossy(&kv.key),
            String::from_utf8_lossy(&kv.value),
            kv.create_revision,
            kv.mod_revision,
            kv.lease
        ));
    };
    let first = tokio::time::timeout(TIMEOUT, observe.message()).await.unwrap().unwrap();
    observed("first", &mut out, first);
    let p = el
        .proclaim(ProclaimRequest {
            leader: Some(leader_a.clone()),
            value: b"v2".to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    out.push(format!("proclaim v2 rev={}", rev(&p.header)));
    let next = tokio::time::timeout(TIMEOUT, observe.message()).await.unwrap().unwrap();
    observed("proclaimed", &mut out, next);
    let l = el
        .leader(LeaderRequest { name: name.clone() })
        .await
        .unwrap()
        .into_inner();
    out.push(format!(
        "leader rev={} value={}",
        rev(&l.header),
        String::from_utf8_lossy(&l.kv.unwrap().value)
    ));

    let mut second = tokio::spawn({
        let (mut el, name) = (el.clone(), name.clone());
        async move {
            el.campaign(CampaignRequest {
                name,
                lease: b,
                value: b"w".to_vec(),
            })
            .await
        }
    });
    let waited = tokio::time::timeout(STILL_WAITING, &mut second).await;
    out.push(format!("campaign b waits={}", waited.is_err()));
    let r = el
        .resign(ResignRequest {
            leader: Some(leader_a.clone()),
        })
        .await
        .unwrap()
        .into_inner();
    out.push(format!("resign a rev={}", rev(&r.header)));
    let c2 = tokio::time::timeout(TIMEOUT, second)
        .await
        .unwrap()
        .unwrap()
        .unwrap()
        .into_inner();
    out.push(format!("campaign b rev={} leader={:?}", rev(&c2.header), c2.leader));
    let next = tokio::time::timeout(TIMEOUT, observe.message()).await.unwrap().unwrap();
    observed("after resign", &mut out, next);

    // A lost leadership: Proclaim fails, Resign succeeds; a missing leader.
    match el
        .proclaim(ProclaimRequest {
            leader: Some(leader_a.clone()),
            value: b"stale".to_vec(),
        })
        .await
    {
        Ok(r) => out.push(format!("proclaim stale ok rev={}", rev(&r.into_inner().header))),
        Err(e) => out.push(format!("proclaim stale {}", err(&e))),
    }
    let r = el
        .resign(ResignRequest {
            leader: Some(leader_a.clone()),
        })
        .await
        .unwrap()
        .into_inner();
    out.push(format!("resign stale rev={}", rev(&r.header)));
    for e in [
        el.proclaim(ProclaimRequest {
            leader: None,
            value: b"x".to_vec(),
        })
        .await
        .err(),
        el.resign(ResignRequest { leader: None }).await.err(),
    ] {
        out.push(format!("no leader key {:?}", e.map(|e| err(&e))));
    }
    // Campaigning again with the leader's lease proclaims the new value.
    let c3 = el
        .campaign(CampaignRequest {
            name: name.clone(),
            lease: b,
            value: b"w2".to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    out.push(format!(
        "campaign b again rev={} leader={:?}",
        rev(&c3.header),
        c3.leader
    ));
    let next = tokio::time::timeout(TIMEOUT, observe.message()).await.unwrap().unwrap();
    observed("campaign again", &mut out, next);

    // The leader's lease is revoked: no leader until the next campaign.
    lease.lease_revoke(LeaseRevokeRequest { id: b }).await.unwrap();
    let c4 = el
        .campaign(CampaignRequest {
            name: name.clone(),
            lease: a,
            value: b"z".to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    out.push(format!(
        "campaign after revoke rev={} leader={:?}",
        rev(&c4.header),
        c4.leader
    ));
    let next = tokio::time::timeout(TIMEOUT, observe.message()).await.unwrap().unwrap();
    observed("after revoke", &mut out, next);
    match lock
        .lock(LockRequest {
            name: b"L".to_vec(),
            lease: a,
        })
        .await
    {
        Ok(r) => {
            let r = r.into_inner();
            out.push(format!(
                "lock after revoke key={} rev={}",
                String::from_utf8_lossy(&r.key),
                rev(&r.header)
            ));
        }
        Err(e) => out.push(format!("lock after revoke {}", err(&e))),
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lock_and_election_apis_answer_as_etcd() {
    if skip_without_etcd("lock_and_election_apis_answer_as_etcd") {
        return;
    }
    let etcd = start_etcd();
    let expected = api_script(&etcd).await;
    drop(etcd);
    let timon = start_timon(None, &[]);
    let got = api_script(&timon).await;
    if std::env::var_os("TIMON_TEST_VERBOSE").is_some() {
        eprintln!("{}", expected.join("\n"));
    }
    for (i, (e, g)) in expected.iter().zip(&got).enumerate() {
        assert_eq!(
            e,
            g,
            "step {i} differs\netcd:\n{}\ntimon:\n{}",
            expected.join("\n"),
            got.join("\n")
        );
    }
    assert_eq!(expected.len(), got.len());
}

/// A long-running etcdctl whose stdout lines arrive on a channel.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Running {
    fn spawn(endpoint: &str, args: &[&str]) -> Self {
        let mut child = Command::new(etcdctl_bin())
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={endpoint}"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run etcdctl");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Self { child, lines }
    }

    /// The next `n` lines, or panics after [`TIMEOUT`].
    fn lines(&self, n: usize) -> Vec<String> {
        (0..n)
            .map(|_| {
                self.lines
                    .recv_timeout(TIMEOUT)
                    .expect("etcdctl printed nothing in time")
            })
            .collect()
    }

    /// True if nothing is printed for [`STILL_WAITING`].
    fn silent(&self) -> bool {
        self.lines.recv_timeout(STILL_WAITING).is_err()
    }

    /// SIGTERM (etcdctl unlocks or resigns), then its exit code.
    fn terminate(&mut self) -> Option<i32> {
        let ok = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok);
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code();
            }
            assert!(Instant::now() < deadline, "etcdctl did not exit on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `etcdctl lock` and `etcdctl elect` on `m`; one line per observation.
fn etcdctl_session(m: &Member) -> Vec<String> {
    let ep = m.endpoint();
    let mut out = Vec::new();
    let mut first = Running::spawn(&ep, &["lock", "L"]);
    out.push(format!("first holds {:?}", first.lines(2)));
    let mut second = Running::spawn(&ep, &["lock", "L"]);
    out.push(format!("second waits {}", second.silent()));
    out.push(format!("first exits {:?}", first.terminate()));
    out.push(format!("second holds {:?}", second.lines(2)));
    out.push(format!("second exits {:?}", second.terminate()));

    let run = |args: &[&str]| {
        let o = Command::new(etcdctl_bin())
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={ep}"))
            .args(args)
            .output()
            .unwrap();
        format!(
            "{args:?} -> {:?} {:?} {:?}",
            o.status.code(),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    out.push(run(&[
        "lock",
        "L",
        "--",
        "sh",
        "-c",
        "echo $ETCD_LOCK_KEY $ETCD_LOCK_REV",
    ]));
    out.push(run(&["lock", "L", "false"]));
    out.push(run(&["get", "L", "--prefix", "--keys-only"]));

    let observer = Running::spawn(&ep, &["elect", "-l", "E"]);
    let mut c1 = Running::spawn(&ep, &["elect", "E", "p1"]);
    out.push(format!("c1 elected {:?}", c1.lines(2)));
    out.push(format!("observer sees {:?}", observer.lines(2)));
    let mut c2 = Running::spawn(&ep, &["elect", "E", "p2"]);
    out.push(format!("c2 waits {}", c2.silent()));
    out.push(format!("c1 exits {:?}", c1.terminate()));
    out.push(format!("c2 elected {:?}", c2.lines(2)));
    out.push(format!("observer sees {:?}", observer.lines(2)));
    out.push(format!("c2 exits {:?}", c2.terminate()));
    out.push(run(&["get", "E", "--prefix"]));
    out.iter().map(|l| normalise(l)).collect()
}

#[test]
fn etcdctl_lock_and_elect_behave_as_on_etcd() {
    if skip_without_etcd("etcdctl_lock_and_elect_behave_as_on_etcd") {
        return;
    }
    let etcd = start_etcd();
    let expected = etcdctl_session(&etcd);
    drop(etcd);
    let timon = start_timon(None, &[]);
    let got = etcdctl_session(&timon);
    if std::env::var_os("TIMON_TEST_VERBOSE").is_some() {
        eprintln!("{}", expected.join("\n"));
    }
    assert_eq!(
        expected,
        got,
        "etcd:\n{}\ntimon:\n{}",
        expected.join("\n"),
        got.join("\n")
    );
}

/// One critical section as its holder saw it.
#[derive(Debug)]
struct Section {
    client: usize,
    fence: i64,
    /// Handoff: from the previous holder's Unlock call to this Lock's answer.
    handoff: Option<Duration>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_lock_holders_in_a_cluster_never_overlap_and_fences_increase() {
    const CLIENTS: usize = 5;
    const ROUNDS: usize = 20;
    let members = start_cluster(timon_bin(), 3, &[]);
    let inside = Arc::new(Mutex::new(None::<usize>));
    let log = Arc::new(Mutex::new(Vec::<Section>::new()));
    let released = Arc::new(Mutex::new(None::<Instant>));
    let mut tasks = Vec::new();
    for client in 0..CLIENTS {
        let ch = channel(&members[client % 3]).await;
        let (inside, log, released) = (inside.clone(), log.clone(), released.clone());
        tasks.push(tokio::spawn(async move {
            let mut lease = LeaseClient::new(ch.clone());
            let mut lock = LockClient::new(ch);
            let id = lease
                .lease_grant(LeaseGrantRequest { ttl: 30, id: 0 })
                .await
                .unwrap()
                .into_inner()
                .id;
            for _ in 0..ROUNDS {
                let r = lock
                    .lock(LockRequest {
                        name: b"fenced".to_vec(),
                        lease: id,
                    })
                    .await
                    .unwrap()
                    .into_inner();
                let got = Instant::now();
                {
                    let mut holder = inside.lock().unwrap();
                    assert_eq!(*holder, None, "client {client} entered while {holder:?} held the lock");
                    *holder = Some(client);
                    let handoff = released.lock().unwrap().take().map(|t| got - t);
                    log.lock().unwrap().push(Section {
                        client,
                        fence: rev(&r.header),
                        handoff,
                    });
                }
                tokio::task::yield_now().await;
                *inside.lock().unwrap() = None;
                *released.lock().unwrap() = Some(Instant::now());
                lock.unlock(UnlockRequest { key: r.key }).await.unwrap();
            }
        }));
    }
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(120), t)
            .await
            .unwrap()
            .unwrap();
    }
    let log = log.lock().unwrap();
    assert_eq!(log.len(), CLIENTS * ROUNDS);
    for w in log.windows(2) {
        assert!(w[0].fence < w[1].fence, "fencing revisions not increasing: {w:?}");
    }
    let mut handoffs: Vec<Duration> = log.iter().filter_map(|s| s.handoff).collect();
    handoffs.sort();
    eprintln!(
        "{} acquisitions by {CLIENTS} clients; handoff median {:?}, max {:?}; clients in order {:?}",
        log.len(),
        handoffs[handoffs.len() / 2],
        handoffs.last().unwrap(),
        log.iter().map(|s| s.client).collect::<Vec<_>>()
    );
}

/// Two things etcd 3.4.23's lock server gets wrong or leaves to the client,
/// which timon does not: a waiter whose lease ends while it waits is told
/// `session expired` instead of being given the lock (Jepsen's etcd 3.4.3
/// finding; etcd 3.4.23 answers the lock), and a waiter whose client goes
/// away has its key deleted at once, so it does not hold up the next one
/// until its lease expires.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_waiter_whose_lease_ends_or_who_leaves_never_gets_the_lock() {
    let timon = start_timon(None, &[]);
    let ch = channel(&timon).await;
    let mut lease = LeaseClient::new(ch.clone());
    let mut lock = LockClient::new(ch.clone());
    for id in [1, 2, 3, 4] {
        lease.lease_grant(LeaseGrantRequest { ttl: 60, id }).await.unwrap();
    }
    let lock_req = |lease: i64| LockRequest {
        name: b"L".to_vec(),
        lease,
    };
    let held = lock.lock(lock_req(1)).await.unwrap().into_inner();

    // Lease 2 waits; its lease is revoked; the holder unlocks.
    let mut expired = tokio::spawn({
        let mut lock = lock.clone();
        async move { lock.lock(lock_req(2)).await }
    });
    assert!(tokio::time::timeout(STILL_WAITING, &mut expired).await.is_err());
    lease.lease_revoke(LeaseRevokeRequest { id: 2 }).await.unwrap();
    lock.unlock(UnlockRequest { key: held.key }).await.unwrap();
    let answer = tokio::time::timeout(TIMEOUT, expired).await.unwrap().unwrap();
    let status = answer.expect_err("a waiter whose lease was revoked got the lock");
    assert_eq!(
        (status.code(), status.message()),
        (tonic::Code::Unknown, "session expired")
    );

    // Lease 3 holds; lease 4's client gives up waiting; its key goes away.
    let held = lock.lock(lock_req(3)).await.unwrap().into_inner();
    let mut impatient = LockClient::new(channel(&timon).await);
    let gave_up = tokio::time::timeout(STILL_WAITING, impatient.lock(lock_req(4))).await;
    assert!(gave_up.is_err(), "lease 4 got a held lock");
    drop(impatient);
    let (mut kv, _) = support::connect(&timon.endpoint()).await;
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let r = kv
            .range(timon_proto::etcdserverpb::RangeRequest {
                key: b"L/4".to_vec(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        if r.kvs.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "the abandoned waiter's key stays");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    lock.unlock(UnlockRequest { key: held.key }).await.unwrap();
    let next = lock.lock(lock_req(1)).await.unwrap().into_inner();
    assert_eq!(next.key, b"L/1".to_vec());
}
