//! The gateway's transports and switches: over mutual TLS against etcd
//! (and etcd's refusal of a certificate's common name with auth on), off
//! with `--enable-grpc-gateway=false`, and a client that goes away in the
//! middle of a watch stream.

mod support;

use serde_json::Value;
use support::http::{b64, request, same_line, send, Lines, Pair, Target};

/// timon's `etcd_debugging_mvcc_watcher_total`, read from /metrics on the
/// client port.
async fn watchers(target: &Target) -> u64 {
    let (status, text) = request(target, "GET", "/metrics", "", &[]).await;
    assert_eq!(status, 200, "{text}");
    text.lines()
        .find_map(|l| l.strip_prefix("etcd_debugging_mvcc_watcher_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
        .unwrap_or_else(|| panic!("no watcher gauge in /metrics"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_drops_a_watch_stream_frees_its_watchers() {
    let timon = support::start_timon(None, &[]);
    let target = Target {
        port: timon.client_port(),
        tls: None,
    };
    let body = format!(
        r#"{{"create_request":{{"key":"{}"}}}} {{"create_request":{{"key":"{}"}}}}"#,
        b64("a"),
        b64("b")
    );
    let mut stream = Lines::new(send(&target, "POST", "/v3/watch", &body, &[]).await);
    for _ in 0..2 {
        let line = stream.next().await.expect("a created response");
        assert!(line.contains(r#""created":true"#), "{line}");
    }
    assert_eq!(watchers(&target).await, 2);
    drop(stream);
    // The server notices the closed connection; 5 s is far above the time
    // it takes (one poll of the connection).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let n = watchers(&target).await;
        if n == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{n} watchers left after the client went away"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A single member serving its client URL over mutual TLS (the test PKI's
/// server certificate), killed on drop.
struct TlsMember {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for TlsMember {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_tls_member(program: &std::path::Path, pki: &timon_tls::test_pki::Pki) -> TlsMember {
    let dir = tempfile::Builder::new()
        .prefix("timon-gw-tls-")
        .tempdir()
        .expect("temp dir");
    let (client, peer) = (support::free_port(), support::free_port());
    let client_url = format!("https://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let args = [
        "--name=m0".to_string(),
        format!("--data-dir={}", dir.path().join("data").display()),
        format!("--listen-client-urls={client_url}"),
        format!("--advertise-client-urls={client_url}"),
        format!("--listen-peer-urls={peer_url}"),
        format!("--initial-advertise-peer-urls={peer_url}"),
        format!("--initial-cluster=m0={peer_url}"),
        format!("--cert-file={}", pki.crt("server")),
        format!("--key-file={}", pki.key("server")),
        format!("--trusted-ca-file={}", pki.path("ca.crt").display()),
        "--client-cert-auth=true".to_string(),
    ];
    let log = std::fs::File::create(dir.path().join("stderr.log")).expect("log file");
    let child = std::process::Command::new(program)
        .args(&args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", program.display()));
    TlsMember {
        child,
        port: client,
        _dir: dir,
    }
}

/// Waits until the member's gateway answers a Status that names a leader.
async fn await_leader(target: &Target) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if let Ok(mut a) = support::http::try_send(target, "POST", "/v3/maintenance/status", "{}", &[]).await {
            use http_body_util::BodyExt;
            let body = (&mut a.body).collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            if a.status == 200 && String::from_utf8_lossy(&body).contains(r#""leader":"#) {
                return;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no leader over TLS on port {}",
            target.port
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_over_tls_answers_as_etcd_does() {
    if support::skip_without_etcd("gateway over TLS") {
        return;
    }
    let pki = timon_tls::test_pki::Pki::new();
    let etcd = start_tls_member(&support::etcd_bin(), &pki);
    let timon = start_tls_member(std::path::Path::new(env!("CARGO_BIN_EXE_timon")), &pki);
    // HTTP/1.1 over TLS, as curl --cacert --cert --key speaks it.
    let mut config = (*pki.client_tls().config().expect("client TLS config")).clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let config = std::sync::Arc::new(config);
    let pair = Pair {
        etcd: Target {
            port: etcd.port,
            tls: Some(config.clone()),
        },
        timon: Target {
            port: timon.port,
            tls: Some(config),
        },
    };
    await_leader(&pair.etcd).await;
    await_leader(&pair.timon).await;
    let (k, v) = (b64("tls"), b64("yes"));
    pair.same("/v3/kv/put", &format!(r#"{{"key":"{k}","value":"{v}"}}"#))
        .await;
    pair.same("/v3/kv/range", &format!(r#"{{"key":"{k}"}}"#)).await;
    pair.same("/v3/kv/range", r#"{"key":"!"}"#).await;
    let mut s = pair
        .open_stream(
            "/v3/watch",
            &format!(r#"{{"create_request":{{"key":"{k}","start_revision":"1"}}}}"#),
        )
        .await;
    same_line(&mut s, "created over TLS").await;
    same_line(&mut s, "history over TLS").await;
    drop(s);
    // With auth on, etcd refuses gateway requests from a certificate with a
    // common name (--client-cert-auth): its gateway could not pass it on.
    pair.same("/v3/auth/user/add", r#"{"name":"root","password":"pw"}"#)
        .await;
    pair.same("/v3/auth/user/grant", r#"{"user":"root","role":"root"}"#)
        .await;
    pair.same("/v3/auth/enable", "{}").await;
    pair.same("/v3/kv/range", &format!(r#"{{"key":"{k}"}}"#)).await;
    pair.same("/v3beta/auth/authenticate", r#"{"name":"root","password":"pw"}"#)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enable_grpc_gateway_false_turns_the_gateway_off() {
    if support::skip_without_etcd("gateway off") {
        return;
    }
    let flags = ["--enable-grpc-gateway=false"];
    let etcd = support::start_member(support::etcd_bin(), &flags);
    let timon = support::start_timon(None, &flags);
    let pair = Pair::plain(&etcd, &timon);
    let body = pair.same("/v3/kv/range", &format!(r#"{{"key":"{}"}}"#, b64("k"))).await;
    assert_eq!(body, Value::String("404 page not found\n".into()));
    pair.same("/v3beta/watch", "{}").await;
}
