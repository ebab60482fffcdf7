//! TLS from the outside: real etcdctl 3.4 and openssl-made certificates
//! against timon members started with kubeadm's own etcd flags (both the
//! 3.4/3.5 and the 3.6 spellings), and every way a connection should be
//! refused: plain text on a TLS port, no client certificate, another CA's,
//! an expired one, a peer from another CA; bad files at start; a rotated
//! certificate picked up without a restart; auto-TLS.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{free_port, skip_without_etcd};
use timon_tls::test_pki::Pki;

/// How long a member (or a cluster) may take to elect a leader and answer
/// /health on a loaded CI machine: many times the 1 s election timeout.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A timon process, killed when dropped.
struct Proc {
    child: Child,
    log: PathBuf,
    client_port: u16,
    peer_port: u16,
    metrics_port: u16,
    data_dir: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn endpoint(&self) -> String {
        format!("https://127.0.0.1:{}", self.client_port)
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

struct Ports {
    client: u16,
    peer: u16,
    metrics: u16,
}

fn ports(n: usize) -> Vec<Ports> {
    let mut taken = Vec::new();
    while taken.len() < 3 * n {
        let p = free_port();
        if !taken.contains(&p) {
            taken.push(p);
        }
    }
    taken
        .chunks(3)
        .map(|c| Ports {
            client: c[0],
            peer: c[1],
            metrics: c[2],
        })
        .collect()
}

fn spawn(args: Vec<String>, ports: &Ports) -> Proc {
    let tmp = tempfile::Builder::new()
        .prefix("timon-tls-")
        .tempdir()
        .expect("temp dir");
    let log = tmp.path().join("stderr.log");
    let data_dir = tmp.path().join("data");
    let mut full = vec![format!("--data-dir={}", data_dir.display())];
    full.extend(args);
    let child = Command::new(env!("CARGO_BIN_EXE_timon"))
        .args(&full)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("spawn timon");
    Proc {
        child,
        log,
        client_port: ports.client,
        peer_port: ports.peer,
        metrics_port: ports.metrics,
        data_dir,
        _tmp: tmp,
    }
}

/// kubeadm's etcd flags (its static pod manifest), in etcd 3.4/3.5's
/// spelling or etcd 3.6's.
fn kubeadm_args(pki: &Pki, name: &str, p: &Ports, initial_cluster: &str, spelling_36: bool) -> Vec<String> {
    let (corrupt, progress) = if spelling_36 {
        (
            "--feature-gates=InitialCorruptCheck=true",
            "--watch-progress-notify-interval=5s",
        )
    } else {
        (
            "--experimental-initial-corrupt-check=true",
            "--experimental-watch-progress-notify-interval=5s",
        )
    };
    vec![
        format!("--advertise-client-urls=https://127.0.0.1:{}", p.client),
        format!("--cert-file={}", pki.crt("server")),
        "--client-cert-auth=true".into(),
        corrupt.into(),
        progress.into(),
        format!("--initial-advertise-peer-urls=https://127.0.0.1:{}", p.peer),
        format!("--initial-cluster={initial_cluster}"),
        format!("--key-file={}", pki.key("server")),
        format!("--listen-client-urls=https://127.0.0.1:{}", p.client),
        format!("--listen-metrics-urls=http://127.0.0.1:{}", p.metrics),
        format!("--listen-peer-urls=https://127.0.0.1:{}", p.peer),
        format!("--name={name}"),
        format!("--peer-cert-file={}", pki.crt("peer")),
        "--peer-client-cert-auth=true".into(),
        format!("--peer-key-file={}", pki.key("peer")),
        format!("--peer-trusted-ca-file={}", pki.path("ca.crt").display()),
        "--snapshot-count=10000".into(),
        format!("--trusted-ca-file={}", pki.path("ca.crt").display()),
    ]
}

/// A plain HTTP/1.0 GET: the status code and the body.
fn http_get(port: u16, path: &str) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").map_err(|e| e.to_string())?;
    let mut text = String::new();
    s.read_to_string(&mut text).map_err(|e| e.to_string())?;
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status line in {text:?}"))?;
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    Ok((code, body))
}

/// Waits until every member's metrics port answers /health with 200.
fn wait_healthy(members: &mut [Proc]) {
    let deadline = Instant::now() + READY_TIMEOUT;
    let started = Instant::now();
    for m in members.iter_mut() {
        loop {
            if let Some(status) = m.exited() {
                panic!("member exited with {status}; log:\n{}", m.log_text());
            }
            if let Ok((200, _)) = http_get(m.metrics_port, "/health") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no healthy member on metrics port {} within {READY_TIMEOUT:?}; log:\n{}",
                m.metrics_port,
                m.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    println!("{} member(s) healthy after {:?}", members.len(), started.elapsed());
}

/// etcdctl 3.4 with `tls` and `args`: (success, stdout, stderr).
fn etcdctl(endpoints: &str, tls: &[String], args: &[&str]) -> (bool, String, String) {
    let mut all = vec!["--dial-timeout=3s"];
    all.extend(tls.iter().map(String::as_str));
    all.extend(args);
    support::etcdctl(endpoints, &all)
}

/// The members of a 3-member cluster with kubeadm's flags plus `extra` on
/// each (spawned, not yet waited for): `initial` names all three.
fn kubeadm_members(pki: &Pki, ps: &[Ports], which: std::ops::Range<usize>, extra: &[String]) -> Vec<Proc> {
    let initial = (0..ps.len())
        .map(|i| format!("m{i}=https://127.0.0.1:{}", ps[i].peer))
        .collect::<Vec<_>>()
        .join(",");
    which
        .map(|i| {
            let mut args = kubeadm_args(pki, &format!("m{i}"), &ps[i], &initial, false);
            args.extend(extra.iter().cloned());
            spawn(args, &ps[i])
        })
        .collect()
}

fn client_tls(pki: &Pki, cert: &str) -> Vec<String> {
    vec![
        format!("--cacert={}", pki.path("ca.crt").display()),
        format!("--cert={}", pki.crt(cert)),
        format!("--key={}", pki.key(cert)),
    ]
}

fn kubeadm_cluster(spelling_36: bool) {
    if skip_without_etcd("kubeadm_cluster") {
        return;
    }
    let pki = Pki::new();
    let ps = ports(3);
    let initial = (0..3)
        .map(|i| format!("m{i}=https://127.0.0.1:{}", ps[i].peer))
        .collect::<Vec<_>>()
        .join(",");
    let mut members: Vec<Proc> = (0..3)
        .map(|i| {
            spawn(
                kubeadm_args(&pki, &format!("m{i}"), &ps[i], &initial, spelling_36),
                &ps[i],
            )
        })
        .collect();
    wait_healthy(&mut members);
    let tls = client_tls(&pki, "client");
    for (i, m) in members.iter().enumerate() {
        let (ok, out, err) = etcdctl(&m.endpoint(), &tls, &["put", &format!("k{i}"), &format!("v{i}")]);
        assert!(
            ok && out.trim() == "OK",
            "put on m{i}: {out} {err}\nlog:\n{}",
            m.log_text()
        );
    }
    for m in &members {
        for i in 0..3 {
            let (ok, out, err) = etcdctl(&m.endpoint(), &tls, &["get", &format!("k{i}")]);
            assert!(ok, "get on {}: {err}", m.endpoint());
            assert_eq!(out, format!("k{i}\nv{i}\n"));
        }
    }
    let (ok, out, err) = etcdctl(&members[0].endpoint(), &tls, &["endpoint", "health", "--cluster"]);
    assert!(ok, "endpoint health --cluster: {out} {err}");
    // etcdctl 3.4 prints the health lines on stderr.
    let report = format!("{out}{err}");
    for m in &members {
        let line = format!("{} is healthy", m.endpoint());
        assert!(report.contains(&line), "{line:?} missing from:\n{report}");
    }
    // The client port serves the HTTP endpoints over the same TLS, with
    // HTTP/2 and HTTP/1.1 (ALPN), as etcd's does.
    for http in ["--http1.1", "--http2"] {
        let out = Command::new("curl")
            .args(["-sS", http, "--cacert", &pki.path("ca.crt").display().to_string()])
            .args(["--cert", &pki.crt("client"), "--key", &pki.key("client")])
            .arg(format!("{}/health", members[0].endpoint()))
            .output()
            .expect("run curl");
        let body = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && body.contains(r#""health":"true""#),
            "curl {http}: {body} {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for m in &members {
        let (code, body) = http_get(m.metrics_port, "/health?exclude=NOSPACE&serializable=true").unwrap();
        assert_eq!(code, 200, "{body}");
        assert!(body.contains(r#""health":"true""#), "{body}");
        // kubeadm's initial corruption check ran, in either spelling.
        let log = m.log_text();
        assert!(
            log.contains("initial corruption checking passed; no corruption"),
            "{log}"
        );
        assert!(
            !log.contains("corrupt-check is accepted") && !log.contains("InitialCorruptCheck is accepted"),
            "{log}"
        );
    }
}

#[test]
fn kubeadm_flags_start_a_mutual_tls_cluster_etcdctl_uses() {
    kubeadm_cluster(false);
}

#[test]
fn kubeadm_flags_in_etcd_36_spelling_start_the_same_cluster() {
    kubeadm_cluster(true);
}

/// One member with kubeadm's client-side TLS (client certificates required).
fn single(pki: &Pki, extra: &[String]) -> Proc {
    let p = &ports(1)[0];
    let mut args = kubeadm_args(pki, "m0", p, &format!("m0=https://127.0.0.1:{}", p.peer), false);
    args.extend(extra.iter().cloned());
    let mut m = spawn(args, p);
    wait_healthy(std::slice::from_mut(&mut m));
    m
}

fn assert_serves(m: &Proc, pki: &Pki, key: &str) {
    let (ok, out, err) = etcdctl(&m.endpoint(), &client_tls(pki, "client"), &["put", key, "v"]);
    assert!(ok && out.trim() == "OK", "put {key}: {out} {err}");
}

#[test]
fn connections_without_a_valid_client_certificate_are_refused_and_the_member_keeps_serving() {
    if skip_without_etcd("tls refusals") {
        return;
    }
    let pki = Pki::new();
    let m = single(&pki, &[]);
    // A plain-text client that connects and never speaks TLS: held open
    // through every other case, it must not block anyone.
    let mut idle = TcpStream::connect(("127.0.0.1", m.client_port)).unwrap();
    idle.write_all(b"hello, no TLS here\r\n").unwrap();
    assert_serves(&m, &pki, "after-idle");

    let plain = format!("http://127.0.0.1:{}", m.client_port);
    let (ok, _, _) = etcdctl(&plain, &[], &["get", "k"]);
    assert!(!ok, "a plain-text client got an answer from a TLS port");
    assert_serves(&m, &pki, "after-plain");

    let only_ca = vec![format!("--cacert={}", pki.path("ca.crt").display())];
    let cases = [
        ("no client certificate", only_ca),
        ("another CA's client certificate", client_tls(&pki, "foreign-client")),
        ("an expired client certificate", client_tls(&pki, "expired-client")),
    ];
    for (what, tls) in cases {
        let (ok, out, _) = etcdctl(&m.endpoint(), &tls, &["put", "k", "v"]);
        assert!(!ok, "{what}: accepted ({out})");
        assert_serves(&m, &pki, "after-refusal");
    }
    let (ok, out, _) = etcdctl(&m.endpoint(), &client_tls(&pki, "client"), &["get", "k"]);
    assert!(ok && out.is_empty(), "a refused put was applied: {out}");
    let log = m.log_text();
    assert!(log.contains("TLS handshake error"), "refusals are not logged:\n{log}");
}

#[test]
fn unreadable_or_mismatched_certificate_files_stop_start_up_naming_the_file() {
    let pki = Pki::new();
    let p = &ports(1)[0];
    let missing = pki.path("no-such.crt").display().to_string();
    let cases = [
        (vec![format!("--cert-file={missing}")], missing.clone()),
        // The key of another certificate.
        (vec![format!("--key-file={}", pki.key("peer"))], pki.key("peer")),
        (vec![format!("--trusted-ca-file={}", pki.key("ca"))], pki.key("ca")),
    ];
    for (override_args, named) in cases {
        let mut args = kubeadm_args(&pki, "m0", p, &format!("m0=https://127.0.0.1:{}", p.peer), false);
        args.extend(override_args);
        let mut m = spawn(args, p);
        let deadline = Instant::now() + READY_TIMEOUT;
        let status = loop {
            if let Some(s) = m.exited() {
                break s;
            }
            assert!(Instant::now() < deadline, "timon kept running with {named}");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(!status.success());
        let log = m.log_text();
        assert!(log.contains(&named), "the error does not name {named}:\n{log}");
    }
}

#[test]
fn a_peer_whose_certificate_is_from_another_ca_is_refused_and_the_others_serve() {
    if skip_without_etcd("bad peer") {
        return;
    }
    let pki = Pki::new();
    let ps = ports(3);
    let mut good = kubeadm_members(&pki, &ps, 0..2, &[]);
    let foreign = [
        format!("--peer-cert-file={}", pki.crt("foreign-peer")),
        format!("--peer-key-file={}", pki.key("foreign-peer")),
    ];
    let mut bad = kubeadm_members(&pki, &ps, 2..3, &foreign).remove(0);
    wait_healthy(&mut good);
    for m in &good {
        assert_serves(m, &pki, "k");
    }
    // The bad member never hears from a leader.
    let (code, _) = http_get(bad.metrics_port, "/health").unwrap_or((0, String::new()));
    assert_ne!(code, 200, "a member with another CA's peer certificate joined");
    assert!(bad.exited().is_none() || bad.log_text().contains("handshake"));
    let deadline = Instant::now() + READY_TIMEOUT;
    while !good.iter().any(|m| m.log_text().contains("TLS handshake error")) {
        assert!(Instant::now() < deadline, "no member logged the refused peer");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_rotated_server_certificate_is_served_without_a_restart() {
    if skip_without_etcd("rotation") {
        return;
    }
    let pki = Pki::new();
    // The member serves copies, so the test can overwrite them.
    let (cert, key) = (pki.path("live.crt"), pki.path("live.key"));
    std::fs::copy(pki.path("server.crt"), &cert).unwrap();
    std::fs::copy(pki.path("server.key"), &key).unwrap();
    let m = single(
        &pki,
        &[
            format!("--cert-file={}", cert.display()),
            format!("--key-file={}", key.display()),
        ],
    );
    assert_serves(&m, &pki, "before");
    // A new certificate from the other CA: clients that trust only the
    // other CA can connect once the member serves it.
    pki.leaf("rotated", "other-ca", "kube-etcd", true, 365).unwrap();
    std::fs::copy(pki.path("rotated.key"), &key).unwrap();
    std::fs::copy(pki.path("rotated.crt"), &cert).unwrap();
    let other = vec![
        format!("--cacert={}", pki.path("other-ca.crt").display()),
        format!("--cert={}", pki.crt("client")),
        format!("--key={}", pki.key("client")),
    ];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (ok, _, err) = etcdctl(&m.endpoint(), &other, &["put", "after", "v"]);
        if ok {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "rotated certificate not served: {err}\n{}",
            m.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (ok, _, _) = etcdctl(&m.endpoint(), &client_tls(&pki, "client"), &["get", "after"]);
    assert!(!ok, "the old CA still verifies the rotated certificate");
}

#[test]
fn auto_tls_writes_a_self_signed_certificate_under_the_data_dir() {
    if skip_without_etcd("auto-tls") {
        return;
    }
    let p = &ports(1)[0];
    let args = vec![
        "--name=m0".to_string(),
        "--auto-tls".into(),
        format!("--listen-client-urls=https://127.0.0.1:{}", p.client),
        format!("--advertise-client-urls=https://127.0.0.1:{}", p.client),
        format!("--listen-peer-urls=http://127.0.0.1:{}", p.peer),
        format!("--initial-advertise-peer-urls=http://127.0.0.1:{}", p.peer),
        format!("--initial-cluster=m0=http://127.0.0.1:{}", p.peer),
        format!("--listen-metrics-urls=http://127.0.0.1:{}", p.metrics),
    ];
    let mut m = spawn(args, p);
    wait_healthy(std::slice::from_mut(&mut m));
    let fixtures: &Path = &m.data_dir.join("fixtures/client");
    assert!(fixtures.join("cert.pem").exists() && fixtures.join("key.pem").exists());
    let insecure = vec![
        "--insecure-transport=false".to_string(),
        "--insecure-skip-tls-verify".into(),
    ];
    let (ok, out, err) = etcdctl(&m.endpoint(), &insecure, &["put", "k", "v"]);
    assert!(ok && out.trim() == "OK", "{out} {err}");
    // Verifying against a CA that did not sign it fails.
    let pki = Pki::new();
    let strict = vec![format!("--cacert={}", pki.path("ca.crt").display())];
    let (ok, _, _) = etcdctl(&m.endpoint(), &strict, &["get", "k"]);
    assert!(!ok, "a self-signed certificate verified against an unrelated CA");
    let _ = m.peer_port;
}

#[test]
fn peers_outside_the_allowed_common_names_are_refused() {
    let pki = Pki::new();
    let ps = ports(3);
    let start = |allowed: &str| kubeadm_members(&pki, &ps, 0..3, &[format!("--peer-cert-allowed-cn={allowed}")]);
    let refused = start("someone-else,another");
    let deadline = Instant::now() + READY_TIMEOUT;
    while !refused
        .iter()
        .any(|m| m.log_text().contains("client certificate authentication failed"))
    {
        assert!(
            Instant::now() < deadline,
            "no member refused a peer outside the allowed CNs"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for m in &refused {
        let (code, _) = http_get(m.metrics_port, "/health").unwrap_or((0, String::new()));
        assert_ne!(code, 200, "a cluster formed although every peer CN is refused");
    }
    drop(refused);
    let mut allowed = start("someone-else,kube-etcd-peer");
    wait_healthy(&mut allowed);
}

#[test]
fn http_and_https_urls_on_one_port_serve_both_and_unix_sockets_serve_etcdctl() {
    if skip_without_etcd("mixed listeners") {
        return;
    }
    let pki = Pki::new();
    let p = &ports(1)[0];
    let sock_dir = tempfile::tempdir().unwrap();
    let sock = sock_dir.path().join("timon.sock");
    let unix = format!("unix://{}", sock.display());
    let args = vec![
        "--name=m0".to_string(),
        format!(
            "--listen-client-urls=http://127.0.0.1:{0},https://127.0.0.1:{0},{unix}",
            p.client
        ),
        format!("--advertise-client-urls=https://127.0.0.1:{}", p.client),
        format!("--listen-peer-urls=http://127.0.0.1:{}", p.peer),
        format!("--initial-advertise-peer-urls=http://127.0.0.1:{}", p.peer),
        format!("--initial-cluster=m0=http://127.0.0.1:{}", p.peer),
        format!("--listen-metrics-urls=http://127.0.0.1:{}", p.metrics),
        format!("--cert-file={}", pki.crt("server")),
        format!("--key-file={}", pki.key("server")),
        format!("--trusted-ca-file={}", pki.path("ca.crt").display()),
        "--client-cert-auth=true".into(),
    ];
    let mut m = spawn(args, p);
    wait_healthy(std::slice::from_mut(&mut m));
    let plain = format!("http://127.0.0.1:{}", m.client_port);
    let (ok, out, err) = etcdctl(&plain, &[], &["put", "plain", "1"]);
    assert!(ok && out.trim() == "OK", "plain text on the shared port: {out} {err}");
    let (ok, out, err) = etcdctl(&m.endpoint(), &client_tls(&pki, "client"), &["get", "plain"]);
    assert!(ok && out == "plain\n1\n", "TLS on the shared port: {out} {err}");
    let (ok, out, err) = etcdctl(&unix, &[], &["get", "plain"]);
    assert!(ok && out == "plain\n1\n", "unix socket: {out} {err}");
    // A clean stop (SIGTERM) removes the socket file, as etcd's does.
    let status = Command::new("kill")
        .args(["-TERM", &m.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + READY_TIMEOUT;
    while m.exited().is_none() {
        assert!(Instant::now() < deadline, "timon did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!sock.exists(), "the unix socket file outlived the member");
}
