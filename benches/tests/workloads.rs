//! `timon-bench` against a real single-member etcd and a single-member
//! debug timon: every workload completes its requests without errors, and
//! the JSON report is well formed (count, ordered percentiles).

mod common;

use std::path::Path;

use common::{assert_sound, bench, etcd_bin, run_json, single, timon_bin};

/// put and range (both consistencies) with --total 200, then every other
/// workload with a small total, against `binary`.
async fn every_workload(label: &str, binary: &Path) {
    let dir = tempfile::tempdir().unwrap();
    let server = single(label, binary, dir.path()).await;
    let ep = format!("--endpoints={}", server.endpoints().join(","));
    let load = [
        "--total",
        "200",
        "--clients",
        "8",
        "--conns",
        "2",
        "--key-space-size",
        "50",
    ];

    let put = run_json(&[&["put", &ep][..], &load].concat());
    assert_eq!(put["workload"], "put");
    assert_sound(&put, 200);
    for (consistency, name) in [("l", "range-l"), ("s", "range-s")] {
        let range = run_json(&[&["range", "--consistency", consistency, &ep][..], &load].concat());
        assert_eq!(range["workload"], name);
        assert_sound(&range, 200);
    }

    let small = ["--total", "40", "--clients", "4", "--key-space-size", "30"];
    assert_sound(
        &run_json(&[&["txn-put", "--txn-ops", "3", &ep][..], &small].concat()),
        40,
    );
    assert_sound(&run_json(&[&["k8s-update", &ep][..], &small].concat()), 40);
    let list = run_json(&[&["k8s-list", "--limit", "7", &ep][..], &small].concat());
    assert_sound(&list, 40);
    // 30 objects in pages of 7: 5 pages per list.
    assert_eq!(list["notes"]["pages"], 200);
    let watch = run_json(&[&["watch", "--watchers", "6", "--streams", "4", &ep][..], &small].concat());
    assert_sound(&watch, 40 * 6);
    assert_eq!(watch["notes"]["lost_events"], 0, "{watch}");
    assert_eq!(watch["notes"]["puts"], 40);
    assert_sound(&run_json(&[&["lease-keepalive", &ep][..], &small].concat()), 40);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_workload_runs_against_etcd() {
    every_workload("etcd", &etcd_bin()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_workload_runs_against_timon() {
    every_workload("timon", &timon_bin()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn text_output_is_etcds_summary_layout() {
    let dir = tempfile::tempdir().unwrap();
    let server = single("etcd", &etcd_bin(), dir.path()).await;
    let out = std::process::Command::new(bench())
        .args(["put", "--total", "20", "--endpoints", &server.endpoints()[0]])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for line in ["Summary (put):", "Requests/sec:", "Latency distribution:", "99.9% in "] {
        assert!(text.contains(line), "{line:?} missing from:\n{text}");
    }
}

#[test]
fn impossible_options_fail_with_the_flag_named() {
    let out = std::process::Command::new(bench())
        .args([
            "put",
            "--key-size",
            "2",
            "--key-space-size",
            "1000",
            "--endpoints",
            "127.0.0.1:1",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--key-size 2 is too short"));
}
