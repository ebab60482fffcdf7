//! `etcdctl check perf --load=s` against a 3-member timon cluster: etcd's
//! own verdict of whether a cluster is fit to serve (issue 13). etcdctl
//! writes at 150 puts/s from 50 clients for 60 s, then deletes its keys,
//! compacts and defragments every member (`--auto-compact --auto-defrag`),
//! and passes the cluster only if the throughput is above 90% of the limit,
//! the slowest request under 500 ms and the standard deviation under 100 ms
//! (etcdctl/ctlv3/command/check.go). It runs alone (.config/nextest.toml):
//! the verdict is about timon, not about the tests beside it.

mod support;

use support::{etcdctl, etcdctl_bin, start_cluster, timon_bin};

#[test]
fn etcdctl_check_perf_small_load_passes() {
    if support::skip_without_etcd("etcdctl_check_perf_small_load_passes") {
        return;
    }
    let members = start_cluster(timon_bin(), 3, &[]);
    let endpoints: Vec<String> = members.iter().map(|m| m.endpoint()).collect();
    let endpoints = endpoints.join(",");
    let (ok, out, err) = etcdctl(
        &endpoints,
        &["check", "perf", "--load=s", "--auto-compact", "--auto-defrag"],
    );
    // The progress bar goes to stdout too; the verdict is its last lines.
    let verdict: Vec<&str> = out
        .lines()
        .map(|l| l.rsplit('\r').next().unwrap_or(l).trim())
        .filter(|l| l.starts_with("PASS") || l.starts_with("FAIL") || l.contains("took too long"))
        .collect();
    eprintln!("{} check perf --load=s: {verdict:#?}", etcdctl_bin().display());
    assert!(ok, "etcdctl check perf failed: {out}\n{err}");
    let shapes: Vec<&str> = verdict
        .iter()
        .map(|l| {
            l.split(|c: char| c.is_ascii_digit())
                .next()
                .unwrap_or_default()
                .trim_end()
        })
        .collect();
    assert_eq!(
        shapes,
        [
            "PASS: Throughput is",
            "PASS: Slowest request took",
            "PASS: Stddev is",
            "PASS",
        ],
        "etcdctl's verdict lines: {verdict:?}"
    );
    // --auto-compact and --auto-defrag ran: the keys are gone, and the
    // store was compacted at the delete's revision.
    let (ok, left, err) = etcdctl(&endpoints, &["get", "/etcdctl-check-perf/", "--prefix", "--keys-only"]);
    assert!(ok, "{err}");
    assert_eq!(left, "", "check perf left keys behind");
    let (ok, _, err) = etcdctl(&endpoints, &["get", "/etcdctl-check-perf/", "--prefix", "--rev=2"]);
    assert!(
        !ok && err.contains("required revision has been compacted"),
        "no compaction after check perf --auto-compact: {err}"
    );
}
