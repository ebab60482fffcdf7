//! openraft's network to one peer (`PeerNetwork`) sending AppendEntries on
//! a stream (`append_stream`), against a stand-in follower (`stand_in_peer`)
//! that answers every append with success and counts the streams opened,
//! the messages on them and the unary calls.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{RPCError, RaftError};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse};
use timon_proto::timonpb::RaftMessage;
use tonic::{Request, Response, Status, Streaming};

use super::network::{encode, NetworkFactory, PeerDialer, PeerNetwork, Peers, REMOVED_MESSAGE};
use super::stand_in_peer::{serve, unused, Answers, StandIn};
use super::types::{Member, TypeConfig, Vote};

/// How the stand-in answers `AppendStream`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Every message, in order.
    Stream,
    /// Unimplemented, as a timon from before the stream does.
    NoStream,
    /// Refused: this member was removed from the cluster.
    Removed,
    /// The first stream's first message is never answered; later streams
    /// answer every message.
    FirstUnanswered,
}

#[derive(Default)]
struct Counts {
    opened: AtomicUsize,
    streamed: AtomicUsize,
    unary: AtomicUsize,
}

#[derive(Clone)]
struct Follower {
    mode: Mode,
    counts: Arc<Counts>,
}

fn success() -> RaftMessage {
    let answer: Result<AppendEntriesResponse<u64>, RaftError<u64>> = Ok(AppendEntriesResponse::Success);
    encode(&answer).unwrap()
}

#[tonic::async_trait]
impl StandIn for Follower {
    async fn append_entries(&self, _: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        self.counts.unary.fetch_add(1, Ordering::SeqCst);
        Ok(Response::new(success()))
    }

    async fn append_stream(&self, request: Request<Streaming<RaftMessage>>) -> Result<Response<Answers>, Status> {
        match self.mode {
            Mode::NoStream => return unused(),
            Mode::Removed => return Err(Status::permission_denied(REMOVED_MESSAGE)),
            Mode::Stream | Mode::FirstUnanswered => {}
        }
        let first_stream = self.counts.opened.fetch_add(1, Ordering::SeqCst) == 0;
        let silent = first_stream && self.mode == Mode::FirstUnanswered;
        let counts = self.counts.clone();
        let answers = futures::stream::unfold(request.into_inner(), move |mut requests| {
            let counts = counts.clone();
            async move {
                requests.message().await.ok().flatten()?;
                counts.streamed.fetch_add(1, Ordering::SeqCst);
                if silent {
                    futures::future::pending::<()>().await;
                }
                Some((Ok(success()), requests))
            }
        });
        Ok(Response::new(Box::pin(answers)))
    }
}

/// The follower's ID in these tests.
const F: u64 = 2;

/// A stand-in follower in `mode` on a loopback port, and openraft's
/// network to it.
async fn start(mode: Mode) -> (PeerNetwork, Arc<Peers>, Arc<Counts>) {
    let counts = Arc::new(Counts::default());
    let follower = Follower {
        mode,
        counts: counts.clone(),
    };
    let url = serve(follower).await;
    let peers = Peers::new(PeerDialer::default());
    let member = Member {
        peer_urls: vec![url],
        ..Default::default()
    };
    let network = NetworkFactory::new(peers.clone()).new_client(F, &member).await;
    (network, peers, counts)
}

fn heartbeat() -> AppendEntriesRequest<TypeConfig> {
    AppendEntriesRequest {
        vote: Vote::new_committed(1, 1),
        prev_log_id: None,
        entries: vec![],
        leader_commit: None,
    }
}

async fn append(
    network: &mut PeerNetwork,
    ttl: Duration,
) -> Result<AppendEntriesResponse<u64>, RPCError<u64, Member, RaftError<u64>>> {
    network.append_entries(heartbeat(), RPCOption::new(ttl)).await
}

const TTL: Duration = Duration::from_secs(10);

#[tokio::test]
async fn appends_to_a_follower_after_the_first_share_one_stream() {
    let (mut network, peers, counts) = start(Mode::Stream).await;
    for _ in 0..4 {
        assert_eq!(append(&mut network, TTL).await.unwrap(), AppendEntriesResponse::Success);
    }
    assert_eq!(counts.unary.load(Ordering::SeqCst), 1);
    assert_eq!(counts.opened.load(Ordering::SeqCst), 1);
    assert_eq!(counts.streamed.load(Ordering::SeqCst), 3);
    assert!(peers.is_active(F));
}

#[tokio::test]
async fn a_client_that_sends_one_append_opens_no_stream() {
    // What openraft does for every round that confirms its leadership for
    // a read index: a new client per follower, one heartbeat each.
    let counts = {
        let (mut network, _peers, counts) = start(Mode::Stream).await;
        assert_eq!(append(&mut network, TTL).await.unwrap(), AppendEntriesResponse::Success);
        counts
    };
    assert_eq!(counts.unary.load(Ordering::SeqCst), 1);
    assert_eq!(counts.opened.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_follower_without_the_stream_is_sent_unary_calls() {
    let (mut network, _peers, counts) = start(Mode::NoStream).await;
    for _ in 0..3 {
        assert_eq!(append(&mut network, TTL).await.unwrap(), AppendEntriesResponse::Success);
    }
    // Asked once (the second append); every append went as a call of its own.
    assert_eq!(counts.opened.load(Ordering::SeqCst), 0);
    assert_eq!(counts.unary.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_stream_refused_to_a_removed_member_tells_it() {
    let (mut network, peers, counts) = start(Mode::Removed).await;
    let mut removed = peers.removed();
    assert_eq!(append(&mut network, TTL).await.unwrap(), AppendEntriesResponse::Success);
    assert!(!*removed.borrow_and_update());
    assert!(matches!(append(&mut network, TTL).await, Err(RPCError::Network(_))));
    assert!(*removed.borrow());
    assert!(!peers.is_active(F));
    // A refusal is not "no stream here": no unary call followed the first.
    assert_eq!(counts.unary.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_unanswered_append_is_not_answered_by_the_next_one() {
    let (mut network, _peers, counts) = start(Mode::FirstUnanswered).await;
    assert_eq!(append(&mut network, TTL).await.unwrap(), AppendEntriesResponse::Success);
    let late = append(&mut network, Duration::from_millis(300)).await;
    assert!(matches!(late, Err(RPCError::Network(_))), "{late:?}");
    // The next append goes on a new stream, which answers it.
    assert_eq!(append(&mut network, TTL).await.unwrap(), AppendEntriesResponse::Success);
    assert_eq!(counts.opened.load(Ordering::SeqCst), 2);
    assert_eq!(counts.streamed.load(Ordering::SeqCst), 2);
}
