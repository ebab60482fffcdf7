//! The in-process client that the Lock and Election services are built on,
//! as etcd builds them on `clientv3/concurrency` over an in-process client:
//! KV requests go through [`KvService`] (same validation, raft proposal,
//! read index and headers as any client's), leases through
//! [`LeaseService`], and waits on keys through the member's watch hub.
//!
//! It owns etcd's `concurrency` building blocks: sessions on a lease
//! ([`Client::session_lease`]), `waitDelete` and `waitDeletes`
//! ([`Client::wait_deletes`]), an internal watcher ([`Watcher`]), and the
//! txn pieces both recipes use (`create_revision_is`, `first_created_request`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use timon_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use timon_proto::etcdserverpb::kv_server::Kv;
use timon_proto::etcdserverpb::lease_server::Lease;
use timon_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use timon_proto::etcdserverpb::request_op::Request as Op;
use timon_proto::etcdserverpb::response_op::Response as OpResponse;
use timon_proto::etcdserverpb::{
    Compare, DeleteRangeRequest, DeleteRangeResponse, LeaseGrantRequest, RangeRequest, RangeResponse, RequestOp,
    ResponseHeader, TxnRequest, TxnResponse,
};
use timon_proto::mvccpb::event::EventType;
use timon_proto::mvccpb::Event;
use tonic::{Request, Status};

use super::caller::Credentials;
use super::kv::KvService;
use super::lease::LeaseService;
use super::Ctx;
use crate::watch::{queue, Filter, Outbound, QueueReceiver, WatchHub, WatchSpec, WatcherKey};

/// clientv3/concurrency's default session TTL, used when a Lock or Campaign
/// request names no lease (etcd then grants one and never revokes it).
pub const DEFAULT_SESSION_TTL: i64 = 60;

/// Stream IDs of internal watchers live far above the Watch service's,
/// which count up from 1.
static NEXT_STREAM: AtomicU64 = AtomicU64::new(1 << 62);

/// Deliveries an internal watcher may have queued (it falls back to
/// catching up from storage beyond that, like any watcher).
const QUEUE_ITEMS: usize = 64;
const QUEUE_BYTES: usize = 4 << 20;

/// An error of the in-process client as etcd's Lock and Election services
/// answer it: clientv3 turns the status into a plain error
/// (`rpctypes.EtcdError`), so gRPC sends it with code Unknown and the same
/// text (`Unknown: etcdserver: requested lease not found`).
fn as_client_error(s: Status) -> Status {
    Status::unknown(s.message())
}

/// An in-process etcd client over this member's services.
#[derive(Clone)]
pub struct Client {
    ctx: Arc<Ctx>,
    kv: Arc<KvService>,
    lease: Arc<LeaseService>,
    /// The credentials of the caller this client acts for: etcd's v3lock
    /// and v3election run their clientv3 calls in the caller's context,
    /// so the caller's permissions apply.
    creds: Credentials,
}

impl Client {
    pub fn new(ctx: Arc<Ctx>) -> Self {
        Self {
            kv: Arc::new(KvService::new(ctx.clone())),
            lease: Arc::new(LeaseService::new(ctx.clone())),
            ctx,
            creds: Credentials::default(),
        }
    }

    /// This client acting for the caller of `request`.
    pub fn for_caller<T>(&self, request: &Request<T>) -> Self {
        Self {
            creds: Credentials::of(request),
            ..self.clone()
        }
    }

    fn request<T>(&self, message: T) -> Request<T> {
        let mut r = Request::new(message);
        self.creds.attach(&mut r);
        r
    }

    pub async fn txn(&self, req: TxnRequest) -> Result<TxnResponse, Status> {
        Ok(self
            .kv
            .txn(self.request(req))
            .await
            .map_err(as_client_error)?
            .into_inner())
    }

    pub async fn range(&self, req: RangeRequest) -> Result<RangeResponse, Status> {
        Ok(self
            .kv
            .range(self.request(req))
            .await
            .map_err(as_client_error)?
            .into_inner())
    }

    pub async fn delete(&self, key: Vec<u8>) -> Result<DeleteRangeResponse, Status> {
        let req = DeleteRangeRequest {
            key,
            ..Default::default()
        };
        Ok(self
            .kv
            .delete_range(self.request(req))
            .await
            .map_err(as_client_error)?
            .into_inner())
    }

    /// The lease of a session: `lease` itself, or, for 0 (clientv3's
    /// NoLease), a new lease of [`DEFAULT_SESSION_TTL`] seconds, as
    /// `concurrency.NewSession` grants.
    pub async fn session_lease(&self, lease: i64) -> Result<i64, Status> {
        if lease != 0 {
            return Ok(lease);
        }
        let req = LeaseGrantRequest {
            ttl: DEFAULT_SESSION_TTL,
            id: 0,
        };
        Ok(self
            .lease
            .lease_grant(self.request(req))
            .await
            .map_err(as_client_error)?
            .into_inner()
            .id)
    }

    /// The key under `prefix` with the oldest create revision (etcd's
    /// `Get(prefix, WithFirstCreate())`), with the read's header.
    pub async fn first_created(&self, prefix: &[u8]) -> Result<RangeResponse, Status> {
        self.range(first_created_request(prefix)).await
    }

    /// etcd's `waitDeletes`: until no key under `prefix` has a create
    /// revision at or below `max_create_rev`, waits for the deletion of the
    /// newest such key; answers the header of the final, empty read.
    pub async fn wait_deletes(&self, prefix: &[u8], max_create_rev: i64) -> Result<ResponseHeader, Status> {
        loop {
            let mut req = RangeRequest {
                max_create_revision: max_create_rev,
                ..first_created_request(prefix)
            };
            req.sort_order = SortOrder::Descend as i32;
            let resp = self.range(req).await?;
            let rev = resp.header.as_ref().map_or(0, |h| h.revision);
            let Some(last) = resp.kvs.into_iter().next() else {
                return Ok(resp.header.unwrap_or_default());
            };
            self.wait_delete(last.key, rev).await?;
        }
    }

    /// etcd's `waitDelete`: watches `key` from `rev` until a delete event.
    async fn wait_delete(&self, key: Vec<u8>, rev: i64) -> Result<(), Status> {
        let mut w = Watcher::new(
            self.ctx.raft.watch_hub().clone(),
            key,
            Vec::new(),
            rev,
            vec![Filter::NoPut],
        );
        loop {
            let (_, events) = w.next().await?;
            if events.iter().any(|e| e.r#type == EventType::Delete as i32) {
                return Ok(());
            }
        }
    }

    pub fn hub(&self) -> &Arc<WatchHub> {
        self.ctx.raft.watch_hub()
    }
}

/// `Compare(CreateRevision(key), "=", rev)`.
pub fn create_revision_is(key: &[u8], rev: i64) -> Compare {
    Compare {
        result: CompareResult::Equal as i32,
        target: CompareTarget::Create as i32,
        key: key.to_vec(),
        target_union: Some(TargetUnion::CreateRevision(rev)),
        ..Default::default()
    }
}

/// A txn operation.
pub fn op(request: Op) -> RequestOp {
    RequestOp { request: Some(request) }
}

/// The ranges of a txn's answer, in order (empty ones for non-ranges).
pub fn ranges(responses: Vec<timon_proto::etcdserverpb::ResponseOp>) -> Vec<Vec<timon_proto::mvccpb::KeyValue>> {
    responses
        .into_iter()
        .map(|r| match r.response {
            Some(OpResponse::ResponseRange(r)) => r.kvs,
            _ => Vec::new(),
        })
        .collect()
}

/// `Get(prefix, WithFirstCreate())`: a prefix range, limit 1, oldest create revision first.
pub fn first_created_request(prefix: &[u8]) -> RangeRequest {
    RangeRequest {
        key: prefix.to_vec(),
        range_end: prefix_end(prefix),
        limit: 1,
        sort_order: SortOrder::Ascend as i32,
        sort_target: SortTarget::Create as i32,
        ..Default::default()
    }
}

/// clientv3's `GetPrefixRangeEnd`: the first key after every key starting
/// with `prefix` (`\0` = to the end of the keyspace).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// A watcher on this member's hub, removed when dropped.
pub struct Watcher {
    hub: Arc<WatchHub>,
    key: WatcherKey,
    rx: QueueReceiver,
}

impl Watcher {
    /// Watches `[key, range_end)` (etcd's raw range end) from revision `start_rev`.
    pub fn new(hub: Arc<WatchHub>, key: Vec<u8>, range_end: Vec<u8>, start_rev: i64, filters: Vec<Filter>) -> Self {
        let wkey = WatcherKey {
            stream: NEXT_STREAM.fetch_add(1, Ordering::Relaxed),
            watch_id: 0,
        };
        let (tx, rx) = queue(QUEUE_ITEMS, QUEUE_BYTES);
        hub.watch(
            wkey,
            WatchSpec {
                key,
                range_end,
                start_rev,
                filters,
            },
            tx,
        );
        Self { hub, key: wkey, rx }
    }

    /// The next revision's header revision and events. A compacted start
    /// revision is etcd's compaction error, as clientv3 reports it.
    pub async fn next(&mut self) -> Result<(i64, Vec<Event>), Status> {
        loop {
            match self.rx.recv().await {
                Some(Outbound::Delivery(d)) if d.compact_revision != 0 => {
                    return Err(Status::unknown(
                        "etcdserver: mvcc: required revision has been compacted",
                    ));
                }
                Some(Outbound::Delivery(d)) => return Ok((d.revision, d.events.into_vec())),
                Some(Outbound::Control(_)) => {}
                None => return Err(Status::unavailable("lost watcher waiting for delete")),
            }
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.hub.cancel(self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_end_is_clientv3s() {
        assert_eq!(prefix_end(b"lock/"), b"lock0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
        assert_eq!(prefix_end(b""), vec![0]);
    }
}
