//! Tokens, against timon and etcd 3.4.23 alike: simple tokens (forged or
//! unknown ones refused with etcd's error, auth off or on) and JWT tokens
//! (`--auth-token jwt,...`): a token etcdctl gets works, one signed with
//! another key, or expired, is `etcdserver: invalid auth token`.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use timon_proto::etcdserverpb::auth_client::AuthClient;
use timon_proto::etcdserverpb::kv_client::KvClient;
use timon_proto::etcdserverpb::{AuthenticateRequest, PutRequest, RangeRequest};
use tonic::transport::Channel;

fn openssl(args: &[&str]) {
    let ok = Command::new("openssl")
        .args(args)
        .status()
        .expect("run openssl")
        .success();
    assert!(ok, "openssl {args:?} failed");
}

/// An RSA key pair in `dir`: (private, public).
fn rsa_pair(dir: &Path, name: &str) -> (String, String) {
    let private = dir.join(format!("{name}.key")).display().to_string();
    let public = dir.join(format!("{name}.pub")).display().to_string();
    openssl(&["genrsa", "-out", &private, "2048"]);
    openssl(&["rsa", "-in", &private, "-pubout", "-out", &public]);
    (private, public)
}

/// What a request with `token` (none: without) gets: Ok or (code, message).
async fn range_with(endpoint: &str, token: Option<&str>) -> Result<(), (tonic::Code, String)> {
    let channel = Channel::from_shared(endpoint.to_string())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut request = tonic::Request::new(RangeRequest {
        key: b"k".to_vec(),
        ..Default::default()
    });
    if let Some(t) = token {
        request.metadata_mut().insert("token", t.parse().unwrap());
    }
    KvClient::new(channel)
        .range(request)
        .await
        .map(|_| ())
        .map_err(|s| (s.code(), s.message().to_string()))
}

async fn authenticate(endpoint: &str, name: &str, password: &str) -> Result<String, (tonic::Code, String)> {
    let channel = Channel::from_shared(endpoint.to_string())
        .unwrap()
        .connect()
        .await
        .unwrap();
    AuthClient::new(channel)
        .authenticate(AuthenticateRequest {
            name: name.into(),
            password: password.into(),
        })
        .await
        .map(|r| r.into_inner().token)
        .map_err(|s| (s.code(), s.message().to_string()))
}

async fn put_with(endpoint: &str, token: &str) -> Result<(), (tonic::Code, String)> {
    let channel = Channel::from_shared(endpoint.to_string())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut request = tonic::Request::new(PutRequest {
        key: b"k".to_vec(),
        value: b"v".to_vec(),
        ..Default::default()
    });
    request.metadata_mut().insert("token", token.parse().unwrap());
    KvClient::new(channel)
        .put(request)
        .await
        .map(|_| ())
        .map_err(|s| (s.code(), s.message().to_string()))
}

async fn user_add(endpoint: &str, name: &str) -> Result<(), (tonic::Code, String)> {
    let channel = Channel::from_shared(endpoint.to_string())
        .unwrap()
        .connect()
        .await
        .unwrap();
    AuthClient::new(channel)
        .user_add(timon_proto::etcdserverpb::AuthUserAddRequest {
            name: name.into(),
            password: "pw".into(),
            ..Default::default()
        })
        .await
        .map(|_| ())
        .map_err(|s| (s.code(), s.message().to_string()))
}

async fn role_add(endpoint: &str, name: &str) -> Result<(), (tonic::Code, String)> {
    let channel = Channel::from_shared(endpoint.to_string())
        .unwrap()
        .connect()
        .await
        .unwrap();
    AuthClient::new(channel)
        .role_add(timon_proto::etcdserverpb::AuthRoleAddRequest { name: name.into() })
        .await
        .map(|_| ())
        .map_err(|s| (s.code(), s.message().to_string()))
}

fn etcdctl_ok(endpoint: &str, args: &[&str]) {
    let (ok, out, err) = support::etcdctl(endpoint, args);
    assert!(ok, "etcdctl {args:?} at {endpoint}: {out} {err}");
}

fn enable_auth(endpoint: &str) {
    etcdctl_ok(endpoint, &["user", "add", "root:rootpw"]);
    etcdctl_ok(endpoint, &["auth", "enable"]);
}

/// A JWT with etcd's claims for `user`, signed by `key` (PEM, RS256).
fn jwt(key_path: &str, user: &str, exp: u64) -> String {
    let key = std::fs::read(key_path).unwrap();
    let claims = serde_json::json!({"username": user, "revision": 2, "exp": exp});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_rsa_pem(&key).unwrap(),
    )
    .unwrap()
}

/// The observations of one server, to compare between etcd and timon.
async fn simple_session(endpoint: &str) -> Vec<String> {
    let mut log = vec![format!("{:?}", range_with(endpoint, Some("forged.1")).await)];
    log.push(format!("{:?}", authenticate(endpoint, "root", "rootpw").await));
    log.push(format!("{:?}", user_add(endpoint, "").await));
    log.push(format!("{:?}", role_add(endpoint, "").await));
    enable_auth(endpoint);
    log.push(format!("{:?}", range_with(endpoint, None).await));
    log.push(format!("{:?}", range_with(endpoint, Some("forged.1")).await));
    log.push(format!("{:?}", range_with(endpoint, Some("nodot")).await));
    log.push(format!("{:?}", authenticate(endpoint, "root", "wrong").await));
    log.push(format!("{:?}", authenticate(endpoint, "nobody", "x").await));
    let token = authenticate(endpoint, "root", "rootpw")
        .await
        .expect("root authenticates");
    log.push(format!("{:?}", range_with(endpoint, Some(&token)).await));
    log.push(format!("{:?}", put_with(endpoint, &token).await));
    // The token ends when its user's password changes.
    etcdctl_ok(
        endpoint,
        &["--user=root:rootpw", "user", "passwd", "root", "--interactive=false"],
    );
    log.push(format!("{:?}", range_with(endpoint, Some(&token)).await));
    log
}

#[tokio::test(flavor = "multi_thread")]
async fn simple_tokens_match_etcd() {
    if support::skip_without_etcd("simple_tokens_match_etcd") {
        return;
    }
    let etcd = support::start_etcd();
    let timon = support::start_target();
    let expected = simple_session(&etcd.endpoint()).await;
    let actual = simple_session(&timon.endpoint()).await;
    if std::env::var_os("TIMON_TEST_VERBOSE").is_some() {
        println!("{}", expected.join("\n"));
    }
    assert_eq!(expected, actual, "timon stderr: {}", timon.stderr_tail(2000));
}

async fn jwt_session(endpoint: &str, other_key: &str) -> Vec<String> {
    enable_auth(endpoint);
    let token = authenticate(endpoint, "root", "rootpw")
        .await
        .expect("root authenticates");
    let mut log = vec![format!("parts {}", token.split('.').count())];
    log.push(format!("{:?}", range_with(endpoint, Some(&token)).await));
    log.push(format!("{:?}", put_with(endpoint, &token).await));
    let far = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() + 3600;
    log.push(format!(
        "{:?}",
        range_with(endpoint, Some(&jwt(other_key, "root", far))).await
    ));
    log.push(format!("{:?}", range_with(endpoint, Some("a.b.c")).await));
    let (code, out, err) = support::etcdctl(endpoint, &["--user=root:rootpw", "get", "k"]);
    log.push(format!(
        "etcdctl get: {code} {out:?} {}",
        err.lines().last().unwrap_or("")
    ));
    log
}

#[tokio::test(flavor = "multi_thread")]
async fn jwt_tokens_match_etcd() {
    if support::skip_without_etcd("jwt_tokens_match_etcd") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (private, public) = rsa_pair(dir.path(), "server");
    let (other, _) = rsa_pair(dir.path(), "other");
    let flag = format!("--auth-token=jwt,pub-key={public},priv-key={private},sign-method=RS256,ttl=10m");
    let etcd = support::start_cluster(support::etcd_bin(), 1, &[&flag]).remove(0);
    let timon = support::start_cluster(support::timon_bin(), 1, &[&flag]).remove(0);
    let expected = jwt_session(&etcd.endpoint(), &other).await;
    let actual = jwt_session(&timon.endpoint(), &other).await;
    if std::env::var_os("TIMON_TEST_VERBOSE").is_some() {
        println!("{}", expected.join("\n"));
    }
    assert_eq!(expected, actual, "timon stderr: {}", timon.stderr_tail(2000));
    // An expired token signed with the member's own key is refused too.
    let expired = jwt(&private, "root", 1);
    assert_eq!(
        range_with(&timon.endpoint(), Some(&expired)).await,
        Err((
            tonic::Code::Unauthenticated,
            "etcdserver: invalid auth token".to_string()
        ))
    );
    assert_eq!(
        range_with(&etcd.endpoint(), Some(&expired)).await,
        range_with(&timon.endpoint(), Some(&expired)).await
    );
}

/// A simple token made through one member works on every member at once:
/// each registers it when it applies the Authenticate entry, and a member
/// that has not applied it yet waits for it (etcd's indexWaiter).
#[tokio::test(flavor = "multi_thread")]
async fn a_simple_token_works_on_every_member() {
    let members = support::start_cluster(support::timon_bin(), 3, &[]);
    let endpoints: Vec<String> = members.iter().map(|m| m.endpoint()).collect();
    enable_auth(&endpoints[0]);
    for (i, from) in endpoints.iter().enumerate() {
        let token = authenticate(from, "root", "rootpw").await.expect("root authenticates");
        for to in &endpoints {
            assert_eq!(put_with(to, &token).await, Ok(()), "token from member {i} used at {to}");
            assert_eq!(
                range_with(to, Some(&token)).await,
                Ok(()),
                "token from member {i} used at {to}"
            );
        }
    }
}

/// timon-client logs in again once when its token is refused, as clientv3
/// does: a restarted member has forgotten every simple token.
#[tokio::test(flavor = "multi_thread")]
async fn the_client_logs_in_again_when_a_restarted_member_forgot_its_token() {
    let mut member = support::start_timon(None, &[]);
    enable_auth(&member.endpoint());
    let options = timon_client::ConnectOptions::default().with_user("root", "rootpw");
    let client = timon_client::Client::connect_with_options([member.endpoint()], options)
        .await
        .expect("connect as root");
    client.put("k", "before").await.expect("put with the first token");
    let restart = tokio::task::spawn_blocking(move || {
        member.restart();
        member
    });
    let member = restart.await.unwrap();
    client.put("k", "after").await.expect("put after the restart");
    let got = client.get("k").await.expect("get after the restart");
    assert_eq!(got.kvs[0].value, b"after");
    // Without credentials the same member refuses.
    assert_eq!(
        range_with(&member.endpoint(), None).await,
        Err((
            tonic::Code::InvalidArgument,
            "etcdserver: user name is empty".to_string()
        ))
    );
}

/// Not a check: prints how long 2000 puts from 20 concurrent clients take
/// with auth off, as root, and as a user whose permissions are checked
/// (`cargo test --test auth_tokens -- --ignored --nocapture`).
#[tokio::test(flavor = "multi_thread")]
#[ignore]
async fn measure_put_throughput_with_and_without_auth() {
    async fn run(endpoint: &str, user: Option<(&str, &str)>) -> f64 {
        let mut options = timon_client::ConnectOptions::default();
        if let Some((u, p)) = user {
            options = options.with_user(u, p);
        }
        let client = timon_client::Client::connect_with_options([endpoint], options)
            .await
            .unwrap();
        let start = std::time::Instant::now();
        let tasks: Vec<_> = (0..20)
            .map(|t| {
                let client = client.clone();
                tokio::spawn(async move {
                    for i in 0..100 {
                        client.put(format!("pre/{t}/{i}"), "v").await.unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        2000.0 / start.elapsed().as_secs_f64()
    }
    let member = support::start_timon(None, &[]);
    let ep = member.endpoint();
    let off = run(&ep, None).await;
    etcdctl_ok(&ep, &["user", "add", "alice:alicepw"]);
    etcdctl_ok(&ep, &["role", "add", "r"]);
    for i in 0..10 {
        etcdctl_ok(
            &ep,
            &["role", "grant-permission", "r", "readwrite", &format!("other{i}")],
        );
    }
    etcdctl_ok(&ep, &["role", "grant-permission", "r", "--prefix", "readwrite", "pre/"]);
    etcdctl_ok(&ep, &["user", "grant-role", "alice", "r"]);
    enable_auth(&ep);
    let root = run(&ep, Some(("root", "rootpw"))).await;
    let alice = run(&ep, Some(("alice", "alicepw"))).await;
    println!("puts/s (debug build, 1 member, 20 clients): auth off {off:.0}, root {root:.0}, user with 11 permissions {alice:.0}");
}

/// A revoke is seen at once by a linearizable read on every member: the
/// read waits for the read index, so the member has applied the revoke
/// before it checks the permission.
#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_permission_holds_on_every_member_at_once() {
    let members = support::start_cluster(support::timon_bin(), 3, &[]);
    let endpoints: Vec<String> = members.iter().map(|m| m.endpoint()).collect();
    etcdctl_ok(&endpoints[0], &["user", "add", "alice:alicepw"]);
    etcdctl_ok(&endpoints[0], &["role", "add", "r"]);
    etcdctl_ok(&endpoints[0], &["role", "grant-permission", "r", "read", "k"]);
    etcdctl_ok(&endpoints[0], &["user", "grant-role", "alice", "r"]);
    enable_auth(&endpoints[0]);
    for round in 0..3 {
        let token = authenticate(&endpoints[1], "alice", "alicepw")
            .await
            .expect("alice authenticates");
        for ep in &endpoints {
            assert_eq!(
                range_with(ep, Some(&token)).await,
                Ok(()),
                "round {round} at {ep} before the revoke"
            );
        }
        etcdctl_ok(
            &endpoints[round],
            &["--user=root:rootpw", "role", "revoke-permission", "r", "k"],
        );
        for ep in &endpoints {
            assert_eq!(
                range_with(ep, Some(&token)).await,
                Err((
                    tonic::Code::PermissionDenied,
                    "etcdserver: permission denied".to_string()
                )),
                "round {round} at {ep} after the revoke"
            );
        }
        etcdctl_ok(
            &endpoints[round],
            &["--user=root:rootpw", "role", "grant-permission", "r", "read", "k"],
        );
    }
}
