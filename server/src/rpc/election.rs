//! The Election service (etcd's `v3electionpb.Election`) with the
//! semantics of etcd's `v3election` server, which runs
//! `concurrency.Election` inside the server:
//!
//! - Campaign: key `<name>/<lease in %x>` is created under the lease with the
//!   value (or, if the lease already campaigns, its value is proclaimed);
//!   then it waits until every key of the election created before it is
//!   deleted. The leader is the key with the oldest create revision. The
//!   answer's header is the creating txn's; a client that leaves while
//!   waiting resigns.
//! - Proclaim / Resign: a txn guarded by `create_revision(key) == rev`;
//!   Proclaim of a lost leadership is `election: not leader`, Resign of
//!   one succeeds and deletes nothing.
//! - Leader: the oldest key, or `election: no leader`.
//! - Observe: the current leader, each new value it proclaims, and the next
//!   leader after it resigns or its lease expires.

use std::pin::Pin;
use std::sync::Arc;

use timon_proto::etcdserverpb::request_op::Request as Op;
use timon_proto::etcdserverpb::{DeleteRangeRequest, PutRequest, RangeRequest, ResponseHeader, TxnRequest};
use timon_proto::mvccpb::event::EventType;
use timon_proto::mvccpb::KeyValue;
use timon_proto::v3electionpb::election_server::Election;
use timon_proto::v3electionpb::{
    CampaignRequest, CampaignResponse, LeaderKey, LeaderRequest, LeaderResponse, ProclaimRequest, ProclaimResponse,
    ResignRequest, ResignResponse,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::concurrency::{create_revision_is, op, prefix_end, ranges, Client, Watcher};
use super::Ctx;

/// concurrency's `ErrElectionNotLeader`.
pub const NOT_LEADER: &str = "election: not leader";
/// concurrency's `ErrElectionNoLeader`.
pub const NO_LEADER: &str = "election: no leader";
/// v3election's `ErrMissingLeaderKey`.
pub const MISSING_LEADER_KEY: &str = "\"leader\" field must be provided";

pub struct ElectionService {
    ctx: Arc<Ctx>,
    client: Client,
}

impl ElectionService {
    pub fn new(ctx: Arc<Ctx>) -> Self {
        Self {
            client: Client::new(ctx.clone()),
            ctx,
        }
    }
}

fn prefix_of(name: &[u8]) -> Vec<u8> {
    let mut p = name.to_vec();
    p.push(b'/');
    p
}

/// Proclaim: puts `value` on `key` under `lease` if `key` still has create
/// revision `rev`; answers the txn's header.
async fn proclaim(client: &Client, key: &[u8], rev: i64, lease: i64, value: Vec<u8>) -> Result<ResponseHeader, Status> {
    let resp = client
        .txn(TxnRequest {
            compare: vec![create_revision_is(key, rev)],
            success: vec![op(Op::RequestPut(PutRequest {
                key: key.to_vec(),
                value,
                lease,
                ..Default::default()
            }))],
            failure: Vec::new(),
        })
        .await?;
    if !resp.succeeded {
        return Err(Status::unknown(NOT_LEADER));
    }
    Ok(resp.header.unwrap_or_default())
}

/// Resign: deletes `key` if it still has create revision `rev`.
async fn resign(client: &Client, key: &[u8], rev: i64) -> Result<ResponseHeader, Status> {
    let resp = client
        .txn(TxnRequest {
            compare: vec![create_revision_is(key, rev)],
            success: vec![op(Op::RequestDeleteRange(DeleteRangeRequest {
                key: key.to_vec(),
                ..Default::default()
            }))],
            failure: Vec::new(),
        })
        .await?;
    Ok(resp.header.unwrap_or_default())
}

/// Resigns unless disarmed: a Campaign whose client left while waiting.
struct ResignOnDrop {
    client: Client,
    leadership: Option<(Vec<u8>, i64)>,
}

impl Drop for ResignOnDrop {
    fn drop(&mut self) {
        if let Some((key, rev)) = self.leadership.take() {
            let client = self.client.clone();
            tokio::spawn(async move {
                if let Err(e) = resign(&client, &key, rev).await {
                    tracing::warn!("cannot resign an abandoned campaign: {e}");
                }
            });
        }
    }
}

impl ElectionService {
    async fn campaign(client: &Client, req: CampaignRequest) -> Result<CampaignResponse, Status> {
        let lease = client.session_lease(req.lease).await?;
        let prefix = prefix_of(&req.name);
        let mut key = prefix.clone();
        key.extend_from_slice(format!("{lease:x}").as_bytes());
        let resp = client
            .txn(TxnRequest {
                compare: vec![create_revision_is(&key, 0)],
                success: vec![op(Op::RequestPut(PutRequest {
                    key: key.clone(),
                    value: req.value.clone(),
                    lease,
                    ..Default::default()
                }))],
                failure: vec![op(Op::RequestRange(RangeRequest {
                    key: key.clone(),
                    ..Default::default()
                }))],
            })
            .await?;
        let header = resp.header.unwrap_or_default();
        let mut rev = header.revision;
        if !resp.succeeded {
            let kvs = ranges(resp.responses).swap_remove(0);
            // The key is ours: its lease is the session's.
            if let Some(kv) = kvs.first() {
                rev = kv.create_revision;
                if kv.value != req.value {
                    if let Err(e) = proclaim(&client, &key, rev, lease, req.value.clone()).await {
                        let _ = resign(&client, &key, rev).await;
                        return Err(e);
                    }
                }
            }
        }
        let mut guard = ResignOnDrop {
            client: client.clone(),
            leadership: Some((key.clone(), rev)),
        };
        let waited = client.wait_deletes(&prefix, rev - 1).await;
        guard.leadership = None;
        waited?;
        Ok(CampaignResponse {
            header: Some(header),
            leader: Some(LeaderKey {
                name: req.name,
                key,
                rev,
                lease,
            }),
        })
    }
}

type ObserveStream = Pin<Box<dyn Stream<Item = Result<LeaderResponse, Status>> + Send>>;

/// etcd's `observe`: sends the leader, its new values, and after its
/// deletion the next leader, until the client goes or a read fails (then
/// the stream ends without an error, as etcd's does).
async fn observe(ctx: Arc<Ctx>, client: Client, prefix: Vec<u8>, tx: mpsc::Sender<Result<LeaderResponse, Status>>) {
    let send = |rev: i64, kv: KeyValue| LeaderResponse {
        header: ctx.header(rev),
        kv: Some(kv),
    };
    loop {
        let Ok(resp) = client.first_created(&prefix).await else {
            return;
        };
        let (mut rev, kv) = match resp.kvs.into_iter().next() {
            Some(kv) => (resp.header.map_or(0, |h| h.revision), kv),
            None => {
                // No leader: wait for the first put under the prefix.
                let from = resp.header.map_or(0, |h| h.revision);
                let mut w = Watcher::new(
                    client.hub().clone(),
                    prefix.clone(),
                    prefix_end(&prefix),
                    from,
                    Vec::new(),
                );
                loop {
                    let next = tokio::select! {
                        n = w.next() => n,
                        () = tx.closed() => return,
                    };
                    let Ok((_, events)) = next else { return };
                    let put = events.into_iter().find(|e| e.r#type == EventType::Put as i32);
                    if let Some(kv) = put.and_then(|e| e.kv) {
                        break (kv.mod_revision, kv);
                    }
                }
            }
        };
        let key = kv.key.clone();
        if tx.send(Ok(send(rev, kv))).await.is_err() {
            return;
        }
        // Follow this leader's key until it is deleted.
        let mut w = Watcher::new(client.hub().clone(), key, Vec::new(), rev + 1, Vec::new());
        'leader: loop {
            let next = tokio::select! {
                n = w.next() => n,
                () = tx.closed() => return,
            };
            let Ok((header_rev, events)) = next else { return };
            for ev in events {
                if ev.r#type == EventType::Delete as i32 {
                    break 'leader;
                }
                let Some(kv) = ev.kv else { continue };
                rev = header_rev;
                if tx.send(Ok(send(rev, kv))).await.is_err() {
                    return;
                }
            }
        }
    }
}

#[tonic::async_trait]
impl Election for ElectionService {
    async fn campaign(&self, request: Request<CampaignRequest>) -> Result<Response<CampaignResponse>, Status> {
        let client = self.client.for_caller(&request);
        let mut resp = ElectionService::campaign(&client, request.into_inner()).await?;
        self.ctx.fill_header(&mut resp.header);
        Ok(Response::new(resp))
    }

    async fn proclaim(&self, request: Request<ProclaimRequest>) -> Result<Response<ProclaimResponse>, Status> {
        let client = self.client.for_caller(&request);
        let req = request.into_inner();
        let leader = req.leader.ok_or_else(|| Status::unknown(MISSING_LEADER_KEY))?;
        let lease = client.session_lease(leader.lease).await?;
        let header = proclaim(&client, &leader.key, leader.rev, lease, req.value).await?;
        Ok(Response::new(ProclaimResponse { header: Some(header) }))
    }

    async fn leader(&self, request: Request<LeaderRequest>) -> Result<Response<LeaderResponse>, Status> {
        let client = self.client.for_caller(&request);
        let prefix = prefix_of(&request.into_inner().name);
        let resp = client.first_created(&prefix).await?;
        let kv = resp.kvs.into_iter().next().ok_or_else(|| Status::unknown(NO_LEADER))?;
        Ok(Response::new(LeaderResponse {
            header: resp.header,
            kv: Some(kv),
        }))
    }

    type ObserveStream = ObserveStream;

    async fn observe(&self, request: Request<LeaderRequest>) -> Result<Response<Self::ObserveStream>, Status> {
        let client = self.client.for_caller(&request);
        let prefix = prefix_of(&request.into_inner().name);
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(observe(self.ctx.clone(), client, prefix, tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn resign(&self, request: Request<ResignRequest>) -> Result<Response<ResignResponse>, Status> {
        let client = self.client.for_caller(&request);
        let leader = request
            .into_inner()
            .leader
            .ok_or_else(|| Status::unknown(MISSING_LEADER_KEY))?;
        client.session_lease(leader.lease).await?;
        let header = resign(&client, &leader.key, leader.rev).await?;
        Ok(Response::new(ResignResponse { header: Some(header) }))
    }
}
