//! Backups in etcd's format, both ways (issue 13): a snapshot saved from
//! real etcd 3.4 restores into a timon cluster with `timonctl snapshot
//! restore`, and a snapshot saved from a timon cluster with etcdctl
//! restores into real etcd 3.5.1 with etcdutl. Both compare every key at
//! its revisions (create, mod, version), leases and users.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use support::*;

const ROOT: &str = "--user=root:rootpw";

/// Runs etcdctl 3.4 and insists on success; answers stdout.
fn ctl(endpoint: &str, args: &[&str]) -> String {
    let (ok, out, err) = etcdctl(endpoint, args);
    assert!(ok, "etcdctl {args:?} against {endpoint} failed: {err}");
    out
}

fn run(program: &Path, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .env_remove("ETCDCTL_ENDPOINTS")
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", program.display()))
}

/// Every key with its revisions and lease, and the header's revision, as a
/// serializable read of one member sees them.
fn dump(endpoint: &str, auth: &[&str]) -> (Value, i64) {
    let mut args = auth.to_vec();
    args.extend(["get", "", "--from-key", "-w", "json", "--consistency=s"]);
    let v: Value = serde_json::from_str(&ctl(endpoint, &args)).expect("etcdctl json");
    (v["kvs"].clone(), v["header"]["revision"].as_i64().expect("revision"))
}

/// Fills a store: overwrites, deletes, two leases (one with two keys), a
/// compaction; answers the lease IDs (hex) and the compacted revision.
fn populate(endpoint: &str) -> (Vec<String>, i64) {
    for i in 0..60 {
        ctl(endpoint, &["put", &format!("k{i:03}"), &format!("value {i}")]);
    }
    ctl(endpoint, &["put", "k001", "overwritten"]);
    ctl(endpoint, &["del", "k002"]);
    let compact_at = 30;
    let mut leases = Vec::new();
    for ttl in ["600", "900"] {
        let out = ctl(endpoint, &["lease", "grant", ttl]);
        let id = out.split_whitespace().nth(1).expect("lease id").to_string();
        leases.push(id);
    }
    ctl(endpoint, &["put", "leased/a", "x", &format!("--lease={}", leases[0])]);
    ctl(endpoint, &["put", "leased/b", "y", &format!("--lease={}", leases[1])]);
    ctl(endpoint, &["put", "leased/c", "z", &format!("--lease={}", leases[1])]);
    ctl(endpoint, &["compact", &compact_at.to_string()]);
    ctl(endpoint, &["put", "k003", "after the compaction"]);
    (leases, compact_at)
}

fn granted_ttl(endpoint: &str, auth: &[&str], id: &str) -> (i64, Vec<String>) {
    let mut args = auth.to_vec();
    args.extend(["lease", "timetolive", id, "--keys", "-w", "json"]);
    let v: Value = serde_json::from_str(&ctl(endpoint, &args)).expect("json");
    let mut keys: Vec<String> = v["keys"]
        .as_array()
        .map(|ks| ks.iter().map(|k| k.as_str().unwrap_or_default().to_string()).collect())
        .unwrap_or_default();
    // etcd lists a lease's keys in its map's (random) order.
    keys.sort();
    (v["granted-ttl"].as_i64().unwrap_or(-1), keys)
}

#[test]
fn etcd34_snapshot_restores_into_a_three_member_timon_cluster() {
    if skip_without_etcd("etcd34_snapshot_restores_into_a_three_member_timon_cluster") {
        return;
    }
    let etcd = start_etcd();
    let ep = etcd.endpoint();
    let (leases, compact_at) = populate(&ep);
    ctl(&ep, &["user", "add", "root:rootpw"]);
    ctl(&ep, &["role", "add", "root"]);
    ctl(&ep, &["user", "grant-role", "root", "root"]);
    ctl(&ep, &["role", "add", "reader"]);
    ctl(&ep, &["role", "grant-permission", "reader", "read", "k", "--prefix"]);
    ctl(&ep, &["user", "add", "alice:alicepw"]);
    ctl(&ep, &["user", "grant-role", "alice", "reader"]);
    ctl(&ep, &["auth", "enable"]);

    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("etcd34.db");
    let file_s = file.to_str().unwrap();
    ctl(&ep, &[ROOT, "snapshot", "save", file_s]);
    let (want_kvs, want_rev) = dump(&ep, &[ROOT]);
    let want_ttls: Vec<_> = leases.iter().map(|id| granted_ttl(&ep, &[ROOT], id)).collect();
    let want_role = ctl(&ep, &[ROOT, "role", "get", "reader"]);
    drop(etcd);

    let ports = free_port_pairs(3);
    let token = "restored-from-etcd";
    let dirs: Vec<PathBuf> = (0..3).map(|i| tmp.path().join(format!("m{i}"))).collect();
    for (i, dir) in dirs.iter().enumerate() {
        let out = run(
            &timonctl_bin(),
            &[
                "snapshot",
                "restore",
                file_s,
                "--name",
                &format!("m{i}"),
                "--data-dir",
                dir.to_str().unwrap(),
                "--initial-cluster",
                &initial_cluster(&ports),
                "--initial-cluster-token",
                token,
                "--initial-advertise-peer-urls",
                &format!("http://127.0.0.1:{}", ports[i].1),
            ],
        );
        assert!(
            out.status.success(),
            "restore: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let members = start_cluster_in(timon_bin(), &dirs, &ports, &["--initial-cluster-token", token]);

    for m in &members {
        let ep = m.endpoint();
        let (kvs, rev) = dump(&ep, &[ROOT]);
        assert_eq!(kvs, want_kvs, "keys on {ep}");
        assert_eq!(rev, want_rev, "revision on {ep}");
        let (ok, _, err) = etcdctl(&ep, &[ROOT, "get", "k010", &format!("--rev={}", compact_at - 1)]);
        assert!(!ok && err.contains("required revision has been compacted"), "{err}");
        let ttls: Vec<_> = leases.iter().map(|id| granted_ttl(&ep, &[ROOT], id)).collect();
        assert_eq!(ttls, want_ttls, "leases on {ep}");
        assert_eq!(ctl(&ep, &[ROOT, "user", "list"]), "alice\nroot\n");
        assert_eq!(ctl(&ep, &[ROOT, "role", "get", "reader"]), want_role);
        // Auth stayed on: alice reads her prefix, nobody reads without a user.
        assert!(ctl(&ep, &["--user=alice:alicepw", "get", "k005"]).contains("value 5"));
        let (ok, _, err) = etcdctl(&ep, &["get", "k005"]);
        assert!(!ok && err.contains("user name is empty"), "{err}");
    }
    // The restored cluster serves writes, at the next revision, everywhere.
    let v: Value = serde_json::from_str(&ctl(
        &members[0].endpoint(),
        &[ROOT, "put", "after", "restore", "-w", "json"],
    ))
    .unwrap();
    assert_eq!(v["header"]["revision"].as_i64(), Some(want_rev + 1));
    for m in &members {
        assert_eq!(
            ctl(&m.endpoint(), &[ROOT, "get", "after", "--print-value-only"]),
            "restore\n"
        );
    }
}

#[test]
fn timon_snapshot_restores_into_real_etcd_351() {
    if skip_without_etcd("timon_snapshot_restores_into_real_etcd_351") {
        return;
    }
    let (Some(etcd35), Some(etcdutl)) = (etcd35_bin("etcd"), etcd35_bin("etcdutl")) else {
        return;
    };
    let cluster = start_cluster(timon_bin(), 3, &[]);
    let ep = cluster[0].endpoint();
    let (leases, compact_at) = populate(&ep);
    let (want_kvs, want_rev) = dump(&ep, &[]);

    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("timon.db");
    let file_s = file.to_str().unwrap();
    // Saved from a member that is (most likely) a follower: any member can.
    let started = std::time::Instant::now();
    ctl(&cluster[1].endpoint(), &["snapshot", "save", file_s]);
    let bytes = std::fs::metadata(&file).unwrap().len();
    eprintln!(
        "snapshot of {} revisions: {bytes} bytes in {:?}",
        want_rev,
        started.elapsed()
    );

    // etcdctl's status of the file: the store's revision; timonctl prints the same.
    let status = ctl(&ep, &["snapshot", "status", file_s, "-w", "json"]);
    let v: Value = serde_json::from_str(&status).unwrap();
    assert_eq!(v["revision"].as_i64(), Some(want_rev), "{status}");
    for format in ["simple", "table", "json"] {
        let theirs = ctl(&ep, &["snapshot", "status", file_s, "-w", format]);
        let ours = run(&timonctl_bin(), &["snapshot", "status", file_s, "-w", format]);
        assert_eq!(String::from_utf8_lossy(&ours.stdout), theirs, "-w {format}");
    }

    let ports = free_port_pairs(1);
    let dir = tmp.path().join("etcd35");
    let out = run(
        &etcdutl,
        &[
            "snapshot",
            "restore",
            file_s,
            "--name",
            "m0",
            "--data-dir",
            dir.to_str().unwrap(),
            "--initial-cluster",
            &initial_cluster(&ports),
            "--initial-advertise-peer-urls",
            &format!("http://127.0.0.1:{}", ports[0].1),
        ],
    );
    assert!(
        out.status.success(),
        "etcdutl restore: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let etcd = start_cluster_in(etcd35, &[dir], &ports, &[]);
    let eep = etcd[0].endpoint();
    let (kvs, rev) = dump(&eep, &[]);
    assert_eq!(kvs, want_kvs, "keys in etcd 3.5.1");
    assert_eq!(rev, want_rev);
    let (ok, _, err) = etcdctl(&eep, &["get", "k010", &format!("--rev={}", compact_at - 1)]);
    assert!(!ok && err.contains("required revision has been compacted"), "{err}");
    for id in &leases {
        assert_eq!(granted_ttl(&eep, &[], id), granted_ttl(&ep, &[], id), "lease {id}");
    }
    let v: Value = serde_json::from_str(&ctl(&eep, &["put", "more", "1", "-w", "json"])).unwrap();
    assert_eq!(v["header"]["revision"].as_i64(), Some(want_rev + 1));
}
