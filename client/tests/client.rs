//! The client library against a real etcd: every builder option reaches
//! the server with etcd's semantics, and errors keep etcd's code and text.

mod common;

use common::{etcd_available, free_port, Etcd};
use timon_client::{Client, Compare, DeleteRequest, Error, GetRequest, Op, PutRequest, SortOrder, SortTarget};

async fn connect(etcd: &Etcd) -> Client {
    Client::connect([etcd.endpoint.as_str()]).await.expect("connect")
}

fn keys(kvs: &[timon_client::proto::mvccpb::KeyValue]) -> Vec<String> {
    kvs.iter()
        .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
        .collect()
}

#[tokio::test]
async fn get_put_delete_options() {
    if !etcd_available() {
        return;
    }
    let etcd = Etcd::start();
    let client = connect(&etcd).await;

    for (k, v) in [("a", "3"), ("ab", "1"), ("b", "2"), ("c", "0")] {
        client.put(k, v).await.expect("put");
    }
    // revisions: a=2, ab=3, b=4, c=5
    let put = client.put("a", "4").prev_kv().await.expect("put prev_kv");
    assert_eq!(put.prev_kv.map(|kv| kv.value), Some(b"3".to_vec()));
    assert_eq!(put.header.map(|h| h.revision), Some(6));

    let got = client.get("a").prefix().await.expect("prefix");
    assert_eq!(keys(&got.kvs), ["a", "ab"]);
    let got = client.get("").prefix().limit(3).await.expect("all, limited");
    assert_eq!(
        (keys(&got.kvs), got.more, got.count),
        (vec!["a".into(), "ab".into(), "b".into()], true, 4)
    );
    let got = client.get("ab").from_key().await.expect("from key");
    assert_eq!(keys(&got.kvs), ["ab", "b", "c"]);
    let got = client.get("a").range_end("b").await.expect("range");
    assert_eq!(keys(&got.kvs), ["a", "ab"]);
    let got = client.get("a").revision(2).await.expect("old revision");
    assert_eq!(got.kvs[0].value, b"3");
    let got = client
        .get("")
        .prefix()
        .keys_only()
        .serializable()
        .await
        .expect("keys only");
    assert!(got.kvs.iter().all(|kv| kv.value.is_empty()));
    assert_eq!(got.kvs.len(), 4);
    let got = client.get("").prefix().count_only().await.expect("count only");
    assert_eq!((got.kvs.len(), got.count), (0, 4));
    let got = client
        .get("")
        .prefix()
        .sort(SortTarget::Value, SortOrder::Descend)
        .await
        .expect("sorted");
    assert_eq!(keys(&got.kvs), ["a", "b", "ab", "c"]);
    let got = client
        .get("")
        .prefix()
        .min_mod_revision(4)
        .max_mod_revision(5)
        .await
        .expect("mod window");
    assert_eq!(keys(&got.kvs), ["b", "c"]);

    let deleted = client.delete("a").prefix().prev_kv().await.expect("delete prefix");
    assert_eq!(deleted.deleted, 2);
    assert_eq!(keys(&deleted.prev_kvs), ["a", "ab"]);
    let deleted = client.delete("").from_key().await.expect("delete all");
    assert_eq!(deleted.deleted, 2);
    assert_eq!(client.get("").prefix().count_only().await.expect("count").count, 0);
}

#[tokio::test]
async fn txn_branches_and_compares() {
    if !etcd_available() {
        return;
    }
    let etcd = Etcd::start();
    let client = connect(&etcd).await;

    // Create-if-absent, the way Kubernetes creates objects.
    let created = client
        .txn()
        .when([Compare::mod_revision("k").eq(0)])
        .and_then([Op::put("k", "v1")])
        .or_else([Op::get("k")])
        .await
        .expect("create");
    assert!(created.succeeded);
    let revision = created.header.map(|h| h.revision).unwrap_or_default();

    let again = client
        .txn()
        .when([Compare::mod_revision("k").eq(0)])
        .and_then([Op::put("k", "v2")])
        .or_else([Op::from(GetRequest::new("k").keys_only())])
        .await
        .expect("second create");
    assert!(!again.succeeded);
    assert_eq!(again.responses.len(), 1);

    let update = client
        .txn()
        .when([
            Compare::mod_revision("k").eq(revision),
            Compare::value("k").eq("v1"),
            Compare::version("k").gt(0),
            Compare::create_revision("k").lt(revision + 1),
        ])
        .and_then([
            Op::from(PutRequest::new("k", "v2").prev_kv()),
            Op::from(DeleteRequest::new("missing")),
        ])
        .await
        .expect("update");
    assert!(update.succeeded);
    assert_eq!(update.responses.len(), 2);
    assert_eq!(client.get("k").await.expect("get").kvs[0].value, b"v2");

    // etcd rejects a txn writing one key twice, with its own message.
    let error = client
        .txn()
        .and_then([Op::put("d", "1"), Op::delete("d")])
        .await
        .expect_err("duplicate key");
    assert_eq!(error.code(), Some(tonic::Code::InvalidArgument));
    assert_eq!(error.to_string(), "etcdserver: duplicate key given in txn request");
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn compaction_errors_keep_etcd_code_and_message() {
    if !etcd_available() {
        return;
    }
    let etcd = Etcd::start();
    let client = connect(&etcd).await;
    for i in 0..4 {
        client.put("k", i.to_string()).await.expect("put");
    }
    client.compact(3).physical().await.expect("compact");
    let error = client.get("k").revision(2).await.expect_err("compacted");
    assert_eq!(error.code(), Some(tonic::Code::OutOfRange));
    assert_eq!(
        error.message(),
        Some("etcdserver: mvcc: required revision has been compacted")
    );
    assert_eq!(
        error.to_string(),
        "etcdserver: mvcc: required revision has been compacted"
    );
    assert!(!error.is_retryable());

    let error = client.compact(3).await.expect_err("compacted again");
    assert_eq!(
        error.to_string(),
        "etcdserver: mvcc: required revision has been compacted"
    );
    let error = client.compact(100).await.expect_err("future");
    assert_eq!(
        error.to_string(),
        "etcdserver: mvcc: required revision is a future revision"
    );
    assert_eq!(
        client.get("k").revision(3).await.expect("at compacted rev").kvs[0].value,
        b"1"
    );
}

#[tokio::test]
async fn status_reports_the_member() {
    if !etcd_available() {
        return;
    }
    let etcd = Etcd::start();
    let client = connect(&etcd).await;
    let status = client.status().await.expect("status");
    let member = status.header.as_ref().map(|h| h.member_id).unwrap_or_default();
    assert_ne!(member, 0);
    assert_eq!(status.leader, member);
    assert!(status.version.starts_with("3."));
    assert!(status.db_size > 0);
}

#[tokio::test]
async fn connect_skips_unreachable_endpoints_and_clones_share_it() {
    if !etcd_available() {
        return;
    }
    let etcd = Etcd::start();
    let dead = format!("127.0.0.1:{}", free_port());
    let client = Client::connect([dead.as_str(), &format!("http://{}", etcd.endpoint)])
        .await
        .expect("second endpoint reachable");
    assert_eq!(client.connected_endpoint(), format!("http://{}", etcd.endpoint));
    assert_eq!(client.endpoints().len(), 2);
    let clone = client.clone();
    clone.put("x", "y").await.expect("put via clone");
    assert_eq!(client.get("x").await.expect("get").kvs[0].value, b"y");
}

#[tokio::test]
async fn connect_failures_are_typed() {
    let error = Client::connect(Vec::<String>::new()).await.expect_err("no endpoints");
    assert!(matches!(error, Error::NoEndpoints));
    let dead = format!("127.0.0.1:{}", free_port());
    let error = Client::connect([dead]).await.expect_err("nothing listening");
    assert!(matches!(error, Error::Connect { .. }));
    assert!(error.is_retryable());
    let error = Client::connect(["https://127.0.0.1:1"]).await.expect_err("tls");
    assert!(matches!(error, Error::InvalidEndpoint { .. }));
}
