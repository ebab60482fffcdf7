//! AppendEntries on one long-lived stream per follower (the `AppendStream`
//! RPC of `timonpb.Peer`), as etcd's rafthttp keeps a stream per peer: a
//! request is one message on an open HTTP/2 stream rather than a call of
//! its own (no headers to encode and admit, no task spawned per call on
//! the follower, no trip through the channel's request buffer).
//!
//! openraft sends a follower one AppendEntries at a time and waits for its
//! answer, so answers need no ids: the next message on the stream answers
//! the request just sent. A stream that failed, or whose answer did not
//! come in time, is dropped (a late answer cannot be taken for the next
//! request's) and the next request opens a new one. A member that does not
//! serve the RPC (a timon from before it, during a rolling upgrade) answers
//! Unimplemented, and its [`super::network::PeerNetwork`] goes back to unary
//! AppendEntries calls. A client's first AppendEntries is a unary call too:
//! openraft sends only one on the clients it makes to confirm leadership
//! for a read index, where a stream would cost more than it saves.

use std::future::Future;

use timon_proto::timonpb::RaftMessage;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Response, Status, Streaming};

/// One open stream to a follower.
pub(super) struct AppendStream {
    requests: mpsc::Sender<RaftMessage>,
    answers: Streaming<RaftMessage>,
}

impl AppendStream {
    /// Opens a stream by `call` (the `AppendStream` RPC on a peer's
    /// channel, given the stream of requests to send); `None` when the
    /// peer does not serve it.
    pub(super) async fn open<F, Fut>(call: F) -> Result<Option<Self>, Status>
    where
        F: FnOnce(ReceiverStream<RaftMessage>) -> Fut,
        Fut: Future<Output = Result<Response<Streaming<RaftMessage>>, Status>>,
    {
        // One request waits in the channel at most: openraft sends the
        // next only after this one's answer.
        let (requests, outgoing) = mpsc::channel(1);
        match call(ReceiverStream::new(outgoing)).await {
            Ok(answers) => Ok(Some(AppendStream {
                requests,
                answers: answers.into_inner(),
            })),
            Err(status) if status.code() == Code::Unimplemented => Ok(None),
            Err(status) => Err(status),
        }
    }

    /// Sends `msg` and waits for its answer. After an error the stream is
    /// spent: the caller drops it.
    pub(super) async fn call(&mut self, msg: RaftMessage) -> Result<RaftMessage, Status> {
        self.requests
            .send(msg)
            .await
            .map_err(|_| Status::unavailable("the append stream to the peer closed"))?;
        match self.answers.message().await? {
            Some(answer) => Ok(answer),
            None => Err(Status::unavailable("the peer ended the append stream")),
        }
    }
}
