//! The metrics listener (`--listen-metrics-urls`): `/health` as kubeadm's
//! probes call it, `/version`, and `/metrics` with etcd's metric names.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// A plain HTTP/1.1 GET; answers (status code, body).
fn get(port: u16, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let status = raw.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = raw.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_string();
    (status, body)
}

#[test]
fn health_version_and_metrics_are_served() {
    let port = support::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let member = support::start_timon(None, &["--listen-metrics-urls", &url]);
    let (code, body) = get(port, "/health");
    assert_eq!((code, body.as_str()), (200, r#"{"health":"true","reason":""}"#));
    // kubeadm's probe.
    let (code, _) = get(port, "/health?exclude=NOSPACE&serializable=true");
    assert_eq!(code, 200);
    let (code, body) = get(port, "/version");
    assert_eq!(
        (code, body.as_str()),
        (200, r#"{"etcdserver":"3.6.0","etcdcluster":"3.6.0"}"#)
    );
    let (code, body) = get(port, "/metrics");
    assert_eq!(code, 200);
    for line in [
        "etcd_server_has_leader 1",
        "etcd_server_is_leader 1",
        "etcd_server_version{server_version=\"3.6.0\"} 1",
    ] {
        assert!(body.lines().any(|l| l == line), "missing {line:?} in:\n{body}");
    }
    assert!(body.contains("etcd_mvcc_db_total_size_in_bytes "));
    assert_eq!(get(port, "/nope").0, 404);
    // The same endpoints over plain HTTP on the client URL, next to gRPC.
    let (code, body) = get(member.client_port(), "/health");
    assert_eq!((code, body.as_str()), (200, r#"{"health":"true","reason":""}"#));
    let (code, body) = get(member.client_port(), "/metrics");
    assert!(
        code == 200 && body.contains("etcd_server_has_leader 1"),
        "{code} {body}"
    );
    drop(member);
}

#[test]
fn health_fails_without_a_leader() {
    let mut members = support::start_cluster(support::timon_bin(), 3, &[]);
    // Restart member 0 with a metrics listener, then take its quorum away.
    let port = support::free_port();
    members[0].kill9();
    members[0].add_args(&["--listen-metrics-urls", &format!("http://127.0.0.1:{port}")]);
    members[0].respawn();
    members[0].await_ready();
    assert_eq!(get(port, "/health").0, 200);
    members[1].kill9();
    members[2].kill9();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (code, body) = get(port, "/health?serializable=true");
        if code == 503 {
            assert_eq!(body, r#"{"health":"false","reason":"RAFT NO LEADER"}"#);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still healthy without a quorum: {code} {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
