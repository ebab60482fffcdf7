//! `timonctl watch` against `etcdctl watch` 3.4: both run as child
//! processes on the same member (etcd by default, or the binary named by
//! `TIMON_CLUSTER_SERVER`, see `common/cluster.rs`), the same writes are
//! made, and once each output has the expected number of lines (waited for
//! with a timeout) both are killed and their stdout compared byte for byte,
//! with the `watch was canceled` / `Error:` lines of stderr and, for
//! watches that end by themselves, the exit code.
//!
//! Both watches start at the revision of a first write (the sentinel,
//! `--rev` added after `watch`), so neither misses it however long it takes
//! to start; it is awaited in both outputs before the other writes, so from
//! then on both watchers are in step with the store and each later revision
//! reaches them as a response of its own.

mod common;

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::ctl::{run, TIMONCTL};
use common::{etcd_available, ETCDCTL};

/// Bound on every wait for output or exit.
const WAIT: Duration = Duration::from_secs(20);

#[derive(Default)]
struct Captured {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    closed: usize,
}

/// A watch command running in the background, its output collected by two
/// reader threads that signal each chunk.
struct Running {
    binary: &'static str,
    child: Child,
    /// For `watch -i`; `None` for the other commands (stdin is empty).
    stdin: Option<ChildStdin>,
    output: Arc<(Mutex<Captured>, Condvar)>,
    readers: Vec<JoinHandle<()>>,
}

/// What a finished command printed.
#[derive(Debug)]
struct Finished {
    stdout: String,
    /// stderr without etcd's JSON log lines.
    stderr: Vec<String>,
    code: Option<i32>,
}

fn lines(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b == b'\n').count()
}

impl Running {
    fn start(binary: &'static str, endpoint: &str, args: &[&str], env: &[(&str, &str)]) -> Running {
        Self::spawn(binary, endpoint, args, env, false)
    }

    /// Starts with stdin kept open for [`Running::send`].
    fn interactive(binary: &'static str, endpoint: &str, args: &[&str]) -> Running {
        Self::spawn(binary, endpoint, args, &[], true)
    }

    fn spawn(binary: &'static str, endpoint: &str, args: &[&str], env: &[(&str, &str)], input: bool) -> Running {
        let mut child = Command::new(binary)
            .env("ETCDCTL_API", "3")
            .env_remove("ETCDCTL_WATCH_KEY")
            .env_remove("ETCDCTL_WATCH_RANGE_END")
            .envs(env.iter().copied())
            .arg(format!("--endpoints={endpoint}"))
            .args(args)
            .stdin(if input { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {binary}: {e}"));
        let output = Arc::new((Mutex::new(Captured::default()), Condvar::new()));
        let mut readers = Vec::new();
        let stdout = child.stdout.take().expect("stdout piped");
        let stderr = child.stderr.take().expect("stderr piped");
        for (mut pipe, is_stdout) in [
            (Box::new(stdout) as Box<dyn Read + Send>, true),
            (Box::new(stderr) as Box<dyn Read + Send>, false),
        ] {
            let output = output.clone();
            readers.push(std::thread::spawn(move || {
                let mut buffer = [0u8; 4096];
                loop {
                    let read = pipe.read(&mut buffer).unwrap_or(0);
                    let (lock, signal) = &*output;
                    // A failed wait panics holding the lock; keep reading.
                    let mut captured = lock.lock().unwrap_or_else(|p| p.into_inner());
                    if read == 0 {
                        captured.closed += 1;
                    } else if is_stdout {
                        captured.stdout.extend_from_slice(&buffer[..read]);
                    } else {
                        captured.stderr.extend_from_slice(&buffer[..read]);
                    }
                    signal.notify_all();
                    if read == 0 {
                        return;
                    }
                }
            }));
        }
        Running {
            binary,
            stdin: child.stdin.take(),
            child,
            output,
            readers,
        }
    }

    /// Writes `text` to stdin; `None` closes it.
    fn send(&mut self, text: Option<&str>) {
        match text {
            Some(text) => {
                let stdin = self.stdin.as_mut().expect("stdin piped");
                stdin.write_all(text.as_bytes()).expect("write stdin");
                stdin.flush().expect("flush stdin");
            }
            None => self.stdin = None,
        }
    }

    /// Waits until stdout has at least `count` lines.
    fn wait_lines(&self, count: usize) {
        self.wait_for(count, true);
    }

    /// Waits until stderr has at least `count` lines.
    fn wait_stderr_lines(&self, count: usize) {
        self.wait_for(count, false);
    }

    fn wait_for(&self, count: usize, stdout: bool) {
        let (lock, signal) = &*self.output;
        let deadline = Instant::now() + WAIT;
        let mut captured = lock.lock().expect("lock");
        let printed = |c: &Captured| lines(if stdout { &c.stdout } else { &c.stderr });
        while printed(&captured) < count {
            let now = Instant::now();
            assert!(
                now < deadline && captured.closed < 2,
                "{} printed {} of {count} lines (on stdout: {stdout}):\n{}\nstderr:\n{}",
                self.binary,
                printed(&captured),
                String::from_utf8_lossy(&captured.stdout),
                String::from_utf8_lossy(&captured.stderr)
            );
            captured = signal.wait_timeout(captured, deadline - now).expect("wait").0;
        }
    }

    /// Kills the command (it never ends by itself) and collects its output.
    fn stop(mut self) -> Finished {
        let _ = self.child.kill();
        self.finish()
    }

    /// Waits (bounded) for the command to exit by itself.
    fn wait_exit(mut self) -> Finished {
        let deadline = Instant::now() + WAIT;
        while self.child.try_wait().expect("try_wait").is_none() {
            let (lock, signal) = &*self.output;
            let captured = lock.lock().expect("lock");
            assert!(Instant::now() < deadline, "{} did not exit", self.binary);
            // Woken by output or by the pipes closing at exit.
            let _ = signal.wait_timeout(captured, Duration::from_millis(50)).expect("wait");
        }
        self.finish()
    }

    fn finish(&mut self) -> Finished {
        let status = self.child.wait().expect("wait");
        for reader in self.readers.drain(..) {
            reader.join().expect("reader thread");
        }
        let captured = self.output.0.lock().expect("lock");
        Finished {
            stdout: String::from_utf8_lossy(&captured.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&captured.stderr)
                .lines()
                .filter(|l| !l.starts_with('{'))
                .map(str::to_owned)
                .collect(),
            code: status.code(),
        }
    }
}

/// `etcdctl` (the reference) writing to the member.
fn etcdctl(endpoint: &str, args: &[&str], stdin: Option<&str>) {
    let output = run(ETCDCTL, endpoint, args, stdin);
    assert!(
        output.status.success(),
        "etcdctl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The member's current revision.
fn revision(endpoint: &str) -> i64 {
    let output = run(ETCDCTL, endpoint, &["-w", "json", "get", "revision-probe"], None);
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).expect("get json");
    value["header"]["revision"].as_i64().expect("header revision")
}

fn put(endpoint: &str, key: &str, value: &str) {
    etcdctl(endpoint, &["put", "--", key, value], None);
}

/// Runs `args` (a watch) with both tools; writes `sentinel` and waits for
/// its `sentinel_lines` lines in both outputs; runs `writes`; waits until
/// both outputs have `total_lines` lines; kills both and compares.
fn same_watch(
    endpoint: &str,
    args: &[&str],
    env: &[(&str, &str)],
    sentinel: (&str, &str, usize),
    writes: &dyn Fn(),
    total_lines: usize,
) -> String {
    let rev = format!("--rev={}", revision(endpoint) + 1);
    let at = args.iter().position(|a| *a == "watch").expect("a watch command") + 1;
    let mut args = args.to_vec();
    args.insert(at, &rev);
    let args = &args[..];
    let want = Running::start(ETCDCTL, endpoint, args, env);
    let got = Running::start(TIMONCTL, endpoint, args, env);
    let (key, value, sentinel_lines) = sentinel;
    put(endpoint, key, value);
    want.wait_lines(sentinel_lines);
    got.wait_lines(sentinel_lines);
    writes();
    want.wait_lines(total_lines);
    got.wait_lines(total_lines);
    let (want, got) = (want.stop(), got.stop());
    let context = format!("args {args:?} env {env:?}\netcdctl: {want:?}\ntimonctl: {got:?}");
    assert_eq!(
        lines(want.stdout.as_bytes()),
        total_lines,
        "etcdctl line count; {context}"
    );
    assert_eq!(got.stdout, want.stdout, "stdout; {context}");
    assert_eq!(got.stderr, want.stderr, "stderr; {context}");
    got.stdout
}

/// A member for one test, and its endpoint.
fn member() -> (Cluster, String) {
    let cluster = Cluster::start(1);
    let endpoint = cluster.nodes[0].endpoint();
    (cluster, endpoint)
}

/// Writes seen by `watch foo --prefix`: puts, an update, a delete, a txn,
/// a key outside the prefix and characters JSON escapes.
fn prefix_writes(endpoint: &str) {
    put(endpoint, "foo1", "a");
    put(endpoint, "foo1", "b");
    etcdctl(endpoint, &["del", "foo1"], None);
    put(endpoint, "foo/x", "v y");
    etcdctl(endpoint, &["txn"], Some("\nput foo2 t1\nput foo3 t2\ndel foo/x\n\n\n"));
    put(endpoint, "other", "1");
    put(endpoint, "foo4", "\u{e9}<&>");
}

#[test]
fn simple_and_json_watch_output_matches_etcdctl() {
    if !etcd_available() {
        return;
    }
    let (_member, ep) = member();
    let writes = || prefix_writes(&ep);
    // Lines per event: the type, then key and value, and the previous key
    // and value when there is one (an update or a delete).
    let printed = same_watch(
        &ep,
        &["watch", "foo", "--prefix", "--prev-kv"],
        &[],
        ("foo0", "s", 3),
        &writes,
        3 + 3 + 5 + 5 + 3 + (3 + 3 + 5) + 3,
    );
    assert!(
        printed.starts_with("PUT\nfoo0\ns\nPUT\nfoo1\na\nPUT\nfoo1\na\nfoo1\nb\nDELETE\n"),
        "{printed}"
    );
    // One JSON line per revision: the sentinel and six writes.
    same_watch(
        &ep,
        &["-w", "json", "watch", "foo", "--prefix"],
        &[],
        ("foo0", "t", 1),
        &writes,
        7,
    );
    same_watch(
        &ep,
        &["watch", "--prev-kv=true", "-w=json", "foo", "--prefix"],
        &[],
        ("foo0", "u", 1),
        &writes,
        7,
    );
}

#[test]
fn range_fields_hex_and_environment_keys_match_etcdctl() {
    if !etcd_available() {
        return;
    }
    let (_member, ep) = member();
    // [foo1, foo3) in the fields format: 4 header lines per response, then
    // per event a type line and 6 lines per key-value.
    let writes = || {
        put(&ep, "foo2", "x");
        put(&ep, "foo3", "outside");
        etcdctl(&ep, &["del", "foo2"], None);
        etcdctl(&ep, &["txn"], Some("\nput foo1 y\nput foo2 \"z z\"\n\n\n"));
    };
    same_watch(
        &ep,
        &["-w", "fields", "watch", "foo1", "foo3"],
        &[],
        ("foo1", "s", 11),
        &writes,
        11 + 11 + 11 + (4 + 7 + 7),
    );
    let writes = || put(&ep, "k", "a b");
    same_watch(&ep, &["--hex", "watch", "k"], &[], ("k", "s", 3), &writes, 6);
    // The key and range end from the environment.
    let writes = || {
        put(&ep, "foo6", "outside");
        put(&ep, "foo2", "inside");
    };
    same_watch(
        &ep,
        &["watch", "--prev-kv"],
        &[("ETCDCTL_WATCH_KEY", "foo1"), ("ETCDCTL_WATCH_RANGE_END", "foo5")],
        ("foo1", "t", 5),
        &writes,
        10,
    );
}

#[test]
fn exec_commands_see_the_event_like_under_etcdctl() {
    if !etcd_available() {
        return;
    }
    let (_member, ep) = member();
    let script = "echo \"$ETCD_WATCH_REVISION $ETCD_WATCH_EVENT_TYPE $ETCD_WATCH_KEY $ETCD_WATCH_VALUE\"";
    let writes = || {
        put(&ep, "foo1", "a\"b");
        etcdctl(&ep, &["del", "foo1"], None);
    };
    // Per event: the simple lines, then the command's line.
    let printed = same_watch(
        &ep,
        &["watch", "foo", "--prefix", "--", "sh", "-c", script],
        &[],
        ("foo0", "s", 4),
        &writes,
        4 + 4 + 4,
    );
    assert!(printed.contains(" \"DELETE\" \"foo1\" \"\"\n"), "{printed}");
}

#[test]
fn history_and_compaction_match_etcdctl() {
    if !etcd_available() {
        return;
    }
    let (_member, ep) = member();
    for value in ["1", "2", "3", "4"] {
        put(&ep, "h", value);
    }
    put(&ep, "h2", "x");
    // Revisions 2..=6. A replay comes as one response.
    for format in ["simple", "json", "fields"] {
        let args = ["-w", format, "watch", "h", "--prefix", "--rev", "3", "--prev-kv"];
        let want = Running::start(ETCDCTL, &ep, &args, &[]);
        let got = Running::start(TIMONCTL, &ep, &args, &[]);
        let expected = match format {
            "simple" => 5 + 5 + 5 + 3,
            "json" => 1,
            _ => 4 + 3 * 13 + 7,
        };
        want.wait_lines(expected);
        got.wait_lines(expected);
        let (want, got) = (want.stop(), got.stop());
        assert_eq!(got.stdout, want.stdout, "{args:?}");
        assert_eq!(lines(got.stdout.as_bytes()), expected, "{args:?}");
    }

    etcdctl(&ep, &["compaction", "4"], None);
    // A compacted start revision: etcdctl prints the cancel on stderr (and
    // the response in json and fields), then exits with 5.
    for format in ["simple", "json", "fields"] {
        let args = ["-w", format, "watch", "h", "--rev", "2"];
        let want = Running::start(ETCDCTL, &ep, &args, &[]).wait_exit();
        let got = Running::start(TIMONCTL, &ep, &args, &[]).wait_exit();
        assert_eq!(want.code, Some(5), "{want:?}");
        assert_eq!(got.code, want.code, "{args:?}: {got:?}");
        assert_eq!(got.stdout, want.stdout, "{args:?}");
        assert_eq!(got.stderr, want.stderr, "{args:?}");
        assert_eq!(
            got.stderr,
            [
                "watch was canceled (etcdserver: mvcc: required revision has been compacted)",
                "Error: watch is canceled by the server"
            ]
        );
    }
}

#[test]
fn watch_argument_errors_match_etcdctl() {
    if !etcd_available() {
        return;
    }
    let (_member, ep) = member();
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)]);
    let cases: &[Case<'_>] = &[
        (&["watch"], &[]),
        (&["watch", "--rev", "2"], &[]),
        (&["watch", "a", "b", "--prefix"], &[]),
        (&["watch", "a", "--"], &[]),
        (&["watch", "a"], &[("ETCDCTL_WATCH_RANGE_END", "b")]),
        (&["watch", "a"], &[("ETCDCTL_WATCH_KEY", "k")]),
        (&["watch", "a", "--", "echo"], &[("ETCDCTL_WATCH_KEY", "k")]),
    ];
    for (args, env) in cases {
        let want = Running::start(ETCDCTL, &ep, args, env).wait_exit();
        let got = Running::start(TIMONCTL, &ep, args, env).wait_exit();
        let context = format!("{args:?} {env:?}: etcdctl {want:?} timonctl {got:?}");
        assert_eq!(got.code, want.code, "{context}");
        assert_eq!(got.stderr, want.stderr, "{context}");
        assert_eq!(got.stdout, want.stdout, "{context}");
    }
    // `-w table` is refused at the first response.
    let args = ["-w", "table", "watch", "t"];
    let want = Running::start(ETCDCTL, &ep, &args, &[]);
    let got = Running::start(TIMONCTL, &ep, &args, &[]);
    // Both must be watching before the write: wait until each has created
    // its watch, which a put on another key cannot show; retry the write
    // until both exited instead.
    let deadline = Instant::now() + WAIT;
    let (mut want, mut got) = (Some(want), Some(got));
    let mut results = Vec::new();
    while want.is_some() || got.is_some() {
        assert!(Instant::now() < deadline, "-w table watch did not fail");
        put(&ep, "t", "v");
        for slot in [&mut want, &mut got] {
            if slot
                .as_mut()
                .is_some_and(|r| r.child.try_wait().ok().flatten().is_some())
            {
                results.push(slot.take().expect("running").finish());
            }
        }
    }
    assert_eq!(results[0].code, Some(4), "{results:?}");
    assert_eq!(results[0].code, results[1].code, "{results:?}");
    assert_eq!(error_lines_of(&results[0]), error_lines_of(&results[1]));
}

fn error_lines_of(finished: &Finished) -> Vec<String> {
    finished
        .stderr
        .iter()
        .filter(|l| l.starts_with("Error:"))
        .cloned()
        .collect()
}

#[test]
fn interactive_watch_and_progress_match_etcdctl() {
    if !etcd_available() {
        return;
    }
    let (_member, ep) = member();
    let rev = revision(&ep) + 1;
    let args = ["-w", "json", "watch", "-i"];
    let mut tools = [
        Running::interactive(ETCDCTL, &ep, &args),
        Running::interactive(TIMONCTL, &ep, &args),
    ];
    let step =
        |tools: &mut [Running; 2], input: Option<&str>, write: Option<(&str, &str)>, stdout: usize, stderr: usize| {
            for tool in tools.iter_mut() {
                if let Some(input) = input {
                    tool.send(Some(input));
                }
            }
            if let Some((key, value)) = write {
                put(&ep, key, value);
            }
            for tool in tools.iter() {
                tool.wait_lines(stdout);
                tool.wait_stderr_lines(stderr);
            }
        };
    // The watch starts at the sentinel's revision, so it sees it however
    // late it is created; once printed, the watch is created.
    step(
        &mut tools,
        Some(&format!("watch k --prev-kv --rev {rev}\n")),
        Some(("k", "s")),
        1,
        0,
    );
    // A progress request: `progress notify: REV` and the empty response.
    step(&mut tools, Some("progress\n"), None, 3, 0);
    // Bad lines are reported on stderr and the session goes on.
    step(&mut tools, Some("\nbogus\nwatch\nwatch a b --prefix\n"), None, 3, 4);
    step(&mut tools, None, Some(("k", "t")), 4, 4);
    // A second watch on the same stream: progress reaches both. Both
    // print the same lines, in an order etcdctl does not fix.
    // It replays both revisions in one response.
    step(&mut tools, Some(&format!("watch k --rev {rev}\n")), None, 5, 4);
    step(&mut tools, Some("progress\n"), None, 9, 4);
    // The end of the input ends the command with exit 3.
    let [want, got] = tools.map(|mut tool| {
        tool.send(None);
        tool.wait_exit()
    });
    assert_eq!(want.code, Some(3), "{want:?}");
    assert_eq!(got.code, want.code, "{got:?}");
    assert_eq!(got.stderr, want.stderr);
    let want_lines: Vec<&str> = want.stdout.lines().collect();
    let got_lines: Vec<&str> = got.stdout.lines().collect();
    assert_eq!(got_lines[..4], want_lines[..4], "before the second watch");
    let sorted = |lines: &[&str]| {
        let mut lines = lines.to_vec();
        lines.sort_unstable();
        lines.join("\n")
    };
    assert_eq!(
        sorted(&got_lines[4..]),
        sorted(&want_lines[4..]),
        "after the second watch"
    );
    assert!(want_lines[1].starts_with("progress notify: "), "{want_lines:?}");

    // A bad flag on a line ends the session, as etcdctl's flag parser does.
    for input in ["watch --bogus k\n", "watch k -- \n"] {
        let [want, got] = [ETCDCTL, TIMONCTL].map(|binary| {
            let mut tool = Running::interactive(binary, &ep, &args);
            tool.send(Some(input));
            tool.wait_exit()
        });
        assert_eq!(want.code, Some(128), "{input:?}: {want:?}");
        assert_eq!(got.code, want.code, "{input:?}: {got:?}");
        assert_eq!(got.stderr, want.stderr, "{input:?}");
    }
}
