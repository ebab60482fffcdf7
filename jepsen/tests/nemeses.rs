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

/// Runs `workload` under `nemesis` on timon for 15 s (seed 5), requires it
/// to pass, and answers the actions of its fault windows that were injected
/// and healed.
fn passing_actions(workload: &str, nemesis: &str) -> Vec<String> {
    passing_windows(workload, nemesis)
        .into_iter()
        .filter(|(_, injected, healed)| *injected && *healed)
        .map(|(action, _, _)| action)
        .collect()
}

/// Runs `workload` under `nemesis` on timon for 15 s (seed 5), requires it
/// to pass, and answers every fault window: its action (or `failed: why`),
/// whether it was injected and whether the heal after it succeeded.
fn passing_windows(workload: &str, nemesis: &str) -> Vec<(String, bool, bool)> {
    passing_windows_on("timon", workload, nemesis, 15)
}

/// [`passing_windows`] on `server` (etcd: `$ETCD_BIN` or /usr/bin/etcd)
/// for `seconds`.
fn passing_windows_on(server: &str, workload: &str, nemesis: &str, seconds: u64) -> Vec<(String, bool, bool)> {
    let results = tempfile::tempdir().expect("results dir");
    let mut run = Command::new(env!("CARGO_BIN_EXE_timon-jepsen"));
    run.args(["run", "--server", server, "--workload", workload, "--nemesis", nemesis])
        .args(["--time-limit", &seconds.to_string(), "--seed", "5", "--keep-results"])
        .arg("--results")
        .arg(results.path());
    if server == "timon" {
        run.arg("--binary").arg(timon_binary());
    }
    let out = run.output().expect("run timon-jepsen");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let dir = results
        .path()
        .join(format!("{server}-{workload}-{nemesis}-3n"))
        .join("5");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).expect("summary.json"))
            .expect("summary is JSON");
    summary["nemesis"]
        .as_array()
        .expect("nemesis windows")
        .iter()
        .map(|w| {
            let action = w["action"].as_str().unwrap_or_default().to_string();
            (action, w["injected"] == true, w["healed"] == true)
        })
        .collect()
}

#[test]
fn a_rolling_restart_stops_every_member_with_sigterm_and_the_run_passes() {
    let actions = passing_actions("register", "rolling-restart");
    // Every member exits by itself (status 0) after SIGTERM, the leader too.
    assert!(
        actions
            .iter()
            .any(|a| a.starts_with("rolling restart:") && a.matches(" exit 0").count() == 3 && a.contains("(leader)")),
        "{actions:?}"
    );
}

#[test]
fn member_replace_swaps_in_new_members_and_the_run_passes() {
    let actions = passing_actions("register", "member-replace");
    assert!(
        actions
            .iter()
            .any(|a| a.starts_with("replace n") && a.contains("-r1 (")),
        "{actions:?}"
    );
}

#[test]
fn learner_promote_replaces_a_member_by_a_promoted_learner_and_the_run_passes() {
    let actions = passing_actions("register", "learner-promote");
    assert!(actions.iter().any(|a| a.ends_with(", promoted")), "{actions:?}");
}

#[test]
fn move_leader_moves_the_leadership_and_the_run_passes() {
    let actions = passing_actions("register", "move-leader");
    assert!(actions.iter().any(|a| a.starts_with("move leader n")), "{actions:?}");
}

#[test]
fn compact_defrag_compacts_and_defragments_and_the_run_passes() {
    let actions = passing_actions("register", "compact-defrag");
    assert!(actions.iter().any(|a| a.starts_with("compact at ")), "{actions:?}");
}

/// A member killed while the cluster wrote past it is sent its leader's
/// snapshot when it starts again (the members run with `--snapshot-count
/// 100`): every injection must say a snapshot was sent and applied (one
/// that caught the member up from the log fails), and the run passes.
#[test]
fn snapshot_restore_restores_a_killed_member_from_its_leaders_snapshot_and_the_run_passes() {
    let windows = passing_windows("register", "snapshot-restore");
    assert!(!windows.is_empty(), "no fault window");
    for (action, injected, healed) in &windows {
        assert!(*injected && *healed, "{windows:?}");
        assert!(
            action.starts_with("snapshot restore n") && action.contains(" sent it a snapshot at index "),
            "{windows:?}"
        );
    }
}

/// The same on etcd 3.4 for 30 s: etcd keeps 5000 entries after a
/// snapshot (the nemesis writes over 5200), and its leader compacts
/// nothing for 30 s after it sent a snapshot, so a second injection within
/// that time kills the leader, whose successor sends the snapshot.
#[test]
fn snapshot_restore_restores_a_killed_etcd_member_from_its_leaders_snapshot() {
    let windows = passing_windows_on("etcd", "register", "snapshot-restore", 30);
    assert!(!windows.is_empty(), "no fault window");
    for (action, injected, healed) in &windows {
        assert!(*injected && *healed, "{windows:?}");
        assert!(action.contains(" sent it a snapshot at index "), "{windows:?}");
    }
}

/// Wall clock jumps and rates on timon's leader change nothing its lease
/// checker sees: deadlines are on the monotonic clock.
#[test]
fn clock_skew_jumps_the_leaders_wall_clock_and_leases_hold() {
    let actions = passing_actions("lease", "clock-skew");
    assert!(
        actions
            .iter()
            .any(|a| a.contains("(leader) jumps") && a.ends_with("s forward")),
        "{actions:?}"
    );
}

/// The leader's monotonic clock running up to 1.9x fast ends leases early
/// in real time, but within the lease checker's margin: the run passes.
#[test]
fn clock_rate_runs_the_leaders_clocks_fast_and_leases_hold() {
    let actions = passing_actions("lease", "clock-rate");
    assert!(
        actions
            .iter()
            .any(|a| a.contains("(leader) runs") && a.ends_with("x fast")),
        "{actions:?}"
    );
}
