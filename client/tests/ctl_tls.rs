//! timonctl over TLS, side by side with etcdctl 3.4: a server (etcd by
//! default, or `$TIMON_CLUSTER_SERVER`) with mutual TLS on its client port;
//! `--cacert --cert --key` and `--insecure-skip-tls-verify` work and print
//! what etcdctl prints; a client without a certificate is refused by both.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::ctl::{run, TIMONCTL};
use common::{etcd_available, free_port, ETCDCTL};
use timon_client::ClientTls;
use timon_tls::test_pki::Pki;

/// The server process (killed on drop) and its data dir (removed after).
struct Server(Child, #[allow(dead_code)] tempfile::TempDir);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn server_binary() -> String {
    std::env::var("TIMON_CLUSTER_SERVER").unwrap_or_else(|_| common::ETCD.to_owned())
}

fn start(pki: &Pki) -> (Server, String) {
    let (client, peer) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!("https://127.0.0.1:{client}");
    let child = Command::new(server_binary())
        .env_remove("ETCDCTL_API")
        .args(["--name", "m0", "--data-dir"])
        .arg(dir.path().join("data"))
        .args(["--listen-client-urls", &endpoint, "--advertise-client-urls", &endpoint])
        .args(["--listen-peer-urls", &format!("http://127.0.0.1:{peer}")])
        .args(["--initial-advertise-peer-urls", &format!("http://127.0.0.1:{peer}")])
        .args(["--initial-cluster", &format!("m0=http://127.0.0.1:{peer}")])
        .arg(format!("--cert-file={}", pki.crt("server")))
        .arg(format!("--key-file={}", pki.key("server")))
        .arg(format!("--trusted-ca-file={}", pki.path("ca.crt").display()))
        .arg("--client-cert-auth=true")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the server");
    (Server(child, dir), endpoint)
}

fn tls_args(pki: &Pki) -> Vec<String> {
    vec![
        format!("--cacert={}", pki.path("ca.crt").display()),
        format!("--cert={}", pki.crt("client")),
        format!("--key={}", pki.key("client")),
    ]
}

#[test]
fn timonctl_speaks_tls_as_etcdctl_does() {
    if !etcd_available() {
        return;
    }
    let pki = Pki::new();
    let (_server, endpoint) = start(&pki);
    let tls = tls_args(&pki);
    let args =
        |extra: &[&str]| -> Vec<String> { tls.iter().cloned().chain(extra.iter().map(|s| s.to_string())).collect() };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = run(TIMONCTL, &endpoint, &as_refs(&args(&["put", "ready", "1"])), None);
        if out.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "server not ready: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Commands that change nothing the next one prints, so both clients
    // run each on the same server.
    for cmd in [
        &["put", "k", "v"][..],
        &["get", "k"],
        &["get", "", "--prefix", "-w", "json"],
    ] {
        let ours = run(TIMONCTL, &endpoint, &as_refs(&args(cmd)), None);
        let theirs = run(ETCDCTL, &endpoint, &as_refs(&args(cmd)), None);
        assert!(
            ours.status.success(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&ours.stderr)
        );
        let (o, t) = (
            String::from_utf8_lossy(&ours.stdout),
            String::from_utf8_lossy(&theirs.stdout),
        );
        if cmd.contains(&"json") {
            // Revisions and raft terms agree; the member and cluster IDs of two
            // processes may not be printed in the same key order: compare values.
            let (o, t): (serde_json::Value, serde_json::Value) =
                (serde_json::from_str(&o).unwrap(), serde_json::from_str(&t).unwrap());
            assert_eq!(o["kvs"], t["kvs"], "{cmd:?}");
        } else {
            assert_eq!(o, t, "{cmd:?}");
        }
    }
    let out = run(TIMONCTL, &endpoint, &as_refs(&args(&["del", "k"])), None);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1\n");
    // Any server certificate, but still the client certificate the server requires.
    let skip = [
        "--insecure-skip-tls-verify".to_string(),
        format!("--cert={}", pki.crt("client")),
        format!("--key={}", pki.key("client")),
        "get".into(),
        "ready".into(),
    ];
    let out = run(TIMONCTL, &endpoint, &as_refs(&skip), None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ready\n1\n");
    // No client certificate: refused by the server, for both clients.
    let only_ca = [
        format!("--cacert={}", pki.path("ca.crt").display()),
        "get".into(),
        "ready".into(),
    ];
    for bin in [TIMONCTL, ETCDCTL] {
        let out = run(bin, &endpoint, &as_refs(&only_ca), None);
        assert!(
            !out.status.success(),
            "{bin} got an answer without a client certificate"
        );
    }
    // A missing CA file is named.
    let missing = ["--cacert=/no/such/ca.crt", "get", "ready"];
    let out = run(TIMONCTL, &endpoint, &missing, None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/ca.crt"));
}

#[tokio::test]
async fn the_client_library_dials_tls_endpoints_with_its_options() {
    if !etcd_available() {
        return;
    }
    let pki = Pki::new();
    let (_server, endpoint) = start(&pki);
    let options = timon_client::ConnectOptions::default().with_tls(ClientTls {
        ca_file: Some(pki.path("ca.crt")),
        cert_file: Some(pki.path("client.crt")),
        key_file: Some(pki.path("client.key")),
        insecure_skip_verify: false,
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let client = loop {
        match timon_client::Client::connect_with_options([endpoint.as_str()], options.clone()).await {
            Ok(c) => match c.put("k", "v").await {
                Ok(_) => break c,
                Err(e) => assert!(Instant::now() < deadline, "{e}"),
            },
            Err(e) => assert!(Instant::now() < deadline, "{e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let got = client.get("k").await.unwrap();
    assert_eq!(got.kvs[0].value, b"v");
}

fn as_refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn timonctl_dials_unix_sockets_as_etcdctl_does() {
    if !etcd_available() {
        return;
    }
    let (client, peer) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    // etcd 3.4 takes only `unix://host:port`: the socket file `host:port`
    // in the working directory.
    let sock = format!("unix://localhost:{}", free_port());
    let tcp = format!("http://127.0.0.1:{client}");
    let child = Command::new(server_binary())
        .current_dir(dir.path())
        .args(["--name", "m0", "--data-dir"])
        .arg(dir.path().join("data"))
        .args([
            "--listen-client-urls",
            &format!("{tcp},{sock}"),
            "--advertise-client-urls",
            &tcp,
        ])
        .args(["--listen-peer-urls", &format!("http://127.0.0.1:{peer}")])
        .args(["--initial-advertise-peer-urls", &format!("http://127.0.0.1:{peer}")])
        .args(["--initial-cluster", &format!("m0=http://127.0.0.1:{peer}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the server");
    let _server = Server(child, tempfile::tempdir().unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    let in_dir = |bin: &str, args: &[&str]| {
        Command::new(bin)
            .current_dir(dir.path())
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={sock}"))
            .args(args)
            .output()
            .expect("run the client")
    };
    while !in_dir(ETCDCTL, &["put", "k", "v"]).status.success() {
        assert!(Instant::now() < deadline, "server not ready on {sock}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let ours = in_dir(TIMONCTL, &["get", "k"]);
    let theirs = in_dir(ETCDCTL, &["get", "k"]);
    assert!(ours.status.success(), "{}", String::from_utf8_lossy(&ours.stderr));
    assert_eq!(ours.stdout, theirs.stdout);
    assert_eq!(String::from_utf8_lossy(&ours.stdout), "k\nv\n");
}
