//! Watches against a real server: etcd by default, or any binary named by
//! `TIMON_CLUSTER_SERVER` (every test starts its members through
//! `common/cluster.rs`, single-member ones included). Options, cancel,
//! progress, compaction, fragments, the `hasleader` metadata, and resume
//! after the member serving a watcher is killed with SIGKILL.

mod common;

use std::time::{Duration, Instant};

use common::cluster::{status, Cluster};
use common::etcd_available;
use futures::StreamExt;
use timon_client::proto::etcdserverpb::watch_client::WatchClient;
use timon_client::proto::etcdserverpb::watch_request::RequestUnion;
use timon_client::proto::etcdserverpb::{WatchCreateRequest, WatchRequest, WatchResponse};
use timon_client::proto::mvccpb::event::EventType;
use timon_client::proto::mvccpb::Event;
use timon_client::{is_progress_notify, Client, ConnectOptions, Error, Op, Watcher};

/// Bound on every wait below (an event, a recovery, a cluster election).
const WAIT: Duration = Duration::from_secs(20);

async fn connect(endpoints: &[String]) -> Client {
    let options = ConnectOptions::default().with_request_timeout(WAIT);
    Client::connect_with_options(endpoints, options).await.expect("connect")
}

/// One member, and a client on it.
async fn single() -> (Cluster, Client) {
    let cluster = Cluster::start(1);
    let client = connect(&cluster.endpoints()).await;
    (cluster, client)
}

/// The next response, which must come within [`WAIT`] and not be an error.
async fn next(watcher: &mut Watcher) -> WatchResponse {
    match tokio::time::timeout(WAIT, watcher.recv()).await {
        Ok(Some(Ok(response))) => response,
        Ok(Some(Err(error))) => panic!("watch error: {error:?}"),
        Ok(None) => panic!("watcher ended"),
        Err(_) => panic!("no watch response within {WAIT:?}"),
    }
}

/// An event as `(TYPE, key, value, mod_revision)`.
type Seen = (String, String, String, i64);

fn seen(event: &Event) -> Seen {
    let kv = event.kv.clone().unwrap_or_default();
    let kind = EventType::try_from(event.r#type).map_or("?", |t| t.as_str_name());
    (
        kind.to_owned(),
        String::from_utf8_lossy(&kv.key).into_owned(),
        String::from_utf8_lossy(&kv.value).into_owned(),
        kv.mod_revision,
    )
}

fn put(key: &str, value: &str, revision: i64) -> Seen {
    ("PUT".into(), key.into(), value.into(), revision)
}

fn del(key: &str, revision: i64) -> Seen {
    ("DELETE".into(), key.into(), String::new(), revision)
}

/// Reads responses until `count` events have come; fails on progress
/// notifications or more events than expected.
async fn events(watcher: &mut Watcher, count: usize) -> Vec<Seen> {
    let mut all = Vec::new();
    while all.len() < count {
        let response = next(watcher).await;
        assert!(!response.events.is_empty(), "unexpected empty response {response:?}");
        all.extend(response.events.iter().map(seen));
    }
    assert_eq!(all.len(), count, "more events than expected: {all:?}");
    all
}

fn revision_of(header: Option<&timon_client::proto::etcdserverpb::ResponseHeader>) -> i64 {
    header.map(|h| h.revision).expect("response header")
}

#[tokio::test]
async fn puts_deletes_and_txns_arrive_in_order_on_keys_prefixes_and_ranges() {
    if !etcd_available() {
        return;
    }
    let (_cluster, client) = single().await;
    let mut on_key = client.watch("key").await.expect("watch key");
    let mut on_prefix = client.watch("a").prefix().await.expect("watch prefix");
    let mut on_range = client.watch("b").range_end("d").await.expect("watch range");
    let mut from_key = client.watch("x").from_key().await.expect("watch from key");
    let mut everything = client.watch("").prefix().await.expect("watch all");

    let mut log = Vec::new();
    for (key, value) in [
        ("a1", "1"),
        ("b", "2"),
        ("c", "3"),
        ("d", "4"),
        ("key", "5"),
        ("keyz", "6"),
    ] {
        let revision = revision_of(client.put(key, value).await.expect("put").header.as_ref());
        log.push(put(key, value, revision));
    }
    for (key, value) in [("x", "7"), ("zz", "8"), ("key", "9")] {
        let revision = revision_of(client.put(key, value).await.expect("put").header.as_ref());
        log.push(put(key, value, revision));
    }
    let revision = revision_of(client.delete("a1").await.expect("delete").header.as_ref());
    log.push(del("a1", revision));
    let txn = client
        .txn()
        .and_then([
            Op::put("a2", "10"),
            Op::put("c", "11"),
            Op::delete("b"),
            Op::delete("key"),
        ])
        .await
        .expect("txn");
    let txn_revision = revision_of(txn.header.as_ref());
    log.extend([
        put("a2", "10", txn_revision),
        put("c", "11", txn_revision),
        del("b", txn_revision),
        del("key", txn_revision),
    ]);

    let expect =
        |filter: &dyn Fn(&str) -> bool| -> Vec<Seen> { log.iter().filter(|e| filter(&e.1)).cloned().collect() };
    let cases: [(&mut Watcher, Vec<Seen>); 5] = [
        (&mut on_key, expect(&|k| k == "key")),
        (&mut on_prefix, expect(&|k| k.starts_with('a'))),
        (&mut on_range, expect(&|k| ("b".."d").contains(&k))),
        (&mut from_key, expect(&|k| k >= "x")),
        (&mut everything, expect(&|_| true)),
    ];
    for (watcher, expected) in cases {
        assert_eq!(events(watcher, expected.len()).await, expected);
    }

    // A txn's events come in one response, with the txn's revision.
    client.put("a3", "12").await.expect("put");
    let txn = client
        .txn()
        .and_then([Op::put("a4", "13"), Op::put("a5", "14")])
        .await
        .expect("txn");
    let first = next(&mut on_prefix).await;
    assert_eq!(first.events.len(), 1);
    let grouped = next(&mut on_prefix).await;
    assert_eq!(grouped.events.len(), 2);
    assert_eq!(
        grouped.header.as_ref().map(|h| h.revision),
        txn.header.map(|h| h.revision)
    );
}

#[tokio::test]
async fn start_revision_replays_history_with_prev_kv() {
    if !etcd_available() {
        return;
    }
    let (_cluster, client) = single().await;
    let first = revision_of(client.put("k", "v1").await.expect("put").header.as_ref());
    client.put("k", "v2").await.expect("put");
    client.delete("k").await.expect("delete");
    client.put("k", "v3").await.expect("put");
    let mut watcher = client
        .watch("k")
        .start_revision(first + 1)
        .prev_kv()
        .await
        .expect("watch");
    let mut got = Vec::new();
    while got.len() < 3 {
        got.extend(next(&mut watcher).await.events);
    }
    let prev = |e: &Event| {
        e.prev_kv
            .as_ref()
            .map(|kv| String::from_utf8_lossy(&kv.value).into_owned())
    };
    assert_eq!(
        got.iter().map(seen).collect::<Vec<_>>(),
        [
            put("k", "v2", first + 1),
            del("k", first + 2),
            put("k", "v3", first + 3)
        ]
    );
    assert_eq!(prev(&got[0]).as_deref(), Some("v1"));
    assert_eq!(prev(&got[1]).as_deref(), Some("v2"));
    // A put creating the key has no previous value.
    assert_eq!(prev(&got[2]), None);

    // A start revision in the future waits for it.
    let now = first + 3;
    let mut future = client.watch("f").start_revision(now + 2).await.expect("watch future");
    client.put("f", "skipped").await.expect("put");
    client.put("f", "seen").await.expect("put");
    assert_eq!(events(&mut future, 1).await, [put("f", "seen", now + 2)]);
}

#[tokio::test]
async fn filters_leave_out_puts_or_deletes() {
    if !etcd_available() {
        return;
    }
    let (_cluster, client) = single().await;
    let mut deletes_only = client.watch("f").prefix().filter_put().await.expect("watch");
    let mut puts_only = client.watch("f").prefix().filter_delete().await.expect("watch");
    let r1 = revision_of(client.put("f1", "a").await.expect("put").header.as_ref());
    let r2 = revision_of(client.delete("f1").await.expect("delete").header.as_ref());
    let r3 = revision_of(client.put("f2", "b").await.expect("put").header.as_ref());
    let r4 = revision_of(client.delete("f2").await.expect("delete").header.as_ref());
    assert_eq!(events(&mut deletes_only, 2).await, [del("f1", r2), del("f2", r4)]);
    assert_eq!(
        events(&mut puts_only, 2).await,
        [put("f1", "a", r1), put("f2", "b", r3)]
    );
}

#[tokio::test]
async fn cancel_ends_one_watcher_and_spares_the_others() {
    if !etcd_available() {
        return;
    }
    let (_cluster, client) = single().await;
    // Two watchers on the client's shared stream, one on a stream of its own.
    let mut first = client.watch("c").await.expect("watch");
    let mut second = client.watch("c").await.expect("watch");
    let own = client.watch_stream();
    let mut third = own.watch("c").await.expect("watch");

    let r1 = revision_of(client.put("c", "1").await.expect("put").header.as_ref());
    for watcher in [&mut first, &mut second, &mut third] {
        assert_eq!(events(watcher, 1).await, [put("c", "1", r1)]);
    }
    first.cancel().await;
    assert!(first.recv().await.is_none(), "a cancelled watcher yields nothing");
    let r2 = revision_of(client.put("c", "2").await.expect("put").header.as_ref());
    assert_eq!(events(&mut second, 1).await, [put("c", "2", r2)]);
    assert_eq!(events(&mut third, 1).await, [put("c", "2", r2)]);

    // Dropping cancels too; the shared stream closes with its last watcher
    // and a new watch opens it again.
    drop(second);
    let mut again = client.watch("c").await.expect("watch after the drop");
    let r3 = revision_of(client.put("c", "3").await.expect("put").header.as_ref());
    assert_eq!(events(&mut again, 1).await, [put("c", "3", r3)]);
    assert_eq!(events(&mut third, 1).await, [put("c", "3", r3)]);
    third.cancel().await;
    again.cancel().await;
    assert!(third.next().await.is_none());
}

#[tokio::test]
async fn progress_requests_reach_every_watcher_of_the_stream() {
    if !etcd_available() {
        return;
    }
    let (_cluster, client) = single().await;
    let stream = client.watch_stream();
    let mut p = stream.watch("p").await.expect("watch");
    let mut q = stream.watch("q").await.expect("watch");
    let mut elsewhere = client.watch("p").await.expect("watch on the shared stream");
    let revision = revision_of(client.put("z", "1").await.expect("put").header.as_ref());
    p.request_progress().await.expect("progress");
    for watcher in [&mut p, &mut q] {
        let response = next(watcher).await;
        assert!(is_progress_notify(&response), "{response:?}");
        assert_eq!(revision_of(response.header.as_ref()), revision);
    }
    // The other stream got no notification: its next response is the event.
    let r = revision_of(client.put("p", "2").await.expect("put").header.as_ref());
    assert_eq!(events(&mut elsewhere, 1).await, [put("p", "2", r)]);
    assert_eq!(events(&mut p, 1).await, [put("p", "2", r)]);
}

#[tokio::test]
async fn a_compacted_start_revision_ends_the_watcher_with_etcds_error() {
    if !etcd_available() {
        return;
    }
    let (_cluster, client) = single().await;
    for value in ["1", "2", "3", "4"] {
        client.put("k", value).await.expect("put");
    }
    // Revisions 2..=5; compact at 4.
    client.compact(4).physical().await.expect("compact");
    let mut watcher = client
        .watch("k")
        .start_revision(2)
        .await
        .expect("created before the error");
    let error = match tokio::time::timeout(WAIT, watcher.recv()).await {
        Ok(Some(Err(error))) => error,
        other => panic!("expected the compaction error, got {other:?}"),
    };
    let Error::Compacted {
        compact_revision,
        header,
    } = &error
    else {
        panic!("expected Error::Compacted, got {error:?}");
    };
    assert_eq!(*compact_revision, 4);
    assert!(header.as_ref().is_some_and(|h| h.cluster_id != 0));
    assert_eq!(
        error.to_string(),
        "etcdserver: mvcc: required revision has been compacted"
    );
    assert_eq!(error.code(), Some(tonic::Code::OutOfRange));
    assert!(!error.is_retryable());
    assert!(watcher.recv().await.is_none(), "the watcher ends after the error");

    // From the compaction revision on, history is there.
    let mut ok = client.watch("k").start_revision(4).await.expect("watch");
    assert_eq!(events(&mut ok, 2).await, [put("k", "3", 4), put("k", "4", 5)]);
}

#[tokio::test]
async fn large_responses_arrive_whole_with_or_without_fragments() {
    if !etcd_available() {
        return;
    }
    let (_cluster, client) = single().await;
    // Four 1.2 MB values: replaying them is one 4.8 MB response, more than
    // tonic's default limit, or fragments below etcd's 1.5 MiB request size.
    let value = "v".repeat(1_200_000);
    let first = revision_of(client.put("big/0", value.as_str()).await.expect("put").header.as_ref());
    for i in 1..4 {
        client.put(format!("big/{i}"), value.as_str()).await.expect("put");
    }
    for fragment in [false, true] {
        let mut watch = client.watch("big/").prefix().start_revision(first);
        if fragment {
            watch = watch.fragment();
        }
        let mut watcher = watch.await.expect("watch");
        let response = next(&mut watcher).await;
        assert!(!response.fragment);
        let revisions: Vec<i64> = response.events.iter().map(|e| seen(e).3).collect();
        assert_eq!(
            revisions,
            [first, first + 1, first + 2, first + 3],
            "fragment={fragment}"
        );
        assert!(response
            .events
            .iter()
            .all(|e| e.kv.as_ref().is_some_and(|kv| kv.value.len() == 1_200_000)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_streams_ask_for_a_leader() {
    if !etcd_available() {
        return;
    }
    let mut cluster = Cluster::start(3);
    cluster.kill(1);
    cluster.kill(2);
    let lone = cluster.nodes[0].endpoint();
    let deadline = Instant::now() + WAIT;
    while status(&lone).is_none_or(|s| s.leader != 0) {
        assert!(Instant::now() < deadline, "the lone member kept its leader");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // With `hasleader`, the member refuses the stream; the watch is retried
    // on its only endpoint until the deadline.
    let timeout = Duration::from_secs(2);
    let options = ConnectOptions::default().with_request_timeout(timeout);
    let client = Client::connect_with_options([lone.as_str()], options)
        .await
        .expect("connect");
    let error = client.watch("k").await.expect_err("no leader, no watch");
    let Error::Timeout { last: Some(last), .. } = &error else {
        panic!("expected a timeout, got {error:?}");
    };
    assert_eq!(last.message(), Some("etcdserver: no leader"), "{last:?}");

    // The same member creates a watch for a stream without the metadata:
    // refusing ours was the metadata's doing.
    let (requests, body) = futures::channel::mpsc::unbounded();
    requests
        .unbounded_send(WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                key: b"k".to_vec(),
                ..WatchCreateRequest::default()
            })),
        })
        .expect("queue the create request");
    let channel = tonic::transport::Channel::from_shared(format!("http://{lone}"))
        .expect("uri")
        .connect()
        .await
        .expect("dial");
    let mut responses = WatchClient::new(channel)
        .watch(body)
        .await
        .expect("stream")
        .into_inner();
    let created = tokio::time::timeout(WAIT, responses.message())
        .await
        .expect("created in time")
        .expect("no error")
        .expect("a response");
    assert!(created.created && !created.canceled, "{created:?}");
}

/// A watcher given every member keeps every event, once and in order,
/// while the member it is connected to is SIGKILLed and a writer goes on
/// through the two others.
async fn resume_after_kill(kill_leader: bool) {
    const BEFORE_KILL: usize = 30;
    const PAUSE_AT: usize = 50;
    const TOTAL: usize = 200;
    let mut cluster = Cluster::start(3);
    let leader = cluster.leader();
    let victim = if kill_leader { leader } else { (leader + 1) % 3 };
    let others: Vec<usize> = (0..3).filter(|&i| i != victim).collect();
    let endpoint = |i: usize| cluster.nodes[i].endpoint();
    let watching = connect(&[endpoint(victim), endpoint(others[0]), endpoint(others[1])]).await;
    assert_eq!(watching.connected_endpoint(), cluster.nodes[victim].client_url());
    let writer = connect(&[endpoint(others[0]), endpoint(others[1])]).await;

    let mut watcher = watching.watch("w/").prefix().await.expect("watch");
    let (killed_tx, killed_rx) = tokio::sync::oneshot::channel::<()>();
    let writes = tokio::spawn(async move {
        let mut killed = Some(killed_rx);
        let mut ambiguous = 0;
        for i in 0..TOTAL {
            if i == PAUSE_AT {
                // Make sure writes go on after the kill.
                if let Some(killed) = killed.take() {
                    let _ = killed.await;
                }
            }
            // A write whose fate is unknown (timed out in the election) is
            // not retried by the client; the check below does not care
            // whether it was applied.
            if let Err(error) = writer.put(format!("w/{i:03}"), i.to_string()).await {
                eprintln!("write {i}: {error}");
                ambiguous += 1;
            }
        }
        let last = writer.get("w/").prefix().await.expect("final read");
        (revision_of(last.header.as_ref()), ambiguous, writer)
    });

    let mut got: Vec<Seen> = Vec::new();
    while got.len() < BEFORE_KILL {
        got.extend(next(&mut watcher).await.events.iter().map(seen));
    }
    cluster.kill(victim);
    let killed_at = Instant::now();
    let _ = killed_tx.send(());
    let (final_revision, ambiguous, writer) = tokio::time::timeout(WAIT * 2, writes)
        .await
        .expect("writes finished in time")
        .expect("writer task");
    while got.last().is_none_or(|e| e.3 < final_revision) {
        got.extend(next(&mut watcher).await.events.iter().map(seen));
    }
    let caught_up = killed_at.elapsed();
    assert_ne!(watching.connected_endpoint(), cluster.nodes[victim].client_url());

    // The truth: the same range replayed from history on a survivor.
    let first = got[0].3;
    let mut replay = writer.watch("w/").prefix().start_revision(first).await.expect("replay");
    let mut truth: Vec<Seen> = Vec::new();
    while truth.last().is_none_or(|e| e.3 < final_revision) {
        truth.extend(next(&mut replay).await.events.iter().map(seen));
    }
    assert_eq!(got.len(), truth.len(), "event counts differ");
    assert_eq!(got, truth, "events differ from the history");
    assert!(
        got.len() >= TOTAL - ambiguous,
        "{} events for {TOTAL} writes",
        got.len()
    );
    eprintln!(
        "killed the {} in use: {} events once each and in order, caught up {caught_up:?} after the kill ({ambiguous} ambiguous writes)",
        if kill_leader { "leader" } else { "follower" },
        got.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_resumes_exactly_once_when_its_follower_is_killed() {
    if !etcd_available() {
        return;
    }
    resume_after_kill(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_resumes_exactly_once_when_its_leader_is_killed() {
    if !etcd_available() {
        return;
    }
    resume_after_kill(true).await;
}

/// A watcher resumes from the revision after the last one it knows of. One
/// on a quiet range knows only the revision it was created at, so if that
/// is compacted before its member dies, the resume meets the compaction and
/// the watcher ends with etcd's error (as clientv3's does), while one that
/// saw recent events resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_below_the_compaction_ends_with_the_compaction_error() {
    if !etcd_available() {
        return;
    }
    let mut cluster = Cluster::start(3);
    let victim = (cluster.leader() + 1) % 3;
    let others: Vec<usize> = (0..3).filter(|&i| i != victim).collect();
    let endpoint = |i: usize| cluster.nodes[i].endpoint();
    let watching = connect(&[endpoint(victim), endpoint(others[0]), endpoint(others[1])]).await;
    let writer = connect(&[endpoint(others[0]), endpoint(others[1])]).await;

    let mut quiet = watching.watch("quiet/").prefix().await.expect("watch");
    let mut busy = watching.watch("noise").await.expect("watch");
    let mut last = 0;
    for i in 0..3 {
        last = revision_of(writer.put("noise", i.to_string()).await.expect("put").header.as_ref());
    }
    assert_eq!(events(&mut busy, 3).await.last().map(|e| e.3), Some(last));
    // The compaction is applied by the member the writer uses, which is
    // the one the watchers fail over to.
    writer.compact(last).physical().await.expect("compact");
    cluster.kill(victim);

    let error = match tokio::time::timeout(WAIT, quiet.recv()).await {
        Ok(Some(Err(error))) => error,
        other => panic!("expected the compaction error, got {other:?}"),
    };
    assert!(
        matches!(error, Error::Compacted { compact_revision, .. } if compact_revision == last),
        "{error:?}"
    );
    assert!(quiet.recv().await.is_none());

    let revision = revision_of(writer.put("noise", "after").await.expect("put").header.as_ref());
    assert_eq!(events(&mut busy, 1).await, [put("noise", "after", revision)]);
}
