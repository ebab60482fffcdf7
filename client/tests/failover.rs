//! Failover on a real 3-member cluster (etcd by default, see
//! `common/cluster.rs`): the client is given every member, the member it
//! talks to is killed with SIGKILL, and reads and writes must go on through
//! the others within a bounded time. The retry policy under test is the one
//! documented in the client's `retry` module.

mod common;

use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::{etcd_available, free_port};
use timon_client::{Client, ConnectOptions, Error};

/// Per-request deadline of the clients below, and the bound on the whole
/// recovery: 20 election timeouts (etcd's and timon's default
/// `--election-timeout` is 1 s, which these clusters run with). A new
/// leader is elected within a couple of seconds of the old one dying; the
/// rest is slack for a loaded machine. The time taken is printed.
const BOUND: Duration = Duration::from_secs(20);

async fn connect(endpoints: &[String]) -> Client {
    let options = ConnectOptions::default().with_request_timeout(BOUND);
    Client::connect_with_options(endpoints, options).await.expect("connect")
}

async fn value(client: &Client, key: &str) -> Vec<u8> {
    let got = client.get(key).await.unwrap_or_else(|e| panic!("get {key}: {e}"));
    got.kvs.first().map(|kv| kv.value.clone()).unwrap_or_default()
}

#[tokio::test]
async fn killing_the_follower_in_use_fails_over() {
    if !etcd_available() {
        return;
    }
    let mut cluster = Cluster::start(3);
    let leader = cluster.leader();
    let follower = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    // A closed port first: connect must skip it.
    let closed = format!("127.0.0.1:{}", free_port());
    let endpoints = [
        closed,
        cluster.nodes[follower].endpoint(),
        cluster.nodes[leader].endpoint(),
        cluster.nodes[other].endpoint(),
    ];
    let client = connect(&endpoints).await;
    assert_eq!(client.connected_endpoint(), cluster.nodes[follower].client_url());
    client.put("k", "before").await.expect("put before the kill");

    cluster.kill(follower);
    let started = Instant::now();
    // A read first: it absorbs the broken connection (see the next test for
    // a write meeting it).
    assert_eq!(value(&client, "k").await, b"before");
    client.put("k", "after").await.expect("put after the kill");
    assert_eq!(value(&client, "k").await, b"after");
    let elapsed = started.elapsed();
    assert!(elapsed < BOUND, "recovery took {elapsed:?}");
    assert_ne!(client.connected_endpoint(), cluster.nodes[follower].client_url());
    eprintln!("follower killed: reads and writes resumed after {elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_meeting_the_dead_connection_is_resent_only_if_unsent() {
    if !etcd_available() {
        return;
    }
    let mut cluster = Cluster::start(3);
    let leader = cluster.leader();
    let follower = (leader + 1) % 3;
    let endpoints = [
        cluster.nodes[follower].endpoint(),
        cluster.nodes[leader].endpoint(),
        cluster.nodes[(leader + 2) % 3].endpoint(),
    ];
    let client = connect(&endpoints).await;
    client.put("k", "before").await.expect("put before the kill");

    cluster.kill(follower);
    let started = Instant::now();
    // Two outcomes are correct for the first write. If the client saw the
    // connection closed before writing the request, it provably was not
    // sent, so it is re-sent to the next member and succeeds. If it was
    // written to the dying connection, its fate is unknown: the client must
    // return a transport error instead of sending it again. (With a
    // multi-threaded runtime the connection task usually notices the close
    // first; on a current-thread runtime the write usually gets there first.)
    match client.put("k", "first").await {
        Ok(_) => {
            assert_eq!(value(&client, "k").await, b"first");
            eprintln!("first write after the kill was re-sent to another member");
        }
        Err(error @ Error::Transport { .. }) => {
            eprintln!("first write after the kill was ambiguous and not re-sent: {error}")
        }
        Err(other) => panic!("first write after the kill: unexpected error {other:?}"),
    }
    client.put("k", "second").await.expect("the next write goes through");
    assert_eq!(value(&client, "k").await, b"second");
    let elapsed = started.elapsed();
    assert!(elapsed < BOUND, "recovery took {elapsed:?}");
    eprintln!("follower killed: the next write went through after {elapsed:?}");
}

#[tokio::test]
async fn killing_the_leader_in_use_fails_over_after_the_election() {
    if !etcd_available() {
        return;
    }
    let mut cluster = Cluster::start(3);
    let leader = cluster.leader();
    let endpoints = [
        cluster.nodes[leader].endpoint(),
        cluster.nodes[(leader + 1) % 3].endpoint(),
        cluster.nodes[(leader + 2) % 3].endpoint(),
    ];
    let client = connect(&endpoints).await;
    assert_eq!(client.connected_endpoint(), cluster.nodes[leader].client_url());
    client.put("k", "before").await.expect("put before the kill");

    cluster.kill(leader);
    let started = Instant::now();
    // A linearizable read needs the new leader, so once it succeeds the
    // survivors have one and the write cannot be caught in the election
    // (where etcd could only answer it with an ambiguous timeout).
    assert_eq!(value(&client, "k").await, b"before");
    let read_after = started.elapsed();
    client.put("k", "after").await.expect("put after the election");
    assert_eq!(value(&client, "k").await, b"after");
    let elapsed = started.elapsed();
    assert!(elapsed < BOUND, "recovery took {elapsed:?}");
    assert_ne!(client.connected_endpoint(), cluster.nodes[leader].client_url());
    eprintln!("leader killed: first read after {read_after:?}, write done after {elapsed:?}");
}

#[tokio::test]
async fn requests_give_up_at_the_deadline_when_no_member_answers() {
    if !etcd_available() {
        return;
    }
    let mut cluster = Cluster::start(1);
    let timeout = Duration::from_secs(1);
    let options = ConnectOptions::default().with_request_timeout(timeout);
    let client = Client::connect_with_options(cluster.endpoints(), options)
        .await
        .expect("connect");
    client.put("k", "v").await.expect("put");
    cluster.kill(0);
    for write in [false, true] {
        let started = Instant::now();
        let error = if write {
            client.put("k", "w").await.expect_err("nobody to write to")
        } else {
            client.get("k").await.expect_err("nobody to read from")
        };
        let elapsed = started.elapsed();
        eprintln!("write={write}: gave up after {elapsed:?} (request timeout {timeout:?})");
        // A refused connection proves the request was never sent, so even
        // the write is retried until the deadline.
        let Error::Timeout { last: Some(last), .. } = &error else {
            panic!("write={write}: {error:?}");
        };
        if write {
            assert!(matches!(**last, Error::Connect { .. }), "{last:?}");
        }
        // Not before the deadline (this test's monotonic clock, the one the
        // client's deadline is on too), and it does give up: within 5
        // request timeouts, slack for a loaded machine.
        assert!(elapsed >= timeout, "write={write}: gave up early, after {elapsed:?}");
        assert!(elapsed < 5 * timeout, "write={write}: took {elapsed:?}");
    }
}
