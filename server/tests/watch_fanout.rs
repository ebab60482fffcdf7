//! Watch at scale: 10,000 watchers over 100 streams on one member all
//! receive every event of a write burst, in order, while one more stream
//! that never reads holds its watchers back without blocking anyone or
//! growing the member's memory without bound.

mod support;

use std::time::{Duration, Instant};

use timon_proto::etcdserverpb::watch_client::WatchClient;
use timon_proto::etcdserverpb::watch_request::RequestUnion;
use timon_proto::etcdserverpb::{PutRequest, WatchCreateRequest, WatchRequest};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;

const STREAMS: usize = 100;
const WATCHERS_PER_STREAM: usize = 100;
const WRITES: usize = 100;
const STUCK_WRITES: usize = 64;

fn create(key: &[u8], end: &[u8]) -> WatchRequest {
    WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: key.to_vec(),
            range_end: end.to_vec(),
            ..Default::default()
        })),
    }
}

/// The member's resident memory, from /proc.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_watchers_get_every_event_while_one_stream_never_reads() {
    let member = support::start_timon(None, &[]);
    let endpoint = member.endpoint();
    let channel = tonic::transport::Channel::from_shared(endpoint.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();

    // The stream that never reads: a watcher on g/, which gets large
    // values, so it would hold megabytes if the server queued without bound.
    let (stuck_tx, stuck_rx) = mpsc::channel(4);
    // WATCH_FANOUT_NO_STUCK=1 leaves the stuck watcher out, to measure
    // what the writes alone cost.
    let stuck_key: &[u8] = if std::env::var_os("WATCH_FANOUT_NO_STUCK").is_some() {
        b"h/"
    } else {
        b"g/"
    };
    stuck_tx.send(create(stuck_key, b"z")).await.unwrap();
    // Its own connection: an unread HTTP/2 stream holds its connection's
    // flow-control window in a Rust (h2) client.
    let stuck_channel = tonic::transport::Channel::from_shared(endpoint.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let _stuck = WatchClient::new(stuck_channel)
        .watch(ReceiverStream::new(stuck_rx))
        .await
        .unwrap();

    // 100 streams x 100 watchers on the prefix f/.
    let mut streams = Vec::new();
    for _ in 0..STREAMS {
        let (tx, rx) = mpsc::channel(WATCHERS_PER_STREAM + 1);
        for _ in 0..WATCHERS_PER_STREAM {
            tx.send(create(b"f/", b"f0")).await.unwrap();
        }
        let inbound = WatchClient::new(channel.clone())
            .max_decoding_message_size(64 << 20)
            .watch(ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        streams.push((tx, inbound));
    }
    // Every stream has all its watchers created before the burst.
    let mut created = 0;
    for (_, inbound) in &mut streams {
        let mut n = 0;
        while n < WATCHERS_PER_STREAM {
            let r = tokio::time::timeout(Duration::from_secs(30), inbound.next())
                .await
                .expect("created in time")
                .expect("stream open")
                .expect("no error");
            assert!(r.created && !r.canceled);
            n += 1;
        }
        created += n;
    }
    assert_eq!(created, STREAMS * WATCHERS_PER_STREAM);
    let pid = member.pid().unwrap();

    let (mut kv, _) = support::connect(&endpoint).await;
    let started = Instant::now();
    let mut first_rev = 0;
    for i in 0..WRITES {
        let r = kv
            .put(PutRequest {
                key: format!("f/{i:04}").into_bytes(),
                value: vec![b'v'; 64],
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        if i == 0 {
            first_rev = r.header.unwrap().revision;
        }
    }
    let write_time = started.elapsed();

    // Every watcher sees every revision exactly once, in order. The streams
    // share a connection, so all are read at once (an unread stream would
    // hold the connection's flow-control window).
    let mut readers = Vec::new();
    for (tx, mut inbound) in streams {
        readers.push(tokio::spawn(async move {
            let _tx = tx;
            let mut next: std::collections::HashMap<i64, i64> = std::collections::HashMap::new();
            let mut got = 0;
            while got < WATCHERS_PER_STREAM * WRITES {
                let r = tokio::time::timeout(Duration::from_secs(60), inbound.next())
                    .await
                    .unwrap_or_else(|_| panic!("events in time: got {got} of {}", WATCHERS_PER_STREAM * WRITES))
                    .expect("stream open")
                    .expect("no error");
                for ev in r.events {
                    let rev = ev.kv.unwrap().mod_revision;
                    assert!(
                        rev < first_rev + WRITES as i64,
                        "watcher {} on f/ got an event of g/",
                        r.watch_id
                    );
                    let want = next.entry(r.watch_id).or_insert(first_rev);
                    assert_eq!(rev, *want, "watcher {} out of order", r.watch_id);
                    *want += 1;
                    got += 1;
                }
            }
            got
        }));
    }
    let mut delivered = 0usize;
    for r in readers {
        delivered += r.await.expect("reader");
    }
    let total = started.elapsed();
    println!(
        "{delivered} events to {} watchers over {STREAMS} streams: writes {write_time:?}, all delivered {total:?}",
        STREAMS * WATCHERS_PER_STREAM
    );
    assert_eq!(delivered, STREAMS * WATCHERS_PER_STREAM * WRITES);

    // The stream that never reads is sent 4 rounds of 64 MiB; the member
    // holds a bounded queue of it, so its memory stops growing after the
    // first round (RocksDB's memtable fills and flushes meanwhile).
    let mut rss = vec![rss_kib(pid)];
    for round in 0..4 {
        for i in 0..STUCK_WRITES {
            kv.put(PutRequest {
                key: format!("g/{round}/{i:04}").into_bytes(),
                value: vec![b'g'; 1 << 20],
                ..Default::default()
            })
            .await
            .unwrap();
        }
        rss.push(rss_kib(pid));
    }
    println!("member RSS (KiB) before and after each 64 MiB round to the stuck stream: {rss:?}");
    let growth_after_first = rss[4].saturating_sub(rss[1]);
    assert!(
        growth_after_first < 96 * 1024,
        "memory kept growing with what the stuck stream was sent: {rss:?} KiB"
    );
}
