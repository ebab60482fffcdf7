//! The metrics listener (`--listen-metrics-urls`): `/health` as kubeadm's
//! probes call it, `/version`, and `/metrics` with etcd's metric names.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// A plain HTTP/1.1 GET; answers (status code, body).
fn get(port: u16, path: &str) -> (u16, String) {
    request(port, "GET", path)
}

fn request(port: u16, method: &str, path: &str) -> (u16, String) {
    request_over("HTTP/1.1", port, method, path)
}

/// A request in HTTP `version` (`HTTP/1.1` or `HTTP/1.0`) on a connection
/// closed after it; answers (status code, body).
fn request_over(version: &str, port: u16, method: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "{method} {path} {version}\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
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
    assert_eq!(get(port, "/readyz?verbose"), (200, READY.to_string()));
    members[1].kill9();
    members[2].kill9();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        // First the read fails (RANGE ERROR), then the leader is lost.
        let (code, body) = get(port, "/health");
        if code == 503 && body == "{\"health\":\"false\",\"reason\":\"RAFT NO LEADER\"}\n" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still healthy without a quorum: {code} {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Cut off from its quorum, the member is still live (etcd 3.5.13+ and
    // 3.6: kubeadm's liveness probe must not restart it) but not ready.
    assert_eq!(get(port, "/health?exclude=NOSPACE&serializable=true").0, 200);
    assert_eq!(get(port, "/livez"), (200, "ok\n".to_string()));
    let (code, body) = get(port, "/readyz");
    assert_eq!(code, 503, "{body}");
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(
        lines[..2],
        ["[+]data_corruption ok", "[+]serializable_read ok"],
        "{body}"
    );
    assert!(
        lines[2].starts_with("[-]linearizable_read failed: etcdserver: "),
        "{body}"
    );
    assert_eq!(lines[3..], ["[+]non_learner ok", ""], "{body}");
    assert_eq!(
        get(port, "/readyz?exclude=linearizable_read"),
        (200, "ok\n".to_string())
    );
    assert_eq!(
        get(port, "/readyz/non_learner?verbose"),
        (200, "[+]non_learner ok\nok\n".to_string())
    );
    assert_eq!(get(port, "/readyz/linearizable_read").0, 503);
}

const READY: &str = "[+]data_corruption ok\n[+]serializable_read ok\n[+]linearizable_read ok\n[+]non_learner ok\nok\n";

#[test]
fn livez_and_readyz_answer_as_etcd_3_6() {
    let port = support::free_port();
    let _member = support::start_timon(None, &["--listen-metrics-urls", &format!("http://127.0.0.1:{port}")]);
    assert_eq!(get(port, "/livez"), (200, "ok\n".to_string()));
    assert_eq!(
        get(port, "/livez?verbose"),
        (200, "[+]serializable_read ok\nok\n".to_string())
    );
    assert_eq!(get(port, "/readyz"), (200, "ok\n".to_string()));
    assert_eq!(get(port, "/readyz?verbose"), (200, READY.to_string()));
    assert_eq!(
        get(port, "/readyz?verbose&exclude=non_learner&exclude=no_such_check"),
        (200, READY.replace("[+]non_learner ok\n", ""))
    );
    assert_eq!(get(port, "/livez/serializable_read"), (200, "ok\n".to_string()));
    assert_eq!(get(port, "/livez/linearizable_read").0, 404);
    let (code, body) = request(port, "POST", "/readyz");
    assert_eq!((code, body.as_str()), (405, "Method Not Allowed\n"));
}

/// The metric families etcd-mixin's standard alerts read from the write
/// path (etcdHighFsyncDurations, etcdHighCommitDurations,
/// etcdHighNumberOfLeaderChanges).
const DISK_FAMILIES: [&str; 3] = [
    "etcd_disk_wal_fsync_duration_seconds",
    "etcd_disk_backend_commit_duration_seconds",
    "etcd_server_leader_changes_seen_total",
];

/// A family's lines on a metrics page without their values: HELP, TYPE and
/// each series' name and labels (a histogram's buckets).
fn shape(page: &str, family: &str) -> Vec<String> {
    page.lines()
        .filter(|l| {
            l.strip_prefix("# HELP ")
                .or_else(|| l.strip_prefix("# TYPE "))
                .unwrap_or(l)
                .strip_prefix(family)
                .is_some_and(|rest| rest.starts_with([' ', '{', '_']))
        })
        .map(|l| {
            if l.starts_with('#') {
                l.to_string()
            } else {
                l.rsplit_once(' ').map_or(l, |(series, _)| series).to_string()
            }
        })
        .collect()
}

/// The value of one series (`name` with its labels, as printed).
fn value(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// `/metrics` over HTTP/1.0, so that no server answers in chunks (etcd's
/// page is long enough for Go to chunk an HTTP/1.1 answer).
fn metrics_page(port: u16) -> (u16, String) {
    request_over("HTTP/1.0", port, "GET", "/metrics")
}

/// A member's metrics page once `ready` holds for it (checked every 100
/// ms for up to 20 s).
fn page_when(port: u16, ready: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (code, body) = metrics_page(port);
        if code == 200 && ready(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "not ready in time: {code}\n{body}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn fsync_commit_and_leader_change_metrics_are_etcds() {
    let etcd = support::start_etcd();
    let timon = support::start_timon(None, &[]);
    let mut pages = Vec::new();
    for member in [&etcd, &timon] {
        let (ok, out, err) = support::etcdctl(&member.endpoint(), &["put", "k", "v"]);
        assert!(ok, "{out}{err}");
        // A single member elects itself once; etcd commits its backend
        // every 100 ms, so its count may trail the put.
        pages.push(page_when(member.client_port(), |page| {
            value(page, "etcd_disk_wal_fsync_duration_seconds_count").is_some_and(|n| n > 0.0)
                && value(page, "etcd_disk_backend_commit_duration_seconds_count").is_some_and(|n| n > 0.0)
                && value(page, "etcd_server_leader_changes_seen_total") == Some(1.0)
        }));
    }
    for family in DISK_FAMILIES {
        let (etcd_shape, timon_shape) = (shape(&pages[0], family), shape(&pages[1], family));
        assert!(etcd_shape.len() >= 3, "{family} on etcd: {etcd_shape:?}");
        assert_eq!(timon_shape, etcd_shape, "{family}");
    }
}
