//! `etcdctl watch` (3.4) against real etcd and against the target: for each
//! case the same writes go to both servers, `etcdctl watch` runs as a child
//! process, and once its output holds the expected number of events it is
//! killed; stdout, stderr and the exit status must then be identical on both
//! after normalising only the header values that differ between two
//! clusters (cluster_id, member_id, raft_term).
//!
//! Covered: a single key, `--prefix`, a `[key, range_end)` range, the whole
//! key space (`--prefix ""`), `--rev` (history, a run of revisions read in one
//! batch, a future revision, exactly the compaction revision, a compacted
//! revision), `--prev-kv`, `-w simple|json|fields`, and the interactive mode's
//! `progress` command.
//!
//! A watch "from now" has no visible moment at which it is established, so
//! those run in interactive mode (`watch -i`, stdin `watch ...` then
//! `progress`): clientv3 sends the progress request on the same gRPC stream
//! after the create, etcd answers it with watch_id -1, and etcdctl prints
//! `progress notify: <revision>`; once that line is out the watcher exists
//! and the live writes start. A watch with `--rev` needs no such signal.
//!
//! What etcd 3.4.23 does here (checked by running this test etcd vs etcd):
//! - a historical watcher's backlog arrives as ONE response holding every
//!   revision (json prints one line), with header revision = the store's
//!   current revision; live events come one response per revision;
//! - a watch from a compacted revision prints, on stderr,
//!   `watch was canceled (etcdserver: mvcc: required revision has been compacted)`
//!   then `Error: watch is canceled by the server`, and etcdctl exits 5. In
//!   json the cancel response prints as
//!   `{"Header":{"cluster_id":..,"member_id":..,"raft_term":..},"Events":[],"CompactRevision":C,"Canceled":true,"Created":false}`:
//!   the header has no revision (etcd sends revision 0 there);
//! - a watch starting exactly at the compaction revision C (after a physical
//!   compaction) gets the PUTs of revision C without prev_kv (the lookup at
//!   C-1 is compacted) and does not get the DELETEs of revision C (their
//!   tombstones were compacted away);
//! - `progress` prints `progress notify: <current revision>` (json: also the
//!   response, with `"Events":[]`).
//!
//! `TIMON_DIFF_TARGET=etcd` compares etcd with a second etcd.
//! `TIMON_TEST_VERBOSE=1` prints every case's output.

mod support;

use std::io::Write as _;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long a watch may take to print what a case expects.
const TIMEOUT: Duration = Duration::from_secs(20);

/// One etcdctl command that changes the store. `@`, `@-N` and `@+N` at the
/// end of an argument stand for the current revision (minus or plus N).
struct Step {
    args: &'static [&'static str],
    stdin: Option<&'static str>,
}

const fn ctl(args: &'static [&'static str]) -> Step {
    Step { args, stdin: None }
}

/// `etcdctl txn` with no compares: every op runs, in one revision.
const fn txn(ops: &'static str) -> Step {
    Step {
        args: &["txn"],
        stdin: Some(ops),
    }
}

struct Case {
    name: &'static str,
    /// Writes before the watch starts.
    before: Vec<Step>,
    /// The watch command line (revision placeholders as in [`Step`]).
    watch: &'static [&'static str],
    /// Interactive mode: the stdin lines, ending with `progress`.
    interactive: Option<&'static str>,
    /// Events printed before the live writes start (a --rev backlog).
    backlog: usize,
    /// Writes while the watch runs.
    live: Vec<Step>,
    /// Events printed in all; or `None` if etcdctl must exit by itself.
    total: Option<usize>,
}

/// The cases, run in order on each server; revisions depend on every
/// earlier write, so both servers run all of them.
fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "a key, from now",
            before: vec![
                ctl(&["put", "foo", "v1"]),                         // 2
                ctl(&["put", "foo/a", "a1"]),                       // 3
                ctl(&["put", "foo", "v2"]),                         // 4
                ctl(&["put", "bar", "b1"]),                         // 5
                txn("\nput foo/b b1\nput foo/c c1\ndel bar\n\n\n"), // 6
                ctl(&["put", "foo/a", "a2"]),                       // 7
                ctl(&["del", "foo"]),                               // 8
            ],
            watch: &["watch", "-i"],
            interactive: Some("watch foo\nprogress\n"),
            backlog: 0,
            live: vec![
                ctl(&["put", "foo", "v3"]),   // 9
                ctl(&["put", "foo/a", "a3"]), // 10, not watched
                ctl(&["put", "foo", "v4"]),   // 11
                ctl(&["del", "foo"]),         // 12
            ],
            total: Some(3),
        },
        Case {
            name: "a prefix, from now, json",
            before: vec![],
            watch: &["watch", "-i", "-w", "json"],
            interactive: Some("watch foo --prefix\nprogress\n"),
            backlog: 0,
            live: vec![
                ctl(&["put", "foo/x", "x1"]),                         // 13
                txn("\nput foo/y y1\nput foo/z z1\nput zoo z\n\n\n"), // 14: 2 events
                ctl(&["del", "foo", "--prefix"]),                     // 15: 6 deletes
            ],
            total: Some(9),
        },
        Case {
            name: "a prefix from revision 2 (backlog of 14 revisions)",
            before: vec![],
            watch: &["watch", "foo", "--prefix", "--rev=2"],
            interactive: None,
            backlog: 20,
            live: vec![ctl(&["put", "foo/q", "q1"])], // 16
            total: Some(21),
        },
        Case {
            name: "a [key, range_end) range from revision 3 with prev_kv, json",
            before: vec![],
            watch: &["watch", "foo/a", "foo/c", "--rev=3", "--prev-kv", "-w", "json"],
            interactive: None,
            backlog: 6,
            live: vec![
                ctl(&["put", "foo/c", "c2"]), // 17, outside the range
                ctl(&["put", "foo/b", "b2"]), // 18
            ],
            total: Some(7),
        },
        Case {
            name: "a key from revision 4 with prev_kv, fields",
            before: vec![],
            watch: &["watch", "foo", "--rev=4", "--prev-kv", "-w", "fields"],
            interactive: None,
            backlog: 5,
            live: vec![ctl(&["put", "foo", "v5"])], // 19
            total: Some(6),
        },
        Case {
            name: "a future revision",
            before: vec![],
            watch: &["watch", "foo", "--rev=@+2"],
            interactive: None,
            backlog: 0,
            live: vec![
                ctl(&["put", "foo", "v6"]), // 20, before the start
                ctl(&["put", "foo", "v7"]), // 21
            ],
            total: Some(1),
        },
        Case {
            name: "a compacted revision",
            before: vec![
                ctl(&["put", "foo/m", "m1"]),              // 22
                ctl(&["put", "foo/n", "n1"]),              // 23
                txn("\nput foo/n n2\ndel foo/m\n\n\n"),    // 24
                ctl(&["put", "foo/n", "n3"]),              // 25
                ctl(&["compaction", "--physical", "@-1"]), // at 24
            ],
            watch: &["watch", "foo", "--prefix", "--rev=@-3"],
            interactive: None,
            backlog: 0,
            live: vec![],
            total: None,
        },
        Case {
            name: "a compacted revision, json",
            before: vec![],
            watch: &["watch", "foo", "--prefix", "--rev=@-3", "-w", "json"],
            interactive: None,
            backlog: 0,
            live: vec![],
            total: None,
        },
        Case {
            name: "from exactly the compaction revision with prev_kv, json",
            before: vec![],
            // 24: the PUT of foo/n (no prev_kv), not the DELETE of foo/m; 25.
            watch: &["watch", "foo", "--prefix", "--rev=@-1", "--prev-kv", "-w", "json"],
            interactive: None,
            backlog: 2,
            live: vec![ctl(&["put", "foo/n", "n4"])], // 26
            total: Some(3),
        },
        Case {
            name: "a prefix from now with prev_kv, json",
            before: vec![],
            watch: &["watch", "-i", "-w", "json"],
            interactive: Some("watch foo --prefix --prev-kv\nprogress\n"),
            backlog: 0,
            live: vec![
                ctl(&["put", "foo/n", "n5"]), // 27
                ctl(&["del", "foo/n"]),       // 28
                ctl(&["put", "foo/p", "p1"]), // 29
            ],
            total: Some(3),
        },
        Case {
            name: "every key from the current revision, fields",
            before: vec![],
            watch: &["watch", "--prefix", "", "--rev=@", "-w", "fields"],
            interactive: None,
            backlog: 1,
            live: vec![
                ctl(&["put", "\u{1}", "low"]), // 30
                ctl(&["put", "zzz", "high"]),  // 31
            ],
            total: Some(3),
        },
    ]
}

/// Replaces a trailing `@`, `@-N` or `@+N` with a revision.
fn resolve(arg: &str, rev: i64) -> String {
    let Some(at) = arg.rfind('@') else {
        return arg.to_string();
    };
    let offset = match &arg[at + 1..] {
        "" => 0,
        n => n
            .parse::<i64>()
            .unwrap_or_else(|_| panic!("bad revision placeholder in {arg:?}")),
    };
    format!("{}{}", &arg[..at], rev + offset)
}

fn etcdctl_command(endpoint: &str, args: &[String]) -> Command {
    let mut command = Command::new(support::etcdctl_bin());
    // etcdctl reads (and warns about unknown) ETCDCTL_* variables, and the
    // watch command reads ETCDCTL_WATCH_KEY: a clean environment.
    command
        .env_clear()
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .args(args);
    command
}

/// Runs a write step; it must succeed.
fn run_step(endpoint: &str, step: &Step, rev: i64) {
    let args: Vec<String> = step.args.iter().map(|a| resolve(a, rev)).collect();
    let mut child = etcdctl_command(endpoint, &args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn etcdctl");
    if let Some(text) = step.stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("write etcdctl stdin");
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("wait for etcdctl");
    assert!(
        out.status.success(),
        "etcdctl {args:?} on {endpoint} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The store's current revision.
fn current_revision(endpoint: &str) -> i64 {
    let (ok, stdout, stderr) = support::etcdctl(endpoint, &["get", "current-revision-probe", "-w", "json"]);
    assert!(ok, "etcdctl get on {endpoint}: {stderr}");
    let doc: Value = serde_json::from_str(stdout.trim()).expect("get -w json prints json");
    doc.pointer("/header/revision")
        .and_then(Value::as_i64)
        .expect("header revision")
}

/// How many events the output of a watch shows whole so far, by output
/// format. etcdctl prints an event's lines one by one, so an event counts
/// only once its last line is out: a watch killed right after an event's
/// first line would show it cut short (seen once in CI, on etcd's side).
/// Only whole lines count (a line is whole once its newline is written).
fn count_events(stdout: &str, format: &str) -> usize {
    let whole = &stdout[..stdout.rfind('\n').map_or(0, |i| i + 1)];
    match format {
        "json" => whole
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l)
                    .ok()
                    .and_then(|v| v.get("Events").and_then(Value::as_array).map(Vec::len))
                    .unwrap_or(0)
            })
            .sum(),
        // An event ends with its key-value's "Lease" line (its prev_kv's
        // lines come before, as "PrevLease").
        "fields" => whole.lines().filter(|l| l.starts_with("\"Lease\" :")).count(),
        // An event is its type, then its key and value (no case of this
        // format asks for prev_kv). No value in the cases is "PUT" or
        // "DELETE".
        _ => {
            let lines: Vec<&str> = whole.lines().collect();
            lines
                .iter()
                .enumerate()
                .filter(|(i, l)| (**l == "PUT" || **l == "DELETE") && i + 2 < lines.len())
                .count()
        }
    }
}

/// Exit status and normalised output of one watch.
#[derive(Debug, PartialEq)]
struct Output {
    /// `None`: killed by the test (it was still watching).
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// A running `etcdctl watch` whose stdout and stderr go to files.
struct Watch {
    child: Child,
    /// Kept open: interactive etcdctl exits when its stdin ends.
    _stdin: Option<ChildStdin>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}

/// Polls `done` on the watch's stdout until it holds, the process exits, or
/// the timeout passes; panics with the output in the last two cases.
fn wait_output(watch: &mut Watch, dir: &Path, what: &str, done: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let stdout = read(&dir.join("stdout"));
        if done(&stdout) {
            return;
        }
        let exited = watch.child.try_wait().ok().flatten();
        if exited.is_some() || Instant::now() > deadline {
            panic!(
                "waiting for {what}: etcdctl {}; stdout:\n{stdout}\nstderr:\n{}",
                exited.map_or("timed out".to_string(), |s| format!("exited with {s}")),
                read(&dir.join("stderr"))
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `case` on the server at `endpoint` (`who` names it in failures).
fn run_case(who: &str, endpoint: &str, case: &Case) -> Output {
    for step in &case.before {
        run_step(endpoint, step, current_revision(endpoint));
    }
    let rev = current_revision(endpoint);
    let args: Vec<String> = case.watch.iter().map(|a| resolve(a, rev)).collect();
    let format = args
        .windows(2)
        .find(|w| w[0] == "-w")
        .map_or("simple".to_string(), |w| w[1].clone());
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = etcdctl_command(endpoint, &args)
        .stdin(if case.interactive.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(std::fs::File::create(dir.path().join("stdout")).expect("stdout file"))
        .stderr(std::fs::File::create(dir.path().join("stderr")).expect("stderr file"))
        .spawn()
        .expect("spawn etcdctl watch");
    let mut stdin = child.stdin.take();
    if let (Some(lines), Some(stdin)) = (case.interactive, stdin.as_mut()) {
        stdin.write_all(lines.as_bytes()).expect("write watch commands");
        stdin.flush().expect("flush watch commands");
    }
    let mut watch = Watch { child, _stdin: stdin };
    if case.interactive.is_some() {
        let what = format!("{who}, case {:?}: the progress notification", case.name);
        wait_output(&mut watch, dir.path(), &what, |out| out.contains("progress notify: "));
    }
    let what = format!("{who}, case {:?}: {} backlog events", case.name, case.backlog);
    wait_output(&mut watch, dir.path(), &what, |out| {
        count_events(out, &format) >= case.backlog
    });
    for step in &case.live {
        run_step(endpoint, step, current_revision(endpoint));
    }
    let code = match case.total {
        Some(total) => {
            let what = format!("{who}, case {:?}: {total} events", case.name);
            wait_output(&mut watch, dir.path(), &what, |out| count_events(out, &format) >= total);
            let _ = watch.child.kill();
            let status = watch.child.wait().expect("reap etcdctl");
            status.code()
        }
        None => {
            let deadline = Instant::now() + TIMEOUT;
            loop {
                if let Some(status) = watch.child.try_wait().expect("poll etcdctl") {
                    break status.code();
                }
                assert!(
                    Instant::now() < deadline,
                    "{who}, case {:?}: etcdctl {args:?} did not exit by itself; stdout:\n{}\nstderr:\n{}",
                    case.name,
                    read(&dir.path().join("stdout")),
                    read(&dir.path().join("stderr"))
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    };
    drop(watch);
    Output {
        code,
        stdout: normalise_stdout(&read(&dir.path().join("stdout"))),
        stderr: read(&dir.path().join("stderr"))
            .lines()
            // clientv3's JSON log lines carry timestamps.
            .filter(|l| !l.starts_with("{\"level\":"))
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

/// A value that differs between clusters, replaced after checking that it
/// is plausible (a positive number).
fn placeholder(name: &str, value: &str) -> String {
    assert!(
        value.parse::<u64>().is_ok_and(|n| n > 0),
        "{name} must be a positive number, got {value}"
    );
    format!("<{name}>")
}

/// json lines: the Header's cluster_id, member_id and raft_term; fields
/// lines: ClusterID, MemberID and RaftTerm. Everything else is kept.
fn normalise_stdout(text: &str) -> String {
    text.lines()
        .map(|line| {
            if let Some((name, value)) = line.split_once(" : ") {
                let name = name.trim_matches('"');
                if matches!(name, "ClusterID" | "MemberID" | "RaftTerm") {
                    return format!("\"{name}\" : {}", placeholder(name, value));
                }
                return line.to_string();
            }
            if line.starts_with('{') {
                if let Ok(mut doc) = serde_json::from_str::<Value>(line) {
                    if let Some(header) = doc.get_mut("Header").and_then(Value::as_object_mut) {
                        for key in ["cluster_id", "member_id", "raft_term"] {
                            if let Some(v) = header.get_mut(key) {
                                *v = Value::String(placeholder(key, &v.to_string()));
                            }
                        }
                    }
                    return doc.to_string();
                }
            }
            line.to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn etcdctl_watch_output_matches_etcd() {
    if support::skip_without_etcd("etcdctl_watch_output_matches_etcd") {
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
    let verbose = std::env::var_os("TIMON_TEST_VERBOSE").is_some();
    let mut differences = Vec::new();
    for (i, case) in cases().iter().enumerate() {
        let (etcd_rev, target_rev) = (current_revision(&etcd.endpoint()), current_revision(&target.endpoint()));
        assert_eq!(
            etcd_rev, target_rev,
            "before case #{i} ({}) the revisions differ",
            case.name
        );
        let expected = run_case("etcd", &etcd.endpoint(), case);
        let actual = run_case(target_name, &target.endpoint(), case);
        if verbose {
            println!(
                "#{i} {} (`etcdctl {}`):\n{}\n-- stderr --\n{}\n-- exit {:?}\n",
                case.name,
                case.watch.join(" "),
                expected.stdout,
                expected.stderr,
                expected.code
            );
        }
        if expected != actual {
            differences.push(format!(
                "case #{i} {} (`etcdctl {}`):\n  etcd: {expected:?}\n  {target_name}: {actual:?}",
                case.name,
                case.watch.join(" ")
            ));
        }
    }
    assert!(
        differences.is_empty(),
        "{} etcdctl watch cases differ between etcd and {target_name}:\n{}\n{target_name} stderr tail:\n{}",
        differences.len(),
        differences.join("\n"),
        target.stderr_tail(3000)
    );
    println!("etcdctl watch: {} cases matched", cases().len());
}
