//! `watch`: `--watchers` watchers on one prefix, spread round-robin over
//! `--streams` Watch streams (stream s on connection s mod conns). Then
//! `--clients` put `--total` keys under the prefix (or for `--duration`);
//! each value starts with its send time, so every event yields a
//! put-to-event latency. After the puts, events are drained until every
//! expected one (puts × watchers) arrived or none came for 2 s.
//!
//! The report counts events: `count` is events received, `rps` events/s from
//! the first put to the last event; notes hold `puts`, `expected_events`,
//! `lost_events` and `extra_events` (more than expected: a put that failed
//! on the client yet was applied, or a duplicate).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use timon_proto::etcdserverpb::kv_client::KvClient;
use timon_proto::etcdserverpb::watch_request::RequestUnion;
use timon_proto::etcdserverpb::{PutRequest, WatchCreateRequest, WatchRequest};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use crate::conns::Pool;
use crate::keys::{self, KeyGen};
use crate::options::Common;
use crate::progress::Progress;
use crate::recorder::{status_text, Recorder};
use crate::report::Report;
use crate::runner::{self, Client, Outcome};

pub const PREFIX: &[u8] = b"/bench/watch/";

/// How long to wait for watchers to be created.
const CREATE_TIMEOUT: Duration = Duration::from_secs(60);
/// Draining stops when no event arrived for this long.
const QUIET: Duration = Duration::from_secs(2);

/// The clock shared by putters and watchers: nanoseconds since `base`.
#[derive(Clone, Copy)]
struct Clock {
    base: Instant,
}

impl Clock {
    fn now(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }
}

struct Putter {
    kv: KvClient<Channel>,
    keys: KeyGen,
    size: usize,
    clock: Clock,
}

impl Client for Putter {
    async fn call(&mut self, seq: u64) -> Result<Outcome, tonic::Status> {
        let mut value = self.clock.now().to_be_bytes().to_vec();
        value.resize(self.size, b'v');
        self.kv
            .put(PutRequest {
                key: self.keys.next(seq),
                value,
                ..Default::default()
            })
            .await?;
        Ok(Outcome::Done)
    }
}

/// What all watch streams share while they read.
struct Shared {
    clock: Clock,
    received: AtomicU64,
    /// Clock time of the latest event.
    last_event: AtomicU64,
}

/// Opens stream `s`, creates `n` prefix watchers on it, waits for their
/// `created` answers, then reads events until `stop` turns true.
async fn open_stream(
    pool: &Pool,
    s: usize,
    n: usize,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<Recorder>> {
    let create = WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: PREFIX.to_vec(),
            range_end: keys::prefix_end(PREFIX),
            ..Default::default()
        })),
    };
    // The creates are queued before the call: etcd (grpc-go) sends the
    // response headers the call waits for only with its first message.
    let (tx, rx) = mpsc::channel(n.max(1));
    for _ in 0..n {
        tx.send(create.clone()).await.context("watch request queue closed")?;
    }
    let mut stream = pool
        .watch(s)
        .watch(ReceiverStream::new(rx))
        .await
        .with_context(|| format!("open watch stream {s}"))?
        .into_inner();
    let mut created = 0;
    while created < n {
        let resp = tokio::time::timeout(CREATE_TIMEOUT, stream.message())
            .await
            .with_context(|| format!("stream {s}: {created}/{n} watchers created in {CREATE_TIMEOUT:?}"))??
            .with_context(|| format!("stream {s} ended while creating watchers"))?;
        if resp.canceled {
            bail!("stream {s}: watch canceled: {}", resp.cancel_reason);
        }
        created += usize::from(resp.created);
    }
    Ok(tokio::spawn(async move {
        // The request sender lives as long as the reader: closing it would
        // end the stream.
        let _tx = tx;
        let mut rec = Recorder::default();
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                msg = stream.message() => match msg {
                    Ok(Some(resp)) => {
                        if resp.canceled {
                            rec.error(format!("watch canceled: {}", resp.cancel_reason));
                        }
                        let now = shared.clock.now();
                        for ev in &resp.events {
                            let Some(kv) = ev.kv.as_ref() else { continue };
                            let Some(sent) = kv.value.get(..8) else { continue };
                            let sent = u64::from_be_bytes(sent.try_into().expect("8 bytes"));
                            rec.ok(Duration::from_nanos(now.saturating_sub(sent)));
                        }
                        if !resp.events.is_empty() {
                            shared.received.fetch_add(resp.events.len() as u64, Ordering::Relaxed);
                            shared.last_event.fetch_max(now, Ordering::Relaxed);
                        }
                    }
                    Ok(None) => {
                        rec.error("watch stream ended".into());
                        break;
                    }
                    Err(status) => {
                        rec.error(status_text(&status));
                        break;
                    }
                }
            }
        }
        rec
    }))
}

pub async fn run(
    c: &Common,
    pool: &Pool,
    progress: &Progress,
    watchers: usize,
    streams: usize,
) -> anyhow::Result<Report> {
    if watchers == 0 || streams == 0 || streams > watchers {
        bail!("--watchers ({watchers}) and --streams ({streams}) must be >= 1 with streams <= watchers");
    }
    let clock = Clock { base: Instant::now() };
    let shared = Arc::new(Shared {
        clock,
        received: AtomicU64::new(0),
        last_event: AtomicU64::new(0),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut readers = Vec::with_capacity(streams);
    for s in 0..streams {
        let n = watchers / streams + usize::from(s < watchers % streams);
        readers.push(open_stream(pool, s, n, shared.clone(), stop_rx.clone()).await?);
    }

    let clients = (0..c.clients)
        .map(|i| Putter {
            kv: pool.kv(i),
            keys: KeyGen::new(PREFIX, c.key_size, c.key_space_size, c.sequential_keys, i),
            size: c.val_size,
            clock,
        })
        .collect();
    let started = clock.now();
    let (puts, _) = runner::run(clients, super::stop(c), c.rate, progress).await?;
    let expected = puts.hist.len() * watchers as u64;

    let mut last_seen = (shared.received.load(Ordering::Relaxed), Instant::now());
    loop {
        let got = shared.received.load(Ordering::Relaxed);
        if got >= expected {
            break;
        }
        if got != last_seen.0 {
            last_seen = (got, Instant::now());
        } else if last_seen.1.elapsed() >= QUIET {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = stop_tx.send(true);

    let mut rec = Recorder::default();
    for r in readers {
        rec.merge(r.await.context("watch reader panicked")?);
    }
    let received = shared.received.load(Ordering::Relaxed);
    let last = shared.last_event.load(Ordering::Relaxed).max(started);
    let put_count = puts.hist.len();
    for (error, n) in puts.errors {
        *rec.errors.entry(error).or_default() += n;
    }
    rec.note("puts", put_count);
    rec.note("expected_events", expected);
    rec.note("lost_events", expected.saturating_sub(received));
    rec.note("extra_events", received.saturating_sub(expected));
    Ok(Report::new("watch", rec, Duration::from_nanos(last - started)))
}
