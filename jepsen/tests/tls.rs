//! `--tls`: a short run of timon under `partition-random` with mutual TLS
//! on both ports passes. The peers' TLS passes through the partition
//! proxies; the harness's clients dial with the client certificate.

use std::process::Command;

mod support;
use support::timon_binary;

#[test]
fn a_partition_run_with_mutual_tls_on_both_ports_passes() {
    let results = tempfile::tempdir().expect("results dir");
    let out = Command::new(env!("CARGO_BIN_EXE_timon-jepsen"))
        .args([
            "run",
            "--tls",
            "--nemesis",
            "partition-random",
            "--time-limit",
            "10",
            "--seed",
            "2",
        ])
        .arg("--binary")
        .arg(timon_binary())
        .arg("--results")
        .arg(results.path())
        .arg("--keep-results")
        .output()
        .expect("run timon-jepsen");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.lines().any(|l| l == "1 passed, 0 failed"), "{text}");
    let dir = results.path().join("timon-register-partition-random-3n-tls").join("2");
    for file in ["ca.crt", "server.crt", "peer.crt", "client.crt"] {
        assert!(dir.join("pki").join(file).exists(), "pki/{file} is missing");
    }
    // The members served https: each published its https client URL.
    let log = std::fs::read_to_string(dir.join("n1.log")).expect("n1.log");
    assert!(
        log.contains("ClientURLs:[https://127.0.0.1:"),
        "n1 did not serve TLS:\n{log}"
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).expect("summary.json"))
            .expect("summary is JSON");
    let windows = summary["nemesis"].as_array().expect("nemesis windows");
    assert!(
        windows.iter().any(|w| w["injected"] == true && w["healed"] == true),
        "no partition was injected and healed: {summary:#}"
    );
}
