//! Watch on a cluster: a watcher on the leader and watchers on followers
//! see exactly the same events, whichever member the writes go to.

mod support;

use std::time::Duration;

use support::watch::{create_request, WatchStream};
use timon_proto::etcdserverpb::{DeleteRangeRequest, PutRequest, WatchCreateRequest, WatchResponse};
use timon_proto::mvccpb::Event;

const WRITES: usize = 200;

/// Opens a watch on the prefix `w/` (with prev_kv) on `endpoint` and
/// collects events until the final marker key `w/zz` arrives.
async fn watch_until_marker(endpoint: String, start_revision: i64) -> Vec<Event> {
    let stream = WatchStream::open(&endpoint).await;
    stream.create(WatchCreateRequest {
        prev_kv: true,
        ..create_request(b"w/", b"w0", start_revision)
    });
    let is_marker = |r: &WatchResponse| {
        r.events
            .iter()
            .any(|e| e.kv.as_ref().is_some_and(|kv| kv.key == b"w/zz"))
    };
    // A hang guard, not a speed bound: it also covers the writer's 201
    // writes, which a loaded machine makes slow.
    let responses = stream
        .wait_until(Duration::from_secs(120), "the marker event", |rs| {
            rs.iter().any(is_marker)
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(responses[0].created);
    responses.into_iter().flat_map(|r| r.events).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watchers_on_leader_and_followers_see_the_same_events() {
    let members = support::start_cluster(support::timon_bin(), 3, &[]);
    let mut kvs = Vec::new();
    for m in &members {
        kvs.push(support::connect(&m.endpoint()).await.0);
    }
    // Every watcher starts at the same revision, so when each stream comes
    // up does not matter.
    let start = kvs[0]
        .range(timon_proto::etcdserverpb::RangeRequest {
            key: b"w/".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .header
        .unwrap()
        .revision
        + 1;
    let watchers: Vec<_> = members
        .iter()
        .map(|m| tokio::spawn(watch_until_marker(m.endpoint(), start)))
        .collect();
    for i in 0..WRITES {
        let kv = &mut kvs[i % 3];
        let key = format!("w/{:02}", i % 17).into_bytes();
        if i % 5 == 4 {
            kv.delete_range(DeleteRangeRequest {
                key,
                ..Default::default()
            })
            .await
            .unwrap();
        } else {
            kv.put(PutRequest {
                key,
                value: format!("v{i}").into_bytes(),
                ..Default::default()
            })
            .await
            .unwrap();
        }
    }
    kvs[0]
        .put(PutRequest {
            key: b"w/zz".to_vec(),
            value: b"end".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut streams = Vec::new();
    for w in watchers {
        streams.push(w.await.unwrap());
    }
    assert!(streams[0].len() > WRITES / 2, "{} events", streams[0].len());
    assert_eq!(streams[1], streams[0], "member 1 saw different events than member 0");
    assert_eq!(streams[2], streams[0], "member 2 saw different events than member 0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_require_leader_watch_ends_with_no_leader_when_the_member_loses_it() {
    let mut members = support::start_cluster(support::timon_bin(), 3, &[]);
    let stream = WatchStream::open_requiring_leader(&members[0].endpoint()).await;
    stream.create(create_request(b"w/", b"w0", 0));
    assert!(stream.wait_for_count(1, Duration::from_secs(10)).await[0].created);
    // Member 0 loses its leader for good (it is leader or follower: either
    // way no quorum is left).
    members[1].kill9();
    members[2].kill9();
    // Nothing more is expected but the end: wait_until returns (with an
    // error) once the stream ends, or when the time is up.
    let waited = stream
        .wait_until(Duration::from_secs(20), "the stream's end", |_| false)
        .await;
    assert!(waited.is_err());
    let status = stream
        .ended()
        .expect("the stream ends once the member has no leader")
        .expect_err("ended with an error, not a clean close");
    assert_eq!(
        (status.code(), status.message()),
        (tonic::Code::Unavailable, "etcdserver: no leader")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_notify_watchers_hear_the_revision_on_a_quiet_key() {
    let member = support::start_timon(None, &["--experimental-watch-progress-notify-interval", "300ms"]);
    let (mut kv, _) = support::connect(&member.endpoint()).await;
    let rev = kv
        .put(PutRequest {
            key: b"other".to_vec(),
            value: b"x".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .header
        .unwrap()
        .revision;
    let stream = WatchStream::open(&member.endpoint()).await;
    stream.create(WatchCreateRequest {
        progress_notify: true,
        ..create_request(b"quiet", b"", 0)
    });
    // Within a few intervals: an empty response for this watcher carrying
    // the current revision.
    let r = stream.wait_for_count(2, Duration::from_secs(5)).await;
    let (created, progress) = (&r[0], &r[1]);
    assert!(created.created);
    assert_eq!(
        (
            progress.watch_id,
            progress.created,
            progress.canceled,
            progress.events.len()
        ),
        (created.watch_id, false, false, 0)
    );
    assert_eq!(progress.header.as_ref().unwrap().revision, rev);
}
