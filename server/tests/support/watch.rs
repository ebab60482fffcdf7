//! Watch helpers shared by the watch tests: a [`WatchStream`] (one gRPC Watch
//! stream whose responses a background task collects, so a test can send
//! requests and wait for conditions on what arrived, with a timeout), and a
//! [`Model`] of etcd's keys and revisions that predicts what a watcher must
//! receive.
//!
//! The model follows etcd 3.4's rules (server/etcdserver/api/v3rpc/watch.go,
//! mvcc/watchable_store.go, mvcc/key_index.go):
//! - a watcher gets every event with `mod_revision >= start`, where start is
//!   the request's `start_revision`, or the current revision + 1 for 0;
//! - `prev_kv` is looked up at `mod_revision - 1` when the response is sent,
//!   and is absent for a create (a PUT with create == mod revision) and when
//!   `mod_revision - 1` is below the compaction revision (the lookup fails);
//! - a watcher whose start is below the compaction revision is canceled;
//! - a (physical) compaction at C keeps the newest version <= C of every
//!   key but drops a tombstone at exactly C, so a watcher started at C after
//!   that compaction sees the PUTs of revision C but not its DELETEs.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use timon_proto::etcdserverpb::watch_client::WatchClient;
use timon_proto::etcdserverpb::watch_create_request::FilterType;
use timon_proto::etcdserverpb::watch_request::RequestUnion;
use timon_proto::etcdserverpb::{
    WatchCancelRequest, WatchCreateRequest, WatchProgressRequest, WatchRequest, WatchResponse,
};
use timon_proto::mvccpb::event::EventType;
use timon_proto::mvccpb::{Event, KeyValue};
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::transport::Channel;

/// etcd's clientv3.InvalidWatchID: the watch_id of a failed create and of a
/// progress response (which belongs to no watcher).
pub const INVALID_WATCH_ID: i64 = -1;

/// What one stream received so far, in arrival order.
#[derive(Debug, Default)]
pub struct Received {
    pub responses: Vec<WatchResponse>,
    /// Set when the response stream ended: `Ok` on a clean end, else the
    /// status the server (or transport) ended it with.
    pub ended: Option<Result<(), tonic::Status>>,
}

struct Shared {
    received: Mutex<Received>,
    changed: Notify,
}

/// One bidirectional Watch stream. Requests go through an unbounded tokio
/// mpsc channel (so sending never blocks); a background task reads every
/// response into a list. Dropping the stream aborts the task, which closes
/// the stream.
pub struct WatchStream {
    tx: Option<mpsc::UnboundedSender<WatchRequest>>,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

/// A channel for long-lived streams: unlike `support::connect`, no request
/// timeout.
pub async fn watch_channel(endpoint: &str) -> Channel {
    Channel::from_shared(endpoint.to_string())
        .expect("valid endpoint uri")
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .unwrap_or_else(|e| panic!("connect to {endpoint}: {e}"))
}

impl WatchStream {
    /// Opens a stream on a new connection to `endpoint`.
    pub async fn open(endpoint: &str) -> WatchStream {
        WatchStream::open_on(watch_channel(endpoint).await)
    }

    /// Opens a stream on `channel` (several streams may share one channel,
    /// as clientv3's do). The call itself does not wait for the server: a
    /// gRPC server may send the response headers only with the first
    /// response.
    pub fn open_on(channel: Channel) -> WatchStream {
        WatchStream::open_with(channel, false)
    }

    /// Opens a stream on a new connection to `endpoint` carrying etcd's
    /// `hasleader` metadata (clientv3's WithRequireLeader).
    pub async fn open_requiring_leader(endpoint: &str) -> WatchStream {
        WatchStream::open_with(watch_channel(endpoint).await, true)
    }

    fn open_with(channel: Channel, require_leader: bool) -> WatchStream {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            received: Mutex::new(Received::default()),
            changed: Notify::new(),
        });
        let task_shared = shared.clone();
        let task = tokio::spawn(async move {
            let mut client = WatchClient::new(channel)
                .max_decoding_message_size(super::MAX_MESSAGE_BYTES)
                .max_encoding_message_size(super::MAX_MESSAGE_BYTES);
            let mut request = tonic::Request::new(UnboundedReceiverStream::new(rx));
            if require_leader {
                request
                    .metadata_mut()
                    .insert("hasleader", "true".parse().expect("ascii"));
            }
            let end = match client.watch(request).await {
                Err(status) => Err(status),
                Ok(response) => {
                    let mut stream = response.into_inner();
                    loop {
                        match stream.message().await {
                            Ok(Some(resp)) => {
                                task_shared.received.lock().unwrap().responses.push(resp);
                                task_shared.changed.notify_waiters();
                            }
                            Ok(None) => break Ok(()),
                            Err(status) => break Err(status),
                        }
                    }
                }
            };
            task_shared.received.lock().unwrap().ended = Some(end);
            task_shared.changed.notify_waiters();
        });
        WatchStream {
            tx: Some(tx),
            shared,
            task,
        }
    }

    pub fn send(&self, request: RequestUnion) {
        let tx = self.tx.as_ref().expect("send after close_send");
        // The receiver lives as long as the stream task; if the task ended,
        // `ended` says why and the waiting caller reports it.
        let _ = tx.send(WatchRequest {
            request_union: Some(request),
        });
    }

    pub fn create(&self, request: WatchCreateRequest) {
        self.send(RequestUnion::CreateRequest(request));
    }

    pub fn cancel(&self, watch_id: i64) {
        self.send(RequestUnion::CancelRequest(WatchCancelRequest { watch_id }));
    }

    pub fn request_progress(&self) {
        self.send(RequestUnion::ProgressRequest(WatchProgressRequest {}));
    }

    /// Half-closes the stream: the client sends no more requests.
    pub fn close_send(&mut self) {
        self.tx = None;
    }

    /// A copy of every response received so far.
    pub fn responses(&self) -> Vec<WatchResponse> {
        self.shared.received.lock().unwrap().responses.clone()
    }

    /// How the response stream ended, if it did.
    pub fn ended(&self) -> Option<Result<(), tonic::Status>> {
        self.shared.received.lock().unwrap().ended.clone()
    }

    /// Waits until `done` holds for the responses received so far, up to
    /// `timeout`. On timeout answers an error naming `what`, with the
    /// responses and how the stream ended.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        what: &str,
        mut done: impl FnMut(&[WatchResponse]) -> bool,
    ) -> Result<Vec<WatchResponse>, String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Registered before the check, so a response that arrives in
            // between still wakes us.
            let changed = self.shared.changed.notified();
            {
                let received = self.shared.received.lock().unwrap();
                if done(&received.responses) {
                    return Ok(received.responses.clone());
                }
                if let Some(end) = &received.ended {
                    return Err(format!(
                        "{what}: the stream ended ({end:?}) after {} responses; the last ones: {:?}",
                        received.responses.len(),
                        last(&received.responses)
                    ));
                }
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                let received = self.shared.received.lock().unwrap();
                return Err(format!(
                    "{what}: not within {timeout:?}; {} responses so far, the last ones: {:?}",
                    received.responses.len(),
                    last(&received.responses)
                ));
            }
        }
    }

    /// Waits until at least `n` responses arrived; panics on timeout.
    pub async fn wait_for_count(&self, n: usize, timeout: Duration) -> Vec<WatchResponse> {
        self.wait_until(timeout, &format!("{n} watch responses"), |r| r.len() >= n)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

/// The last few responses, for failure messages.
fn last(responses: &[WatchResponse]) -> &[WatchResponse] {
    &responses[responses.len().saturating_sub(8)..]
}

impl Drop for WatchStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A create request for `[key, range_end)` from `start_revision`.
pub fn create_request(key: &[u8], range_end: &[u8], start_revision: i64) -> WatchCreateRequest {
    WatchCreateRequest {
        key: key.to_vec(),
        range_end: range_end.to_vec(),
        start_revision,
        ..Default::default()
    }
}

/// A response that carries a progress notification: no watcher, no events,
/// neither created nor canceled.
pub fn is_progress(r: &WatchResponse) -> bool {
    r.watch_id == INVALID_WATCH_ID && !r.created && !r.canceled && r.events.is_empty() && r.compact_revision == 0
}

/// Every event of watcher `watch_id` in `responses`, flattened in order.
pub fn events_of(responses: &[WatchResponse], watch_id: i64) -> Vec<Event> {
    responses
        .iter()
        .filter(|r| r.watch_id == watch_id && !r.created)
        .flat_map(|r| r.events.iter().cloned())
        .collect()
}

/// The end of the range holding every key that starts with `key` (clientv3
/// GetPrefixRangeEnd): "\0" if `key` is all 0xff bytes (or empty).
pub fn prefix_end(key: &[u8]) -> Vec<u8> {
    let mut end = key.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// Whether `key` is in `[start, end)` as etcd reads a range ("" = only
/// `start`, "\0" = every key from `start`).
pub fn in_range(key: &[u8], start: &[u8], end: &[u8]) -> bool {
    match end {
        [] => key == start,
        [0] => key >= start,
        end => key >= start && key < end,
    }
}

/// A write as the model applies it (a Put, a DeleteRange, or one op of a
/// txn's chosen branch).
#[derive(Debug, Clone)]
pub enum Write {
    Put { key: Vec<u8>, value: Vec<u8> },
    Delete { key: Vec<u8>, range_end: Vec<u8> },
}

/// One event of the history, with the key's previous value (if it existed)
/// whatever the watcher asked for; [`Model::expected`] strips it as etcd
/// would.
#[derive(Debug, Clone)]
pub struct HistoryEvent {
    pub event: Event,
    pub revision: i64,
}

/// What a create request must lead to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Created; then exactly these events (until canceled).
    Events(Vec<Event>),
    /// Created, then canceled with this compact_revision.
    Compacted(i64),
    /// Refused: created and canceled at once with watch_id -1 and this
    /// cancel_reason.
    Refused(&'static str),
}

/// Keys, revisions and every event since revision 1.
#[derive(Debug, Clone)]
pub struct Model {
    /// The store's current revision (1 when empty).
    pub rev: i64,
    /// The last successful compaction revision, 0 before any.
    pub compacted: i64,
    live: BTreeMap<Vec<u8>, KeyValue>,
    pub history: Vec<HistoryEvent>,
}

impl Default for Model {
    fn default() -> Self {
        Model {
            rev: 1,
            compacted: 0,
            live: BTreeMap::new(),
            history: Vec::new(),
        }
    }
}

/// A watch request as the server reads it (watch.go recvLoop): an empty key
/// is "\0"; range_end "" = the key alone, "\0" = every key from key.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    pub key: Vec<u8>,
    pub range_end: Vec<u8>,
    pub start_revision: i64,
    pub no_put: bool,
    pub no_delete: bool,
    pub prev_kv: bool,
}

impl Spec {
    pub fn of(req: &WatchCreateRequest) -> Spec {
        Spec {
            key: if req.key.is_empty() { vec![0] } else { req.key.clone() },
            range_end: req.range_end.clone(),
            start_revision: req.start_revision,
            no_put: req.filters.contains(&(FilterType::Noput as i32)),
            no_delete: req.filters.contains(&(FilterType::Nodelete as i32)),
            prev_kv: req.prev_kv,
        }
    }

    /// etcd refuses a range whose end is not above its key.
    pub fn is_empty_range(&self) -> bool {
        !self.range_end.is_empty() && self.range_end != [0] && self.key >= self.range_end
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        in_range(key, &self.key, &self.range_end)
    }
}

/// The model's picture of one watcher at its creation.
#[derive(Debug, Clone)]
pub struct Watcher {
    pub spec: Spec,
    /// The store revision when the server created it (the created
    /// response's header revision).
    pub created_at: i64,
    /// The compaction revision at that moment.
    pub compacted_at_creation: i64,
}

impl Watcher {
    /// The first revision it gets events from.
    pub fn start(&self) -> i64 {
        if self.spec.start_revision == 0 {
            self.created_at + 1
        } else {
            self.spec.start_revision
        }
    }

    /// Whether etcd created it "unsynced" (catching up on history in the
    /// background, about every 100 ms) rather than synced with the store.
    pub fn historical(&self) -> bool {
        self.spec.start_revision != 0 && self.spec.start_revision <= self.created_at
    }
}

impl Model {
    /// Applies one revision's writes (a Put, a DeleteRange or a txn branch)
    /// and answers the revision they got, or `None` if nothing changed (etcd
    /// does not bump the revision then).
    pub fn apply(&mut self, writes: &[Write]) -> Option<i64> {
        let rev = self.rev + 1;
        let mut changed = false;
        for w in writes {
            match w {
                Write::Put { key, value } => {
                    let prev = self.live.get(key).cloned();
                    let kv = KeyValue {
                        key: key.clone(),
                        create_revision: prev.as_ref().map_or(rev, |p| p.create_revision),
                        mod_revision: rev,
                        version: prev.as_ref().map_or(1, |p| p.version + 1),
                        value: value.clone(),
                        lease: 0,
                    };
                    self.live.insert(key.clone(), kv.clone());
                    self.history.push(HistoryEvent {
                        event: Event {
                            r#type: EventType::Put as i32,
                            kv: Some(kv),
                            prev_kv: prev,
                        },
                        revision: rev,
                    });
                    changed = true;
                }
                Write::Delete { key, range_end } => {
                    let doomed: Vec<Vec<u8>> = self
                        .live
                        .keys()
                        .filter(|k| in_range(k, key, range_end))
                        .cloned()
                        .collect();
                    for k in doomed {
                        let prev = self.live.remove(&k);
                        self.history.push(HistoryEvent {
                            event: Event {
                                r#type: EventType::Delete as i32,
                                kv: Some(KeyValue {
                                    key: k,
                                    mod_revision: rev,
                                    ..Default::default()
                                }),
                                prev_kv: prev,
                            },
                            revision: rev,
                        });
                        changed = true;
                    }
                }
            }
        }
        if changed {
            self.rev = rev;
            Some(rev)
        } else {
            None
        }
    }

    /// A compaction at `revision`, as etcd accepted it.
    pub fn compact(&mut self, revision: i64) {
        self.compacted = revision;
    }

    /// The model's view of a watcher created now.
    pub fn watcher(&self, req: &WatchCreateRequest) -> Watcher {
        Watcher {
            spec: Spec::of(req),
            created_at: self.rev,
            compacted_at_creation: self.compacted,
        }
    }

    /// What `w` must have received once the store is at [`Model::rev`],
    /// provided no compaction happened between its creation and the moment
    /// it caught up (the tests wait for that before compacting).
    pub fn expected(&self, w: &Watcher) -> Outcome {
        if w.spec.is_empty_range() {
            return Outcome::Refused("mvcc: watcher range is empty");
        }
        let start = w.start();
        // etcd's compactMainRev is -1 before the first compaction.
        let compact_main = if w.compacted_at_creation == 0 {
            -1
        } else {
            w.compacted_at_creation
        };
        if w.historical() && start < compact_main {
            return Outcome::Compacted(w.compacted_at_creation);
        }
        let events = self
            .history
            .iter()
            .filter(|h| h.revision >= start && w.spec.contains(key_of(&h.event)))
            .filter(|h| {
                let is_delete = h.event.r#type == EventType::Delete as i32;
                // The tombstone at exactly the compaction revision is gone
                // from the history a catching-up watcher reads.
                let compacted_away = is_delete && w.historical() && h.revision == w.compacted_at_creation;
                let filtered = if is_delete { w.spec.no_delete } else { w.spec.no_put };
                !compacted_away && !filtered
            })
            .map(|h| {
                let mut event = h.event.clone();
                let is_create = event.r#type == EventType::Put as i32
                    && event
                        .kv
                        .as_ref()
                        .is_some_and(|kv| kv.create_revision == kv.mod_revision);
                // The lookup at mod_revision - 1 fails below the compaction
                // revision in force when the event is sent: for history read
                // at creation that is the compaction at creation; later
                // events are above every compaction the tests make.
                let lookup_fails = h.revision - 1 < w.compacted_at_creation;
                if !w.spec.prev_kv || is_create || lookup_fails {
                    event.prev_kv = None;
                }
                event
            })
            .collect();
        Outcome::Events(events)
    }
}

pub fn key_of(event: &Event) -> &[u8] {
    event.kv.as_ref().map_or(&[][..], |kv| kv.key.as_slice())
}

pub fn mod_rev(event: &Event) -> i64 {
    event.kv.as_ref().map_or(0, |kv| kv.mod_revision)
}

/// Whether a response splits a revision with the one before it: the last
/// event of `prev` and the first of `next` share a mod_revision.
pub fn splits_revision(prev: &WatchResponse, next: &WatchResponse) -> bool {
    match (prev.events.last(), next.events.first()) {
        (Some(a), Some(b)) => mod_rev(a) == mod_rev(b),
        _ => false,
    }
}

/// Byte strings made readable in failure messages.
pub fn show(bytes: &[u8]) -> String {
    bytes
        .iter()
        .flat_map(|b| std::ascii::escape_default(*b))
        .map(char::from)
        .collect()
}

/// What one watcher received, attributed from its stream's responses.
#[derive(Debug, Default, Clone)]
pub struct WatcherLog {
    pub created: Option<WatchResponse>,
    pub events: Vec<Event>,
    /// Responses without events after the created one (cancels; a
    /// compaction cancel has compact_revision set).
    pub control: Vec<WatchResponse>,
    /// Event responses, for the batching checks (not compared).
    pub event_responses: Vec<WatchResponse>,
}

/// Equal when what a watcher received is: not how the events were batched
/// into responses.
impl PartialEq for WatcherLog {
    fn eq(&self, other: &Self) -> bool {
        (&self.created, &self.events, &self.control) == (&other.created, &other.events, &other.control)
    }
}

impl WatcherLog {
    pub fn explicit_cancels(&self) -> usize {
        self.control
            .iter()
            .filter(|r| r.canceled && r.compact_revision == 0)
            .count()
    }
}

#[derive(Debug, Default, PartialEq)]
pub struct StreamLog {
    pub watchers: Vec<WatcherLog>,
    pub progress: Vec<WatchResponse>,
    /// Responses for no known watcher.
    pub strays: Vec<WatchResponse>,
}

/// Clears what legitimately differs between two clusters.
pub fn normalised(mut r: WatchResponse) -> WatchResponse {
    if let Some(h) = r.header.as_mut() {
        h.cluster_id = 0;
        h.member_id = 0;
        h.raft_term = 0;
    }
    r
}

/// Splits a stream's responses by watcher: the k-th created response answers
/// the k-th create request, and later responses carry its watch_id (ids are
/// never reused within a stream in these tests).
pub fn attribute(responses: &[WatchResponse]) -> StreamLog {
    let mut log = StreamLog::default();
    let mut owner: BTreeMap<i64, usize> = BTreeMap::new();
    for r in responses {
        let r = normalised(r.clone());
        if r.created {
            if !r.canceled {
                owner.insert(r.watch_id, log.watchers.len());
            }
            log.watchers.push(WatcherLog {
                created: Some(r),
                ..Default::default()
            });
        } else if is_progress(&r) {
            log.progress.push(r);
        } else if let Some(&k) = owner.get(&r.watch_id) {
            let w = &mut log.watchers[k];
            if r.events.is_empty() {
                w.control.push(r);
            } else {
                w.events.extend(r.events.iter().cloned());
                w.event_responses.push(r);
            }
        } else {
            log.strays.push(r);
        }
    }
    log
}

/// Whether a watcher's log shows everything `expected` (and `cancels`
/// answered cancel requests).
pub fn satisfied(log: Option<&WatcherLog>, expected: &Outcome, cancels: usize) -> bool {
    let Some(log) = log else { return false };
    let delivered = match expected {
        Outcome::Refused(_) => log.created.is_some(),
        Outcome::Compacted(_) => log.control.iter().any(|r| r.compact_revision != 0),
        Outcome::Events(events) => log.events.len() >= events.len(),
    };
    log.created.is_some() && delivered && log.explicit_cancels() >= cancels
}
