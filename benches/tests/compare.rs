//! `timon-bench compare` end to end with a tiny load: a 3-member debug
//! timon and a 3-member etcd start, every workload runs on both, and the
//! table, the JSON and the SVG chart come out. Proves the pipeline, not
//! performance (the numbers of a debug build mean nothing).

mod common;

use std::process::Command;

use common::{bench, timon_bin};

#[test]
fn compare_writes_table_json_and_chart() {
    let results = tempfile::tempdir().unwrap();
    let timon = timon_bin();
    let out = Command::new(bench())
        .args(["compare", "--total", "100", "--watchers", "10", "--list-objects", "600"])
        .args(["--label", "test, debug build"])
        .arg("--timon-bin")
        .arg(&timon)
        .arg("--results-dir")
        .arg(results.path())
        .output()
        .expect("run timon-bench compare");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "compare failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let workloads = timon_bench::compare::plan::ALL;
    assert!(stdout.contains("timon ops/s"), "no table header:\n{stdout}");
    for w in workloads {
        assert!(
            stdout.lines().any(|l| l.split_whitespace().next() == Some(w)),
            "no row {w}:\n{stdout}"
        );
    }

    let files: Vec<_> = std::fs::read_dir(results.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let json = files
        .iter()
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .expect("a .json");
    let svg = files
        .iter()
        .find(|p| p.extension().is_some_and(|e| e == "svg"))
        .expect("an .svg");
    assert_eq!(json.file_stem(), svg.file_stem(), "both named by the same date");

    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    assert_eq!(v["label"], "test, debug build");
    let rows = v["rows"].as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, workloads);
    for row in rows {
        for side in ["timon", "etcd"] {
            let s = &row[side];
            let r = &s["report"];
            assert_eq!(r["errors"], 0, "{side} {}: {r}", row["name"]);
            assert!(r["count"].as_u64().unwrap() > 0, "{side} {}: {r}", row["name"]);
            let rss = s["peak_rss_kib"].as_array().unwrap();
            assert_eq!(rss.len(), 3, "one peak RSS per member");
            assert!(rss.iter().all(|k| k.as_u64().unwrap() > 0), "{side} RSS {rss:?}");
        }
        assert!(row["ratios"]["rps"].as_f64().unwrap() > 0.0);
    }
    let put = &rows[0];
    assert_eq!(put["timon"]["report"]["count"], 100);
    assert_eq!(put["etcd"]["report"]["count"], 100);
    let watch = rows.iter().find(|r| r["name"] == "watch").unwrap();
    for side in ["timon", "etcd"] {
        assert_eq!(
            watch[side]["report"]["notes"]["lost_events"], 0,
            "{side} lost watch events"
        );
    }

    let chart = std::fs::read_to_string(svg).unwrap();
    assert!(chart.starts_with("<svg") && chart.trim_end().ends_with("</svg>"));
    for w in workloads {
        assert!(chart.contains(&format!(">{w}</text>")), "chart lacks {w}");
    }
}

/// `compare --tls`: both clusters with mutual TLS on both ports (kubeadm's
/// flags), the workloads dialing with a client certificate; every request
/// of a small put and range load succeeds on both servers.
#[test]
fn compare_runs_both_servers_over_mutual_tls() {
    let results = tempfile::tempdir().unwrap();
    let out = Command::new(bench())
        .args(["compare", "--tls", "--workloads", "put,range-s", "--total", "100"])
        .args(["--label", "test, tls, debug build"])
        .arg("--timon-bin")
        .arg(timon_bin())
        .arg("--results-dir")
        .arg(results.path())
        .output()
        .expect("run timon-bench compare --tls");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "compare --tls failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let json = std::fs::read_dir(results.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .expect("a .json");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    for row in v["rows"].as_array().unwrap() {
        for side in ["timon", "etcd"] {
            let r = &row[side]["report"];
            assert_eq!(r["errors"], 0, "{side} {}: {r}", row["name"]);
            assert_eq!(r["count"], 100, "{side} {}: {r}", row["name"]);
        }
    }
}
