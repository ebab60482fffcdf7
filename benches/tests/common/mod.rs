//! Shared by the integration tests: the binaries under test (building the
//! debug `timon` if it is missing), a single-member server on free ports,
//! and running `timon-bench` for its JSON.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use timon_bench::compare::cluster::{Cluster, Settings};

pub fn bench() -> &'static str {
    env!("CARGO_BIN_EXE_timon-bench")
}

/// The target dir this test was built into (`<target>/debug/deps/<test>`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.ancestors()
        .nth(3)
        .expect("target dir above debug/deps")
        .to_path_buf()
}

/// The debug `timon` beside this test's build; built with the workspace's
/// usual command if it is missing (CI builds it before the tests run).
pub fn timon_bin() -> PathBuf {
    let bin = target_dir().join("debug").join("timon");
    if !bin.exists() {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root");
        let ok = Command::new(env!("CARGO"))
            .args(["build", "--workspace", "--tests", "--bins"])
            .current_dir(workspace)
            .env("CARGO_TARGET_DIR", target_dir())
            .status()
            .expect("run cargo build")
            .success();
        assert!(ok && bin.exists(), "building {} failed", bin.display());
    }
    bin
}

pub fn etcd_bin() -> PathBuf {
    PathBuf::from("etcd")
}

pub fn settings() -> Settings {
    Settings {
        snapshot_count: 100_000,
        heartbeat_interval_ms: 100,
        election_timeout_ms: 1000,
        quota_backend_bytes: 2 * 1024 * 1024 * 1024,
    }
}

/// A one-member cluster of `binary` in `dir`, ready to serve.
pub async fn single(label: &str, binary: &Path, dir: &Path) -> Cluster {
    let mut ports = Vec::new();
    Cluster::start(
        label,
        binary,
        1,
        &settings(),
        dir,
        &mut ports,
        Duration::from_secs(60),
        None,
    )
    .await
    .unwrap_or_else(|e| panic!("start {label}: {e:#}"))
}

/// Runs `timon-bench args...` and parses its JSON output.
pub fn run_json(args: &[&str]) -> serde_json::Value {
    let out = Command::new(bench())
        .args(args)
        .arg("--json")
        .output()
        .expect("run timon-bench");
    assert!(
        out.status.success(),
        "timon-bench {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "timon-bench {args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// A report is sound: `count` successes, no errors, min <= p50 <= p90 <= p99 <= p99.9 <= max.
pub fn assert_sound(report: &serde_json::Value, count: u64) {
    assert_eq!(report["count"], count, "count in {report}");
    assert_eq!(report["errors"], 0, "errors in {report}");
    let l = &report["latency_ms"];
    let chain: Vec<f64> = ["min", "p50", "p90", "p99", "p999", "max"]
        .iter()
        .map(|k| l[k].as_f64().unwrap_or_else(|| panic!("latency_ms.{k} in {report}")))
        .collect();
    assert!(chain[0] > 0.0, "min latency is 0 in {report}");
    assert!(
        chain.windows(2).all(|w| w[0] <= w[1]),
        "percentiles out of order in {report}"
    );
    assert!(report["rps"].as_f64().unwrap() > 0.0, "rps in {report}");
}
