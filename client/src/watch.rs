//! Watches: streams of the changes to a key or range, which survive the loss
//! of the member serving them.
//!
//! ```no_run
//! # async fn demo(client: timon_client::Client) -> timon_client::Result<()> {
//! let mut watcher = client.watch("config/").prefix().prev_kv().await?;
//! while let Some(response) = watcher.recv().await {
//!     for event in response?.events {
//!         println!("{:?}", event.kv.map(|kv| kv.key));
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! # Streams and watchers
//!
//! A [`WatchStream`] is one gRPC Watch stream (a bidirectional RPC) driven
//! by a background task; several [`Watcher`]s share it, as clientv3's do.
//! [`Client::watch`] uses one stream shared by every watcher of the client
//! (created on demand, closed when its last watcher ends); a stream of one's
//! own comes from [`Client::watch_stream`]. Creations are sent one at a
//! time, as clientv3 does: etcd's `created` response does not say which
//! request it answers, so they are matched in order.
//!
//! Awaiting the [`Watch`] builder returns once etcd has created the watch
//! (or fails with etcd's error, or with [`Error::Timeout`] after
//! [`ConnectOptions::request_timeout`](crate::ConnectOptions)). From then on
//! the watcher yields every response carrying events, with fragmented
//! responses merged back into one, and the progress notifications (responses
//! without events, see [`is_progress_notify`]). It never yields the
//! `created` response nor the `canceled` response of its own cancel.
//!
//! # Resume
//!
//! Each watcher remembers the revision it must resume from: the start
//! revision it was given, or for a watch of "now" the revision after the one
//! in etcd's `created` response; then the revision after the `mod_revision`
//! of the last event it delivered (or after the revision of a progress
//! notification addressed to it). When the stream fails with a retryable
//! error (connection refused, reset or closed, `etcdserver: no leader` and
//! the other transient errors of the `error` module, including a watch
//! cancelled with such a reason), the task fails the client over to the next
//! endpoint, waits the `retry` module's backoff (50 ms doubling to 1 s) and
//! opens a new stream, re-creating every watcher from its resume revision.
//! The consumer therefore sees each event once and in order, with no gap.
//! There is no deadline: the stream is reopened as long as it has watchers
//! and the errors are retryable.
//!
//! Progress responses sent to the whole stream (after
//! [`Watcher::request_progress`]) are delivered but do not move the resume
//! revision: etcd 3.4 answers them with its current revision even for a
//! watcher that has not caught up yet. So a watcher on a quiet range keeps
//! resuming from the revision it was created at; if that revision is
//! compacted before a failover, the resume ends the watcher with
//! [`Error::Compacted`], as clientv3's does.
//!
//! Exactly-once delivery relies on what etcd guarantees and a server must
//! keep: the `created` response's header revision is the revision the watch
//! of "now" starts after; events reach a watcher in revision order, each
//! revision's events in one response (or its fragments); and a progress
//! notification addressed to one watcher (`progress_notify`) means every
//! event up to its header revision has been sent.
//!
//! A watcher ends (its stream returns `None` after one `Err`) when:
//! - the revision it starts or resumes from has been compacted:
//!   [`Error::Compacted`], etcd's `ErrCompacted`;
//! - etcd refuses or cancels it for a reason that is not transient:
//!   `Error::Rpc` with the reason as message (code `FailedPrecondition`,
//!   or etcd's `OutOfRange` future-revision error for a cancel without
//!   reason, as clientv3 reports them);
//! - the stream fails with an error that is not retryable (e.g.
//!   `Unimplemented`): every watcher of the stream gets it.
//!
//! Responses wait in an unbounded queue until the consumer reads them (as in
//! clientv3), so a consumer that stops reading makes memory grow.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures::channel::mpsc as body;
use futures::Stream;
use timon_proto::etcdserverpb::watch_client::WatchClient;
use timon_proto::etcdserverpb::watch_create_request::FilterType;
use timon_proto::etcdserverpb::watch_request::RequestUnion;
use timon_proto::etcdserverpb::{
    WatchCancelRequest, WatchCreateRequest, WatchProgressRequest, WatchRequest, WatchResponse,
};
use tokio::sync::{mpsc, oneshot};

use crate::client::Client;
use crate::error::{Error, Result};
use crate::kv::{from_key_range, prefix_range};
use crate::retry::{self, Backoff};

/// The watch id of a refused creation, and of a progress response meant
/// for every watcher of the stream (clientv3's `InvalidWatchID`).
const INVALID_WATCH_ID: i64 = -1;

/// The largest response accepted (clientv3's default `MaxCallRecvMsgSize`).
const MAX_RESPONSE_BYTES: usize = i32::MAX as usize;

/// etcd's error for a watch cancelled without a reason (clientv3 reports it
/// as `ErrFutureRev`).
const FUTURE_REV_MESSAGE: &str = "etcdserver: mvcc: required revision is a future revision";

/// True for a progress notification: a response without events that does
/// not create, cancel or compact anything (clientv3's `IsProgressNotify`).
/// Its header revision is the store revision the watch has caught up with.
pub fn is_progress_notify(response: &WatchResponse) -> bool {
    response.events.is_empty()
        && !response.canceled
        && !response.created
        && response.compact_revision == 0
        && response.header.as_ref().is_some_and(|h| h.revision != 0)
}

/// A watch under construction; `.await` it to create the watch.
#[must_use = "a watch does nothing until awaited"]
pub struct Watch {
    client: Client,
    stream: Option<WatchStream>,
    request: WatchCreateRequest,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("request", &self.request)
            .field("own_stream", &self.stream.is_some())
            .finish()
    }
}

impl Watch {
    fn new(client: Client, stream: Option<WatchStream>, key: Vec<u8>) -> Watch {
        Watch {
            client,
            stream,
            request: WatchCreateRequest {
                key,
                ..WatchCreateRequest::default()
            },
        }
    }

    /// Watches `[key, end)`.
    pub fn range_end(mut self, end: impl Into<Vec<u8>>) -> Self {
        self.request.range_end = end.into();
        self
    }

    /// Watches every key starting with the key (every key if it is empty).
    pub fn prefix(mut self) -> Self {
        self.request.range_end = prefix_range(&mut self.request.key);
        self
    }

    /// Watches every key greater than or equal to the key.
    pub fn from_key(mut self) -> Self {
        self.request.range_end = from_key_range(&mut self.request.key);
        self
    }

    /// Starts with the events of revision `revision` (0, the default, means
    /// the changes after the current revision). A compacted revision makes
    /// the watcher yield [`Error::Compacted`].
    pub fn start_revision(mut self, revision: i64) -> Self {
        self.request.start_revision = revision;
        self
    }

    /// Adds to each event the key-value pair as it was before the event.
    pub fn prev_kv(mut self) -> Self {
        self.request.prev_kv = true;
        self
    }

    /// Leaves put events out (etcd's `NOPUT` filter).
    pub fn filter_put(mut self) -> Self {
        self.add_filter(FilterType::Noput);
        self
    }

    /// Leaves delete events out (etcd's `NODELETE` filter).
    pub fn filter_delete(mut self) -> Self {
        self.add_filter(FilterType::Nodelete);
        self
    }

    /// Asks etcd for periodic progress notifications while no event comes
    /// (every 10 minutes by default in etcd).
    pub fn progress_notify(mut self) -> Self {
        self.request.progress_notify = true;
        self
    }

    /// Lets etcd split large responses into fragments; the watcher merges
    /// them back, so this only changes what travels on the wire.
    pub fn fragment(mut self) -> Self {
        self.request.fragment = true;
        self
    }

    /// The wire request as it stands.
    pub fn request(&self) -> &WatchCreateRequest {
        &self.request
    }

    fn add_filter(&mut self, filter: FilterType) {
        let filter = filter as i32;
        if !self.request.filters.contains(&filter) {
            self.request.filters.push(filter);
        }
    }

    async fn start(self) -> Result<Watcher> {
        let stream = match self.stream {
            Some(stream) => stream,
            None => self.client.default_watch_stream(),
        };
        let id = stream.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let (events, responses) = mpsc::unbounded_channel();
        let (created, on_created) = oneshot::channel();
        // Built before sending, so that dropping this future (or failing)
        // cancels the watch through `Drop`.
        let watcher = Watcher {
            id,
            responses,
            stream: stream.clone(),
            finished: false,
        };
        stream.command(Command::Create {
            id,
            request: self.request,
            events,
            created,
        })?;
        let timeout = self.client.options().request_timeout;
        match tokio::time::timeout(timeout, on_created).await {
            Ok(Ok(Ok(()))) => Ok(watcher),
            Ok(Ok(Err(error))) => Err(error),
            Ok(Err(_)) => Err(task_gone()),
            Err(_) => Err(Error::Timeout {
                timeout,
                last: stream.last_error().map(Box::new),
            }),
        }
    }
}

await_as!(Watch => Watcher, |this| this.start());

/// One gRPC Watch stream shared by the watchers created through it. Clones
/// share the stream. The stream is opened when its first watcher is
/// created, closed when it has none, and reopened (on the next endpoint) when
/// it fails; see the module docs.
#[derive(Clone)]
pub struct WatchStream {
    client: Client,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for WatchStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchStream").field("client", &self.client).finish()
    }
}

/// What the handles of one stream share. The task ends when the last
/// handle (stream or watcher) is dropped, closing the command channel.
pub(crate) struct Shared {
    commands: mpsc::UnboundedSender<Command>,
    next_id: AtomicU64,
    last_error: Arc<Mutex<Option<Error>>>,
}

impl WatchStream {
    /// Starts the stream's task (on the current Tokio runtime).
    fn spawn(client: &Client) -> WatchStream {
        let (commands, receiver) = mpsc::unbounded_channel();
        let last_error = Arc::new(Mutex::new(None));
        let task = Task {
            client: client.clone(),
            last_error: last_error.clone(),
            entries: BTreeMap::new(),
            by_server: HashMap::new(),
            queue: VecDeque::new(),
            in_flight: None,
            cancelling: HashMap::new(),
            progress_pending: false,
            conn: Conn::Idle,
            backoff: Backoff::new(),
        };
        tokio::spawn(task.run(receiver));
        WatchStream {
            client: client.clone(),
            shared: Arc::new(Shared {
                commands,
                next_id: AtomicU64::new(1),
                last_error,
            }),
        }
    }

    /// Watches `key` on this stream; chain options, then `.await`.
    pub fn watch(&self, key: impl Into<Vec<u8>>) -> Watch {
        Watch::new(self.client.clone(), Some(self.clone()), key.into())
    }

    /// Asks etcd for a progress notification on every watcher of this
    /// stream (clientv3's `RequestProgress`): each yields a response without
    /// events whose header revision is etcd's current revision. The request
    /// is sent once the stream has created every watcher it has (so while it
    /// reconnects, after the watchers are re-created); returns once it is
    /// queued. Does nothing on a stream without watchers.
    pub async fn request_progress(&self) -> Result<()> {
        let (done, result) = oneshot::channel();
        self.command(Command::Progress { done })?;
        result.await.map_err(|_| task_gone())?
    }

    fn command(&self, command: Command) -> Result<()> {
        self.shared.commands.send(command).map_err(|_| task_gone())
    }

    fn last_error(&self) -> Option<Error> {
        lock(&self.shared.last_error).clone()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The stream's task is gone; only a panic in it can cause this.
fn task_gone() -> Error {
    Error::Transport {
        endpoint: String::new(),
        reason: "watch stream task ended".to_owned(),
    }
}

impl Client {
    /// Watches `key` on the client's shared watch stream; chain options,
    /// then `.await`. See the `watch` module docs for resume semantics.
    pub fn watch(&self, key: impl Into<Vec<u8>>) -> Watch {
        Watch::new(self.clone(), None, key.into())
    }

    /// A new watch stream of its own, for watchers that must not share the
    /// client's stream. Must be called inside a Tokio runtime.
    pub fn watch_stream(&self) -> WatchStream {
        WatchStream::spawn(self)
    }

    /// [`WatchStream::request_progress`] on the stream shared by the
    /// watchers of [`Client::watch`]; nothing to do if there are none.
    pub async fn request_progress(&self) -> Result<()> {
        let shared = self.default_watch_stream_slot().upgrade();
        match shared {
            Some(shared) => {
                WatchStream {
                    client: self.clone(),
                    shared,
                }
                .request_progress()
                .await
            }
            None => Ok(()),
        }
    }

    /// The shared stream of [`Client::watch`], started if no watcher holds
    /// it.
    fn default_watch_stream(&self) -> WatchStream {
        let mut slot = self.default_watch_stream_slot();
        if let Some(shared) = slot.upgrade() {
            return WatchStream {
                client: self.clone(),
                shared,
            };
        }
        let stream = WatchStream::spawn(self);
        *slot = Arc::downgrade(&stream.shared);
        stream
    }
}

/// A created watch: a [`Stream`] of responses (also readable with
/// [`Watcher::recv`]). Dropping it cancels the watch.
pub struct Watcher {
    id: u64,
    responses: mpsc::UnboundedReceiver<Result<WatchResponse>>,
    stream: WatchStream,
    finished: bool,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher")
            .field("id", &self.id)
            .field("finished", &self.finished)
            .finish()
    }
}

impl Watcher {
    /// The next response; `None` once the watcher has ended (cancelled, or
    /// after the error that ended it).
    pub async fn recv(&mut self) -> Option<Result<WatchResponse>> {
        if self.finished {
            return None;
        }
        self.responses.recv().await
    }

    /// Cancels the watch: the watcher yields nothing more, and etcd is asked
    /// to drop it. Returns when etcd has confirmed, at once if the watch was
    /// not registered or its stream is gone or closed (a stream left without
    /// watchers is closed, which drops the watch with it), and at the latest
    /// after [`ConnectOptions::request_timeout`](crate::ConnectOptions).
    pub async fn cancel(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        let (done, acked) = oneshot::channel();
        if self
            .stream
            .command(Command::Cancel {
                id: self.id,
                done: Some(done),
            })
            .is_ok()
        {
            let _ = tokio::time::timeout(self.stream.client.options().request_timeout, acked).await;
        }
    }

    /// Asks for a progress notification on every watcher of this watcher's
    /// stream; see [`WatchStream::request_progress`].
    pub async fn request_progress(&self) -> Result<()> {
        self.stream.request_progress().await
    }

    /// The stream this watcher runs on, to add watchers beside it.
    pub fn stream(&self) -> &WatchStream {
        &self.stream
    }
}

impl Stream for Watcher {
    type Item = Result<WatchResponse>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.finished {
            return Poll::Ready(None);
        }
        self.responses.poll_recv(cx)
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.stream.command(Command::Cancel {
                id: self.id,
                done: None,
            });
        }
    }
}

/// What handles ask of the stream's task.
enum Command {
    Create {
        id: u64,
        request: WatchCreateRequest,
        events: mpsc::UnboundedSender<Result<WatchResponse>>,
        created: oneshot::Sender<Result<()>>,
    },
    Cancel {
        id: u64,
        done: Option<oneshot::Sender<()>>,
    },
    Progress {
        done: oneshot::Sender<Result<()>>,
    },
}

/// One watcher, as the task tracks it.
struct Entry {
    /// The create request; its `start_revision` is kept at the resume
    /// revision (0 only until the first `created` response of a watch of
    /// "now").
    request: WatchCreateRequest,
    events: mpsc::UnboundedSender<Result<WatchResponse>>,
    /// Present until the first creation is confirmed.
    created: Option<oneshot::Sender<Result<()>>>,
    /// The watch id on the current stream, once created there.
    server_id: Option<i64>,
    /// The fragments of a response received so far.
    partial: Option<WatchResponse>,
}

impl Entry {
    /// Ends the watcher with `error`: the creation fails if it was not
    /// confirmed yet, otherwise the consumer reads the error.
    fn fail(self, error: Error) {
        match self.created {
            Some(created) => {
                let _ = created.send(Err(error));
            }
            None => {
                let _ = self.events.send(Err(error));
            }
        }
    }

    /// Moves the resume revision past what `response` delivers.
    fn advance(&mut self, response: &WatchResponse) {
        if let Some(last) = response.events.last() {
            if let Some(kv) = &last.kv {
                self.request.start_revision = kv.mod_revision + 1;
            }
        } else if let Some(header) = &response.header {
            if header.revision > 0 {
                self.request.start_revision = self.request.start_revision.max(header.revision + 1);
            }
        }
    }
}

type OpenCall =
    Pin<Box<dyn Future<Output = Result<tonic::Response<tonic::Streaming<WatchResponse>>, tonic::Status>> + Send>>;

/// The gRPC stream's state.
enum Conn {
    /// No stream (no watchers, or a fatal error).
    Idle,
    /// Backing off before reopening.
    Waiting(Pin<Box<tokio::time::Sleep>>),
    /// The call is sent; etcd has not answered with headers yet. Requests
    /// can already be queued.
    Opening {
        index: usize,
        requests: body::UnboundedSender<WatchRequest>,
        call: OpenCall,
    },
    Open {
        index: usize,
        requests: body::UnboundedSender<WatchRequest>,
        responses: Box<tonic::Streaming<WatchResponse>>,
    },
}

impl Conn {
    fn requests(&self) -> Option<&body::UnboundedSender<WatchRequest>> {
        match self {
            Conn::Opening { requests, .. } | Conn::Open { requests, .. } => Some(requests),
            Conn::Idle | Conn::Waiting(_) => None,
        }
    }

    fn index(&self) -> Option<usize> {
        match self {
            Conn::Opening { index, .. } | Conn::Open { index, .. } => Some(*index),
            Conn::Idle | Conn::Waiting(_) => None,
        }
    }

    /// Sends `request` on the stream; false if there is none.
    fn send(&self, request: RequestUnion) -> bool {
        self.requests().is_some_and(|requests| {
            requests
                .unbounded_send(WatchRequest {
                    request_union: Some(request),
                })
                .is_ok()
        })
    }
}

/// What woke the task up.
enum Wake {
    Command(Option<Command>),
    Opened(Result<tonic::Streaming<WatchResponse>, tonic::Status>),
    Message(Result<Option<WatchResponse>, tonic::Status>),
    Retry,
}

async fn wake(conn: &mut Conn) -> Wake {
    match conn {
        Conn::Idle => std::future::pending().await,
        Conn::Waiting(sleep) => {
            sleep.as_mut().await;
            Wake::Retry
        }
        Conn::Opening { call, .. } => Wake::Opened(call.as_mut().await.map(tonic::Response::into_inner)),
        Conn::Open { responses, .. } => Wake::Message(responses.message().await),
    }
}

/// The background task of one [`WatchStream`].
struct Task {
    client: Client,
    last_error: Arc<Mutex<Option<Error>>>,
    /// Every live watcher, by local id (creation order).
    entries: BTreeMap<u64, Entry>,
    /// Watch id on the current stream -> local id.
    by_server: HashMap<i64, u64>,
    /// Watchers waiting to be (re)created, in order.
    queue: VecDeque<u64>,
    /// The watcher whose create request awaits its `created` response; it
    /// may have been cancelled meanwhile.
    in_flight: Option<u64>,
    /// Cancel requests sent, by watch id, with whoever waits for them.
    cancelling: HashMap<i64, Vec<oneshot::Sender<()>>>,
    /// A progress request waits for the watchers' creation.
    progress_pending: bool,
    conn: Conn,
    backoff: Backoff,
}

impl Task {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        loop {
            if matches!(self.conn, Conn::Idle) && !self.entries.is_empty() {
                self.open();
            }
            let woken = tokio::select! {
                command = commands.recv() => Wake::Command(command),
                woken = wake(&mut self.conn) => woken,
            };
            match woken {
                Wake::Command(None) => return,
                Wake::Command(Some(command)) => self.command(command),
                Wake::Retry => self.conn = Conn::Idle,
                Wake::Opened(Ok(responses)) => {
                    if let Conn::Opening { index, requests, .. } = std::mem::replace(&mut self.conn, Conn::Idle) {
                        self.conn = Conn::Open {
                            index,
                            requests,
                            responses: Box::new(responses),
                        };
                    }
                }
                Wake::Opened(Err(status)) | Wake::Message(Err(status)) => {
                    let endpoint = self.endpoint();
                    self.failed(Error::from_call(status, &endpoint));
                }
                Wake::Message(Ok(Some(response))) => self.response(response),
                Wake::Message(Ok(None)) => {
                    let endpoint = self.endpoint();
                    self.failed(Error::Transport {
                        endpoint,
                        reason: "watch stream closed by the server".to_owned(),
                    });
                }
            }
            if self.entries.is_empty() {
                self.close();
                self.progress_pending = false;
            } else {
                self.send_pending_progress();
            }
        }
    }

    fn endpoint(&self) -> String {
        self.conn
            .index()
            .map(|index| self.client.endpoint_uri(index).to_owned())
            .unwrap_or_default()
    }

    /// Opens a stream on the client's current endpoint and queues the first
    /// creation on it.
    fn open(&mut self) {
        let active = self.client.active();
        let (requests, receiver) = body::unbounded();
        let mut request = retry::request(receiver, true);
        if let Some(token) = self.client.token().and_then(|t| t.parse().ok()) {
            request.metadata_mut().insert("token", token);
        }
        // A response replaying history is not fragmented unless asked and
        // can pass tonic's default 4 MiB limit; clientv3 accepts 2 GiB.
        let mut stub = WatchClient::new(active.channel).max_decoding_message_size(MAX_RESPONSE_BYTES);
        let call: OpenCall = Box::pin(async move { stub.watch(request).await });
        self.conn = Conn::Opening {
            index: active.index,
            requests,
            call,
        };
        self.send_next_create();
    }

    /// Drops the stream (no watcher is left): etcd forgets its watches with
    /// it, so pending cancels are done.
    fn close(&mut self) {
        self.conn = Conn::Idle;
        self.in_flight = None;
        self.queue.clear();
        self.by_server.clear();
        self.finish_cancels();
    }

    fn finish_cancels(&mut self) {
        for (_, waiters) in self.cancelling.drain() {
            for waiter in waiters {
                let _ = waiter.send(());
            }
        }
    }

    /// The stream failed: resume every watcher on the next endpoint if the
    /// error is retryable, otherwise end them all with it.
    fn failed(&mut self, error: Error) {
        let index = self.conn.index();
        self.close();
        for entry in self.entries.values_mut() {
            entry.server_id = None;
            entry.partial = None;
        }
        if error.is_retryable() {
            if let Some(index) = index {
                self.client.fail_over(index);
            }
            *lock(&self.last_error) = Some(error);
            self.queue = self.entries.keys().copied().collect();
            self.conn = Conn::Waiting(Box::pin(tokio::time::sleep(self.backoff.next_delay())));
        } else {
            for (_, entry) in std::mem::take(&mut self.entries) {
                entry.fail(error.clone());
            }
        }
    }

    /// Sends the next queued creation, unless one is awaiting its answer.
    fn send_next_create(&mut self) {
        if self.in_flight.is_some() || self.conn.requests().is_none() {
            return;
        }
        while let Some(id) = self.queue.pop_front() {
            if let Some(entry) = self.entries.get(&id) {
                if entry.server_id.is_none() {
                    self.conn.send(RequestUnion::CreateRequest(entry.request.clone()));
                    self.in_flight = Some(id);
                    return;
                }
            }
        }
    }

    /// Sends the pending progress request once every watcher is created on
    /// the current stream (etcd answers it for those only).
    fn send_pending_progress(&mut self) {
        if self.progress_pending
            && self.in_flight.is_none()
            && self.entries.values().all(|entry| entry.server_id.is_some())
            && self.conn.send(RequestUnion::ProgressRequest(WatchProgressRequest {}))
        {
            self.progress_pending = false;
        }
    }

    /// Asks etcd to drop watch `watch_id`, which nobody reads any more.
    fn send_cancel(&mut self, watch_id: i64, waiter: Option<oneshot::Sender<()>>) {
        let sent = self.cancelling.contains_key(&watch_id)
            || self
                .conn
                .send(RequestUnion::CancelRequest(WatchCancelRequest { watch_id }));
        match (sent, waiter) {
            (true, waiter) => self.cancelling.entry(watch_id).or_default().extend(waiter),
            (false, Some(waiter)) => {
                let _ = waiter.send(());
            }
            (false, None) => {}
        }
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Create {
                id,
                request,
                events,
                created,
            } => {
                self.entries.insert(
                    id,
                    Entry {
                        request,
                        events,
                        created: Some(created),
                        server_id: None,
                        partial: None,
                    },
                );
                self.queue.push_back(id);
                self.send_next_create();
            }
            Command::Cancel { id, done } => self.cancel(id, done),
            Command::Progress { done } => {
                // Sent by the run loop once the watchers are created.
                self.progress_pending = !self.entries.is_empty();
                let _ = done.send(Ok(()));
            }
        }
    }

    fn cancel(&mut self, id: u64, done: Option<oneshot::Sender<()>>) {
        let Some(entry) = self.entries.remove(&id) else {
            if let Some(done) = done {
                let _ = done.send(());
            }
            return;
        };
        match entry.server_id {
            Some(watch_id) => {
                self.by_server.remove(&watch_id);
                self.send_cancel(watch_id, done);
            }
            None => {
                // Not created on this stream: drop it from the queue. If its
                // creation is in flight, `created` cancels it on arrival.
                self.queue.retain(|&queued| queued != id);
                if let Some(done) = done {
                    let _ = done.send(());
                }
            }
        }
    }

    fn response(&mut self, response: WatchResponse) {
        if response.created {
            self.created(response);
        } else if response.canceled && response.compact_revision == 0 {
            self.canceled(response);
        } else if response.watch_id == INVALID_WATCH_ID {
            self.broadcast(response);
        } else {
            self.deliver(response);
        }
    }

    fn created(&mut self, response: WatchResponse) {
        let id = self.in_flight.take();
        let watch_id = response.watch_id;
        if response.canceled || watch_id == INVALID_WATCH_ID {
            let error = cancel_error(response.cancel_reason);
            if error.is_retryable() {
                self.failed(error);
                return;
            }
            if let Some(entry) = id.and_then(|id| self.entries.remove(&id)) {
                entry.fail(error);
            }
        } else {
            match id.and_then(|id| self.entries.get_mut(&id).map(|entry| (id, entry))) {
                Some((id, entry)) => {
                    entry.server_id = Some(watch_id);
                    if entry.request.start_revision == 0 {
                        // A watch of "now" starts after the revision etcd
                        // created it at.
                        let revision = response.header.as_ref().map_or(0, |h| h.revision);
                        if revision > 0 {
                            entry.request.start_revision = revision + 1;
                        }
                    }
                    if let Some(created) = entry.created.take() {
                        let _ = created.send(Ok(()));
                    }
                    self.by_server.insert(watch_id, id);
                    self.backoff.reset();
                }
                // Cancelled while its creation was in flight.
                None => self.send_cancel(watch_id, None),
            }
        }
        self.send_next_create();
    }

    fn canceled(&mut self, response: WatchResponse) {
        let watch_id = response.watch_id;
        if let Some(waiters) = self.cancelling.remove(&watch_id) {
            for waiter in waiters {
                let _ = waiter.send(());
            }
            return;
        }
        let Some(id) = self.by_server.remove(&watch_id) else {
            return;
        };
        let error = cancel_error(response.cancel_reason);
        if error.is_retryable() {
            // e.g. `etcdserver: no leader`: the member cannot serve the
            // watch; resume it (and its neighbours) elsewhere.
            self.failed(error);
        } else if let Some(entry) = self.entries.remove(&id) {
            entry.fail(error);
        }
    }

    /// A progress response for every watcher of the stream.
    fn broadcast(&mut self, response: WatchResponse) {
        if !response.events.is_empty() {
            return;
        }
        let mut gone = Vec::new();
        for (&id, entry) in &self.entries {
            if entry.server_id.is_some() && entry.events.send(Ok(response.clone())).is_err() {
                gone.push(id);
            }
        }
        for id in gone {
            self.cancel(id, None);
        }
    }

    /// Events, a progress notification or a compaction for one watcher.
    fn deliver(&mut self, mut response: WatchResponse) {
        let watch_id = response.watch_id;
        let Some(&id) = self.by_server.get(&watch_id) else {
            if response.canceled {
                // Compacted after we asked to cancel it: etcd has dropped it.
                if let Some(waiters) = self.cancelling.remove(&watch_id) {
                    for waiter in waiters {
                        let _ = waiter.send(());
                    }
                }
            } else if !self.cancelling.contains_key(&watch_id) {
                // A watch nobody reads (e.g. cancelled while responses were
                // on the way); clientv3 cancels these too.
                self.send_cancel(watch_id, None);
            }
            return;
        };
        let Some(entry) = self.entries.get_mut(&id) else {
            return;
        };
        if let Some(mut partial) = entry.partial.take() {
            partial.events.append(&mut response.events);
            partial.fragment = response.fragment;
            response = partial;
        }
        if response.fragment {
            entry.partial = Some(response);
            return;
        }
        if response.compact_revision != 0 {
            // etcd has cancelled the watch already.
            self.by_server.remove(&watch_id);
            if let Some(entry) = self.entries.remove(&id) {
                entry.fail(Error::Compacted {
                    compact_revision: response.compact_revision,
                    header: response.header,
                });
            }
            return;
        }
        entry.advance(&response);
        if entry.events.send(Ok(response)).is_err() {
            self.cancel(id, None);
        }
    }
}

/// The error for a watch etcd refused or cancelled with `reason`.
fn cancel_error(reason: String) -> Error {
    if reason.is_empty() {
        Error::Rpc {
            code: tonic::Code::OutOfRange,
            message: FUTURE_REV_MESSAGE.to_owned(),
        }
    } else {
        Error::Rpc {
            code: tonic::Code::FailedPrecondition,
            message: reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use timon_proto::etcdserverpb::ResponseHeader;
    use timon_proto::mvccpb::{Event, KeyValue};

    fn event(mod_revision: i64) -> Event {
        Event {
            kv: Some(KeyValue {
                key: b"k".to_vec(),
                mod_revision,
                ..KeyValue::default()
            }),
            ..Event::default()
        }
    }

    fn header(revision: i64) -> Option<ResponseHeader> {
        Some(ResponseHeader {
            revision,
            ..ResponseHeader::default()
        })
    }

    #[test]
    fn resume_revision_follows_events_and_own_progress() {
        let (events, _responses) = mpsc::unbounded_channel();
        let mut entry = Entry {
            request: WatchCreateRequest {
                start_revision: 5,
                ..WatchCreateRequest::default()
            },
            events,
            created: None,
            server_id: Some(0),
            partial: None,
        };
        entry.advance(&WatchResponse {
            header: header(9),
            events: vec![event(6), event(8)],
            ..WatchResponse::default()
        });
        assert_eq!(entry.request.start_revision, 9);
        entry.advance(&WatchResponse {
            header: header(12),
            ..WatchResponse::default()
        });
        assert_eq!(entry.request.start_revision, 13);
        // A progress revision never moves it back.
        entry.advance(&WatchResponse {
            header: header(3),
            ..WatchResponse::default()
        });
        assert_eq!(entry.request.start_revision, 13);
    }

    #[test]
    fn progress_notify_is_recognised_like_clientv3() {
        let progress = WatchResponse {
            header: header(4),
            ..WatchResponse::default()
        };
        assert!(is_progress_notify(&progress));
        let created = WatchResponse {
            created: true,
            ..progress.clone()
        };
        assert!(!is_progress_notify(&created));
        let with_event = WatchResponse {
            events: vec![event(4)],
            ..progress
        };
        assert!(!is_progress_notify(&with_event));
    }

    #[test]
    fn cancel_reasons_map_to_clientv3_errors() {
        let future = cancel_error(String::new());
        assert_eq!(future.code(), Some(tonic::Code::OutOfRange));
        assert_eq!(future.to_string(), FUTURE_REV_MESSAGE);
        let denied = cancel_error("etcdserver: permission denied".to_owned());
        assert!(!denied.is_retryable());
        assert_eq!(denied.to_string(), "etcdserver: permission denied");
        assert!(cancel_error("etcdserver: no leader".to_owned()).is_retryable());
    }
}
