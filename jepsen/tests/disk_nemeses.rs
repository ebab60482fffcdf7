//! The disk nemeses on timon proper (members' data dirs on lazyfs): each
//! injects its fault at least once, heals, and the run passes. The planted
//! bugs they catch are in planted_bugs.rs.

use std::process::Command;

mod support;
use support::timon_binary;

/// Runs the register workload under `nemesis` for 15 s with seed 1; panics
/// unless the run passed; answers the actions of its fault windows.
fn run_passes(nemesis: &str) -> Vec<String> {
    let results = tempfile::tempdir().expect("results dir");
    let out = Command::new(env!("CARGO_BIN_EXE_timon-jepsen"))
        .args(["run", "--nemesis", nemesis, "--time-limit", "15", "--seed", "1"])
        .arg("--binary")
        .arg(timon_binary())
        .arg("--results")
        .arg(results.path())
        .arg("--keep-results")
        .output()
        .expect("run timon-jepsen");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let dir = results.path().join(format!("timon-register-{nemesis}-3n")).join("1");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).expect("summary.json"))
            .expect("summary is JSON");
    let windows = summary["nemesis"].as_array().expect("nemesis windows");
    assert!(
        windows.iter().all(|w| w["injected"] == true && w["healed"] == true),
        "{summary:#}"
    );
    assert!(
        dir.join("n1.data/data/member/db/CURRENT").exists(),
        "the members' data were not copied off their disks"
    );
    windows
        .iter()
        .map(|w| w["action"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn a_power_loss_of_one_member_at_a_time_passes() {
    let actions = run_passes("lose-unsynced");
    assert!(actions.iter().any(|a| a.contains("lose unsynced data")), "{actions:?}");
}

#[test]
fn a_power_loss_of_every_member_passes() {
    let actions = run_passes("lose-unsynced-all");
    assert!(
        actions
            .iter()
            .any(|a| a.starts_with("kill -9 all members, lose unsynced")),
        "{actions:?}"
    );
}

#[test]
fn failing_fsyncs_stop_the_member_and_the_run_passes() {
    let actions = run_passes("fsync-error");
    assert!(actions.iter().any(|a| a.starts_with("fsync EIO on n")), "{actions:?}");
}

#[test]
fn a_full_disk_stops_the_member_and_the_run_passes() {
    let actions = run_passes("disk-full");
    assert!(
        actions.iter().any(|a| a.starts_with("disk full (ENOSPC) on n")),
        "{actions:?}"
    );
}

#[test]
fn slow_fsyncs_pass() {
    let actions = run_passes("slow-disk");
    assert!(actions.iter().any(|a| a.starts_with("fsync delayed")), "{actions:?}");
}
