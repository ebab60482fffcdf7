//! etcd's auth through etcdctl 3.4, against timon and against real etcd
//! 3.4: the same session (users, roles, prefix / from-key / range
//! permissions, permission-denied cases, wrong passwords, auth enable
//! without root, deleting root while enabled, watches and leases under
//! auth) must print the same lines and exit the same way on both.
//!
//! `TIMON_DIFF_TARGET=etcd` runs the same comparison between two etcds.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const ROOT: &str = "--user=root:rootpw";
const ALICE: &str = "--user=alice:alicepw";

/// One etcdctl invocation: arguments and optional stdin.
struct Step {
    args: Vec<String>,
    stdin: Option<&'static str>,
}

fn step(args: &[&str]) -> Step {
    Step {
        args: args.iter().map(|a| a.to_string()).collect(),
        stdin: None,
    }
}

fn with_stdin(args: &[&str], stdin: &'static str) -> Step {
    Step {
        stdin: Some(stdin),
        ..step(args)
    }
}

/// The session. Every step depends on the ones before it.
fn script() -> Vec<Step> {
    vec![
        // No root user yet.
        step(&["auth", "enable"]),
        step(&["user", "add", "root:rootpw"]),
        step(&["user", "add", "root:again"]),
        step(&["user", "add", "alice:alicepw"]),
        step(&["user", "add", "carol", "--no-password"]),
        with_stdin(&["user", "add", "dave", "--interactive=false"], "davepw\n"),
        step(&["user", "add", "bob", "--new-user-password=bobpw"]),
        step(&["role", "add", "reader"]),
        step(&["role", "add", "reader"]),
        step(&["role", "add", "writer"]),
        step(&["role", "grant-permission", "reader", "read", "foo"]),
        step(&[
            "role",
            "grant-permission",
            "reader",
            "--prefix=true",
            "readwrite",
            "pre/",
        ]),
        step(&["role", "grant-permission", "reader", "--from-key", "write", "m"]),
        step(&["role", "grant-permission", "reader", "read", "a", "c"]),
        step(&["role", "grant-permission", "reader", "readwrite", "foo"]),
        step(&["role", "grant-permission", "nosuch", "read", "x"]),
        step(&["role", "grant-permission", "writer", "write", "w"]),
        step(&["role", "get", "reader"]),
        step(&["role", "get", "nosuch"]),
        step(&["role", "list"]),
        step(&["user", "grant-role", "alice", "reader"]),
        step(&["user", "grant-role", "alice", "writer"]),
        step(&["user", "grant-role", "alice", "reader"]),
        step(&["user", "grant-role", "alice", "nosuch"]),
        step(&["user", "grant-role", "nobody", "reader"]),
        step(&["user", "get", "alice"]),
        step(&["user", "get", "alice", "--detail"]),
        step(&["user", "get", "nobody"]),
        step(&["user", "list"]),
        step(&["user", "revoke-role", "alice", "writer"]),
        step(&["user", "revoke-role", "alice", "writer"]),
        step(&["role", "revoke-permission", "writer", "nothere"]),
        step(&["role", "revoke-permission", "writer", "w"]),
        step(&["role", "delete", "writer"]),
        step(&["role", "delete", "writer"]),
        step(&["user", "delete", "bob"]),
        step(&["user", "delete", "bob"]),
        step(&["put", "foo", "before"]),
        // root exists but lacks the root role: etcdctl adds the role and
        // grants it, then enables.
        step(&["auth", "enable"]),
        step(&["auth", "enable"]),
        step(&["role", "get", "root"]),
        // Without credentials.
        step(&["get", "foo"]),
        step(&["put", "foo", "x"]),
        step(&["user", "list"]),
        // Wrong password, unknown user, no-password user.
        step(&["--user=alice:wrong", "get", "foo"]),
        step(&["--user=nobody:pw", "get", "foo"]),
        step(&["--user=carol:pw", "get", "foo"]),
        // Alice's permissions.
        step(&[ALICE, "get", "foo"]),
        step(&[ALICE, "put", "foo", "v1"]),
        step(&[ALICE, "put", "foo", "v2", "--prev-kv"]),
        step(&[ALICE, "get", "foo", "--prefix"]),
        step(&[ALICE, "put", "pre/1", "p1"]),
        step(&[ALICE, "put", "pre/2", "p2"]),
        step(&[ALICE, "get", "pre/", "--prefix"]),
        step(&[ALICE, "get", "pre/1", "--consistency=s"]),
        step(&[ALICE, "del", "pre/2", "--prev-kv"]),
        step(&[ALICE, "put", "zzz", "m-and-above"]),
        step(&[ALICE, "get", "zzz"]),
        step(&[ALICE, "del", "zzz"]),
        step(&[ALICE, "put", "b", "nope"]),
        step(&[ALICE, "get", "a", "c"]),
        step(&[ALICE, "get", "a", "d"]),
        step(&[ALICE, "get", "--from-key", "m"]),
        step(&[ALICE, "del", "--from-key", "m"]),
        step(&[ALICE, "put", "other", "x"]),
        with_stdin(
            &[ALICE, "txn"],
            "value(\"foo\") = \"v2\"\n\nput pre/t t\n\nput other x\n\n",
        ),
        with_stdin(&[ALICE, "txn"], "value(\"secret\") = \"x\"\n\nput pre/t t\n\n\n"),
        with_stdin(&[ALICE, "txn"], "\n\nget pre/ --prefix\n\n\n"),
        with_stdin(&[ALICE, "txn"], "\n\nget other\n\n\n"),
        step(&[ALICE, "user", "list"]),
        step(&[ALICE, "user", "get", "alice"]),
        step(&[ALICE, "user", "get", "root"]),
        step(&[ALICE, "role", "get", "reader"]),
        step(&[ALICE, "role", "get", "root"]),
        step(&[ALICE, "role", "add", "mine"]),
        step(&[ALICE, "member", "remove", "1"]),
        step(&[ALICE, "compaction", "1"]),
        // Maintenance: defragment, hashes and snapshots need root; alarms
        // do not (etcd 3.4 and 3.5 check no permission for them).
        step(&[ALICE, "alarm", "list"]),
        step(&[ALICE, "defrag"]),
        step(&[ALICE, "endpoint", "hashkv"]),
        step(&[ALICE, "snapshot", "save", "/tmp/timon-auth-snapshot-test.db"]),
        // A watch alice may not make is canceled at once.
        step(&[ALICE, "watch", "other"]),
        step(&[ALICE, "watch", "--prefix", "other"]),
        // Lock and Election act with the caller's permissions.
        step(&[ALICE, "lock", "lk", "/bin/echo", "held"]),
        step(&[
            ROOT,
            "role",
            "grant-permission",
            "reader",
            "--prefix",
            "readwrite",
            "lk",
        ]),
        step(&[ALICE, "lock", "lk", "/bin/echo", "held"]),
        step(&[ALICE, "elect", "el", "me", "--listen=false"]),
        step(&[ROOT, "get", "foo", "--prefix"]),
        step(&[ROOT, "user", "list"]),
        step(&[ROOT, "user", "get", "root"]),
        step(&[ROOT, "role", "list"]),
        // root stays root while auth is on.
        step(&[ROOT, "user", "delete", "root"]),
        step(&[ROOT, "user", "revoke-role", "root", "root"]),
        step(&[ROOT, "role", "delete", "root"]),
        // A changed password: the old one fails, the new one works.
        with_stdin(&[ROOT, "user", "passwd", "alice", "--interactive=false"], "newpw\n"),
        step(&[ALICE, "get", "foo"]),
        step(&["--user=alice:newpw", "get", "foo"]),
        step(&["--user=alice", "--password=newpw", "get", "foo"]),
        // A revoked permission applies at once.
        step(&[ROOT, "role", "revoke-permission", "reader", "foo"]),
        step(&["--user=alice:newpw", "get", "foo"]),
        step(&[ROOT, "role", "revoke-permission", "reader", "pre/", "--prefix"]),
        step(&["--user=alice:newpw", "get", "pre/1"]),
        step(&[ROOT, "role", "revoke-permission", "reader", "m", "--from-key"]),
        step(&[ROOT, "role", "get", "reader"]),
        step(&[ROOT, "auth", "disable"]),
        step(&["get", "foo"]),
        step(&["user", "delete", "root"]),
        step(&["user", "list"]),
        step(&["auth", "enable"]),
    ]
}

/// Exit status, stdout and stderr of one run.
#[derive(Debug, PartialEq)]
struct Output {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn etcdctl(endpoint: &str, args: &[String], stdin: Option<&str>) -> Command {
    let mut c = Command::new(support::etcdctl_bin());
    // etcdctl reads (and warns about unknown) ETCDCTL_* variables, so it
    // gets a clean environment.
    c.env_clear()
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .arg("--command-timeout=10s")
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// clientv3 logs JSON warning lines (timestamps, random ids) before
/// retries; the `Error: ...` line that follows is what is compared. Lease
/// IDs and revisions in headers differ between servers.
fn normalise(text: &str, endpoint: &str) -> String {
    text.lines()
        .filter(|l| !l.starts_with("{\"level\":"))
        .map(|l| l.replace(endpoint, "<endpoint>"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn run(endpoint: &str, s: &Step) -> Output {
    let mut child = etcdctl(endpoint, &s.args, s.stdin).spawn().expect("spawn etcdctl");
    if let (Some(mut stdin), Some(text)) = (child.stdin.take(), s.stdin) {
        stdin.write_all(text.as_bytes()).expect("write etcdctl stdin");
    }
    let out = child.wait_with_output().expect("wait for etcdctl");
    Output {
        code: out.status.code(),
        stdout: normalise(&String::from_utf8_lossy(&out.stdout), endpoint),
        stderr: normalise(&String::from_utf8_lossy(&out.stderr), endpoint),
    }
}

/// A watch running in the background; its stdout lines arrive on a channel.
struct Watch {
    child: std::process::Child,
    lines: mpsc::Receiver<String>,
}

impl Watch {
    fn start(endpoint: &str, args: &[&str]) -> Self {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let mut child = etcdctl(endpoint, &args, None).spawn().expect("spawn etcdctl watch");
        let stdout = child.stdout.take().expect("watch stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Self { child, lines }
    }

    /// The next `n` lines (a watch prints 3 per event), or what came
    /// within 20 s.
    fn next(&self, n: usize) -> Vec<String> {
        let mut out = Vec::new();
        while out.len() < n {
            match self.lines.recv_timeout(Duration::from_secs(20)) {
                Ok(l) => out.push(l),
                Err(_) => break,
            }
        }
        out
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A watch made while alice may read `pre/`: what it prints after her
/// role is revoked mid-watch (etcd checks a watch when it is created only,
/// so events keep coming), and a lease alice may not revoke.
fn watch_and_lease_session(endpoint: &str) -> Vec<String> {
    let ok = |args: &[&str]| {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let out = run(endpoint, &Step { args, stdin: None });
        format!("{out:?}")
    };
    let mut log = vec![
        ok(&["user", "add", "root:rootpw"]),
        ok(&["user", "add", "alice:alicepw"]),
        ok(&["role", "add", "reader"]),
        ok(&["role", "grant-permission", "reader", "--prefix", "readwrite", "pre/"]),
        ok(&["user", "grant-role", "alice", "reader"]),
        ok(&["auth", "enable"]),
    ];
    log.push(ok(&[ROOT, "put", "pre/a", "v"]));
    // From revision 1, so the first event comes whenever the watch starts.
    let watch = Watch::start(endpoint, &[ALICE, "watch", "--prefix", "pre/", "--rev=1"]);
    let seen = watch.next(3);
    log.push(format!("first event: {seen:?}"));
    log.push(ok(&[ROOT, "user", "revoke-role", "alice", "reader"]));
    log.push(ok(&[ROOT, "put", "pre/b", "after-revoke"]));
    log.push(format!("after revoke: {:?}", watch.next(3)));
    log.push(ok(&[ALICE, "get", "pre/b"]));
    drop(watch);
    // A lease with root's key: alice may not revoke it, root may.
    let grant = run(endpoint, &step(&[ROOT, "lease", "grant", "600"]));
    let id = grant.stdout.split_whitespace().nth(1).unwrap_or("0").to_string();
    log.push(ok(&[ROOT, "put", "--lease", &id, "rootkey", "v"]));
    log.push(ok(&[ROOT, "user", "grant-role", "alice", "reader"]));
    log.push(ok(&[ALICE, "lease", "revoke", &id]).replace(&id, "<lease>"));
    log.push(ok(&[ALICE, "put", "--lease", &id, "pre/l", "v"]).replace(&id, "<lease>"));
    log.push(ok(&[ROOT, "lease", "revoke", &id]).replace(&id, "<lease>"));
    log.push(ok(&[ROOT, "get", "rootkey"]));
    log
}

fn compare(name: &str, expected: &[String], actual: &[String], target: &support::Member) {
    let differences: Vec<String> = expected
        .iter()
        .zip(actual)
        .enumerate()
        .filter(|(_, (e, a))| e != a)
        .map(|(i, (e, a))| format!("#{i}\n  etcd:  {e}\n  timon: {a}"))
        .collect();
    assert!(
        differences.is_empty() && expected.len() == actual.len(),
        "{name}: {} steps differ:\n{}\ntarget stderr tail:\n{}",
        differences.len(),
        differences.join("\n"),
        target.stderr_tail(3000)
    );
}

#[test]
fn etcdctl_auth_session_matches_etcd() {
    if support::skip_without_etcd("etcdctl_auth_session_matches_etcd") {
        return;
    }
    let etcd = support::start_etcd();
    let target = support::start_target();
    let verbose = std::env::var_os("TIMON_TEST_VERBOSE").is_some();
    let mut expected = Vec::new();
    let mut actual = Vec::new();
    for s in script() {
        let e = run(&etcd.endpoint(), &s);
        let a = run(&target.endpoint(), &s);
        if verbose {
            println!("etcdctl {} => {e:?}", s.args.join(" "));
        }
        expected.push(format!("etcdctl {} => {e:?}", s.args.join(" ")));
        actual.push(format!("etcdctl {} => {a:?}", s.args.join(" ")));
    }
    compare("session", &expected, &actual, &target);
}

#[test]
fn watch_and_lease_under_auth_match_etcd() {
    if support::skip_without_etcd("watch_and_lease_under_auth_match_etcd") {
        return;
    }
    let etcd = support::start_etcd();
    let target = support::start_target();
    let expected = watch_and_lease_session(&etcd.endpoint());
    let actual = watch_and_lease_session(&target.endpoint());
    if std::env::var_os("TIMON_TEST_VERBOSE").is_some() {
        println!("{}", expected.join("\n"));
    }
    compare("watch and lease", &expected, &actual, &target);
}
