//! The Watch service: one bidirectional stream per client stream, many
//! watchers per stream, with etcd 3.4's answers (`v3rpc/watch.go`):
//!
//! - create: empty key = `\0`; `range_end` `\0` = every key from `key`;
//!   `start_revision` 0 = the next revision; watch ID 0 = the stream's next
//!   free ID. Answered `created` with the current revision, or `created` +
//!   `canceled` with watch ID -1 and etcd's reason (empty range, duplicate
//!   ID). The created answer always precedes the watcher's events.
//! - cancel: `canceled` for a watcher of this stream; nothing otherwise.
//! - progress request: the current revision with watch ID -1, at once.
//! - `progress_notify`: every `--experimental-watch-progress-notify-interval`
//!   (10 min) a synced watcher that got no events meanwhile gets an empty
//!   response with the current revision.
//! - `prev_kv`: read at `mod_revision - 1` when sending, as etcd does.
//! - `fragment`: a response over `--max-request-bytes` is split.
//! - `hasleader` metadata: the stream fails with `etcdserver: no leader`
//!   once the member has no leader.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Stream, StreamExt};
use prost::Message;
use timon_proto::etcdserverpb::watch_create_request::FilterType;
use timon_proto::etcdserverpb::watch_request::RequestUnion;
use timon_proto::etcdserverpb::{RangeRequest, ResponseHeader, WatchCreateRequest, WatchRequest, WatchResponse};
use timon_proto::mvccpb::event::EventType;
use timon_proto::mvccpb::Event;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::caller::Credentials;
use super::watch_wire::WatchOut;
use super::Ctx;
use crate::watch::{queue, Delivery, Events, Filter, Outbound, WatchHub, WatchSpec, WatcherKey};

/// Deliveries a stream may have queued before its watchers fall back to
/// catching up from storage.
const STREAM_QUEUE: usize = 256;

/// And at most this many bytes of events (plus one delivery).
const STREAM_QUEUE_BYTES: usize = 16 << 20;

/// etcd's ID for "no watcher" (clientv3.InvalidWatchID).
const INVALID_WATCH_ID: i64 = -1;

const ERR_EMPTY_RANGE: &str = "mvcc: watcher range is empty";
const ERR_DUPLICATE_ID: &str = "mvcc: duplicate watch ID provided on the WatchStream";

pub struct WatchService {
    ctx: Arc<Ctx>,
    next_stream: AtomicU64,
    progress_interval: Duration,
}

impl WatchService {
    pub fn new(ctx: Arc<Ctx>, progress_interval: Duration) -> Self {
        Self {
            ctx,
            next_stream: AtomicU64::new(1),
            progress_interval,
        }
    }
}

/// Per-watcher options the sending side needs.
#[derive(Debug, Clone, Copy, Default)]
struct Opts {
    prev_kv: bool,
    fragment: bool,
    progress_notify: bool,
    /// Events were sent since the last progress tick.
    had_events: bool,
}

/// One stream's state, shared by its receiving and sending halves.
struct StreamState {
    id: u64,
    ctx: Arc<Ctx>,
    hub: Arc<WatchHub>,
    opts: Mutex<HashMap<i64, Opts>>,
    next_watch_id: Mutex<i64>,
    /// The stream's credentials; each create is checked with them.
    creds: Credentials,
}

impl StreamState {
    /// etcd's `isWatchPermitted` and the cancel reason of a refused create.
    /// As in etcd, a from-key watch (range end `\0`) is checked as a watch
    /// of its first key only.
    async fn refusal(&self, req: &WatchCreateRequest) -> Option<String> {
        let key: &[u8] = if req.key.is_empty() { &[0] } else { &req.key };
        let end: &[u8] = if req.range_end == [0] { &[] } else { &req.range_end };
        let checked = match self.ctx.who(&self.creds).await {
            Err(status) => Err(status.message().to_string()),
            Ok(who) => self.ctx.check_range(who.as_ref(), key, end).map_err(|e| e.to_string()),
        };
        let reason = checked.err()?;
        // etcd sends the gRPC error's Go string (`rpctypes.ErrGRPC*.Error()`).
        let (code, text) = match reason.as_str() {
            "etcdserver: invalid auth token" => ("Unauthenticated", reason.as_str()),
            "etcdserver: revision of auth store is old" | "etcdserver: user name is empty" => {
                ("InvalidArgument", reason.as_str())
            }
            _ => ("PermissionDenied", "etcdserver: permission denied"),
        };
        Some(format!("rpc error: code = {code} desc = {text}"))
    }

    /// The answer to a create request that is refused.
    fn refused(&self, reason: String) -> WatchResponse {
        WatchResponse {
            header: self.header(self.current_rev()),
            watch_id: INVALID_WATCH_ID,
            created: true,
            canceled: true,
            cancel_reason: reason,
            ..Default::default()
        }
    }

    fn header(&self, revision: i64) -> Option<ResponseHeader> {
        self.ctx.header(revision)
    }

    fn current_rev(&self) -> i64 {
        self.ctx.raft.store().current_revision()
    }

    fn opts(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Opts>> {
        self.opts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Handles a create request: the answer to send, and the watcher to add
    /// after sending it.
    fn create(&self, mut req: WatchCreateRequest) -> (WatchResponse, Option<(WatcherKey, WatchSpec)>) {
        if req.key.is_empty() {
            req.key = vec![0];
        }
        let current = self.current_rev();
        let refuse = |reason: &str| WatchResponse {
            header: self.header(current),
            watch_id: INVALID_WATCH_ID,
            created: true,
            canceled: true,
            cancel_reason: reason.to_string(),
            ..Default::default()
        };
        let from_key = req.range_end == [0];
        if !req.range_end.is_empty() && !from_key && req.key >= req.range_end {
            return (refuse(ERR_EMPTY_RANGE), None);
        }
        let id = {
            let mut opts = self.opts();
            let id = if req.watch_id == 0 {
                let mut next = self.next_watch_id.lock().unwrap_or_else(|p| p.into_inner());
                while opts.contains_key(&*next) {
                    *next += 1;
                }
                let id = *next;
                *next += 1;
                id
            } else if opts.contains_key(&req.watch_id) {
                return (refuse(ERR_DUPLICATE_ID), None);
            } else {
                req.watch_id
            };
            opts.insert(
                id,
                Opts {
                    prev_kv: req.prev_kv,
                    fragment: req.fragment,
                    progress_notify: req.progress_notify,
                    had_events: false,
                },
            );
            id
        };
        let filters = req
            .filters
            .iter()
            .filter_map(|f| match FilterType::try_from(*f) {
                Ok(FilterType::Noput) => Some(Filter::NoPut),
                Ok(FilterType::Nodelete) => Some(Filter::NoDelete),
                Err(_) => None,
            })
            .collect();
        let start_rev = if req.start_revision == 0 {
            current + 1
        } else {
            req.start_revision
        };
        let spec = WatchSpec {
            key: req.key,
            range_end: req.range_end,
            start_rev,
            filters,
        };
        let created = WatchResponse {
            header: self.header(current),
            watch_id: id,
            created: true,
            ..Default::default()
        };
        let key = WatcherKey {
            stream: self.id,
            watch_id: id,
        };
        (created, Some((key, spec)))
    }

    fn cancel(&self, watch_id: i64) -> Option<WatchResponse> {
        self.opts().remove(&watch_id)?;
        self.hub.cancel(WatcherKey {
            stream: self.id,
            watch_id,
        });
        Some(WatchResponse {
            header: self.header(self.current_rev()),
            watch_id,
            canceled: true,
            ..Default::default()
        })
    }

    /// The responses a delivery turns into (several when fragmented).
    /// Shared events go out shared unless this watcher changes them
    /// (prev_kv) or may split them (fragment).
    fn respond(&self, d: Delivery) -> Vec<WatchOut> {
        let opts = {
            let mut all = self.opts();
            let Some(o) = all.get_mut(&d.watch_id) else {
                // Canceled meanwhile: etcd drops what is still queued.
                return vec![];
            };
            if !d.events.is_empty() {
                o.had_events = true;
            }
            // A watcher canceled by compaction keeps its ID in use until the
            // client cancels it, as in etcd.
            *o
        };
        let head = WatchResponse {
            header: self.header(d.revision),
            watch_id: d.watch_id,
            compact_revision: d.compact_revision,
            canceled: d.compact_revision != 0,
            ..Default::default()
        };
        let mut events = match d.events {
            Events::Shared(events) if !opts.prev_kv && !opts.fragment => {
                return vec![WatchOut::Shared { head, events }];
            }
            events => events.into_vec(),
        };
        if opts.prev_kv {
            for ev in &mut events {
                self.add_prev_kv(ev);
            }
        }
        let resp = WatchResponse { events, ..head };
        if opts.fragment {
            let parts = fragments(resp, self.ctx.limits.max_request_bytes as usize);
            parts.into_iter().map(WatchOut::Whole).collect()
        } else {
            vec![WatchOut::Whole(resp)]
        }
    }

    /// etcd reads the previous key-value at `mod_revision - 1`, except for
    /// a key's creation; a compacted or missing one is left out.
    fn add_prev_kv(&self, ev: &mut Event) {
        let Some(kv) = &ev.kv else { return };
        let is_create = ev.r#type == EventType::Put as i32 && kv.create_revision == kv.mod_revision;
        if is_create {
            return;
        }
        let req = RangeRequest {
            key: kv.key.clone(),
            revision: kv.mod_revision - 1,
            ..Default::default()
        };
        let store = self.ctx.raft.store();
        let found = crate::apply::range::range(&store.read(), &req);
        if let Ok(r) = found {
            ev.prev_kv = r.kvs.into_iter().next();
        }
    }

    /// Progress notifications due at a tick, for synced watchers that got
    /// no events since the previous tick.
    fn progress_tick(&self) -> Vec<WatchResponse> {
        let current = self.current_rev();
        let mut out = Vec::new();
        for (id, o) in self.opts().iter_mut() {
            if o.progress_notify && !o.had_events {
                let key = WatcherKey {
                    stream: self.id,
                    watch_id: *id,
                };
                if self.hub.is_synced(key) {
                    out.push(WatchResponse {
                        header: self.header(current),
                        watch_id: *id,
                        ..Default::default()
                    });
                }
            }
            o.had_events = false;
        }
        out
    }
}

/// etcd's sendFragments: a response over the limit with more than one
/// event is split, every part but the last marked `fragment`.
fn fragments(resp: WatchResponse, max_bytes: usize) -> Vec<WatchResponse> {
    if resp.encoded_len() < max_bytes || resp.events.len() < 2 {
        return vec![resp];
    }
    let mut out = Vec::new();
    let mut template = resp.clone();
    template.events.clear();
    template.fragment = true;
    let mut cur = template.clone();
    for ev in resp.events {
        cur.events.push(ev);
        if cur.events.len() > 1 && cur.encoded_len() >= max_bytes {
            let ev = cur.events.pop().unwrap_or_default();
            out.push(std::mem::replace(&mut cur, template.clone()));
            cur.events.push(ev);
        }
    }
    cur.fragment = false;
    out.push(cur);
    out
}

/// A watch stream's responses, as [`super::watch_route::WatchRoute`] sends them.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchOut, Status>> + Send>>;

impl WatchService {
    /// One client stream: its requests in, its watchers' events out.
    pub async fn watch(&self, request: Request<Streaming<WatchRequest>>) -> Result<Response<WatchStream>, Status> {
        self.ctx.require_leader(&request)?;
        self.ctx.refuse_on_learner()?;
        let require_leader = request
            .metadata()
            .get("hasleader")
            .is_some_and(|v| v.as_bytes() == b"true");
        let creds = Credentials::of(&request);
        let mut incoming = request.into_inner();
        let state = Arc::new(StreamState {
            creds,
            id: self.next_stream.fetch_add(1, Ordering::Relaxed),
            ctx: self.ctx.clone(),
            hub: self.ctx.raft.watch_hub().clone(),
            opts: Mutex::default(),
            next_watch_id: Mutex::new(0),
        });
        let (tx, mut rx) = queue(STREAM_QUEUE, STREAM_QUEUE_BYTES);
        let (fail_tx, fail_rx) = mpsc::channel::<Status>(1);

        // Receiving half: requests in order; answers go through the same
        // queue as events, so a created answer precedes its events.
        let recv = {
            let (state, tx) = (state.clone(), tx.clone());
            tokio::spawn(async move {
                while let Some(Ok(req)) = incoming.next().await {
                    match req.request_union {
                        Some(RequestUnion::CreateRequest(c)) => {
                            let (answer, watcher) = match state.refusal(&c).await {
                                Some(reason) => (state.refused(reason), None),
                                None => state.create(c),
                            };
                            if tx.send(Outbound::Control(answer)).await.is_err() {
                                break;
                            }
                            if let Some((key, spec)) = watcher {
                                state.hub.watch(key, spec, tx.clone());
                            }
                        }
                        Some(RequestUnion::CancelRequest(c)) => {
                            if let Some(answer) = state.cancel(c.watch_id) {
                                if tx.send(Outbound::Control(answer)).await.is_err() {
                                    break;
                                }
                            }
                        }
                        Some(RequestUnion::ProgressRequest(_)) => {
                            let answer = WatchResponse {
                                header: state.header(state.current_rev()),
                                watch_id: INVALID_WATCH_ID,
                                ..Default::default()
                            };
                            if tx.send(Outbound::Control(answer)).await.is_err() {
                                break;
                            }
                        }
                        None => {}
                    }
                }
            })
        };

        // Progress notifications and the leader check.
        let monitor = {
            let (state, tx, interval) = (state.clone(), tx.clone(), self.progress_interval);
            let election = Duration::from_millis(500);
            tokio::spawn(async move {
                let mut progress = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
                let mut leader_check = tokio::time::interval(election);
                let mut leaderless = 0;
                loop {
                    tokio::select! {
                        _ = progress.tick() => {
                            for r in state.progress_tick() {
                                if tx.send(Outbound::Control(r)).await.is_err() {
                                    return;
                                }
                            }
                        }
                        _ = leader_check.tick(), if require_leader => {
                            leaderless = if state.ctx.raft.status().leader.is_none() { leaderless + 1 } else { 0 };
                            if leaderless >= 2 {
                                let _ = fail_tx.send(super::error::propose_status(&crate::raft::ProposeError::NoLeader)).await;
                                return;
                            }
                        }
                        _ = tx.closed() => return,
                    }
                }
            })
        };
        drop(tx);

        let guard = StreamGuard {
            state: state.clone(),
            tasks: vec![recv, monitor],
        };
        let queued = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
        let out = queued.flat_map(move |o| {
            let _keep = &guard;
            let responses = match o {
                Outbound::Control(r) => vec![WatchOut::Whole(r)],
                Outbound::Delivery(d) => state.respond(d),
            };
            futures::stream::iter(responses.into_iter().map(Ok))
        });
        // A lost leader ends the stream with etcd's error (tonic ends a
        // stream at its first error).
        let failed = ReceiverStream::new(fail_rx).map(Err);
        Ok(Response::new(Box::pin(futures::stream::select(out, failed))))
    }
}

/// Removes the stream's watchers and stops its tasks when the client goes.
struct StreamGuard {
    state: Arc<StreamState>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.state.hub.close_stream(self.state.id);
        for t in &self.tasks {
            t.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use timon_proto::mvccpb::KeyValue;

    fn ev(size: usize) -> Event {
        Event {
            r#type: EventType::Put as i32,
            kv: Some(KeyValue {
                key: b"k".to_vec(),
                value: vec![b'v'; size],
                ..Default::default()
            }),
            prev_kv: None,
        }
    }

    #[test]
    fn large_responses_are_fragmented_like_etcd() {
        let resp = WatchResponse {
            watch_id: 7,
            events: (0..10).map(|_| ev(100)).collect(),
            ..Default::default()
        };
        assert_eq!(fragments(resp.clone(), 1 << 20).len(), 1);
        let parts = fragments(resp.clone(), 350);
        assert!(parts.len() > 1);
        assert!(parts[..parts.len() - 1].iter().all(|p| p.fragment));
        assert!(!parts.last().unwrap().fragment);
        let events: Vec<Event> = parts.iter().flat_map(|p| p.events.clone()).collect();
        assert_eq!(events, resp.events);
        // A single event is never split.
        let one = WatchResponse {
            events: vec![ev(1000)],
            ..Default::default()
        };
        assert_eq!(fragments(one, 10).len(), 1);
    }
}
