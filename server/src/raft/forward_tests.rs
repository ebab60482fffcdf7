//! `forward` against a stand-in leader: a `timonpb.Peer` server on a
//! loopback port whose calls the test answers by hand, so it can hold a call
//! while more requests arrive and see which call carried which request.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use timon_proto::etcdserverpb::PutRequest;
use timon_proto::timonpb::internal_raft_request::Request as Req;
use timon_proto::timonpb::{Batch, InternalRaftRequest, RaftMessage, ReadIndexRequest, ReadIndexResponse};
use tokio::sync::{mpsc, oneshot};
use tonic::{Request, Response, Status};

use super::forward::Forwarder;
use super::network::{encode, PeerDialer, Peers};
use super::stand_in_peer::{serve, unused, StandIn};
use super::types::{Indexed, Member};
use super::ProposeError;
use crate::apply::Response as Applied;

/// What the stand-in leader saw: one line per call.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Call {
    ReadIndex,
    Propose(u64),
    ProposeMany(Vec<u64>),
}

#[derive(Clone)]
struct Leader {
    calls: Arc<Mutex<Vec<Call>>>,
    /// Each call, as it arrives, with the way to answer it (read calls:
    /// the index; write calls: go on).
    arrived: mpsc::UnboundedSender<(Call, oneshot::Sender<u64>)>,
    /// Answer `ProposeMany` with `Unimplemented`, as a leader built before
    /// it existed does.
    old: bool,
}

impl Leader {
    async fn hold(&self, call: Call) -> u64 {
        self.calls.lock().unwrap().push(call.clone());
        let (tx, rx) = oneshot::channel();
        let _ = self.arrived.send((call, tx));
        rx.await.unwrap_or(0)
    }
}

/// The index the stand-in answers a write with: the number in its key `kN`.
fn number(req: &InternalRaftRequest) -> u64 {
    match &req.request {
        Some(Req::Put(p)) => String::from_utf8_lossy(&p.key[1..]).parse().unwrap(),
        other => panic!("not a put: {other:?}"),
    }
}

fn put(n: u64) -> InternalRaftRequest {
    InternalRaftRequest {
        request: Some(Req::Put(PutRequest {
            key: format!("k{n}").into_bytes(),
            ..Default::default()
        })),
    }
}

fn applied(n: u64) -> Result<Indexed, ProposeError> {
    Ok((Ok(Applied::Empty), n))
}

#[tonic::async_trait]
impl StandIn for Leader {
    async fn propose(&self, r: Request<InternalRaftRequest>) -> Result<Response<RaftMessage>, Status> {
        let n = number(r.get_ref());
        self.hold(Call::Propose(n)).await;
        Ok(Response::new(encode(&applied(n)).unwrap()))
    }
    async fn propose_many(&self, r: Request<Batch>) -> Result<Response<RaftMessage>, Status> {
        if self.old {
            self.calls.lock().unwrap().push(Call::ProposeMany(vec![]));
            return unused();
        }
        let numbers: Vec<u64> = r.get_ref().requests.iter().map(number).collect();
        self.hold(Call::ProposeMany(numbers.clone())).await;
        let answers: Vec<_> = numbers.into_iter().map(applied).collect();
        Ok(Response::new(encode(&answers).unwrap()))
    }
    async fn read_index(&self, _: Request<ReadIndexRequest>) -> Result<Response<ReadIndexResponse>, Status> {
        let index = self.hold(Call::ReadIndex).await;
        Ok(Response::new(ReadIndexResponse { index }))
    }
}

/// The leader's ID in these tests.
const L: u64 = 1;

struct Setup {
    forwarder: Arc<Forwarder>,
    calls: Arc<Mutex<Vec<Call>>>,
    arrived: mpsc::UnboundedReceiver<(Call, oneshot::Sender<u64>)>,
}

impl Setup {
    /// The next call the leader received; fails the test after 10 s.
    async fn next_call(&mut self) -> (Call, oneshot::Sender<u64>) {
        tokio::time::timeout(Duration::from_secs(10), self.arrived.recv())
            .await
            .expect("a call within 10 s")
            .expect("the leader runs")
    }
}

/// A stand-in leader serving on a loopback port and a forwarder to it.
async fn start(old: bool) -> Setup {
    let (tx, arrived) = mpsc::unbounded_channel();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let leader = Leader {
        calls: calls.clone(),
        arrived: tx,
        old,
    };
    let url = serve(leader).await;
    Setup {
        forwarder: Arc::new(forwarder_to(url)),
        calls,
        arrived,
    }
}

fn forwarder_to(url: String) -> Forwarder {
    let peers = Peers::new(PeerDialer::default());
    let member = Member {
        peer_urls: vec![url],
        ..Default::default()
    };
    Forwarder::start(move |id| peers.client(id, &member).map_err(|_| ProposeError::NoLeader))
}

/// Lets every spawned task run until it waits (the runtime has one thread).
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn reads_that_arrive_during_a_call_share_the_next_and_never_take_its_answer() {
    let mut s = start(false).await;
    let f = s.forwarder.clone();
    let first = tokio::spawn(async move { f.read_index(L).await });
    let (call, answer_first) = s.next_call().await;
    assert_eq!(call, Call::ReadIndex);

    // Twenty reads arrive while the first call is out.
    let later: Vec<_> = (0..20)
        .map(|_| {
            let f = s.forwarder.clone();
            tokio::spawn(async move { f.read_index(L).await })
        })
        .collect();
    settle().await;
    answer_first.send(5).unwrap();
    assert_eq!(first.await.unwrap(), Ok(5));

    let (call, answer_second) = s.next_call().await;
    assert_eq!(call, Call::ReadIndex);
    answer_second.send(7).unwrap();
    for read in later {
        // Index 5 was confirmed before these reads arrived: only a later
        // round may answer them.
        assert_eq!(read.await.unwrap(), Ok(7));
    }
    assert_eq!(*s.calls.lock().unwrap(), vec![Call::ReadIndex, Call::ReadIndex]);
}

#[tokio::test]
async fn writes_queued_behind_a_call_go_together_and_each_gets_its_own_answer() {
    let mut s = start(false).await;
    let f = s.forwarder.clone();
    let lone = tokio::spawn(async move { f.propose(L, put(0)).await });
    let (call, go_on) = s.next_call().await;
    assert_eq!(
        call,
        Call::Propose(0),
        "a lone write is sent at once, in a call of its own"
    );

    // Fill the other in-flight slots with held calls, then queue thirty.
    let mut held = vec![go_on];
    let mut writes = vec![lone];
    for n in 1..super::forward::WRITES_IN_FLIGHT as u64 {
        let f = s.forwarder.clone();
        writes.push(tokio::spawn(async move { f.propose(L, put(n)).await }));
        let (call, go_on) = s.next_call().await;
        assert_eq!(call, Call::Propose(n));
        held.push(go_on);
    }
    let queued: Vec<u64> = (100..130).collect();
    for &n in &queued {
        let f = s.forwarder.clone();
        writes.push(tokio::spawn(async move { f.propose(L, put(n)).await }));
    }
    settle().await;
    held.remove(0).send(0).unwrap();
    let (call, go_on) = s.next_call().await;
    assert_eq!(
        call,
        Call::ProposeMany(queued.clone()),
        "the queued writes share one call, in order"
    );
    go_on.send(0).unwrap();
    for h in held {
        h.send(0).unwrap();
    }
    let expected = (0..super::forward::WRITES_IN_FLIGHT as u64).chain(queued);
    for (write, n) in writes.into_iter().zip(expected) {
        assert_eq!(write.await.unwrap(), applied(n));
    }
}

#[tokio::test]
async fn a_leader_without_propose_many_gets_one_call_per_write_after_its_first_refusal() {
    let mut s = start(true).await;
    // Two writes queued at once go in one ProposeMany; the old leader
    // refuses it unread, which proposed nothing: safe to send again.
    let first: Vec<_> = (0..2)
        .map(|n| {
            let f = s.forwarder.clone();
            tokio::spawn(async move { f.propose(L, put(n)).await })
        })
        .collect();
    for w in first {
        assert_eq!(w.await.unwrap(), Err(ProposeError::NotLeader));
    }
    let again: Vec<_> = (0..2)
        .map(|n| {
            let f = s.forwarder.clone();
            tokio::spawn(async move { f.propose(L, put(n)).await })
        })
        .collect();
    for _ in 0..2 {
        let (call, go_on) = s.next_call().await;
        assert!(matches!(call, Call::Propose(_)), "{call:?}");
        go_on.send(0).unwrap();
    }
    for (n, w) in again.into_iter().enumerate() {
        assert_eq!(w.await.unwrap(), applied(n as u64));
    }
    assert_eq!(s.calls.lock().unwrap()[0], Call::ProposeMany(vec![]));
}

#[tokio::test]
async fn a_leader_that_cannot_be_reached_fails_writes_as_not_proposed() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let f = Arc::new(forwarder_to(format!("http://127.0.0.1:{port}")));
    let writes: Vec<_> = (0..3)
        .map(|n| {
            let f = f.clone();
            tokio::spawn(async move { f.propose(L, put(n)).await })
        })
        .collect();
    for w in writes {
        assert_eq!(w.await.unwrap(), Err(ProposeError::NotLeader));
    }
    assert_eq!(f.read_index(L).await, Err(ProposeError::LeaderChanged));
}
