//! The Lock service (etcd's `v3lockpb.Lock`): Lock and Unlock with the
//! semantics of etcd's `v3lock` server, which is `concurrency.Mutex` run
//! inside the server:
//!
//! 1. Key `<name>/<lease in %x>`: `Txn(if create_revision(key) == 0 then
//!    put(key, "", lease) and get-first-created(<name>/) else get(key) and
//!    get-first-created(<name>/))`. Our revision is the put's, or the
//!    existing key's create revision (the lease already waits or holds).
//! 2. If the oldest key under the prefix is ours, the lock is held now.
//! 3. Otherwise `waitDeletes`: wait until every key created before ours is
//!    deleted (unlocked, or its lease expired).
//! 4. Then, unlike etcd 3.4 (the bug Jepsen found in 3.4.3, fixed in 3.5's
//!    client), re-read our key: if our lease expired while waiting, the
//!    key is gone and the answer is `session expired`, never the lock.
//!
//! The answer's header revision is the fencing token: the put's revision
//! when uncontended, else the revision of the read that saw the lock free,
//! which is above every earlier holder's. A client that goes away while
//! waiting has its key deleted, as etcd's `Unlock` on a canceled context.

use std::sync::Arc;

use timon_proto::etcdserverpb::request_op::Request as Op;
use timon_proto::etcdserverpb::{PutRequest, RangeRequest, TxnRequest};
use timon_proto::v3lockpb::lock_server::Lock;
use timon_proto::v3lockpb::{LockRequest, LockResponse, UnlockRequest, UnlockResponse};
use tonic::{Request, Response, Status};

use super::concurrency::{create_revision_is, first_created_request, op, ranges, Client};
use super::Ctx;

/// etcd 3.5 concurrency's `ErrSessionExpired`.
pub const SESSION_EXPIRED: &str = "session expired";

pub struct LockService {
    client: Client,
}

impl LockService {
    pub fn new(ctx: Arc<Ctx>) -> Self {
        Self {
            client: Client::new(ctx),
        }
    }
}

/// Deletes the key unless disarmed: a Lock whose client left (the future
/// is dropped) must not leave its key queued, or it would block others
/// until the lease expires.
struct UnlockOnDrop {
    client: Client,
    key: Option<Vec<u8>>,
}

impl Drop for UnlockOnDrop {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            let client = self.client.clone();
            tokio::spawn(async move {
                if let Err(e) = client.delete(key).await {
                    tracing::warn!("cannot release an abandoned lock key: {e}");
                }
            });
        }
    }
}

impl LockService {
    async fn lock(client: &Client, req: LockRequest) -> Result<LockResponse, Status> {
        let lease = client.session_lease(req.lease).await?;
        let mut prefix = req.name;
        prefix.push(b'/');
        let mut key = prefix.clone();
        key.extend_from_slice(format!("{lease:x}").as_bytes());

        let get_owner = || op(Op::RequestRange(first_created_request(&prefix)));
        let txn = TxnRequest {
            compare: vec![create_revision_is(&key, 0)],
            success: vec![
                op(Op::RequestPut(PutRequest {
                    key: key.clone(),
                    lease,
                    ..Default::default()
                })),
                get_owner(),
            ],
            failure: vec![
                op(Op::RequestRange(RangeRequest {
                    key: key.clone(),
                    ..Default::default()
                })),
                get_owner(),
            ],
        };
        let resp = client.txn(txn).await?;
        let mut guard = UnlockOnDrop {
            client: client.clone(),
            key: Some(key.clone()),
        };
        let header = resp.header.unwrap_or_default();
        let kvs = ranges(resp.responses);
        let my_rev = if resp.succeeded {
            header.revision
        } else {
            kvs[0].first().map_or(header.revision, |kv| kv.create_revision)
        };
        let owner = kvs.get(1).and_then(|kvs| kvs.first());
        if owner.is_none_or(|kv| kv.create_revision == my_rev) {
            guard.key = None;
            return Ok(LockResponse {
                header: Some(header),
                key,
            });
        }

        let waited = client.wait_deletes(&prefix, my_rev - 1).await;
        let held = match waited {
            Ok(_) => {
                client
                    .range(RangeRequest {
                        key: key.clone(),
                        ..Default::default()
                    })
                    .await
            }
            Err(e) => Err(e),
        };
        let held = held?;
        if held.kvs.is_empty() {
            guard.key = None;
            return Err(Status::unknown(SESSION_EXPIRED));
        }
        guard.key = None;
        Ok(LockResponse {
            header: held.header,
            key,
        })
    }
}

#[tonic::async_trait]
impl Lock for LockService {
    async fn lock(&self, request: Request<LockRequest>) -> Result<Response<LockResponse>, Status> {
        let client = self.client.for_caller(&request);
        LockService::lock(&client, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn unlock(&self, request: Request<UnlockRequest>) -> Result<Response<UnlockResponse>, Status> {
        let client = self.client.for_caller(&request);
        let resp = client.delete(request.into_inner().key).await?;
        Ok(Response::new(UnlockResponse { header: resp.header }))
    }
}
