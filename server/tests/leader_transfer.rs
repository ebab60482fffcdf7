//! Leadership transfer (issue 13 item 6): `Maintenance.MoveLeader` hands the
//! leadership to the chosen voter at the next term, answers etcd's errors
//! for bad input (compared with a real etcd 3.4 cluster), `etcdctl
//! move-leader` prints what it prints on etcd, and a leader that gets
//! SIGTERM hands its leadership to a caught-up voter before it stops,
//! losing no acknowledged write and stalling writes for at most 100 ms.

mod support;

use std::time::{Duration, Instant};

use support::{
    agreed_leader, connect, etcd_bin, etcdctl, index_of, member_id, range_prefix, skip_without_etcd, start_cluster,
    status, timon_bin, Member, ELECTION_TIMEOUT, REQUEST_TIMEOUT,
};
use timon_proto::etcdserverpb::cluster_client::ClusterClient;
use timon_proto::etcdserverpb::{MemberAddRequest, MoveLeaderRequest, PutRequest};
use tonic::transport::Channel;

async fn move_leader(m: &Member, target_id: u64) -> Result<(), (tonic::Code, String)> {
    let (_, mut maint) = connect(&m.endpoint()).await;
    maint
        .move_leader(MoveLeaderRequest { target_id })
        .await
        .map(|_| ())
        .map_err(|s| (s.code(), s.message().to_string()))
}

async fn put(kv: &mut timon_proto::etcdserverpb::kv_client::KvClient<Channel>, key: &str) -> Result<(), tonic::Status> {
    kv.put(PutRequest {
        key: key.into(),
        value: key.into(),
        ..Default::default()
    })
    .await
    .map(|_| ())
}

/// Every key under `prefix`, read linearizably from `m`.
async fn keys(m: &Member, prefix: &str) -> Vec<String> {
    let (_, kvs) = range_prefix(m, prefix, false).await.expect("range");
    kvs.into_iter().map(|(k, _)| String::from_utf8(k).unwrap()).collect()
}

/// Every member's raft term, once all of them answer.
async fn terms(members: &[Member]) -> Vec<u64> {
    let mut t = Vec::new();
    for m in members {
        t.push(status(m).await.expect("status").raft_term);
    }
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn move_leader_hands_leadership_to_the_target_at_the_next_term() {
    let members = start_cluster(timon_bin(), 3, &[]);
    let leader = agreed_leader(&members, 20 * ELECTION_TIMEOUT).await;
    let l = index_of(&members, leader).await;
    let (mut kv, _) = connect(&members[l].endpoint()).await;
    for i in 0..20 {
        put(&mut kv, &format!("before/{i:02}")).await.expect("put");
    }
    let before = terms(&members).await;
    for target in [(l + 1) % 3, (l + 2) % 3] {
        let from = index_of(&members, agreed_leader(&members, 20 * ELECTION_TIMEOUT).await).await;
        let target_id = member_id(&members[target]).await;
        let term = status(&members[from]).await.unwrap().raft_term;
        move_leader(&members[from], target_id).await.expect("MoveLeader");
        // MoveLeader answers once the target leads: every member agrees on
        // it, at exactly the next term (no second election).
        assert_eq!(agreed_leader(&members, 5 * ELECTION_TIMEOUT).await, target_id);
        let deadline = Instant::now() + 5 * ELECTION_TIMEOUT;
        while terms(&members).await != vec![term + 1; 3] {
            assert!(
                Instant::now() < deadline,
                "terms {:?}, expected all {}",
                terms(&members).await,
                term + 1
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert_eq!(terms(&members).await, vec![before[0] + 2; 3]);
    // The cluster serves writes through every member, and lost nothing.
    for (i, m) in members.iter().enumerate() {
        let (mut kv, _) = connect(&m.endpoint()).await;
        put(&mut kv, &format!("before/after-{i}"))
            .await
            .expect("put after transfer");
    }
    let got = keys(&members[0], "before/").await;
    assert_eq!(got.len(), 23, "{got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn move_leader_to_a_stopped_voter_times_out_and_writes_go_on() {
    let members = start_cluster(timon_bin(), 3, &[]);
    let leader = agreed_leader(&members, 20 * ELECTION_TIMEOUT).await;
    let l = index_of(&members, leader).await;
    let target = &members[(l + 1) % 3];
    let target_id = member_id(target).await;
    target.signal("STOP");
    let started = Instant::now();
    let moving = tokio::spawn({
        let endpoint = members[l].endpoint();
        async move {
            let (_, mut maint) = connect(&endpoint).await;
            maint.move_leader(MoveLeaderRequest { target_id }).await
        }
    });
    // Proposals are held for at most an election timeout, not until
    // MoveLeader gives up: a write sent now is answered before that.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (mut kv, _) = connect(&members[l].endpoint()).await;
    put(&mut kv, "during").await.expect("write during a stuck transfer");
    assert!(!moving.is_finished(), "MoveLeader answered before the write");
    let answer = moving.await.unwrap().expect_err("MoveLeader to a stopped voter");
    assert_eq!(
        (answer.code(), answer.message()),
        (
            tonic::Code::Unknown,
            "etcdserver: request timed out, leader transfer took too long"
        )
    );
    // It waited for the request timeout (5 s + 2 election timeouts).
    assert!(
        started.elapsed() >= REQUEST_TIMEOUT - ELECTION_TIMEOUT,
        "{:?}",
        started.elapsed()
    );
    // Resumed, the target may still act on the TimeoutNow it was sent (as
    // etcd's raft acts on a late MsgTimeoutNow); either way nothing is lost.
    target.signal("CONT");
    agreed_leader(&members, 20 * ELECTION_TIMEOUT).await;
    assert_eq!(keys(&members[l], "during").await, vec!["during".to_string()]);
}

/// What MoveLeader answers for each bad input, on a 3-member cluster of
/// `program` with one learner that was added and never started.
async fn bad_input_answers(program: std::path::PathBuf) -> Vec<(&'static str, Result<(), (tonic::Code, String)>)> {
    let members = start_cluster(program, 3, &[]);
    let leader = agreed_leader(&members, 20 * ELECTION_TIMEOUT).await;
    let l = index_of(&members, leader).await;
    let follower = &members[(l + 1) % 3];
    let follower_id = member_id(follower).await;
    let channel = Channel::from_shared(members[l].endpoint())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let add = MemberAddRequest {
        peer_ur_ls: vec![format!("http://127.0.0.1:{}", support::free_port())],
        is_learner: true,
    };
    // etcd refuses reconfiguration ("unhealthy cluster") until its members
    // have been connected for 5 s (--strict-reconfig-check).
    let deadline = Instant::now() + REQUEST_TIMEOUT + Duration::from_secs(5);
    let learner = loop {
        match ClusterClient::new(channel.clone()).member_add(add.clone()).await {
            Ok(r) => break r.into_inner().member.expect("member").id,
            Err(s) if s.message() == "etcdserver: unhealthy cluster" && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(s) => panic!("add learner: {s}"),
        }
    };
    vec![
        ("sent to a follower", move_leader(follower, follower_id).await),
        ("unknown target", move_leader(&members[l], 0x1234).await),
        ("learner target", move_leader(&members[l], learner).await),
        ("target is the leader", move_leader(&members[l], leader).await),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn move_leader_bad_input_answers_as_etcd() {
    if skip_without_etcd("move_leader_bad_input_answers_as_etcd") {
        return;
    }
    let etcd = bad_input_answers(etcd_bin()).await;
    let timon = bad_input_answers(timon_bin()).await;
    assert_eq!(timon, etcd);
    // The strings etcd 3.4 answers (pinned, in case etcd's change).
    assert_eq!(
        etcd[0].1,
        Err((tonic::Code::FailedPrecondition, "etcdserver: not leader".into()))
    );
    assert_eq!(
        etcd[1].1,
        Err((
            tonic::Code::FailedPrecondition,
            "etcdserver: bad leader transferee".into()
        ))
    );
}

/// `etcdctl move-leader` on a cluster of `program`: its output with member
/// IDs replaced by their roles, for a follower target, a bad target and
/// endpoints naming no leader.
fn etcdctl_outputs(program: std::path::PathBuf) -> Vec<(bool, String, String)> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let members = start_cluster(program, 3, &[]);
    let leader = rt.block_on(agreed_leader(&members, 20 * ELECTION_TIMEOUT));
    let l = rt.block_on(index_of(&members, leader));
    let follower = &members[(l + 1) % 3];
    let follower_id = rt.block_on(member_id(follower));
    let other = &members[(l + 2) % 3];
    let all: Vec<String> = members.iter().map(Member::endpoint).collect();
    let all = all.join(",");
    let roles = |s: &str| {
        s.replace(&format!("{leader:x}"), "<leader>")
            .replace(&format!("{follower_id:x}"), "<follower>")
            .replace(&other.endpoint(), "<other follower endpoint>")
    };
    let runs = [
        (all.clone(), format!("{follower_id:x}")),
        (all.clone(), "1234".to_string()),
        (other.endpoint(), format!("{leader:x}")),
    ];
    runs.iter()
        .map(|(endpoints, target)| {
            let (ok, out, err) = etcdctl(endpoints, &["move-leader", target]);
            (ok, roles(&out), roles(&without_log_noise(&err)))
        })
        .collect()
}

/// etcdctl's stderr with the clientv3 retry log lines cut to their message
/// and error (their time stamp and client ID differ from run to run).
fn without_log_noise(stderr: &str) -> String {
    stderr
        .lines()
        .map(|line| match serde_json::from_str::<serde_json::Value>(line) {
            Ok(v) => format!("log: {} {}", v["msg"], v["error"]),
            Err(_) => line.to_string(),
        })
        .map(|line| line + "\n")
        .collect()
}

#[test]
fn etcdctl_move_leader_prints_what_it_prints_on_etcd() {
    if skip_without_etcd("etcdctl_move_leader_prints_what_it_prints_on_etcd") {
        return;
    }
    let etcd = etcdctl_outputs(etcd_bin());
    let timon = etcdctl_outputs(timon_bin());
    assert_eq!(timon, etcd);
    assert_eq!(etcd[0].1, "Leadership transferred from <leader> to <follower>\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_on_the_leader_hands_leadership_to_a_caught_up_voter() {
    let mut members = start_cluster(timon_bin(), 3, &[]);
    let leader = agreed_leader(&members, 20 * ELECTION_TIMEOUT).await;
    let l = index_of(&members, leader).await;
    let term = status(&members[l]).await.unwrap().raft_term;
    let followers: Vec<usize> = (0..3).filter(|i| *i != l).collect();
    let mut clients = Vec::new();
    for f in &followers {
        clients.push(connect(&members[*f].endpoint()).await.0);
    }

    // One client writes through the two followers, alternating, and keeps
    // every key it was told was written.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let writer = tokio::spawn(async move {
        let mut acked: Vec<(String, Instant)> = Vec::new();
        let mut n = 0;
        while !*stop_rx.borrow() {
            n += 1;
            let key = format!("w/{n:06}");
            if put(&mut clients[n % 2], &key).await.is_ok() {
                acked.push((key, Instant::now()));
            }
        }
        acked
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    members[l].signal("TERM");
    let signalled = Instant::now();
    assert!(
        members[l].wait_exit(REQUEST_TIMEOUT + 5 * ELECTION_TIMEOUT),
        "the leader did not stop after SIGTERM"
    );
    let old_leader = members.remove(l);
    let new_leader = agreed_leader(&members, 5 * ELECTION_TIMEOUT).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop_tx.send(true).unwrap();
    let acked = writer.await.unwrap();

    // The old leader handed over: it logged the transfer to the member that
    // now leads, and the term rose by exactly one (no election timeout, no
    // split vote).
    let log = std::fs::read_to_string(old_leader.stderr_path()).unwrap();
    assert!(
        log.contains("leadership transfer finished") && log.contains(&format!("new-leader-member-id {new_leader:x}")),
        "old leader's log: {}",
        old_leader.stderr_tail(4000)
    );
    for t in terms(&members).await {
        assert_eq!(t, term + 1);
    }
    // No acknowledged write is lost.
    let present = keys(&members[0], "w/").await;
    for (key, _) in &acked {
        assert!(present.binary_search(key).is_ok(), "acknowledged {key} is lost");
    }
    let longest = acked
        .windows(2)
        .filter(|w| w[1].1 >= signalled)
        .map(|w| w[1].1 - w[0].1)
        .max()
        .unwrap_or_default();
    let finished = log
        .lines()
        .find(|l| l.contains("leadership transfer finished"))
        .unwrap_or_default();
    eprintln!(
        "{} writes acknowledged; longest gap between two after SIGTERM: {longest:?} (measured in benches: \
         timon-bench stall); the old leader logged: {finished}",
        acked.len()
    );
    assert!(
        acked.iter().any(|(_, at)| *at > signalled),
        "no write succeeded after SIGTERM"
    );
    // Issue 13's bound: a rolling restart costs no election timeout. etcd
    // 3.4.23 measured the same way: 6-8 ms; this test (debug build, run
    // alone): 8-12 ms. It runs alone (.config/nextest.toml).
    assert!(
        longest <= Duration::from_millis(100),
        "the longest write stall after SIGTERM was {longest:?}, over 100 ms"
    );
}
