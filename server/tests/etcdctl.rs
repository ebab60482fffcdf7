//! etcdctl against timon and against real etcd: the same command lines must
//! print the same output and exit with the same status on both, once the
//! values that legitimately differ between two clusters are normalised
//! (endpoint URLs, cluster and member ids, raft term and index, db size,
//! server version, timings).
//!
//! `TIMON_DIFF_TARGET=etcd` runs the same comparison between two etcds.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

/// One etcdctl invocation: arguments and optional stdin.
struct Cmd {
    args: Vec<String>,
    stdin: Option<&'static str>,
    /// Pass the endpoint as `127.0.0.1:port` instead of `http://...`. The
    /// two forms differ on the wire: for Maintenance calls (endpoint
    /// status, hashkv) etcdctl 3.4 sends the `--endpoints` value verbatim as
    /// the HTTP/2 `:authority`, so the `http://` form makes it
    /// `http://127.0.0.1:port`.
    bare: bool,
}

fn cmd(args: &[&str]) -> Cmd {
    Cmd {
        args: args.iter().map(|a| a.to_string()).collect(),
        stdin: None,
        bare: false,
    }
}

fn bare(args: &[&str]) -> Cmd {
    Cmd {
        bare: true,
        ..cmd(args)
    }
}

fn txn(args: &[&str], stdin: &'static str) -> Cmd {
    Cmd {
        stdin: Some(stdin),
        ..cmd(args)
    }
}

/// The command script. Revisions and outputs depend on every earlier step,
/// so order matters and both servers run all of it.
fn script() -> Vec<Cmd> {
    vec![
        cmd(&["put", "foo", "bar"]),
        cmd(&["put", "foo/a", "1"]),
        cmd(&["put", "foo/b", "2", "-w", "json"]),
        cmd(&["put", "zoo", "z z"]),
        cmd(&["put", "foo", "baz", "--prev-kv"]),
        cmd(&["put", "foo/c", "3", "--prev-kv", "-w", "json"]),
        cmd(&["put", "foo/c", "4", "-w", "fields"]),
        cmd(&["put", "", "empty"]),
        cmd(&["get", "foo"]),
        cmd(&["get", "missing"]),
        cmd(&["get", "foo", "-w", "json"]),
        cmd(&["get", "foo", "--prefix"]),
        cmd(&["get", "foo", "--prefix", "-w", "json"]),
        cmd(&["get", "foo", "--prefix", "-w", "fields"]),
        cmd(&["get", "foo", "--prefix", "--limit=2", "-w", "json"]),
        cmd(&["get", "foo", "--prefix", "--limit=1"]),
        cmd(&["get", "foo", "--rev=2", "-w", "json"]),
        cmd(&["get", "foo", "--rev=99"]),
        cmd(&["get", "foo", "--prefix", "--keys-only"]),
        cmd(&["get", "foo", "--prefix", "--keys-only", "-w", "json"]),
        cmd(&["get", "foo", "--prefix", "--print-value-only"]),
        cmd(&["get", "foo", "--prefix", "--sort-by=MODIFY", "--order=DESCEND"]),
        cmd(&["get", "foo", "--prefix", "--sort-by=VALUE", "--order=ASCEND", "-w", "json"]),
        cmd(&["get", "foo", "--prefix", "--order=DESCEND", "--limit=2"]),
        cmd(&["get", "--from-key", "foo/b"]),
        cmd(&["get", "--from-key", "", "--keys-only"]),
        cmd(&["get", "foo", "foo/c"]),
        cmd(&["get", "foo", "--consistency=s", "-w", "json"]),
        cmd(&["get", "foo", "--hex"]),
        cmd(&["get", "foo", "--prefix", "-w", "table"]),
        txn(&["txn"], "mod(\"foo\") > \"0\"\n\nput foo/t \"x y\"\nget foo\n\ndel foo\n\n"),
        txn(&["txn", "-w", "json"], "value(\"foo\") = \"baz\"\nversion(\"foo/a\") = \"1\"\n\nput foo/u u\nget foo --prefix --limit=2\ndel foo/a --prev-kv\n\nget zoo\n\n"),
        txn(&["txn", "-w", "json"], "create(\"nope\") > \"0\"\n\nput x 1\n\nput y 2\nget y\ndel zoo\n\n"),
        txn(&["txn", "-w", "fields"], "mod(\"foo\") < \"1000\"\n\nget foo --prefix\n\n\n"),
        txn(&["txn", "-i"], "version(\"foo\") = \"2\"\n\nput foo i\n\nput foo j\n\n"),
        txn(&["txn"], "value(\"foo\") != \"zzz\"\n\nput dup 1\nput dup 2\n\n\n"),
        txn(&["txn"], "mod(\"foo\") > \"0\"\n\n\n\n"),
        cmd(&["del", "foo/b"]),
        cmd(&["del", "missing"]),
        cmd(&["del", "foo/c", "--prev-kv"]),
        cmd(&["del", "foo/u", "--prev-kv", "-w", "json"]),
        cmd(&["del", "foo", "--prefix", "--prev-kv"]),
        cmd(&["del", "--from-key", "y", "-w", "json"]),
        cmd(&["get", "", "--prefix", "-w", "json"]),
        cmd(&["put", "k", "v1"]),
        cmd(&["put", "k", "v2"]),
        cmd(&["put", "k", "v3"]),
        cmd(&["compaction", "3"]),
        cmd(&["compaction", "3"]),
        cmd(&["compaction", "2"]),
        cmd(&["compaction", "999"]),
        cmd(&["compaction", "--physical", "5"]),
        cmd(&["get", "k", "--rev=4"]),
        cmd(&["get", "k", "--rev=5", "-w", "json"]),
        cmd(&["get", "k", "--rev=6"]),
        cmd(&["endpoint", "hashkv"]),
        cmd(&["endpoint", "hashkv", "-w", "json"]),
        cmd(&["endpoint", "hashkv", "--rev=6", "-w", "table"]),
        cmd(&["endpoint", "hashkv", "--rev=4", "-w", "json"]),
        cmd(&["endpoint", "hashkv", "--rev=2"]),
        cmd(&["endpoint", "hashkv", "--rev=99"]),
        cmd(&["endpoint", "status"]),
        cmd(&["endpoint", "status", "-w", "json"]),
        cmd(&["endpoint", "status", "-w", "table"]),
        cmd(&["endpoint", "status", "-w", "fields"]),
        cmd(&["endpoint", "health"]),
        cmd(&["endpoint", "health", "-w", "json"]),
        cmd(&["endpoint", "health", "-w", "table"]),
        cmd(&["get", "", "--prefix", "-w", "fields"]),
        bare(&["get", "k", "-w", "json"]),
        bare(&["endpoint", "status", "-w", "json"]),
        bare(&["endpoint", "health"]),
    ]
}

/// Exit status, stdout and stderr of one run, normalised.
#[derive(Debug, PartialEq)]
struct Output {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run(endpoint: &str, c: &Cmd) -> Output {
    let host_port = endpoint.trim_start_matches("http://");
    let mut child = Command::new(support::etcdctl_bin())
        // etcdctl reads (and warns about unknown) ETCDCTL_* variables, so it
        // gets a clean environment.
        .env_clear()
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", if c.bare { host_port } else { endpoint }))
        .args(&c.args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn etcdctl");
    if let Some(mut stdin) = child.stdin.take() {
        if let Some(text) = c.stdin {
            stdin.write_all(text.as_bytes()).expect("write etcdctl stdin");
        }
    }
    let out = child.wait_with_output().expect("wait for etcdctl");
    let is_json = c.args.windows(2).any(|w| w[0] == "-w" && w[1] == "json");
    let stdout = String::from_utf8_lossy(&out.stdout)
        .replace(endpoint, "<endpoint>")
        .replace(host_port, "<endpoint>");
    let stderr = String::from_utf8_lossy(&out.stderr)
        .replace(endpoint, "<endpoint>")
        .replace(host_port, "<endpoint>");
    Output {
        code: out.status.code(),
        stdout: if is_json {
            normalise_json(&stdout)
        } else {
            normalise_text(&stdout)
        },
        stderr: normalise_stderr(&stderr),
    }
}

/// clientv3 logs a JSON warning line (with a timestamp and a random client
/// id) before each failed retry; the `Error: ...` line that follows is kept.
/// `endpoint health` prints its verdict (with a timing) to stderr.
fn normalise_stderr(text: &str) -> String {
    text.lines()
        .filter(|l| !l.starts_with("{\"level\":"))
        .map(normalise_line)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Replace a value that differs between clusters, after checking that it is
/// plausible, so a wildly wrong value (zero ids, a non-etcd version) still
/// fails.
fn placeholder(name: &str, value: &Value) -> Value {
    match name {
        "version" => {
            let v = value.as_str().unwrap_or_default();
            assert!(v.starts_with("3."), "Status version {v:?} is not an etcd 3.x version");
        }
        "cluster_id" | "member_id" | "leader" | "raft_term" | "raftTerm" | "raftIndex" | "raftAppliedIndex" => {
            assert!(
                value.as_u64().is_some_and(|n| n > 0),
                "{name} must be a positive number, got {value}"
            );
        }
        _ => {}
    }
    Value::String(format!("<{name}>"))
}

fn normalise_header(header: &mut Value) {
    if let Some(obj) = header.as_object_mut() {
        for key in ["cluster_id", "member_id", "raft_term"] {
            if let Some(v) = obj.get_mut(key) {
                *v = placeholder(key, v);
            }
        }
    }
}

/// JSON output: the outer response header's ids and term; for endpoint
/// status also the Status fields; for endpoint health the timing; for
/// endpoint hashkv its header's ids and term (the hash itself must match).
fn normalise_json(text: &str) -> String {
    let Ok(mut doc) = serde_json::from_str::<Value>(text.trim()) else {
        return text.to_string();
    };
    if let Some(header) = doc.get_mut("header") {
        normalise_header(header);
    }
    if let Some(items) = doc.as_array_mut() {
        for item in items {
            if let Some(status) = item.get_mut("Status") {
                let member = status.pointer("/header/member_id").cloned();
                assert_eq!(
                    status.get("leader"),
                    member.as_ref(),
                    "a single member must lead itself: {status}"
                );
                if let Some(header) = status.get_mut("header") {
                    normalise_header(header);
                }
                if let Some(obj) = status.as_object_mut() {
                    for key in [
                        "version",
                        "dbSize",
                        "dbSizeInUse",
                        "leader",
                        "raftIndex",
                        "raftTerm",
                        "raftAppliedIndex",
                    ] {
                        if let Some(v) = obj.get_mut(key) {
                            *v = placeholder(key, v);
                        }
                    }
                }
            }
            if let Some(header) = item.pointer_mut("/HashKV/header") {
                normalise_header(header);
            }
            if let Some(took) = item.get_mut("took") {
                *took = placeholder("took", took);
            }
        }
    }
    doc.to_string()
}

/// Simple, fields and table output.
fn normalise_text(text: &str) -> String {
    text.lines().map(normalise_line).collect::<Vec<_>>().join("\n")
}

fn normalise_line(line: &str) -> String {
    // `-w fields`: `"Name" : value`. Ids and terms are zero in inner txn
    // headers and must stay zero, so only non-zero ones are replaced.
    if let Some((name, value)) = line.split_once(" : ") {
        let name = name.trim_matches('"');
        match name {
            "ClusterID" | "MemberID" | "RaftTerm" if value != "0" => return format!("\"{name}\" : <{name}>"),
            // The server version is quoted; a key's version is a number.
            "Version" if value.starts_with("\"3.") => return format!("\"{name}\" : <{name}>"),
            "DBSize" | "DBSizeInUse" | "Leader" | "RaftIndex" | "RaftAppliedIndex" | "Took" => {
                return format!("\"{name}\" : <{name}>")
            }
            _ => return line.to_string(),
        }
    }
    // `endpoint health` (simple).
    if let Some((head, _)) = line.split_once("took = ") {
        return format!("{head}took = <took>");
    }
    // Tables: border widths follow the cell contents; compare cells only.
    if line.starts_with('+') {
        return "<border>".to_string();
    }
    if line.starts_with('|') {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        return normalise_status_cells(cells).join(" | ");
    }
    // `endpoint status` (simple): comma-separated cells.
    if line.starts_with("<endpoint>, ") {
        let cells: Vec<&str> = line.split(", ").collect();
        return normalise_status_cells(cells).join(", ");
    }
    line.to_string()
}

/// Status rows (simple and table): endpoint, ID, version, db size, is
/// leader, is learner, raft term, raft index, raft applied index, errors.
/// Health table rows: endpoint, health, took, error.
fn normalise_status_cells(mut cells: Vec<&str>) -> Vec<String> {
    let varying: &[usize] = match cells.len() {
        10 | 11 if cells[0] != "ENDPOINT" => &[1, 2, 3, 6, 7, 8],
        4 if cells[0] != "ENDPOINT" => &[2],
        _ => &[],
    };
    for &i in varying {
        cells[i] = "<varies>";
    }
    cells.into_iter().map(str::to_string).collect()
}

#[test]
fn etcdctl_output_matches_etcd() {
    if support::skip_without_etcd("etcdctl_output_matches_etcd") {
        return;
    }
    assert!(
        support::etcdctl_bin().exists(),
        "{} is missing",
        support::etcdctl_bin().display()
    );
    let target_name = support::target_name();
    let etcd = support::start_etcd();
    let target = support::start_target();
    // TIMON_TEST_VERBOSE=1 prints every step, to review what the script covers.
    let verbose = std::env::var_os("TIMON_TEST_VERBOSE").is_some();
    // Every differing step is reported, not just the first: later steps
    // mostly do not depend on the output of earlier ones.
    let mut differences = Vec::new();
    for (i, c) in script().iter().enumerate() {
        let expected = run(&etcd.endpoint(), c);
        let actual = run(&target.endpoint(), c);
        if verbose {
            println!("#{i} etcdctl {} => {expected:?}", c.args.join(" "));
        }
        if expected != actual {
            differences.push(format!(
                "step #{i} `etcdctl {}`{}{}\n  etcd: {expected:?}\n  {target_name}: {actual:?}",
                c.args.join(" "),
                if c.bare { " (endpoint without http://)" } else { "" },
                c.stdin.map(|s| format!(" (stdin {s:?})")).unwrap_or_default()
            ));
        }
    }
    assert!(
        differences.is_empty(),
        "{} etcdctl steps differ between etcd and {target_name}:\n{}\n{target_name} stderr tail:\n{}",
        differences.len(),
        differences.join("\n"),
        target.stderr_tail(3000)
    );
}
