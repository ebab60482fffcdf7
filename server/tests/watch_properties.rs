//! Watch properties, checked on the target alone against the in-test model
//! of keys and revisions (`support::watch::Model`):
//!
//! - `random_watchers_satisfy_properties`: seeded random writes (puts,
//!   deletes, multi-op txns, physical compactions) and watchers from random
//!   uncompacted revisions on random keys, prefixes and ranges, with random
//!   prev_kv and filters, on three streams. At the end every watcher's
//!   events are: ordered by (mod_revision, position in the revision),
//!   unique, without gaps (every change in its range from its start to the
//!   final revision), atomic per revision (one response holds all events of
//!   a revision), with the kv and prev_kv the model gives; a watcher started
//!   at another's last seen revision + 1 gets exactly the rest; watchers of
//!   the same range and start on other streams, created later, get the same
//!   events. Progress requests (after everything was delivered) answer
//!   watch_id -1 with the current revision; cancels answer canceled=true,
//!   and nothing follows.
//! - `control_responses_match_etcd_3_4`: the exact fields of created,
//!   refused, canceled, compacted and progress responses, watch id
//!   allocation, and the compaction-revision edge cases.
//! - `large_revision_is_fragmented_only_on_request`: `fragment`.
//! - `half_closed_stream_keeps_delivering`.
//!
//! `DIFF_SEED=<n>` replays a run, `WATCH_OPS=<n>` sets its length (default
//! 300). `TIMON_DIFF_TARGET=etcd` runs against a real etcd, which checks the
//! model and these properties against etcd itself.
//!
//! etcd 3.4 facts these tests pin down (read in its source, confirmed by
//! running them against etcd 3.4.23 unless marked "source only"):
//! - a progress request is answered with watch_id -1 and the current
//!   revision, also on a stream without watchers; etcd 3.4's receive loop
//!   answers it at once without looking at the watchers, so also while some
//!   still catch up (source only: the tests ask only once all is delivered;
//!   etcd 3.5 defers it until the stream's watchers are synced);
//! - watch ids are allocated per stream from 0; a refused create (empty
//!   range, duplicate id) allocates none;
//! - a compacted start is answered by the created response (header revision
//!   = current revision) and then canceled=true, compact_revision=C, header
//!   revision 0, empty cancel_reason; the id stays in use until canceled;
//! - the header revision of a live event response is the event's revision;
//!   a catching-up watcher gets its whole backlog in one response whose
//!   header revision is the store's current revision (at most 1000
//!   revisions per response: source only);
//! - `fragment` splits a response into parts with the same header and
//!   watch_id, `fragment=true` on all but the last (tested: 3 events with
//!   1 MiB prev_kv each give 3 parts of one event); it splits only a
//!   response of at least max-request-bytes + 512 KiB (2 MiB by default)
//!   holding two or more events, and never splits an event (source only).

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use support::watch::{
    attribute, create_request, key_of, mod_rev, prefix_end, satisfied, show, splits_revision, Model, Outcome,
    StreamLog, WatchStream, Watcher, Write, INVALID_WATCH_ID,
};
use timon_proto::etcdserverpb::kv_client::KvClient;
use timon_proto::etcdserverpb::request_op::Request;
use timon_proto::etcdserverpb::watch_create_request::FilterType;
use timon_proto::etcdserverpb::{
    CompactionRequest, DeleteRangeRequest, PutRequest, RequestOp, ResponseHeader, TxnRequest, WatchCreateRequest,
    WatchResponse,
};
use timon_proto::mvccpb::event::EventType;
use timon_proto::mvccpb::Event;
use tonic::transport::Channel;

const KEYS: &[&[u8]] = &[
    b"\x00", b"a", b"a/", b"a/b", b"a/c", b"ab", b"b", b"b/x", b"c", b"foo", b"foo/bar", b"foo0", b"z", b"\xff",
];

const WAIT: Duration = Duration::from_secs(20);

fn env_u64(name: &str) -> Option<u64> {
    let raw = std::env::var(name).ok()?;
    Some(raw.parse().unwrap_or_else(|_| panic!("{name}={raw} is not a number")))
}

/// Sends one write and checks the revision it got against the model.
async fn write(kv: &mut KvClient<Channel>, model: &mut Model, request: Request) {
    let writes = match &request {
        Request::RequestPut(p) => vec![Write::Put {
            key: p.key.clone(),
            value: p.value.clone(),
        }],
        Request::RequestDeleteRange(d) => vec![Write::Delete {
            key: d.key.clone(),
            range_end: d.range_end.clone(),
        }],
        Request::RequestTxn(t) => t
            .success
            .iter()
            .map(|op| match &op.request {
                Some(Request::RequestPut(p)) => Write::Put {
                    key: p.key.clone(),
                    value: p.value.clone(),
                },
                Some(Request::RequestDeleteRange(d)) => Write::Delete {
                    key: d.key.clone(),
                    range_end: d.range_end.clone(),
                },
                other => panic!("unexpected txn op {other:?}"),
            })
            .collect(),
        Request::RequestRange(_) => vec![],
    };
    let header: Option<ResponseHeader> = match request.clone() {
        Request::RequestPut(r) => kv.put(r).await.map(|r| r.into_inner().header),
        Request::RequestDeleteRange(r) => kv.delete_range(r).await.map(|r| r.into_inner().header),
        Request::RequestTxn(r) => kv.txn(r).await.map(|r| r.into_inner().header),
        Request::RequestRange(r) => kv.range(r).await.map(|r| r.into_inner().header),
    }
    .unwrap_or_else(|e| panic!("{request:?} failed: {e}"));
    model.apply(&writes);
    assert_eq!(
        header.map_or(0, |h| h.revision),
        model.rev,
        "the store revision after {request:?} is not the model's"
    );
}

fn put(key: &[u8], value: &[u8]) -> Request {
    Request::RequestPut(PutRequest {
        key: key.to_vec(),
        value: value.to_vec(),
        ..Default::default()
    })
}

/// One watcher of the random test.
struct Tracked {
    stream: usize,
    /// Its index among the stream's create requests.
    index: usize,
    req: WatchCreateRequest,
    model: Watcher,
    /// Resumes watcher `.0` after its revision `.1`.
    resumes: Option<(usize, i64)>,
    /// Created later with the same range and start as watcher `.0`.
    twin_of: Option<usize>,
}

struct Random {
    rng: StdRng,
    model: Model,
    kv: KvClient<Channel>,
    streams: Vec<WatchStream>,
    creates: Vec<usize>,
    watchers: Vec<Tracked>,
    progress: Vec<usize>,
    tally: std::collections::BTreeMap<&'static str, usize>,
}

impl Random {
    fn chance(&mut self, percent: u32) -> bool {
        self.rng.gen_range(0..100) < percent
    }

    fn key(&mut self) -> Vec<u8> {
        KEYS[self.rng.gen_range(0..KEYS.len())].to_vec()
    }

    fn count(&mut self, what: &'static str) {
        *self.tally.entry(what).or_default() += 1;
    }

    /// A non-empty interval: a key, a prefix, from a key, key to a larger
    /// key, everything.
    fn interval(&mut self) -> (Vec<u8>, Vec<u8>) {
        let key = self.key();
        match self.rng.gen_range(0..10) {
            0..=3 => (key, vec![]),
            4..=5 => {
                let end = prefix_end(&key);
                (key, end)
            }
            6 => (key, vec![0]),
            7..=8 => {
                let other = self.key();
                match key.cmp(&other) {
                    std::cmp::Ordering::Less => (key, other),
                    std::cmp::Ordering::Greater => (other, key),
                    std::cmp::Ordering::Equal => (key, vec![]),
                }
            }
            _ => (vec![0], vec![0]),
        }
    }

    async fn random_write(&mut self) {
        let request = match self.rng.gen_range(0..10) {
            0..=4 => {
                let key = self.key();
                let value = format!("v{}", self.rng.gen_range(0..1000)).into_bytes();
                put(&key, &value)
            }
            5..=6 => {
                let (key, range_end) = self.interval();
                Request::RequestDeleteRange(DeleteRangeRequest {
                    key,
                    range_end,
                    prev_kv: false,
                })
            }
            _ => {
                // Several writes in one revision: distinct put keys, and
                // deletes that cover none of them.
                let mut ops = Vec::new();
                let mut puts: Vec<Vec<u8>> = Vec::new();
                for i in 0..self.rng.gen_range(2..=5) {
                    if self.chance(70) {
                        let key = self.key();
                        if !puts.contains(&key) {
                            puts.push(key.clone());
                            ops.push(put(&key, format!("t{i}").as_bytes()));
                        }
                    } else {
                        let key = self.key();
                        if !puts.contains(&key) {
                            ops.push(Request::RequestDeleteRange(DeleteRangeRequest {
                                key,
                                ..Default::default()
                            }));
                        }
                    }
                }
                // A delete of a key put later in the same txn is refused too.
                let deleted: BTreeSet<Vec<u8>> = ops
                    .iter()
                    .filter_map(|op| match op {
                        Request::RequestDeleteRange(d) => Some(d.key.clone()),
                        _ => None,
                    })
                    .collect();
                ops.retain(|op| !matches!(op, Request::RequestPut(p) if deleted.contains(&p.key)));
                Request::RequestTxn(TxnRequest {
                    compare: vec![],
                    success: ops.into_iter().map(|r| RequestOp { request: Some(r) }).collect(),
                    failure: vec![],
                })
            }
        };
        write(&mut self.kv, &mut self.model, request).await;
        self.count("write");
    }

    /// Creates a watcher and waits for its created response.
    async fn create(&mut self, stream: usize, req: WatchCreateRequest) -> usize {
        let index = self.creates[stream];
        self.creates[stream] += 1;
        let model = self.model.watcher(&req);
        self.streams[stream].create(req.clone());
        let responses = self.streams[stream]
            .wait_until(WAIT, "a created response", |r| attribute(r).watchers.len() > index)
            .await
            .unwrap_or_else(|e| panic!("stream {stream}: {e}"));
        let created = attribute(&responses).watchers[index].created.clone().expect("created");
        assert!(
            created.created && !created.canceled && created.watch_id >= 0,
            "{req:?} was not created: {created:?}"
        );
        assert_eq!(
            created.header.as_ref().map_or(0, |h| h.revision),
            self.model.rev,
            "a created response's header revision is the current revision"
        );
        self.watchers.push(Tracked {
            stream,
            index,
            req,
            model,
            resumes: None,
            twin_of: None,
        });
        self.watchers.len() - 1
    }

    async fn random_watcher(&mut self) {
        let (key, range_end) = self.interval();
        let low = self.model.compacted.max(1);
        let start = match self.rng.gen_range(0..20) {
            0..=6 => 0,
            7..=14 => self.rng.gen_range(low..=self.model.rev),
            // The edge: prev_kv and tombstones at the compaction revision.
            15..=17 if self.model.compacted > 0 => self.model.compacted,
            _ => self.model.rev + self.rng.gen_range(1..=2),
        };
        let mut req = create_request(&key, &range_end, start);
        req.prev_kv = start == self.model.compacted || self.chance(50);
        req.filters = match self.rng.gen_range(0..10) {
            0 => vec![FilterType::Noput as i32],
            1 => vec![FilterType::Nodelete as i32],
            _ => vec![],
        };
        let stream = self.rng.gen_range(0..self.streams.len());
        self.create(stream, req).await;
        self.count(if start == 0 {
            "watcher from now"
        } else if start == self.model.compacted {
            "watcher from the compaction revision"
        } else if start <= self.model.rev {
            "watcher from history"
        } else {
            "watcher from a future revision"
        });
    }

    /// A watcher that resumes another after the last revision it has seen.
    async fn resume(&mut self) {
        let candidates: Vec<usize> = (0..self.watchers.len())
            .filter(|&i| self.watchers[i].resumes.is_none() && self.watchers[i].twin_of.is_none())
            .collect();
        if candidates.is_empty() {
            return;
        }
        let i = candidates[self.rng.gen_range(0..candidates.len())];
        let w = &self.watchers[i];
        let log = attribute(&self.streams[w.stream].responses());
        let Some(last) = log.watchers[w.index].events.last().map(mod_rev) else {
            return;
        };
        // Events at or below the compaction revision would come back without
        // prev_kv (or without the tombstones at it): no longer a resume.
        if last < self.model.compacted {
            return;
        }
        let mut req = w.req.clone();
        req.start_revision = last + 1;
        let stream = self.rng.gen_range(0..self.streams.len());
        let j = self.create(stream, req).await;
        self.watchers[j].resumes = Some((i, last));
        self.count("resumed watcher");
    }

    /// A watcher with the same range, filters, prev_kv and start as another,
    /// on another stream, created now.
    async fn twin(&mut self) {
        let i = self.rng.gen_range(0..self.watchers.len());
        let w = &self.watchers[i];
        let start = w.model.start();
        // Its history must still be intact: start above the compaction.
        if start <= self.model.compacted || w.twin_of.is_some() {
            return;
        }
        let mut req = w.req.clone();
        req.start_revision = start;
        let stream = (w.stream + 1) % self.streams.len();
        let j = self.create(stream, req).await;
        self.watchers[j].twin_of = Some(i);
        self.count("twin watcher (same range and start, another stream)");
    }

    /// Waits until every watcher received what the model expects.
    async fn quiesce(&self, why: &str) {
        for (s, stream) in self.streams.iter().enumerate() {
            let mine: Vec<&Tracked> = self.watchers.iter().filter(|w| w.stream == s).collect();
            let result = stream
                .wait_until(WAIT, &format!("every watcher served ({why})"), |responses| {
                    let log = attribute(responses);
                    mine.iter()
                        .all(|w| satisfied(log.watchers.get(w.index), &self.model.expected(&w.model), 0))
                })
                .await;
            if let Err(e) = result {
                let log = attribute(&stream.responses());
                let missing: Vec<String> = mine
                    .iter()
                    .filter(|w| !satisfied(log.watchers.get(w.index), &self.model.expected(&w.model), 0))
                    .map(|w| {
                        let want = match self.model.expected(&w.model) {
                            Outcome::Events(e) => e.len(),
                            _ => 0,
                        };
                        let got = log.watchers.get(w.index).map_or(0, |l| l.events.len());
                        format!("  #{} {:?}: {got} of {want} events", w.index, w.req)
                    })
                    .collect();
                panic!("stream {s}: {e}\nwatchers short of events:\n{}", missing.join("\n"));
            }
        }
    }

    /// A physical compaction below every watcher that may still be catching
    /// up (received nothing yet), after everything was delivered.
    async fn compact(&mut self) {
        self.quiesce("before a compaction").await;
        let mut cap = self.model.rev;
        for w in &self.watchers {
            if w.model.historical() && matches!(self.model.expected(&w.model), Outcome::Events(ref e) if e.is_empty()) {
                cap = cap.min(w.model.start() - 1);
            }
        }
        if cap <= self.model.compacted {
            return;
        }
        let revision = self.rng.gen_range(self.model.compacted + 1..=cap);
        self.kv
            .compact(CompactionRequest {
                revision,
                physical: true,
            })
            .await
            .unwrap_or_else(|e| panic!("compact {revision}: {e}"));
        self.model.compact(revision);
        self.count("compaction");
    }

    /// Once everything was delivered: a progress request answers watch_id
    /// -1 and the current revision.
    async fn progress(&mut self) {
        self.quiesce("before a progress request").await;
        let s = self.rng.gen_range(0..self.streams.len());
        self.progress[s] += 1;
        let n = self.progress[s];
        self.streams[s].request_progress();
        let responses = self.streams[s]
            .wait_until(WAIT, "a progress response", |r| attribute(r).progress.len() >= n)
            .await
            .unwrap_or_else(|e| panic!("stream {s}: {e}"));
        let response = attribute(&responses).progress[n - 1].clone();
        check_progress(&response, self.model.rev);
        self.count("progress request");
    }
}

/// A progress response: watch_id -1, the given revision, nothing else.
fn check_progress(r: &WatchResponse, revision: i64) {
    assert_eq!(
        (
            r.watch_id,
            r.created,
            r.canceled,
            r.compact_revision,
            r.cancel_reason.as_str(),
            r.fragment,
            r.events.len()
        ),
        (INVALID_WATCH_ID, false, false, 0, "", false, 0),
        "progress response {r:?}"
    );
    assert_eq!(
        r.header.as_ref().map_or(0, |h| h.revision),
        revision,
        "progress response's header revision must be the current revision: {r:?}"
    );
}

fn event_text(e: &Event) -> String {
    let kv = e.kv.clone().unwrap_or_default();
    let kind = if e.r#type == EventType::Delete as i32 {
        "DELETE"
    } else {
        "PUT"
    };
    let prev = e.prev_kv.as_ref().map_or(String::new(), |p| {
        format!(" prev={:?}@{}", show(&p.value), p.mod_revision)
    });
    format!(
        "@{} {kind} {:?}={:?}{prev}",
        kv.mod_revision,
        show(&kv.key),
        show(&kv.value)
    )
}

/// The per-watcher properties; answers the violations.
fn check_watcher(w: &Tracked, expected: &[Event], log: &StreamLog, final_rev: i64) -> Vec<String> {
    let name = format!("stream {} watcher #{} {:?}", w.stream, w.index, w.req);
    let mut problems = Vec::new();
    let got = &log.watchers[w.index];
    let events = &got.events;
    // Ordered: by revision, and within one revision as the model ordered them.
    if events.windows(2).any(|p| mod_rev(&p[0]) > mod_rev(&p[1])) {
        problems.push(format!("{name}: events out of revision order"));
    }
    // Unique.
    let mut seen = BTreeSet::new();
    for e in events {
        if !seen.insert((mod_rev(e), key_of(e).to_vec())) {
            problems.push(format!("{name}: duplicate event {}", event_text(e)));
        }
    }
    // No gaps: every expected change is there.
    let delivered: BTreeSet<(i64, Vec<u8>)> = events.iter().map(|e| (mod_rev(e), key_of(e).to_vec())).collect();
    for e in expected {
        if !delivered.contains(&(mod_rev(e), key_of(e).to_vec())) {
            problems.push(format!("{name}: missing event {}", event_text(e)));
        }
    }
    // Atomic per revision (no fragment requested).
    for pair in got.event_responses.windows(2) {
        if splits_revision(&pair[0], &pair[1]) {
            problems.push(format!(
                "{name}: revision {} split across two responses",
                pair[1].events.first().map_or(0, mod_rev)
            ));
        }
    }
    // Header revisions: not below the events, not above the store.
    for r in &got.event_responses {
        let header = r.header.as_ref().map_or(0, |h| h.revision);
        let last = r.events.last().map_or(0, mod_rev);
        if header < last || header > final_rev {
            problems.push(format!(
                "{name}: header revision {header} with events up to {last} (final {final_rev})"
            ));
        }
    }
    // kv and prev_kv exactly as the model has them (this also checks the
    // order inside each revision).
    if events.as_slice() != expected {
        let first = events
            .iter()
            .zip(expected)
            .position(|(a, b)| a != b)
            .unwrap_or(events.len().min(expected.len()));
        problems.push(format!(
            "{name}: events differ from the model from #{first} ({} vs {} events):\n    got:      {:?}\n    expected: {:?}",
            events.len(),
            expected.len(),
            events.get(first).map(event_text),
            expected.get(first).map(event_text)
        ));
    }
    problems
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn random_watchers_satisfy_properties() {
    let seed = env_u64("DIFF_SEED").unwrap_or_else(rand::random);
    let ops = env_u64("WATCH_OPS").unwrap_or(300) as usize;
    println!("watch properties: DIFF_SEED={seed} WATCH_OPS={ops}");
    let started = Instant::now();
    let target = support::start_target();
    let channel = support::watch::watch_channel(&target.endpoint()).await;
    let streams = vec![
        WatchStream::open_on(channel.clone()),
        WatchStream::open_on(channel),
        WatchStream::open(&target.endpoint()).await,
    ];
    let mut run = Random {
        rng: StdRng::seed_from_u64(seed),
        model: Model::default(),
        kv: support::connect(&target.endpoint()).await.0,
        creates: vec![0; streams.len()],
        progress: vec![0; streams.len()],
        streams,
        watchers: Vec::new(),
        tally: Default::default(),
    };
    for _ in 0..ops {
        match run.rng.gen_range(0..100) {
            0..=59 => run.random_write().await,
            60..=79 => run.random_watcher().await,
            80..=85 => run.resume().await,
            86..=91 if !run.watchers.is_empty() => run.twin().await,
            92..=94 => run.compact().await,
            95..=97 => run.progress().await,
            _ => run.random_write().await,
        }
    }
    write(&mut run.kv, &mut run.model, put(b"foo", b"final")).await;
    run.quiesce("at the end").await;
    let final_rev = run.model.rev;

    let logs: Vec<StreamLog> = run.streams.iter().map(|s| attribute(&s.responses())).collect();
    let expected: Vec<Vec<Event>> = run
        .watchers
        .iter()
        .map(|w| match run.model.expected(&w.model) {
            Outcome::Events(events) => events,
            other => panic!("watcher {:?} from an uncompacted revision: {other:?}", w.req),
        })
        .collect();
    let mut problems = Vec::new();
    let mut delivered = 0;
    for (i, w) in run.watchers.iter().enumerate() {
        problems.extend(check_watcher(w, &expected[i], &logs[w.stream], final_rev));
        let events = &logs[w.stream].watchers[w.index].events;
        delivered += events.len();
        if let Some((of, after)) = w.resumes {
            let original = &logs[run.watchers[of].stream].watchers[run.watchers[of].index].events;
            let rest: Vec<&Event> = original.iter().filter(|e| mod_rev(e) > after).collect();
            if events.iter().collect::<Vec<_>>() != rest {
                problems.push(format!(
                    "watcher {:?} resuming after {after} did not get exactly the rest of watcher {:?}",
                    w.req, run.watchers[of].req
                ));
            }
        }
        if let Some(of) = w.twin_of {
            let original = &logs[run.watchers[of].stream].watchers[run.watchers[of].index].events;
            if events != original {
                problems.push(format!(
                    "watcher {:?} saw other events than its twin {:?} ({} vs {})",
                    w.req,
                    run.watchers[of].req,
                    events.len(),
                    original.len()
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} property violations (DIFF_SEED={seed}):\n{}\ntarget stderr tail:\n{}",
        problems.len(),
        problems.join("\n"),
        target.stderr_tail(3000)
    );

    // Progress on every stream, everything delivered.
    for s in 0..run.streams.len() {
        run.progress[s] += 1;
        let n = run.progress[s];
        run.streams[s].request_progress();
        let responses = run.streams[s]
            .wait_until(WAIT, "a progress response", |r| attribute(r).progress.len() >= n)
            .await
            .unwrap_or_else(|e| panic!("stream {s}: {e}"));
        check_progress(&attribute(&responses).progress[n - 1], final_rev);
    }

    // Cancel everything: each is answered canceled=true with its id.
    for w in &run.watchers {
        let log = attribute(&run.streams[w.stream].responses());
        let id = log.watchers[w.index].created.as_ref().expect("created").watch_id;
        run.streams[w.stream].cancel(id);
        let responses = run.streams[w.stream]
            .wait_until(WAIT, "a cancel response", |r| {
                attribute(r).watchers[w.index].explicit_cancels() == 1
            })
            .await
            .unwrap_or_else(|e| panic!("cancel {id} on stream {}: {e}", w.stream));
        let log = attribute(&responses);
        let cancel = log.watchers[w.index].control.last().expect("cancel response");
        assert_eq!(
            (
                cancel.watch_id,
                cancel.created,
                cancel.canceled,
                cancel.compact_revision,
                cancel.cancel_reason.as_str(),
                cancel.events.len()
            ),
            (id, false, true, 0, "", 0),
            "cancel response {cancel:?}"
        );
        assert_eq!(cancel.header.as_ref().map_or(0, |h| h.revision), final_rev);
    }
    // Nothing follows a cancel: a new watcher on every key sees the next
    // write, the canceled ones nothing more.
    let counts: Vec<usize> = run.streams.iter().map(|s| s.responses().len()).collect();
    for s in 0..run.streams.len() {
        run.create(s, create_request(&[0], &[0], 0)).await;
    }
    write(&mut run.kv, &mut run.model, put(b"a", b"after cancel")).await;
    for (s, stream) in run.streams.iter().enumerate() {
        let responses = stream
            .wait_until(WAIT, "the event of the last write", |r| {
                r[counts[s]..].iter().any(|r| !r.events.is_empty())
            })
            .await
            .unwrap_or_else(|e| panic!("stream {s}: {e}"));
        let after: Vec<&WatchResponse> = responses[counts[s]..].iter().filter(|r| !r.created).collect();
        assert_eq!(after.len(), 1, "stream {s}: responses after the cancels: {after:?}");
    }
    for (what, n) in &run.tally {
        println!("watch properties: {n:5} {what}");
    }
    println!(
        "watch properties: {ops} ops, {} watchers, {delivered} events checked, final revision {final_rev}, compacted at {}, {:.1?}",
        run.watchers.len(),
        run.model.compacted,
        started.elapsed()
    );
}

/// The created response's fields.
fn check_created(r: &WatchResponse, id: i64, revision: i64) {
    assert_eq!(
        (
            r.watch_id,
            r.created,
            r.canceled,
            r.compact_revision,
            r.cancel_reason.as_str(),
            r.fragment,
            r.events.len()
        ),
        (id, true, false, 0, "", false, 0),
        "created response {r:?}"
    );
    assert_eq!(r.header.as_ref().map_or(0, |h| h.revision), revision, "{r:?}");
    let h = r.header.unwrap_or_default();
    assert!(
        h.cluster_id != 0 && h.member_id != 0 && h.raft_term != 0,
        "header {h:?}"
    );
}

/// A refused create: one response, created and canceled, watch_id -1.
fn check_refused(r: &WatchResponse, reason: &str, revision: i64) {
    assert_eq!(
        (
            r.watch_id,
            r.created,
            r.canceled,
            r.compact_revision,
            r.cancel_reason.as_str(),
            r.events.len()
        ),
        (INVALID_WATCH_ID, true, true, 0, reason, 0),
        "refused create {r:?}"
    );
    assert_eq!(r.header.as_ref().map_or(0, |h| h.revision), revision, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_responses_match_etcd_3_4() {
    let target = support::start_target();
    let (mut kv, _) = support::connect(&target.endpoint()).await;
    let mut model = Model::default();
    let stream = WatchStream::open(&target.endpoint()).await;
    // Progress on a stream without watchers is answered (etcd 3.4).
    stream.request_progress();
    let r = stream.wait_for_count(1, WAIT).await;
    check_progress(&r[0], 1);

    write(&mut kv, &mut model, put(b"k2", b"x")).await; // 2
    write(&mut kv, &mut model, put(b"k1", b"v1")).await; // 3

    // Ids: from 0, counting up, skipping explicit ones in use.
    stream.create(create_request(b"k1", b"", 0));
    stream.create(create_request(b"k1", b"", 0));
    stream.create(WatchCreateRequest {
        watch_id: 2,
        ..create_request(b"k1", b"", 0)
    });
    stream.create(create_request(b"k1", b"", 0));
    stream.create(WatchCreateRequest {
        watch_id: 1,
        ..create_request(b"k1", b"", 0)
    });
    stream.create(create_request(b"b", b"a", 0));
    stream.create(create_request(b"a", b"a", 0));
    let r = stream.wait_for_count(8, WAIT).await;
    check_created(&r[1], 0, 3);
    check_created(&r[2], 1, 3);
    check_created(&r[3], 2, 3);
    check_created(&r[4], 3, 3);
    check_refused(&r[5], "mvcc: duplicate watch ID provided on the WatchStream", 3);
    check_refused(&r[6], "mvcc: watcher range is empty", 3);
    check_refused(&r[7], "mvcc: watcher range is empty", 3);

    // Cancel: answered with the id; an id not in use is not answered (the
    // next control response is the progress one).
    stream.cancel(1);
    stream.cancel(1);
    stream.cancel(99);
    stream.request_progress();
    let r = stream.wait_for_count(10, WAIT).await;
    assert_eq!(
        (
            r[8].watch_id,
            r[8].created,
            r[8].canceled,
            r[8].compact_revision,
            r[8].cancel_reason.as_str()
        ),
        (1, false, true, 0, ""),
        "cancel response {:?}",
        r[8]
    );
    assert_eq!(r[8].header.as_ref().map_or(0, |h| h.revision), 3);
    check_progress(&r[9], 3);

    // The compaction revision's edges. 4: k1 updated and k2 deleted in one
    // txn; 5: k1 updated; compact at 4.
    write(
        &mut kv,
        &mut model,
        Request::RequestTxn(TxnRequest {
            compare: vec![],
            success: vec![
                RequestOp {
                    request: Some(put(b"k1", b"v2")),
                },
                RequestOp {
                    request: Some(Request::RequestDeleteRange(DeleteRangeRequest {
                        key: b"k2".to_vec(),
                        ..Default::default()
                    })),
                },
            ],
            failure: vec![],
        }),
    )
    .await;
    write(&mut kv, &mut model, put(b"k1", b"v3")).await; // 5
                                                         // The watchers on k1 (ids 0, 2, 3) get 4 and 5: 3 x 2 responses.
    let r = stream.wait_for_count(16, WAIT).await;
    assert!(
        r[10..16].iter().all(|r| r.events.len() == 1 && !r.created),
        "{:?}",
        &r[10..]
    );
    kv.compact(CompactionRequest {
        revision: 4,
        physical: true,
    })
    .await
    .expect("compact 4");
    model.compact(4);

    // From 3 (compacted): created, then canceled with compact_revision 4
    // and header revision 0; the id stays in use until canceled.
    let prefix_k = |start: i64, prev_kv: bool| WatchCreateRequest {
        prev_kv,
        ..create_request(b"k", b"l", start)
    };
    stream.create(prefix_k(3, false));
    let r = stream.wait_for_count(18, WAIT).await;
    check_created(&r[16], 4, 5);
    let c = &r[17];
    assert_eq!(
        (
            c.watch_id,
            c.created,
            c.canceled,
            c.compact_revision,
            c.cancel_reason.as_str(),
            c.events.len()
        ),
        (4, false, true, 4, "", 0),
        "compacted watcher's cancel {c:?}"
    );
    assert_eq!(
        c.header.as_ref().map_or(-1, |h| h.revision),
        0,
        "header revision of {c:?}"
    );
    stream.create(WatchCreateRequest {
        watch_id: 4,
        ..create_request(b"x", b"", 0)
    });
    stream.cancel(4);
    let r = stream.wait_for_count(20, WAIT).await;
    check_refused(&r[18], "mvcc: duplicate watch ID provided on the WatchStream", 5);
    assert_eq!(
        (r[19].watch_id, r[19].canceled, r[19].compact_revision),
        (4, true, 0),
        "{:?}",
        r[19]
    );

    // From exactly 4: the PUT of 4 without prev_kv (the lookup at 3 is
    // compacted), not the DELETE of 4 (its tombstone is compacted), then 5
    // with prev_kv. From 5: prev_kv present.
    stream.create(prefix_k(4, true));
    stream.create(prefix_k(5, true));
    let responses = stream
        .wait_until(WAIT, "events from 4 and 5", |r| {
            let log = attribute(r);
            log.watchers.len() == 11 && log.watchers[9].events.len() >= 2 && !log.watchers[10].events.is_empty()
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let log = attribute(&responses);
    let from4 = model.watcher(&prefix_k(4, true));
    let from5 = model.watcher(&prefix_k(5, true));
    for (k, w) in [(9, from4), (10, from5)] {
        let Outcome::Events(expected) = model.expected(&w) else {
            panic!("the model cancels {w:?}")
        };
        assert_eq!(
            log.watchers[k].events.iter().map(event_text).collect::<Vec<_>>(),
            expected.iter().map(event_text).collect::<Vec<_>>(),
            "watcher from {}",
            w.spec.start_revision
        );
    }
    let texts: Vec<String> = log.watchers[9].events.iter().map(event_text).collect();
    assert_eq!(texts, ["@4 PUT \"k1\"=\"v2\"", "@5 PUT \"k1\"=\"v3\" prev=\"v2\"@4"]);
    // A backlog comes in one response with the current revision.
    let first = &log.watchers[9].event_responses[0];
    assert_eq!(
        (first.events.len(), first.header.as_ref().map_or(0, |h| h.revision)),
        (2, 5)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_revision_is_fragmented_only_on_request() {
    let target = support::start_target();
    let (mut kv, _) = support::connect(&target.endpoint()).await;
    let mut model = Model::default();
    let value = vec![b'v'; 1024 * 1024];
    for key in [&b"big/1"[..], b"big/2", b"big/3"] {
        write(&mut kv, &mut model, put(key, &value)).await;
    }
    let stream = WatchStream::open(&target.endpoint()).await;
    let watch = |prev_kv: bool, fragment: bool| WatchCreateRequest {
        prev_kv,
        fragment,
        ..create_request(b"big/", b"big0", 0)
    };
    stream.create(watch(true, true)); // 0: 3 MiB of prev_kv, fragmented
    stream.create(watch(true, false)); // 1: one 3 MiB response
    stream.create(watch(false, true)); // 2: small, one response
    stream.wait_for_count(3, WAIT).await;
    write(
        &mut kv,
        &mut model,
        Request::RequestDeleteRange(DeleteRangeRequest {
            key: b"big/".to_vec(),
            range_end: b"big0".to_vec(),
            prev_kv: false,
        }),
    )
    .await;
    let responses = stream
        .wait_until(WAIT, "the delete's events", |r| {
            let log = attribute(r);
            log.watchers.len() == 3 && log.watchers.iter().all(|w| w.events.len() >= 3)
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let shape = |id: i64| -> Vec<(usize, bool, i64)> {
        responses
            .iter()
            .filter(|r| r.watch_id == id && !r.created)
            .map(|r| (r.events.len(), r.fragment, r.header.as_ref().map_or(0, |h| h.revision)))
            .collect()
    };
    assert_eq!(shape(0), [(1, true, 5), (1, true, 5), (1, false, 5)]);
    assert_eq!(shape(1), [(3, false, 5)]);
    assert_eq!(shape(2), [(3, false, 5)]);
    let log = attribute(&responses);
    assert_eq!(
        log.watchers[0].events, log.watchers[1].events,
        "the fragments hold the same events"
    );
    assert!(log.watchers[0]
        .events
        .iter()
        .all(|e| e.prev_kv.as_ref().is_some_and(|p| p.value == value)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_closed_stream_keeps_delivering() {
    // etcd's server ends a watch stream only when the client cancels the
    // RPC: after the client half-closes (no more requests), events go on.
    let target = support::start_target();
    let (mut kv, _) = support::connect(&target.endpoint()).await;
    let mut model = Model::default();
    let mut stream = WatchStream::open(&target.endpoint()).await;
    stream.create(create_request(b"h", b"", 0));
    stream.wait_for_count(1, WAIT).await;
    stream.close_send();
    write(&mut kv, &mut model, put(b"h", b"1")).await;
    write(&mut kv, &mut model, put(b"h", b"2")).await;
    let r = stream.wait_for_count(3, WAIT).await;
    assert_eq!(r[1].events.len() + r[2].events.len(), 2, "{r:?}");
    assert!(stream.ended().is_none(), "the stream ended: {:?}", stream.ended());
}
