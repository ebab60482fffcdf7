//! Watch differential test: a seeded random sequence of writes (put, delete,
//! multi-op txns so that one revision holds several events, physical
//! compactions) and watch requests (create, cancel, progress, on several
//! streams over two connections) goes to real etcd and to the target in the
//! same order. At the end, after a final write and once every watcher got
//! everything up to the final revision (or was canceled), each watcher's
//! created response, flattened events (kv and prev_kv) and cancel responses
//! (canceled, compact_revision, cancel_reason, header revision), and each
//! stream's progress responses must be identical on both, ignoring the
//! header's cluster_id, member_id and raft_term and how events are batched
//! into responses. Separately, on both sides: no revision is split across two
//! responses (fragment is only requested on small revisions here), events
//! come in revision order, and an event response's header revision is at
//! least its last event's mod_revision.
//!
//! Watchers get random keys, prefixes, ranges (`range_end = "\0"` and empty
//! ranges too), start revisions (0 = now, history, exactly the compaction
//! revision, compacted, future), prev_kv, NOPUT/NODELETE (and an unknown
//! filter value), server-chosen or explicit (and duplicate) watch ids.
//!
//! `DIFF_SEED=<n>` replays a run, `WATCH_OPS=<n>` sets its length (default
//! 500), `TIMON_DIFF_TARGET=etcd` compares etcd with a second etcd.
//!
//! Determinism. etcd's watch delivery has timing in it; the test keeps to
//! what is deterministic, using the model in `support::watch` to know what
//! each watcher must have received:
//! - a create waits for its created response (whose header revision is the
//!   store revision at creation), a cancel for its answer, a progress
//!   request for its response, before the next operation;
//! - a watcher is only canceled once it received everything it should, and
//!   a compaction waits until every watcher did: etcd looks prev_kv up when
//!   it sends an event, so a compaction in between would drop it, and a
//!   canceled watcher's queued events are silently dropped;
//! - a historical watcher catches up in etcd's background loop (every
//!   100 ms); until it received something it may still be behind, so a
//!   compaction stays below its start revision (else it would be canceled,
//!   or lose the tombstones of the compaction revision, depending on timing);
//! - compactions are physical, so the tombstones at the compaction revision
//!   are gone when the next watcher reads history.
//!
//! The header revision of an event response is not compared: for a watcher
//! catching up it is the store revision when etcd's loop ran. Some creates
//! set progress_notify, which never fires within a run (etcd's interval is
//! 10 minutes by default).
//!
//! etcd 3.4 details this relies on (and the target must reproduce):
//! - server-chosen watch ids start at 0 per stream and count up, skipping
//!   ids in use; an explicit id in use is refused;
//! - a refused create is ONE response: created=true, canceled=true,
//!   watch_id=-1, cancel_reason "mvcc: watcher range is empty" (key >=
//!   range_end) or "mvcc: duplicate watch ID provided on the WatchStream";
//! - a compacted start gives the created response, then canceled=true with
//!   compact_revision=C, header revision 0, no cancel_reason; the watcher
//!   stays registered: its id is still in use and a cancel request for it is
//!   answered;
//! - a cancel request for an id not in use is not answered at all;
//! - a progress request is answered at once with watch_id=-1 and the
//!   current revision.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use support::watch::{
    attribute, create_request, in_range, mod_rev, prefix_end, satisfied, show, splits_revision, Model, Outcome,
    StreamLog, WatchStream, Watcher, WatcherLog, Write, INVALID_WATCH_ID,
};
use timon_proto::etcdserverpb::compare::{CompareTarget, TargetUnion};
use timon_proto::etcdserverpb::kv_client::KvClient;
use timon_proto::etcdserverpb::request_op::Request;
use timon_proto::etcdserverpb::watch_create_request::FilterType;
use timon_proto::etcdserverpb::{
    CompactionRequest, Compare, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, ResponseHeader, TxnRequest,
    WatchCreateRequest,
};
use timon_proto::mvccpb::event::EventType;
use timon_proto::mvccpb::Event;
use tonic::transport::Channel;

/// A small key space so that watchers and writes collide: prefixes of each
/// other, neighbours in byte order, the smallest and largest bytes.
const KEYS: &[&[u8]] = &[
    b"\x00", b"a", b"a/", b"a/b", b"a/c", b"ab", b"b", b"b/x", b"c", b"foo", b"foo/bar", b"foo0", b"z", b"\xff",
];

const VALUES: &[&[u8]] = &[b"", b"v1", b"v2", b"x", b"\x00", b"zz", b"\xff"];

/// How long one wait (a created response, everything delivered) may take.
const WAIT: Duration = Duration::from_secs(20);

/// Most streams a run opens.
const MAX_STREAMS: usize = 4;

/// One server and its open watch streams.
struct Side {
    name: &'static str,
    member: support::Member,
    kv: KvClient<Channel>,
    /// Streams alternate between two connections.
    channels: [Channel; 2],
    streams: Vec<WatchStream>,
}

impl Side {
    async fn start(name: &'static str, member: support::Member) -> Side {
        let kv = support::connect(&member.endpoint()).await.0;
        let channels = [
            support::watch::watch_channel(&member.endpoint()).await,
            support::watch::watch_channel(&member.endpoint()).await,
        ];
        Side {
            name,
            member,
            kv,
            channels,
            streams: Vec::new(),
        }
    }

    fn open_stream(&mut self) {
        let channel = self.channels[self.streams.len() % 2].clone();
        self.streams.push(WatchStream::open_on(channel));
    }
}

/// The test's plan for one create request (identical for both sides).
struct Planned {
    req: WatchCreateRequest,
    model: Watcher,
    /// Refused at creation (with this cancel_reason).
    refused: Option<&'static str>,
    /// The watch id etcd's rules give it (-1 if refused).
    id: i64,
    /// Explicit cancel responses it must get.
    cancels: usize,
    /// Canceled by request: what it had to have received by then.
    frozen: Option<Outcome>,
}

impl Planned {
    fn expected(&self, model: &Model) -> Outcome {
        if let Some(reason) = self.refused {
            return Outcome::Refused(reason);
        }
        self.frozen.clone().unwrap_or_else(|| model.expected(&self.model))
    }
}

/// The plan for one stream: its creates in order and etcd's id bookkeeping.
#[derive(Default)]
struct StreamPlan {
    watchers: Vec<Planned>,
    /// Ids in use on the stream (compaction-canceled watchers included).
    registered: BTreeSet<i64>,
    next_auto: i64,
    progress: usize,
}

struct Run {
    rng: StdRng,
    model: Model,
    plans: Vec<StreamPlan>,
    sides: [Side; 2],
    tally: BTreeMap<String, usize>,
    next_explicit_id: i64,
}

impl Run {
    fn chance(&mut self, percent: u32) -> bool {
        self.rng.gen_range(0..100) < percent
    }

    fn count(&mut self, what: &str) {
        *self.tally.entry(what.to_string()).or_default() += 1;
    }

    fn key(&mut self) -> Vec<u8> {
        KEYS[self.rng.gen_range(0..KEYS.len())].to_vec()
    }

    fn value(&mut self) -> Vec<u8> {
        if self.chance(80) {
            VALUES[self.rng.gen_range(0..VALUES.len())].to_vec()
        } else {
            (0..self.rng.gen_range(1..40)).map(|_| self.rng.gen()).collect()
        }
    }

    /// A watched or deleted interval: a key, a prefix, from a key ("\0"), a
    /// key to another key (possibly below it: an empty range), everything;
    /// for a watch also the empty key (which etcd reads as "\0").
    fn interval(&mut self, for_watch: bool) -> (Vec<u8>, Vec<u8>, &'static str) {
        let key = self.key();
        match self.rng.gen_range(0..100) {
            0..=39 => (key, Vec::new(), "key"),
            40..=64 => {
                let end = prefix_end(&key);
                (key, end, "prefix")
            }
            65..=74 => (key, vec![0], "from key (\\0)"),
            75..=91 => {
                let end = self.key();
                (key, end, "key to key")
            }
            92..=95 => (vec![0], vec![0], "every key"),
            _ if for_watch => (Vec::new(), Vec::new(), "empty key"),
            _ => (key, Vec::new(), "key"),
        }
    }

    async fn put_or_delete(&mut self, op: &str) {
        let request = if op == "put" {
            Request::RequestPut(PutRequest {
                key: self.key(),
                value: self.value(),
                prev_kv: self.chance(30),
                ..Default::default()
            })
        } else {
            let (key, range_end, _) = self.interval(false);
            Request::RequestDeleteRange(DeleteRangeRequest {
                key,
                range_end,
                prev_kv: self.chance(30),
            })
        };
        self.write(request).await;
    }

    /// One txn branch: 1-4 ops writing distinct keys (a delete never covers
    /// a put key of the same branch, which etcd would refuse), or reading.
    fn branch(&mut self) -> Vec<RequestOp> {
        let mut ops = Vec::new();
        let mut puts: Vec<Vec<u8>> = Vec::new();
        let mut deletes: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for _ in 0..self.rng.gen_range(1..=4) {
            let request = if self.chance(65) {
                let key = self.key();
                if puts.contains(&key) || deletes.iter().any(|(k, e)| in_range(&key, k, e)) {
                    continue;
                }
                puts.push(key.clone());
                Request::RequestPut(PutRequest {
                    key,
                    value: self.value(),
                    ..Default::default()
                })
            } else if self.chance(80) {
                let (key, range_end, _) = self.interval(false);
                if puts.iter().any(|p| in_range(p, &key, &range_end)) {
                    continue;
                }
                deletes.push((key.clone(), range_end.clone()));
                Request::RequestDeleteRange(DeleteRangeRequest {
                    key,
                    range_end,
                    prev_kv: self.chance(30),
                })
            } else {
                Request::RequestRange(RangeRequest {
                    key: self.key(),
                    ..Default::default()
                })
            };
            ops.push(RequestOp { request: Some(request) });
        }
        ops
    }

    async fn txn(&mut self) {
        let compare = Compare {
            result: self.rng.gen_range(0..4),
            target: CompareTarget::Version as i32,
            key: self.key(),
            range_end: Vec::new(),
            target_union: Some(TargetUnion::Version(self.rng.gen_range(0..3))),
        };
        let success = self.branch();
        let failure = self.branch();
        self.write(Request::RequestTxn(TxnRequest {
            compare: vec![compare],
            success,
            failure,
        }))
        .await;
    }

    /// Sends a write to both sides; the answers must match. Applies it to
    /// the model, whose revision must then be the one etcd answered.
    async fn write(&mut self, request: Request) {
        let [a, b] = &mut self.sides;
        let (ra, rb) = tokio::join!(send_write(&mut a.kv, &request), send_write(&mut b.kv, &request));
        assert_eq!(
            ra, rb,
            "write answers differ ({} vs {}) for {request:?}",
            self.sides[0].name, self.sides[1].name
        );
        let (header, succeeded) = ra.unwrap_or_else(|e| panic!("write {request:?} failed: {e}"));
        let writes = writes_of(&request, succeeded);
        let before = self.model.history.len();
        let changed = self.model.apply(&writes).is_some();
        assert_eq!(
            header.revision, self.model.rev,
            "the model's revision disagrees with etcd's after {request:?}"
        );
        let what = match &request {
            Request::RequestPut(_) => "put".to_string(),
            Request::RequestDeleteRange(_) => "delete".to_string(),
            _ if writes.len() >= 3 => "txn with 3+ write ops".to_string(),
            _ => format!("txn with {} write ops", writes.len()),
        };
        let events = self.model.history.len() - before;
        if changed {
            self.count(&format!("write: {what} ({} events)", events.min(4)));
        } else {
            self.count(&format!("write: {what} (no change)"));
        }
    }

    async fn compact(&mut self) {
        self.quiesce("before a compaction").await;
        // Stay below the start of every historical watcher that may still be
        // catching up (it received nothing yet). As these accumulate in a
        // long run, half the time they are canceled first instead.
        let mut silent = Vec::new();
        for (s, plan) in self.plans.iter().enumerate() {
            for (k, w) in plan.watchers.iter().enumerate() {
                if w.refused.is_none()
                    && w.frozen.is_none()
                    && w.model.historical()
                    && matches!(w.expected(&self.model), Outcome::Events(ref e) if e.is_empty())
                {
                    silent.push((s, k, w.model.start()));
                }
            }
        }
        let mut cap = self.model.rev;
        if self.chance(50) {
            for &(s, k, _) in &silent {
                self.cancel_watcher(s, k).await;
            }
        } else if let Some(start) = silent.iter().map(|&(_, _, start)| start).min() {
            cap = cap.min(start - 1);
        }
        let (revision, kind) = match self.rng.gen_range(0..10) {
            0 => (self.model.rev + 1, "future"),
            1 if self.model.compacted > 0 => (self.model.compacted, "already compacted"),
            _ if cap > self.model.compacted => (self.rng.gen_range(self.model.compacted + 1..=cap), "ok"),
            _ => (self.model.rev + 1, "future"),
        };
        let req = CompactionRequest {
            revision,
            physical: true,
        };
        let [a, b] = &mut self.sides;
        let (ra, rb) = tokio::join!(a.kv.compact(req), b.kv.compact(req));
        let (ra, rb) = (compact_outcome(ra), compact_outcome(rb));
        assert_eq!(ra, rb, "compaction answers differ for {req:?}");
        assert_eq!(ra.is_ok(), kind == "ok", "compaction {revision} ({kind}): {ra:?}");
        if ra.is_ok() {
            self.model.compact(revision);
        }
        self.count(&format!("compact: {kind}"));
    }

    fn open_stream(&mut self) {
        for side in &mut self.sides {
            side.open_stream();
        }
        self.plans.push(StreamPlan::default());
        self.count("stream opened");
    }

    fn start_revision(&mut self) -> (i64, &'static str) {
        let rev = self.model.rev;
        let compacted = self.model.compacted;
        match self.rng.gen_range(0..100) {
            0..=39 => (0, "now (0)"),
            40..=69 => (self.rng.gen_range(compacted.max(1)..=rev), "history"),
            70..=77 if compacted > 1 => (self.rng.gen_range(1..compacted), "compacted"),
            78..=83 if compacted > 0 => (compacted, "the compaction revision"),
            84..=93 => (rev + self.rng.gen_range(1..=3), "future"),
            _ => (1, "1"),
        }
    }

    async fn create(&mut self) {
        let s = self.rng.gen_range(0..self.plans.len());
        let (key, range_end, range_kind) = self.interval(true);
        let (start_revision, start_kind) = self.start_revision();
        let mut req = create_request(&key, &range_end, start_revision);
        req.prev_kv = self.chance(40);
        req.progress_notify = self.chance(10);
        req.fragment = self.chance(10);
        req.filters = match self.rng.gen_range(0..100) {
            0..=69 => vec![],
            70..=79 => vec![FilterType::Noput as i32],
            80..=89 => vec![FilterType::Nodelete as i32],
            90..=92 => vec![FilterType::Noput as i32, FilterType::Nodelete as i32],
            _ => vec![2], // unknown: ignored by etcd
        };
        let plan = &self.plans[s];
        req.watch_id = match self.rng.gen_range(0..100) {
            0..=84 => 0,
            85..=94 => {
                self.next_explicit_id += 1;
                self.next_explicit_id
            }
            _ => match plan
                .registered
                .iter()
                .nth(self.rng.gen_range(0..plan.registered.len().max(1)))
            {
                Some(&id) => id,
                None => 0,
            },
        };

        let model = self.model.watcher(&req);
        let plan = &mut self.plans[s];
        let (id, refused) = if model.spec.is_empty_range() {
            (INVALID_WATCH_ID, Some("mvcc: watcher range is empty"))
        } else if req.watch_id == 0 {
            while plan.registered.contains(&plan.next_auto) {
                plan.next_auto += 1;
            }
            plan.next_auto += 1;
            (plan.next_auto - 1, None)
        } else if plan.registered.contains(&req.watch_id) {
            (
                INVALID_WATCH_ID,
                Some("mvcc: duplicate watch ID provided on the WatchStream"),
            )
        } else {
            (req.watch_id, None)
        };
        if refused.is_none() {
            plan.registered.insert(id);
        }
        let k = plan.watchers.len();
        plan.watchers.push(Planned {
            req: req.clone(),
            model,
            refused,
            id,
            cancels: 0,
            frozen: None,
        });
        for side in &self.sides {
            side.streams[s].create(req.clone());
        }
        self.wait_stream(s, "the created response", |log, _| {
            log.watchers.get(k).is_some_and(|w| w.created.is_some())
        })
        .await;
        // The model's id rules must match what the reference answered.
        let created = attribute(&self.sides[0].streams[s].responses()).watchers[k]
            .created
            .clone()
            .expect("created");
        assert_eq!(
            (created.watch_id, created.canceled, created.cancel_reason.as_str()),
            (id, refused.is_some(), refused.unwrap_or("")),
            "stream {s} create #{k} {req:?}: the test's watch id rules disagree with {}",
            self.sides[0].name
        );
        let outcome = match self.plans[s].watchers[k].expected(&self.model) {
            Outcome::Refused(reason) => format!("refused: {reason}"),
            Outcome::Compacted(_) => "compacted".to_string(),
            Outcome::Events(_) => "created".to_string(),
        };
        self.count(&format!("watch: {outcome}"));
        if refused.is_none() {
            self.count(&format!("watch range: {range_kind}"));
            self.count(&format!("watch start: {start_kind}"));
            let filters = match req.filters.as_slice() {
                [] => "none",
                [0] => "NOPUT",
                [1] => "NODELETE",
                [0, 1] => "NOPUT+NODELETE",
                _ => "unknown value",
            };
            self.count(&format!("watch filters: {filters}"));
            if req.prev_kv {
                self.count("watch option: prev_kv");
            }
            if req.fragment {
                self.count("watch option: fragment");
            }
            if req.watch_id != 0 {
                self.count("watch option: explicit watch_id");
            }
        }
    }

    async fn cancel(&mut self) {
        let s = self.rng.gen_range(0..self.plans.len());
        let plan = &self.plans[s];
        let pick = if plan.watchers.is_empty() || self.rng.gen_range(0..100) < 10 {
            None
        } else {
            Some(self.rng.gen_range(0..plan.watchers.len()))
        };
        let id = pick.map_or(999_999, |k| plan.watchers[k].id);
        let answered = plan.registered.contains(&id);
        let Some(k) = pick.filter(|_| answered) else {
            // Not in use (never was, refused, or already canceled): etcd
            // sends nothing back.
            for side in &self.sides {
                side.streams[s].cancel(id);
            }
            self.count("cancel: id not in use (no answer)");
            return;
        };
        self.cancel_watcher(s, k).await;
    }

    /// Cancels watcher `k` of stream `s`, which is in use, and waits for
    /// the answer on both sides.
    async fn cancel_watcher(&mut self, s: usize, k: usize) {
        // Everything it should get first: events still queued for a
        // canceled watcher are dropped, at a moment that depends on timing.
        let expected = self.plans[s].watchers[k].expected(&self.model);
        let cancels = self.plans[s].watchers[k].cancels;
        self.wait_stream(s, "everything before a cancel", |log, _| {
            satisfied(log.watchers.get(k), &expected, cancels)
        })
        .await;
        let plan = &mut self.plans[s];
        let id = plan.watchers[k].id;
        plan.registered.remove(&id);
        plan.watchers[k].frozen = Some(expected.clone());
        plan.watchers[k].cancels += 1;
        for side in &self.sides {
            side.streams[s].cancel(id);
        }
        self.wait_stream(s, "the cancel response", |log, _| {
            log.watchers.get(k).is_some_and(|w| w.explicit_cancels() > cancels)
        })
        .await;
        let kind = if matches!(expected, Outcome::Compacted(_)) {
            "cancel: a compaction-canceled watcher"
        } else {
            "cancel: a watcher"
        };
        self.count(kind);
    }

    async fn progress(&mut self) {
        let s = self.rng.gen_range(0..self.plans.len());
        self.plans[s].progress += 1;
        let n = self.plans[s].progress;
        for side in &self.sides {
            side.streams[s].request_progress();
        }
        self.wait_stream(s, "the progress response", |log, _| log.progress.len() >= n)
            .await;
        self.count("progress request");
    }

    /// Waits on both sides until `done` holds for stream `s`.
    async fn wait_stream(&self, s: usize, what: &str, done: impl Fn(&StreamLog, &StreamPlan) -> bool) {
        for side in &self.sides {
            let plan = &self.plans[s];
            if let Err(e) = side.streams[s]
                .wait_until(WAIT, what, |responses| done(&attribute(responses), plan))
                .await
            {
                panic!(
                    "{} stream {s}: {e}\n{} stderr tail:\n{}",
                    side.name,
                    side.name,
                    side.member.stderr_tail(3000)
                );
            }
        }
    }

    /// Waits until every watcher on both sides received what it should; on
    /// timeout names the watchers that did not, with what they miss.
    async fn quiesce(&self, why: &str) {
        let model = &self.model;
        let served = |log: &StreamLog, plan: &StreamPlan| {
            plan.watchers
                .iter()
                .enumerate()
                .all(|(k, w)| satisfied(log.watchers.get(k), &w.expected(model), w.cancels))
        };
        for (s, plan) in self.plans.iter().enumerate() {
            for side in &self.sides {
                let what = format!("every watcher served ({why})");
                let Err(e) = side.streams[s]
                    .wait_until(WAIT, &what, |responses| served(&attribute(responses), plan))
                    .await
                else {
                    continue;
                };
                let log = attribute(&side.streams[s].responses());
                let mut missing = Vec::new();
                for (k, w) in plan.watchers.iter().enumerate() {
                    let expected = w.expected(model);
                    let got = log.watchers.get(k);
                    if !satisfied(got, &expected, w.cancels) {
                        let expected = match &expected {
                            Outcome::Events(events) => {
                                format!("{} events, the last: {:?}", events.len(), events.last().map(event_text))
                            }
                            other => format!("{other:?}"),
                        };
                        missing.push(format!(
                            "  watcher #{k} (id {}) {:?}\n    expected {expected} and {} cancel responses\n    got {}",
                            w.id,
                            w.req,
                            w.cancels,
                            got.map_or("nothing".into(), log_text)
                        ));
                    }
                }
                panic!(
                    "{} stream {s}: {e}\nwatchers not served:\n{}\n{} stderr tail:\n{}",
                    side.name,
                    missing.join("\n"),
                    side.name,
                    side.member.stderr_tail(3000)
                );
            }
        }
    }
}

/// The writes a request makes, given which txn branch ran.
fn writes_of(request: &Request, succeeded: bool) -> Vec<Write> {
    match request {
        Request::RequestPut(p) => vec![Write::Put {
            key: p.key.clone(),
            value: p.value.clone(),
        }],
        Request::RequestDeleteRange(d) => vec![Write::Delete {
            key: d.key.clone(),
            range_end: d.range_end.clone(),
        }],
        Request::RequestTxn(t) => {
            let branch = if succeeded { &t.success } else { &t.failure };
            branch
                .iter()
                .flat_map(|op| match &op.request {
                    Some(r @ (Request::RequestPut(_) | Request::RequestDeleteRange(_))) => writes_of(r, true),
                    _ => vec![],
                })
                .collect()
        }
        Request::RequestRange(_) => vec![],
    }
}

/// A write's normalised answer: header (ids and term cleared) and, for a
/// txn, `succeeded` (the whole response is compared through its Debug text).
async fn send_write(kv: &mut KvClient<Channel>, request: &Request) -> Result<(ResponseHeader, bool), String> {
    let clear = |h: Option<ResponseHeader>| {
        let mut h = h.unwrap_or_default();
        h.cluster_id = 0;
        h.member_id = 0;
        h.raft_term = 0;
        h
    };
    let status = |e: tonic::Status| format!("{:?}: {}", e.code(), e.message());
    match request.clone() {
        Request::RequestPut(r) => kv
            .put(r)
            .await
            .map(|r| (clear(r.into_inner().header), true))
            .map_err(status),
        Request::RequestDeleteRange(r) => kv
            .delete_range(r)
            .await
            .map(|r| (clear(r.into_inner().header), true))
            .map_err(status),
        Request::RequestTxn(r) => kv
            .txn(r)
            .await
            .map(|r| {
                let r = r.into_inner();
                (clear(r.header), r.succeeded)
            })
            .map_err(status),
        Request::RequestRange(r) => kv
            .range(r)
            .await
            .map(|r| (clear(r.into_inner().header), true))
            .map_err(status),
    }
}

fn compact_outcome(
    r: Result<tonic::Response<timon_proto::etcdserverpb::CompactionResponse>, tonic::Status>,
) -> Result<i64, String> {
    r.map(|r| r.into_inner().header.map_or(0, |h| h.revision))
        .map_err(|e| format!("{:?}: {}", e.code(), e.message()))
}

/// One event, readable.
fn event_text(e: &Event) -> String {
    let kv = e.kv.clone().unwrap_or_default();
    let kind = if e.r#type == EventType::Delete as i32 {
        "DELETE"
    } else {
        "PUT"
    };
    let prev = e.prev_kv.as_ref().map_or(String::new(), |p| {
        format!(
            " prev=({} c{} m{} v{})",
            show(&p.value),
            p.create_revision,
            p.mod_revision,
            p.version
        )
    });
    format!(
        "@{} {kind} {:?}={:?} (c{} v{}){prev}",
        kv.mod_revision,
        show(&kv.key),
        show(&kv.value),
        kv.create_revision,
        kv.version
    )
}

fn log_text(log: &WatcherLog) -> String {
    let events: Vec<String> = log.events.iter().map(event_text).collect();
    format!(
        "created: {:?}\n      control: {:?}\n      events ({}):\n        {}",
        log.created,
        log.control,
        events.len(),
        events.join("\n        ")
    )
}

/// The batching checks, on one side: a revision is never split across two
/// responses (no revision here is large enough to fragment), events are in
/// revision order, and a response's header revision is not below its events.
fn batching_problems(side: &str, s: usize, log: &StreamLog) -> Vec<String> {
    let mut problems = Vec::new();
    for (k, w) in log.watchers.iter().enumerate() {
        for pair in w.event_responses.windows(2) {
            if splits_revision(&pair[0], &pair[1]) {
                problems.push(format!(
                    "{side} stream {s} watcher #{k}: revision {} split across two responses (fragment flags {} {})",
                    pair[1].events.first().map_or(0, mod_rev),
                    pair[0].fragment,
                    pair[1].fragment
                ));
            }
        }
        if w.events.windows(2).any(|p| mod_rev(&p[0]) > mod_rev(&p[1])) {
            problems.push(format!("{side} stream {s} watcher #{k}: events out of revision order"));
        }
        for r in &w.event_responses {
            let last = r.events.last().map_or(0, mod_rev);
            let header = r.header.as_ref().map_or(0, |h| h.revision);
            if header < last {
                problems.push(format!(
                    "{side} stream {s} watcher #{k}: header revision {header} below event revision {last}"
                ));
            }
        }
    }
    problems
}

fn env_u64(name: &str) -> Option<u64> {
    let raw = std::env::var(name).ok()?;
    Some(raw.parse().unwrap_or_else(|_| panic!("{name}={raw} is not a number")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn random_watches_match_etcd() {
    if support::skip_without_etcd("random_watches_match_etcd") {
        return;
    }
    let seed = env_u64("DIFF_SEED").unwrap_or_else(rand::random);
    let ops = env_u64("WATCH_OPS").unwrap_or(500) as usize;
    let target_name = support::target_name();
    println!("watch differential: DIFF_SEED={seed} WATCH_OPS={ops} target={target_name}");
    let started = Instant::now();
    let mut run = Run {
        rng: StdRng::seed_from_u64(seed),
        model: Model::default(),
        plans: Vec::new(),
        sides: [
            Side::start("etcd", support::start_etcd()).await,
            Side::start(target_name, support::start_target()).await,
        ],
        tally: BTreeMap::new(),
        next_explicit_id: 1000,
    };
    run.open_stream();
    for _ in 0..ops {
        match run.rng.gen_range(0..100) {
            0..=29 => run.put_or_delete("put").await,
            30..=39 => run.put_or_delete("delete").await,
            40..=54 => run.txn().await,
            55..=58 => run.compact().await,
            59..=80 => run.create().await,
            81..=87 => run.cancel().await,
            88..=92 => run.progress().await,
            93..=94 if run.plans.len() < MAX_STREAMS => run.open_stream(),
            _ => run.put_or_delete("put").await,
        }
    }
    // A final write, then everything up to it everywhere.
    let final_put = Request::RequestPut(PutRequest {
        key: b"foo".to_vec(),
        value: b"final".to_vec(),
        ..Default::default()
    });
    run.write(final_put).await;
    run.quiesce("at the end").await;

    let mut differences = Vec::new();
    let mut problems = Vec::new();
    let mut delivered = 0;
    for (s, plan) in run.plans.iter().enumerate() {
        let logs: Vec<StreamLog> = run
            .sides
            .iter()
            .map(|side| attribute(&side.streams[s].responses()))
            .collect();
        for (side, log) in run.sides.iter().zip(&logs) {
            problems.extend(batching_problems(side.name, s, log));
        }
        delivered += logs[0].watchers.iter().map(|w| w.events.len()).sum::<usize>();
        for (k, w) in plan.watchers.iter().enumerate() {
            let (a, b) = (logs[0].watchers.get(k), logs[1].watchers.get(k));
            if a != b {
                differences.push(format!(
                    "stream {s} watcher #{k} (id {}) {:?}\n    etcd:\n      {}\n    {target_name}:\n      {}",
                    w.id,
                    w.req,
                    a.map_or("nothing".into(), log_text),
                    b.map_or("nothing".into(), log_text)
                ));
            }
        }
        if logs[0].progress != logs[1].progress {
            differences.push(format!(
                "stream {s} progress responses\n    etcd: {:?}\n    {target_name}: {:?}",
                logs[0].progress, logs[1].progress
            ));
        }
        if logs[0].strays != logs[1].strays {
            differences.push(format!(
                "stream {s} responses for no watcher\n    etcd: {:?}\n    {target_name}: {:?}",
                logs[0].strays, logs[1].strays
            ));
        }
    }
    for (what, n) in &run.tally {
        println!("watch differential: {n:5} {what}");
    }
    println!(
        "watch differential: {ops} ops, {} streams, {} watchers, {delivered} events delivered per side, final revision {}, compacted at {}, {:.1?}",
        run.plans.len(),
        run.plans.iter().map(|p| p.watchers.len()).sum::<usize>(),
        run.model.rev,
        run.model.compacted,
        started.elapsed()
    );
    assert!(
        problems.is_empty(),
        "batching/order problems (DIFF_SEED={seed}):\n{}",
        problems.join("\n")
    );
    assert!(
        differences.is_empty(),
        "{} watch differences between etcd and {target_name} (DIFF_SEED={seed}):\n{}\n{target_name} stderr tail:\n{}",
        differences.len(),
        differences.join("\n"),
        run.sides[1].member.stderr_tail(3000)
    );
}
