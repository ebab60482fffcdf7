//! The peer port admits only members of this cluster (etcd rafthttp's
//! `X-Etcd-Cluster-ID` and sender checks): a valid proposal sent with
//! another cluster's ID, or from a member ID not in the cluster, is refused
//! with etcd's text, logged, and not applied; the same proposal naming
//! this cluster and a member is applied (so the headers are what decides).

mod support;

use std::time::Duration;

use prost::Message;
use support::raw_grpc::{call, frame, Outcome};
use support::{connect, start_timon};
use timon_proto::etcdserverpb::{PutRequest, RangeRequest, StatusRequest};
use timon_proto::timonpb::{internal_raft_request, InternalRaftRequest};
use tonic::transport::Channel;

fn proposal(key: &str) -> Vec<u8> {
    frame(
        &InternalRaftRequest {
            request: Some(internal_raft_request::Request::Put(PutRequest {
                key: key.into(),
                value: b"from the peer port".to_vec(),
                ..Default::default()
            })),
        }
        .encode_to_vec(),
    )
}

#[test]
fn peer_calls_from_another_cluster_or_an_unknown_member_are_refused_and_logged() {
    let m = start_timon(None, &[]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (mut kv, mut maintenance) = connect(&m.endpoint()).await;
        let header = maintenance
            .status(StatusRequest {})
            .await
            .unwrap()
            .into_inner()
            .header
            .unwrap();
        let (cluster, me) = (header.cluster_id, header.member_id);
        let peer = Channel::from_shared(m.peer_url()).unwrap().connect().await.unwrap();
        let timeout = Duration::from_secs(30);
        let propose = |key: &'static str, headers: Vec<(&'static str, String)>| {
            let peer = peer.clone();
            async move { call(&peer, "/timonpb.Peer/Propose", proposal(key), true, &headers, timeout).await }
        };
        let code = |o: &Outcome| match o {
            Outcome::Status { code, message, .. } => (*code, message.clone()),
            other => panic!("no status: {other:?}"),
        };

        let wrong_cluster = propose(
            "wrong-cluster",
            vec![
                ("x-etcd-cluster-id", format!("{:x}", cluster ^ 1)),
                ("x-server-from", format!("{me:x}")),
            ],
        )
        .await;
        assert_eq!(
            code(&wrong_cluster),
            (tonic::Code::FailedPrecondition, "cluster ID mismatch".into())
        );
        let unreadable = propose("unreadable-cluster", vec![("x-etcd-cluster-id", "not hex".into())]).await;
        assert_eq!(
            code(&unreadable),
            (tonic::Code::FailedPrecondition, "cluster ID mismatch".into())
        );
        let stranger = propose(
            "stranger",
            vec![
                ("x-etcd-cluster-id", format!("{cluster:x}")),
                ("x-server-from", format!("{:x}", me ^ 1)),
            ],
        )
        .await;
        assert_eq!(
            code(&stranger),
            (tonic::Code::NotFound, "error sender not found".into())
        );
        let member = propose(
            "member",
            vec![
                ("x-etcd-cluster-id", format!("{cluster:x}")),
                ("x-server-from", format!("{me:x}")),
            ],
        )
        .await;
        assert_eq!(code(&member).0, tonic::Code::Ok, "{member:?}");

        for (key, written) in [
            ("wrong-cluster", false),
            ("unreadable-cluster", false),
            ("stranger", false),
            ("member", true),
        ] {
            let got = kv
                .range(RangeRequest {
                    key: key.into(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(got.kvs.len(), usize::from(written), "{key}");
        }
    });
    let log = m.stderr_tail(1 << 20);
    assert!(
        log.contains("request cluster ID mismatch"),
        "a wrong cluster ID is logged:\n{log}"
    );
    assert!(
        log.contains("failed to find remote peer in cluster"),
        "an unknown sender is logged:\n{log}"
    );
}
