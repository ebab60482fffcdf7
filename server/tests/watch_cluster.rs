//! Watch on a cluster: a watcher on the leader and watchers on followers
//! see exactly the same events, whichever member the writes go to.

mod support;

use std::time::Duration;

use timon_proto::etcdserverpb::watch_client::WatchClient;
use timon_proto::etcdserverpb::watch_request::RequestUnion;
use timon_proto::etcdserverpb::{DeleteRangeRequest, PutRequest, WatchCreateRequest, WatchRequest};
use timon_proto::mvccpb::Event;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;

const WRITES: usize = 200;

/// Opens a watch on the prefix `w/` (with prev_kv) on `endpoint` and
/// collects events until the final marker key `w/zz` arrives.
async fn watch_until_marker(endpoint: String, start_revision: i64) -> Vec<Event> {
    let (tx, rx) = mpsc::channel(1);
    tx.send(WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: b"w/".to_vec(),
            range_end: b"w0".to_vec(),
            prev_kv: true,
            start_revision,
            ..Default::default()
        })),
    })
    .await
    .unwrap();
    let channel = tonic::transport::Channel::from_shared(endpoint)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut inbound = WatchClient::new(channel)
        .watch(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let created = inbound.next().await.unwrap().unwrap();
    assert!(created.created);
    let mut events = Vec::new();
    loop {
        let r = tokio::time::timeout(Duration::from_secs(30), inbound.next())
            .await
            .expect("events in time")
            .expect("stream open")
            .expect("no error");
        for ev in r.events {
            let last = ev.kv.as_ref().unwrap().key == b"w/zz";
            events.push(ev);
            if last {
                drop(tx);
                return events;
            }
        }
    }
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
    let (tx, rx) = mpsc::channel(1);
    tx.send(WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: b"w/".to_vec(),
            range_end: b"w0".to_vec(),
            ..Default::default()
        })),
    })
    .await
    .unwrap();
    let channel = tonic::transport::Channel::from_shared(members[0].endpoint())
        .unwrap()
        .connect()
        .await
        .unwrap();
    // clientv3's WithRequireLeader.
    let mut request = tonic::Request::new(ReceiverStream::new(rx));
    request.metadata_mut().insert("hasleader", "true".parse().unwrap());
    let mut inbound = WatchClient::new(channel).watch(request).await.unwrap().into_inner();
    assert!(inbound.next().await.unwrap().unwrap().created);
    // Member 0 loses its leader for good (it is leader or follower: either
    // way no quorum is left).
    members[1].kill9();
    members[2].kill9();
    let end = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match inbound.next().await {
                Some(Ok(_)) => continue,
                Some(Err(status)) => return Some(status),
                None => return None,
            }
        }
    })
    .await
    .expect("the stream ends once the member has no leader");
    let status = end.expect("ended with an error, not a clean close");
    assert_eq!(
        (status.code(), status.message()),
        (tonic::Code::Unavailable, "etcdserver: no leader")
    );
    drop(tx);
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
    let (tx, rx) = mpsc::channel(1);
    tx.send(WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: b"quiet".to_vec(),
            progress_notify: true,
            ..Default::default()
        })),
    })
    .await
    .unwrap();
    let channel = tonic::transport::Channel::from_shared(member.endpoint())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut inbound = WatchClient::new(channel)
        .watch(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let created = inbound.next().await.unwrap().unwrap();
    assert!(created.created);
    // Within a few intervals: an empty response for this watcher carrying
    // the current revision.
    let r = tokio::time::timeout(Duration::from_secs(5), inbound.next())
        .await
        .expect("a progress notification")
        .unwrap()
        .unwrap();
    assert_eq!(
        (r.watch_id, r.created, r.canceled, r.events.len()),
        (created.watch_id, false, false, 0)
    );
    assert_eq!(r.header.unwrap().revision, rev);
    drop(tx);
}
