//! The peer transport, client side: openraft's network over gRPC to the
//! other members' `--listen-peer-urls` (the `timonpb.Peer` service), and the
//! connections the member uses to forward writes and read-index requests to
//! the leader.
//!
//! One lazily connected HTTP/2 channel per peer, reused by every RPC to it
//! (tonic reconnects on its own after a failure); AppendEntries go as
//! messages on a stream in it (`append_stream`). openraft's per-RPC deadline
//! bounds every call; a peer that cannot be reached is reported
//! `Unreachable`, which makes openraft back off before retrying it.
//!
//! Every call but ClusterInfo from a joining member (asked before it knows
//! who it is) carries etcd's rafthttp headers `X-Etcd-Cluster-ID` and
//! `X-Server-From` (hex), which the receiving `service` checks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use timon_proto::timonpb::peer_client::PeerClient;
use timon_proto::timonpb::{ClusterInfoRequest, ClusterInfoResponse, RaftMessage};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use super::append_stream::AppendStream;
use super::types::{Member, TypeConfig, Vote};

/// How long to wait for a TCP connection to a peer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Serializes an openraft message for the wire.
pub(crate) fn encode<T: Serialize>(v: &T) -> Result<RaftMessage, bincode::Error> {
    Ok(RaftMessage {
        data: bincode::serialize(v)?,
    })
}

/// Deserializes an openraft message from the wire.
pub(crate) fn decode<T: DeserializeOwned>(m: &RaftMessage) -> Result<T, bincode::Error> {
    bincode::deserialize(&m.data)
}

/// A transport failure talking to a peer.
#[derive(Debug, thiserror::Error)]
#[error("peer {target} ({url}): {msg}")]
pub struct PeerError {
    pub target: u64,
    pub url: String,
    pub msg: String,
    /// The peer could not be reached at all (refused, reset, no route).
    pub unreachable: bool,
}

/// What a member answers a removed member, which then stops (etcd's text).
pub const REMOVED_MESSAGE: &str = "the member has been permanently removed from the cluster";

/// etcd rafthttp's header naming the sender's cluster (hex).
pub const CLUSTER_ID_HEADER: &str = "x-etcd-cluster-id";
/// etcd rafthttp's header naming the sending member (hex).
pub const FROM_HEADER: &str = "x-server-from";

/// Adds [`CLUSTER_ID_HEADER`] and [`FROM_HEADER`] to every peer call.
#[derive(Clone, Copy, Debug, Default)]
pub struct PeerHeaders {
    /// (cluster ID, this member's ID), once known.
    identity: Option<(u64, u64)>,
}

impl tonic::service::Interceptor for PeerHeaders {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some((cluster, from)) = self.identity {
            let meta = request.metadata_mut();
            // Hex digits are always valid header values.
            if let Ok(v) = format!("{cluster:x}").parse() {
                meta.insert(CLUSTER_ID_HEADER, v);
            }
            if let Ok(v) = format!("{from:x}").parse() {
                meta.insert(FROM_HEADER, v);
            }
        }
        Ok(request)
    }
}

/// A client of one peer's `timonpb.Peer` service, sending [`PeerHeaders`].
pub type PeerRpc = PeerClient<InterceptedService<Channel, PeerHeaders>>;

/// How this member dials its peers: plain HTTP/2, or TLS with the peer
/// certificate (`--peer-cert-file`, verified against `--peer-trusted-ca-file`).
#[derive(Clone, Default)]
pub struct PeerDialer {
    tls: Option<timon_tls::TlsConnector>,
    headers: PeerHeaders,
}

impl std::fmt::Debug for PeerDialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerDialer").field("tls", &self.tls.is_some()).finish()
    }
}

impl PeerDialer {
    pub fn new(tls: Option<std::sync::Arc<rustls::ClientConfig>>) -> Self {
        PeerDialer {
            tls: tls.map(timon_tls::TlsConnector::new),
            headers: PeerHeaders::default(),
        }
    }

    /// The same dialer, naming this member's cluster and ID in every call.
    pub fn with_identity(mut self, cluster_id: u64, member_id: u64) -> Self {
        self.headers.identity = Some((cluster_id, member_id));
        self
    }

    fn endpoint(&self, url: &str) -> Result<Endpoint, String> {
        let endpoint = Endpoint::from_shared(url.to_owned()).map_err(|e| format!("bad peer URL: {e}"))?;
        Ok(endpoint.connect_timeout(CONNECT_TIMEOUT).tcp_nodelay(true))
    }

    /// The TLS connector for an `https://` peer URL; `http://` ones are
    /// dialed in plain text, as etcd's peer transport does.
    fn tls_for(&self, endpoint: &Endpoint) -> Option<timon_tls::TlsConnector> {
        (endpoint.uri().scheme_str() == Some("https"))
            .then(|| self.tls.clone())
            .flatten()
    }

    /// A channel that connects on first use (and again after a failure).
    fn lazy(&self, endpoint: Endpoint) -> Channel {
        match self.tls_for(&endpoint) {
            Some(tls) => endpoint.connect_with_connector_lazy(tls),
            None => endpoint.connect_lazy(),
        }
    }

    async fn connect(&self, endpoint: Endpoint) -> Result<Channel, tonic::transport::Error> {
        match self.tls_for(&endpoint) {
            Some(tls) => endpoint.connect_with_connector(tls).await,
            None => endpoint.connect().await,
        }
    }
}

/// One channel per peer, shared by the raft network and request forwarding.
pub struct Peers {
    dialer: PeerDialer,
    channels: Mutex<HashMap<u64, (String, Channel)>>,
    /// Set once a peer says this member was removed from the cluster.
    removed: tokio::sync::watch::Sender<bool>,
    /// Whether the last message to each peer went through (etcd's
    /// `peerStatus`), for the "peer became (in)active" lines.
    active: Mutex<HashMap<u64, bool>>,
}

impl Peers {
    pub fn new(dialer: PeerDialer) -> Arc<Self> {
        Arc::new(Self {
            dialer,
            channels: Mutex::default(),
            removed: tokio::sync::watch::Sender::new(false),
            active: Mutex::default(),
        })
    }

    /// Whether the last message to `target` went through.
    pub fn is_active(&self, target: u64) -> bool {
        let active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        active.get(&target).copied().unwrap_or(false)
    }

    /// Records whether a message to `target` went through, logging etcd's
    /// lines when that changes: "peer became active" (also the first time),
    /// "peer became inactive (message send to peer failed)".
    pub fn report(&self, target: u64, outcome: Result<(), &PeerError>) {
        let now = outcome.is_ok();
        let before = self
            .active
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(target, now);
        match (before, outcome) {
            (Some(true), Ok(())) | (Some(false) | None, Err(_)) => {}
            (Some(false) | None, Ok(())) => {
                tracing::info!({ "peer-id" = %format!("{target:x}") }, "peer became active")
            }
            (Some(true), Err(e)) => tracing::warn!(
                { "peer-id" = %format!("{target:x}"),
                error = %e },
                "peer became inactive (message send to peer failed)"
            ),
        }
    }

    /// Records that this member was removed from the cluster.
    /// The dialer every peer call goes through.
    pub fn dialer(&self) -> &PeerDialer {
        &self.dialer
    }

    pub fn mark_removed(&self) {
        self.removed.send_replace(true);
    }

    /// Becomes true once this member learns it was removed.
    pub fn removed(&self) -> tokio::sync::watch::Receiver<bool> {
        self.removed.subscribe()
    }

    /// A client for `target` at the first of its peer URLs; reuses the
    /// channel unless the member's URL changed.
    pub fn client(&self, target: u64, member: &Member) -> Result<PeerRpc, PeerError> {
        let url = member.peer_urls.first().cloned().unwrap_or_default();
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((known, ch)) = channels.get(&target) {
            if *known == url {
                return Ok(self.wrap(ch.clone()));
            }
        }
        let endpoint = self.dialer.endpoint(&url).map_err(|msg| PeerError {
            target,
            url: url.clone(),
            msg,
            unreachable: true,
        })?;
        let ch = self.dialer.lazy(
            endpoint
                .http2_keep_alive_interval(Duration::from_secs(10))
                .keep_alive_timeout(Duration::from_secs(5)),
        );
        channels.insert(target, (url, ch.clone()));
        Ok(self.wrap(ch))
    }

    fn wrap(&self, ch: Channel) -> PeerRpc {
        // Peers are trusted and raft batches can exceed any client limit.
        PeerClient::with_interceptor(ch, self.dialer.headers)
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX)
    }

    /// Turns a failed call into a [`PeerError`].
    pub fn error(target: u64, member: &Member, status: &tonic::Status) -> PeerError {
        PeerError {
            target,
            url: member.peer_urls.first().cloned().unwrap_or_default(),
            msg: status.to_string(),
            // tonic reports connect failures as Unavailable.
            unreachable: status.code() == tonic::Code::Unavailable,
        }
    }
}

/// Asks the members at `peer_urls`, in turn, for the cluster's ID and
/// members (a joining member learns its own ID from them).
pub async fn fetch_cluster_info(dialer: &PeerDialer, peer_urls: &[String]) -> Result<ClusterInfoResponse, String> {
    let mut last = String::from("no peer URL given");
    for url in peer_urls {
        match ask_cluster_info(dialer, url, Duration::from_secs(5)).await {
            Ok(info) => return Ok(info),
            Err(error) => {
                tracing::warn!(address = %url, error = %error, "failed to reach the peer URL");
                last = format!("{url}: {error}");
            }
        }
    }
    Err(last)
}

/// Asks the member at `url` for the cluster's ID and members.
pub async fn ask_cluster_info(
    dialer: &PeerDialer,
    url: &str,
    timeout: Duration,
) -> Result<ClusterInfoResponse, String> {
    let endpoint = dialer.endpoint(url)?.timeout(timeout);
    let channel = dialer.connect(endpoint).await.map_err(|e| e.to_string())?;
    PeerClient::new(channel)
        .cluster_info(ClusterInfoRequest {})
        .await
        .map(tonic::Response::into_inner)
        .map_err(|e| e.to_string())
}

pub struct NetworkFactory {
    peers: Arc<Peers>,
}

impl NetworkFactory {
    pub fn new(peers: Arc<Peers>) -> Self {
        Self { peers }
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerNetwork;

    async fn new_client(&mut self, target: u64, node: &Member) -> Self::Network {
        PeerNetwork {
            peers: self.peers.clone(),
            target,
            member: node.clone(),
            stream: None,
            unary_only: false,
            appended: false,
        }
    }
}

/// openraft's connection to one peer.
pub struct PeerNetwork {
    peers: Arc<Peers>,
    target: u64,
    member: Member,
    /// The open AppendEntries stream to the peer, if any (`append_stream`).
    stream: Option<AppendStream>,
    /// The peer does not serve AppendStream: AppendEntries are unary calls.
    unary_only: bool,
    /// Whether an AppendEntries went out on this client already. Its first
    /// goes as a unary call, the stream opens for the second: openraft
    /// makes a client per follower for every round that confirms its
    /// leadership for a read index and sends it one heartbeat, for which
    /// opening a stream (a round trip of its own before the message, a
    /// task on the follower) cost more than a call (one client's
    /// linearizable read took 1.36x as long); a replication client sends
    /// many.
    appended: bool,
}

type Rpc<T, E> = Result<T, RPCError<u64, Member, E>>;

impl PeerNetwork {
    /// Sends `req` with `call`, bounded by openraft's deadline, and decodes
    /// the peer's `Result<Resp, E>`.
    async fn call<Req, Resp, E, F, Fut>(&self, req: &Req, option: &RPCOption, call: F) -> Rpc<Resp, E>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
        F: FnOnce(PeerRpc, RaftMessage) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<RaftMessage>, tonic::Status>>,
    {
        let msg = encode(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let client = self
            .peers
            .client(self.target, &self.member)
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?;
        let answer = tokio::time::timeout(option.hard_ttl(), call(client, msg)).await;
        self.settle(answer.ok().map(|r| r.map(tonic::Response::into_inner)), option)
    }

    /// AppendEntries on the stream to the peer, opened first if need be:
    /// `None` when the peer does not serve the stream.
    async fn on_stream(&mut self, msg: RaftMessage) -> Option<Result<RaftMessage, tonic::Status>> {
        let stream = match &mut self.stream {
            Some(stream) => stream,
            None => {
                let mut client = match self.peers.client(self.target, &self.member) {
                    Ok(client) => client,
                    Err(e) => return Some(Err(tonic::Status::unavailable(e.msg))),
                };
                match AppendStream::open(|requests| async move { client.append_stream(requests).await }).await {
                    Ok(Some(stream)) => self.stream.insert(stream),
                    Ok(None) => {
                        self.unary_only = true;
                        return None;
                    }
                    Err(status) => return Some(Err(status)),
                }
            }
        };
        let answer = stream.call(msg).await;
        if answer.is_err() {
            self.stream = None;
        }
        Some(answer)
    }

    /// Turns a peer's answer (`None`: none within openraft's deadline) into
    /// openraft's result, recording whether the peer is active.
    fn settle<Resp, E>(&self, answer: Option<Result<RaftMessage, tonic::Status>>, option: &RPCOption) -> Rpc<Resp, E>
    where
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let resp = match answer {
            None => {
                let e = PeerError {
                    target: self.target,
                    url: self.member.peer_urls.first().cloned().unwrap_or_default(),
                    msg: format!("no answer within {:?}", option.hard_ttl()),
                    unreachable: false,
                };
                self.peers.report(self.target, Err(&e));
                return Err(RPCError::Network(NetworkError::new(&e)));
            }
            Some(Err(status)) => {
                if status.code() == tonic::Code::PermissionDenied && status.message() == REMOVED_MESSAGE {
                    self.peers.mark_removed();
                }
                let e = Peers::error(self.target, &self.member, &status);
                self.peers.report(self.target, Err(&e));
                return Err(if e.unreachable {
                    RPCError::Unreachable(Unreachable::new(&e))
                } else {
                    RPCError::Network(NetworkError::new(&e))
                });
            }
            Some(Ok(r)) => r,
        };
        self.peers.report(self.target, Ok(()));
        let result: Result<Resp, E> = decode(&resp).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new_with_node(self.target, self.member.clone(), e)))
    }
}

/// Whether a follower took a snapshot sent with `sent` (the leader's vote):
/// it answers with its own vote, and one greater than the sender's means
/// it refused the snapshot (a newer term: openraft's `Raft::install_snapshot`
/// and the leader's replication read the answer the same way). A follower
/// resumed after a pause can start an election and refuse the snapshot sent
/// in the old term, which must not be logged as sent.
fn snapshot_accepted(sent: &Vote, answered: &Vote) -> bool {
    !(answered > sent)
}

impl RaftNetwork<TypeConfig> for PeerNetwork {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Rpc<AppendEntriesResponse<u64>, RaftError<u64>> {
        let first = !std::mem::replace(&mut self.appended, true);
        if !self.unary_only && !first {
            let msg = encode(&rpc).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
            match tokio::time::timeout(option.hard_ttl(), self.on_stream(msg)).await {
                Ok(Some(answer)) => return self.settle(Some(answer), &option),
                // The peer has no stream: unary calls from now on.
                Ok(None) => {}
                Err(_) => {
                    // The answer may still come: not on this stream.
                    self.stream = None;
                    return self.settle(None, &option);
                }
            }
        }
        self.call(&rpc, &option, |mut c, m| async move { c.append_entries(m).await })
            .await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Rpc<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>> {
        let last_chunk = rpc.done.then(|| {
            let index = rpc.meta.last_log_id.map_or(0, |l| l.index);
            (index, rpc.offset + rpc.data.len() as u64)
        });
        let answer: Rpc<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>> = self
            .call(&rpc, &option, |mut c, m| async move { c.install_snapshot(m).await })
            .await;
        let accepted = matches!(&answer, Ok(resp) if snapshot_accepted(&rpc.vote, &resp.vote));
        if let (Some((index, bytes)), true) = (last_chunk, accepted) {
            // etcd's rafthttp snapshot sender, once the whole snapshot is sent.
            tracing::info!(
                { "snapshot-index" = index,
                "remote-peer-id" = %format!("{:x}", self.target),
                bytes = bytes,
                size = %timon_go::humanize_bytes(bytes) },
                "sent database snapshot"
            );
        }
        answer
    }

    async fn vote(&mut self, rpc: VoteRequest<u64>, option: RPCOption) -> Rpc<VoteResponse<u64>, RaftError<u64>> {
        self.call(&rpc, &option, |mut c, m| async move { c.vote(m).await })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_answered_with_a_newer_term_was_refused() {
        let leader = Vote::new_committed(1, 1);
        assert!(snapshot_accepted(&leader, &leader));
        // A follower still at an older vote takes it (and adopts the leader's).
        assert!(snapshot_accepted(&leader, &Vote::new(0, 0)));
        // A follower that started an election of its own since refuses it.
        assert!(!snapshot_accepted(&leader, &Vote::new(2, 3)));
        assert!(!snapshot_accepted(&leader, &Vote::new_committed(3, 1)));
    }
}
