//! The nemeses that need a live cluster do what they say: a short run of
//! timon (the normal binary) under `member-readd` removes a follower, adds
//! it back, and passes; its results (kept with `--keep-results`) hold the
//! fault windows and the timeline.

use std::process::Command;

mod support;
use support::timon_binary;

#[test]
fn member_readd_removes_and_readds_a_follower_and_the_run_passes() {
    let results = tempfile::tempdir().expect("results dir");
    let out = Command::new(env!("CARGO_BIN_EXE_timon-jepsen"))
        .args(["run", "--nemesis", "member-readd", "--time-limit", "12", "--seed", "3"])
        .arg("--binary")
        .arg(timon_binary())
        .arg("--results")
        .arg(results.path())
        .arg("--keep-results")
        .output()
        .expect("run timon-jepsen");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let dir = results.path().join("timon-register-member-readd-3n").join("3");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).expect("summary.json"))
            .expect("summary is JSON");
    let windows = summary["nemesis"].as_array().expect("nemesis windows");
    assert!(
        windows.iter().any(|w| w["injected"] == true
            && w["healed"] == true
            && w["action"].as_str().is_some_and(|a| a.starts_with("remove n"))),
        "{summary:#}"
    );
    let svg = std::fs::read_to_string(dir.join("timeline.svg")).expect("timeline.svg");
    assert!(svg.contains("wipe its data"), "the window is not in the timeline");
}
