//! Tests only: a stand-in member's `timonpb.Peer` service on a loopback
//! port. A test implements [`StandIn`] for the calls it answers (the rest
//! answer Unimplemented, as a member without them would) and serves it with
//! [`serve`].

use futures::stream::BoxStream;
use timon_proto::etcdserverpb::{HashKvRequest, HashKvResponse, LeaseKeepAliveRequest, LeaseTimeToLiveRequest};
use timon_proto::timonpb::peer_server::{Peer, PeerServer};
use timon_proto::timonpb::{
    Batch, ClusterInfoRequest, ClusterInfoResponse, InternalRaftRequest, RaftMessage, ReadIndexRequest,
    ReadIndexResponse,
};
use tonic::{Request, Response, Status, Streaming};

/// The answers of an `AppendStream`.
pub type Answers = BoxStream<'static, Result<RaftMessage, Status>>;

/// What a call the stand-in does not serve answers.
pub fn unused<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented("not in this test"))
}

/// The calls a stand-in may answer; each answers Unimplemented unless the
/// test says otherwise.
#[tonic::async_trait]
pub trait StandIn: Send + Sync + 'static {
    async fn append_entries(&self, _: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        unused()
    }
    async fn append_stream(&self, _: Request<Streaming<RaftMessage>>) -> Result<Response<Answers>, Status> {
        unused()
    }
    async fn propose(&self, _: Request<InternalRaftRequest>) -> Result<Response<RaftMessage>, Status> {
        unused()
    }
    async fn propose_many(&self, _: Request<Batch>) -> Result<Response<RaftMessage>, Status> {
        unused()
    }
    async fn read_index(&self, _: Request<ReadIndexRequest>) -> Result<Response<ReadIndexResponse>, Status> {
        unused()
    }
}

/// Serves `stand_in` on a loopback port, in the background; answers the
/// port's URL.
pub async fn serve(stand_in: impl StandIn) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(PeerServer::new(Served(stand_in)))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    url
}

struct Served<S>(S);

#[tonic::async_trait]
impl<S: StandIn> Peer for Served<S> {
    async fn append_entries(&self, r: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        self.0.append_entries(r).await
    }
    type AppendStreamStream = Answers;
    async fn append_stream(&self, r: Request<Streaming<RaftMessage>>) -> Result<Response<Answers>, Status> {
        self.0.append_stream(r).await
    }
    async fn propose(&self, r: Request<InternalRaftRequest>) -> Result<Response<RaftMessage>, Status> {
        self.0.propose(r).await
    }
    async fn propose_many(&self, r: Request<Batch>) -> Result<Response<RaftMessage>, Status> {
        self.0.propose_many(r).await
    }
    async fn read_index(&self, r: Request<ReadIndexRequest>) -> Result<Response<ReadIndexResponse>, Status> {
        self.0.read_index(r).await
    }
    async fn vote(&self, _: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        unused()
    }
    async fn install_snapshot(&self, _: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        unused()
    }
    async fn timeout_now(&self, _: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        unused()
    }
    async fn cluster_info(&self, _: Request<ClusterInfoRequest>) -> Result<Response<ClusterInfoResponse>, Status> {
        unused()
    }
    async fn change_membership(&self, _: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        unused()
    }
    async fn lease_renew(&self, _: Request<LeaseKeepAliveRequest>) -> Result<Response<RaftMessage>, Status> {
        unused()
    }
    async fn lease_time_to_live(&self, _: Request<LeaseTimeToLiveRequest>) -> Result<Response<RaftMessage>, Status> {
        unused()
    }
    async fn hash_kv(&self, _: Request<HashKvRequest>) -> Result<Response<HashKvResponse>, Status> {
        unused()
    }
}
