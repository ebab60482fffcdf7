//! `timon-bench defrag` end to end at a tiny size: a debug timon and etcd
//! 3.4.23 each get a store of a few MiB, a steady writer and a Defragment,
//! and the table comes out with every row. Proves the pipeline, not
//! performance (the numbers of a debug build at 8 MiB mean nothing).

mod common;

use std::process::Command;

use common::{bench, timon_bin};

#[test]
fn defrag_prints_phases_and_summary_for_timon_and_etcd() {
    let out = Command::new(bench())
        .args([
            "defrag",
            "--size",
            "8MiB",
            "--baseline",
            "1s",
            "--tail",
            "1s",
            "--settle",
            "100ms",
            "--rate",
            "200",
        ])
        .arg("--timon-bin")
        .arg(timon_bin())
        .args(["--etcd-bin", "/usr/bin/etcd"])
        .output()
        .expect("run timon-bench defrag");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "defrag failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    for server in ["timon", "etcd"] {
        let header = format!("{server} (version ");
        let start = stdout
            .find(&header)
            .unwrap_or_else(|| panic!("no {server} section:\n{stdout}"));
        let section: Vec<&str> = stdout[start..].lines().take(6).collect();
        assert!(
            section[1].trim_start().starts_with("defrag took "),
            "{server}: {section:?}"
        );
        assert!(
            section[2].contains("p99 ms") && section[2].contains("longest gap ms"),
            "{server}: {section:?}"
        );
        for (line, phase) in section[3..].iter().zip(["baseline", "defrag", "after"]) {
            let cells: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(cells.len(), 8, "{server} {phase}: {line}");
            assert_eq!(cells[0], phase, "{server}: {section:?}");
            let writes: u64 = cells[2].parse().unwrap();
            assert_eq!(cells[3], "0", "{server} {phase} errors: {line}");
            if phase != "defrag" {
                assert!(writes > 0, "{server} {phase} wrote nothing: {line}");
            }
        }
        let summary = stdout
            .lines()
            .skip_while(|l| !l.starts_with("server "))
            .find(|l| l.split_whitespace().next() == Some(server))
            .unwrap_or_else(|| panic!("no {server} summary row:\n{stdout}"));
        let cells: Vec<&str> = summary.split_whitespace().collect();
        assert_eq!(cells.len(), 13, "{summary}");
        assert_eq!(cells[12], "0", "{server} errors during the defrag: {summary}");
    }
}
