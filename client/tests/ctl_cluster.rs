//! `timonctl` against `etcdctl` 3.4 for the cluster commands (`member
//! list / add / promote / remove / update`, `endpoint status / health
//! --cluster`) on one 3-member cluster (etcd by default, see
//! `common/cluster.rs`).
//!
//! Both tools talk to the same member, one after the other, so commands
//! that change nothing must give byte-identical stdout, the same exit code
//! and the same `Error:` line. A membership change cannot run twice on the
//! same state, so each tool makes its own change from the same starting
//! state (the other tool's change undone first), and the outputs are
//! compared with the new member's ID masked: etcd draws it at random. That
//! ID also decides where the new member sorts in `ETCD_INITIAL_CLUSTER`
//! (etcd lists members by ID), so that list is compared as a set; its order
//! is checked by the unit test in `src/ctl/member.rs`. Timings and db sizes
//! are masked where they appear.
//!
//! Not compared: `-w json` / `-w table` `member promote`, where etcdctl 3.4
//! panics after promoting (timonctl follows etcdctl 3.5 there).

mod common;

use std::process::Output;
use std::time::{Duration, Instant};

use common::cluster::{free_ports, Cluster};
use common::ctl::{error_lines, run, TIMONCTL};
use common::{etcd_available, ETCDCTL};
use serde_json::Value;

/// etcd refuses `member add` until every voting member has been connected
/// for 5 s (`--strict-reconfig-check`), and `member promote` until the
/// learner has caught up. Both refusals change nothing, so the command is
/// simply repeated.
const NOT_YET: &[&str] = &[
    "etcdserver: unhealthy cluster",
    "etcdserver: can only promote a learner member which is in sync with leader",
];
const NOT_YET_TIMEOUT: Duration = Duration::from_secs(60);

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn describe(args: &[&str], want: &Output, got: &Output) -> String {
    format!(
        "args {args:?}\netcdctl stdout: {}\netcdctl stderr: {}\ntimonctl stdout: {}\ntimonctl stderr: {}",
        stdout(want),
        String::from_utf8_lossy(&want.stderr),
        stdout(got),
        String::from_utf8_lossy(&got.stderr)
    )
}

/// Runs `args` through both tools against `endpoint` and asserts identical
/// exit code, `Error:` lines and stdout.
fn same(endpoint: &str, args: &[&str]) {
    let want = run(ETCDCTL, endpoint, args, None);
    let got = run(TIMONCTL, endpoint, args, None);
    let context = describe(args, &want, &got);
    assert_eq!(got.status.code(), want.status.code(), "exit code; {context}");
    assert_eq!(error_lines(&got), error_lines(&want), "error line; {context}");
    assert_eq!(stdout(&got), stdout(&want), "stdout; {context}");
}

/// Runs `args` until its error is not one of [`NOT_YET`].
fn run_when_ready(binary: &str, endpoint: &str, args: &[&str]) -> Output {
    let deadline = Instant::now() + NOT_YET_TIMEOUT;
    loop {
        let output = run(binary, endpoint, args, None);
        let errors = error_lines(&output);
        let not_yet = errors
            .iter()
            .any(|line| NOT_YET.iter().any(|m| line == &format!("Error: {m}")));
        if !not_yet {
            return output;
        }
        assert!(Instant::now() < deadline, "{binary} {args:?} still refused: {errors:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The members as etcdctl's `-w json member list` shows them.
fn members(endpoint: &str) -> Vec<Value> {
    let output = run(ETCDCTL, endpoint, &["-w", "json", "member", "list"], None);
    let list: Value = serde_json::from_slice(&output.stdout).expect("member list json");
    list["members"].as_array().cloned().unwrap_or_default()
}

/// The ID of the member with `peer_url`.
fn id_of(endpoint: &str, peer_url: &str) -> u64 {
    members(endpoint)
        .iter()
        .find(|m| {
            m["peerURLs"]
                .as_array()
                .is_some_and(|urls| urls.iter().any(|u| u == peer_url))
        })
        .and_then(|m| m["ID"].as_u64())
        .unwrap_or_else(|| panic!("no member with peer URL {peer_url}"))
}

fn hex(id: u64) -> String {
    format!("{id:x}")
}

/// What one tool's membership change created, masked before comparing:
/// the ID etcd drew at random, and the peer URLs (each tool adds its member
/// on fresh URLs, because etcd derives the ID from the URLs and the current
/// second, and refuses an ID it has removed before).
struct New {
    id: u64,
    peer_urls: Vec<String>,
}

impl New {
    fn of(endpoint: &str, peer_urls: &[String]) -> New {
        New {
            id: id_of(endpoint, &peer_urls[0]),
            peer_urls: peer_urls.to_vec(),
        }
    }
}

/// Masks `new` in simple output (etcdctl prints the ID as `%16x`, `%x` or
/// decimal) and sorts the `ETCD_INITIAL_CLUSTER` entries.
fn mask_simple(text: &str, new: &New) -> String {
    let id = new.id;
    let mut text = text
        .replace(&format!("{id:>16x}"), "NEW-ID")
        .replace(&hex(id), "NEW-ID")
        .replace(&id.to_string(), "NEW-ID");
    for (i, url) in new.peer_urls.iter().enumerate() {
        text = text.replace(url, &format!("NEW-PEER-{i}"));
    }
    text.lines()
        .map(|line| match line.strip_prefix("ETCD_INITIAL_CLUSTER=") {
            Some(value) => {
                let mut entries: Vec<&str> = value.trim_matches('"').split(',').collect();
                entries.sort_unstable();
                format!("ETCD_INITIAL_CLUSTER=(sorted){}\n", entries.join(","))
            }
            None => format!("{line}\n"),
        })
        .collect()
}

/// Masks `new` in JSON output and sorts arrays (members are in ID order).
fn mask_json(text: &str, new: &New) -> Value {
    fn walk(value: &mut Value, new: &New) {
        match value {
            Value::Number(n) if n.as_u64() == Some(new.id) => *value = Value::from("NEW-ID"),
            Value::String(s) => {
                if let Some(i) = new.peer_urls.iter().position(|u| u == s) {
                    *value = Value::from(format!("NEW-PEER-{i}"));
                }
            }
            Value::Array(items) => {
                items.iter_mut().for_each(|v| walk(v, new));
                items.sort_by_key(|v| v.to_string());
            }
            Value::Object(fields) => fields.values_mut().for_each(|v| walk(v, new)),
            _ => {}
        }
    }
    let mut value: Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("json {text:?}: {e}"));
    walk(&mut value, new);
    value
}

/// Compares a membership change made by each tool: exit code, error lines
/// and stdout with each side's new member masked.
fn same_change(want: (&[&str], &Output, &New), got: (&[&str], &Output, &New)) {
    let (want_args, want, want_new) = want;
    let (got_args, got, got_new) = got;
    let context = format!(
        "etcdctl {want_args:?}, timonctl {got_args:?}\n{}",
        describe(got_args, want, got)
    );
    assert_eq!(got.status.code(), want.status.code(), "exit code; {context}");
    assert_eq!(error_lines(got), error_lines(want), "error line; {context}");
    if got_args.contains(&"json") {
        assert_eq!(
            mask_json(&stdout(got), got_new),
            mask_json(&stdout(want), want_new),
            "json; {context}"
        );
    } else {
        assert_eq!(
            mask_simple(&stdout(got), got_new),
            mask_simple(&stdout(want), want_new),
            "stdout; {context}"
        );
    }
}

/// The value of `ETCD_INITIAL_CLUSTER` in `member add` output.
fn initial_cluster(output: &Output) -> String {
    stdout(output)
        .lines()
        .find_map(|l| l.strip_prefix("ETCD_INITIAL_CLUSTER="))
        .map(|v| v.trim_matches('"').to_owned())
        .unwrap_or_else(|| panic!("no ETCD_INITIAL_CLUSTER in {}", stdout(output)))
}

/// `count` fresh peer URLs.
fn fresh_peer_urls(count: usize) -> Vec<String> {
    (0..count)
        .map(|_| format!("http://127.0.0.1:{}", free_ports().1))
        .collect()
}

/// `member add NAME --peer-urls=URLS` plus `extra`, as owned arguments.
fn add_args(format: &str, name: &str, peer_urls: &[String], extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = ["-w", format, "member", "add", name]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.push(format!("--peer-urls={}", peer_urls.join(",")));
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// Each tool adds a learner (`-w format`) from the same state: etcdctl
/// first, its member removed, then timonctl, its member removed. Returns
/// nothing; asserts the outputs match.
fn compare_add(ep: &str, format: &str, urls_per_member: usize) {
    let mut results = Vec::new();
    for binary in [ETCDCTL, TIMONCTL] {
        let urls = fresh_peer_urls(urls_per_member);
        let args = add_args(format, "learner", &urls, &["--learner"]);
        let output = run_when_ready(binary, ep, &strs(&args));
        let new = New::of(ep, &urls);
        assert!(run(ETCDCTL, ep, &["member", "remove", &hex(new.id)], None)
            .status
            .success());
        results.push((args, output, new));
    }
    let (got_args, got, got_new) = &results[1];
    let (want_args, want, want_new) = &results[0];
    // The member was added either way; table is refused only afterwards.
    let expected = if format == "table" { 4 } else { 0 };
    assert_eq!(
        want.status.code(),
        Some(expected),
        "{}",
        describe(&strs(want_args), want, got)
    );
    same_change((&strs(want_args), want, want_new), (&strs(got_args), got, got_new));
}

#[test]
fn membership_commands_match_etcdctl() {
    if !etcd_available() {
        return;
    }
    let mut cluster = Cluster::start(3);
    let endpoint = cluster.nodes[0].endpoint();
    let ep = endpoint.as_str();
    let m1 = hex(cluster.member_id(1));
    let m1_peers = format!("--peer-urls={}", cluster.nodes[1].peer_url());

    for format in ["simple", "json", "table"] {
        same(ep, &["-w", format, "member", "list"]);
    }

    // Rejected before any request, in etcdctl's order of checks.
    for args in [
        &["member", "add"][..],
        &["member", "add", "x"],
        &["member", "add", "x", "y", "http://z", "--peer-urls=http://a"],
        &["member", "add", "x", "y"],
        &["member", "remove"],
        &["member", "remove", "a", "b"],
        &["member", "remove", "zz"],
        &["member", "remove", "+1"],
        &["member", "remove", "10000000000000000"],
        &["member", "update", "1"],
        &["member", "update", "zz", "--peer-urls=http://a"],
        &["member", "promote"],
        &["member", "promote", "0x1"],
    ] {
        same(ep, args);
    }

    // Refused by the server, or changing nothing.
    same(ep, &["member", "remove", "1234"]);
    same(ep, &["member", "update", "1234", "--peer-urls=http://127.0.0.1:1"]);
    same(ep, &["member", "promote", &m1]);
    same(ep, &["member", "add", "dup", &m1_peers]);
    same(ep, &["member", "update", &m1, &m1_peers]);
    same(ep, &["-w", "json", "member", "update", &m1, &m1_peers]);
    same(ep, &["-w", "table", "member", "update", &m1, &m1_peers]);
    same(ep, &["-w", "table", "member", "remove", "1234"]);

    // An unstarted learner, seen by both tools: listed, and not promotable.
    let urls = fresh_peer_urls(1);
    let added = run_when_ready(ETCDCTL, ep, &strs(&add_args("simple", "idle", &urls, &["--learner"])));
    assert!(added.status.success(), "{}", describe(&[], &added, &added));
    let idle = New::of(ep, &urls);
    for format in ["simple", "json", "table"] {
        same(ep, &["-w", format, "member", "list"]);
    }
    same(ep, &["member", "promote", &hex(idle.id)]);
    // (Not `member update` on it: etcd 3.4 then drops its learner flag,
    // leaving an unstarted voter that blocks every later `member add`.)
    // Each tool removes such a learner (etcd 3.4 allows one learner at a
    // time, so the second is added after the first is gone).
    let want = run(ETCDCTL, ep, &["member", "remove", &hex(idle.id)], None);
    assert!(want.status.success(), "{}", describe(&[], &want, &want));
    let urls = fresh_peer_urls(1);
    let added = run_when_ready(ETCDCTL, ep, &strs(&add_args("simple", "idle2", &urls, &["--learner"])));
    assert!(added.status.success(), "{}", describe(&[], &added, &added));
    let idle2 = New::of(ep, &urls);
    let got = run(TIMONCTL, ep, &["member", "remove", &hex(idle2.id)], None);
    same_change(
        (&["member", "remove", "idle"], &want, &idle),
        (&["member", "remove", "idle2"], &got, &idle2),
    );

    // member add in each format (table: the member is added, then the
    // format refused), one of them with two peer URLs.
    compare_add(ep, "simple", 1);
    compare_add(ep, "json", 2);
    compare_add(ep, "table", 1);

    // A started learner, promoted: one per tool, each started from the
    // ETCD_INITIAL_CLUSTER its own tool printed.
    let mut promoted = Vec::new();
    for (binary, name) in [(ETCDCTL, "voter-e"), (TIMONCTL, "voter-t")] {
        let ports = free_ports();
        let urls = vec![format!("http://127.0.0.1:{}", ports.1)];
        let args = add_args("simple", name, &urls, &["--learner"]);
        let added = run_when_ready(binary, ep, &strs(&args));
        assert!(added.status.success(), "{}", describe(&strs(&args), &added, &added));
        cluster.join(name, ports, &initial_cluster(&added));
        let new = New::of(ep, &urls);
        let promote = run_when_ready(binary, ep, &["member", "promote", &hex(new.id)]);
        assert!(promote.status.success(), "{}", describe(&[], &promote, &promote));
        promoted.push((promote, new));
    }
    let (got, got_new) = &promoted[1];
    let (want, want_new) = &promoted[0];
    let args: &[&str] = &["member", "promote", "ID"];
    same_change((args, want, want_new), (args, got, got_new));
    for format in ["simple", "json", "table"] {
        same(ep, &["-w", format, "member", "list"]);
    }

    // Removing the started members again, one per tool.
    let want = run_when_ready(ETCDCTL, ep, &["member", "remove", &hex(want_new.id)]);
    assert!(want.status.success(), "{}", describe(&[], &want, &want));
    let got = run_when_ready(TIMONCTL, ep, &["member", "remove", &hex(got_new.id)]);
    let args: &[&str] = &["member", "remove", "ID"];
    same_change((args, &want, want_new), (args, &got, got_new));
    for format in ["simple", "json", "table"] {
        same(ep, &["-w", format, "member", "list"]);
    }
}

/// `endpoint status --cluster` output with the db size (which depends on
/// etcd's batched commits) blanked out, per format.
fn mask_status(text: &str) -> String {
    let mut masked = String::new();
    for line in text.lines() {
        if line.starts_with('[') {
            let mut value: Value = serde_json::from_str(line).expect("status json");
            for item in value.as_array_mut().into_iter().flatten() {
                if let Some(status) = item.get_mut("Status").and_then(|s| s.as_object_mut()) {
                    status.remove("dbSize");
                    status.remove("dbSizeInUse");
                    // Status fields newer than etcdctl 3.4's proto (a 3.6
                    // server fills them; etcdctl 3.4 cannot print them).
                    status.remove("storageVersion");
                    status.remove("dbSizeQuota");
                }
            }
            masked.push_str(&value.to_string());
        } else if line.starts_with('|') {
            let mut cells: Vec<String> = line.split('|').map(str::to_owned).collect();
            if let Some(cell) = cells.get_mut(4) {
                *cell = " ".repeat(cell.chars().count());
            }
            masked.push_str(&cells.join("|"));
        } else {
            let mut fields: Vec<&str> = line.split(", ").collect();
            if fields.len() > 3 {
                fields[3] = "SIZE";
            }
            masked.push_str(&fields.join(", "));
        }
        masked.push('\n');
    }
    masked
}

/// What `endpoint health` reported, independent of format and order:
/// (endpoint, healthy, error) per endpoint, sorted; `took` is left out.
fn health_report(args: &[&str], output: &Output) -> Vec<(String, bool, String)> {
    let mut report: Vec<(String, bool, String)> = if args.contains(&"json") {
        let value: Value = serde_json::from_slice(&output.stdout).expect("health json");
        value
            .as_array()
            .into_iter()
            .flatten()
            .map(|h| {
                (
                    h["endpoint"].as_str().unwrap_or_default().to_owned(),
                    h["health"].as_bool().unwrap_or_default(),
                    h["error"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    } else if args.contains(&"table") {
        stdout(output)
            .lines()
            .filter(|l| l.starts_with('|') && !l.contains("ENDPOINT"))
            .map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                (cells[1].to_owned(), cells[2] == "true", cells[4].to_owned())
            })
            .collect()
    } else {
        String::from_utf8_lossy(&output.stderr)
            .lines()
            .filter_map(|l| {
                if let Some((endpoint, _)) = l.split_once(" is healthy: successfully committed proposal: took = ") {
                    Some((endpoint.to_owned(), true, String::new()))
                } else {
                    l.split_once(" is unhealthy: failed to commit proposal: ")
                        .map(|(endpoint, error)| (endpoint.to_owned(), false, error.to_owned()))
                }
            })
            .collect()
    };
    report.sort();
    report
}

/// Status and health of every member, the member list being fetched from
/// the one member given with `--endpoints`.
fn same_endpoint_commands(ep: &str, extra: &[&str], expected_lines: usize) {
    for format in ["simple", "json", "table"] {
        let mut args = vec!["-w", format];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["endpoint", "status", "--cluster"]);
        let want = run(ETCDCTL, ep, &args, None);
        let got = run(TIMONCTL, ep, &args, None);
        let context = describe(&args, &want, &got);
        assert_eq!(got.status.code(), want.status.code(), "exit code; {context}");
        assert_eq!(mask_status(&stdout(&got)), mask_status(&stdout(&want)), "{context}");
        let failures = |o: &Output| -> Vec<String> {
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .filter(|l| l.starts_with("Failed to get the status") || l.starts_with("Error:"))
                .map(str::to_owned)
                .collect()
        };
        assert_eq!(failures(&got), failures(&want), "{context}");

        let mut args = vec!["-w", format];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["endpoint", "health", "--cluster"]);
        let want = run(ETCDCTL, ep, &args, None);
        let got = run(TIMONCTL, ep, &args, None);
        let context = describe(&args, &want, &got);
        assert_eq!(got.status.code(), want.status.code(), "exit code; {context}");
        assert_eq!(error_lines(&got), error_lines(&want), "{context}");
        let report = health_report(&args, &got);
        assert_eq!(report.len(), expected_lines, "{context}");
        assert_eq!(report, health_report(&args, &want), "{context}");
    }
}

#[test]
fn endpoint_cluster_commands_match_etcdctl() {
    if !etcd_available() {
        return;
    }
    let mut cluster = Cluster::start(3);
    let ep = cluster.nodes[0].endpoint();
    same_endpoint_commands(&ep, &[], 3);

    // A dead member: still listed, so both tools report it failing.
    cluster.kill(2);
    cluster.leader();
    same_endpoint_commands(&ep, &["--command-timeout=2s"], 3);

    // The member list itself unreachable.
    let dead = cluster.nodes[2].endpoint();
    for args in [
        &["--command-timeout=2s", "endpoint", "status", "--cluster"][..],
        &["--command-timeout=2s", "endpoint", "health", "--cluster"],
        &["--command-timeout=2s", "member", "list"],
    ] {
        let want = run(ETCDCTL, &dead, args, None);
        let got = run(TIMONCTL, &dead, args, None);
        let context = describe(args, &want, &got);
        assert_eq!(got.status.code(), want.status.code(), "exit code; {context}");
        assert_eq!(error_lines(&got), error_lines(&want), "{context}");
    }
}
