//! `timonctl lease|lock|elect` against `etcdctl` 3.4, each on its own
//! etcd, and the library's lease, lock and election helpers against etcd.
//! Lease IDs are random, so outputs are compared with every 16-digit hex
//! ID replaced by its order of appearance, and remaining TTLs by `R`.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::ctl::{error_lines, run, TIMONCTL};
use common::{etcd_available, Etcd, ETCDCTL};
use timon_client::{Client, Session};

const TIMEOUT: Duration = Duration::from_secs(20);
/// How long a blocked lock or campaign is watched to still be blocked.
const STILL_WAITING: Duration = Duration::from_millis(1500);

/// IDs (16 hex digits, or a lock/election key's `name/<hex>`) by order of
/// appearance; `remaining(Ns)` by `remaining(R)`; attached keys sorted
/// (etcd lists them in Go map order, which varies between runs).
fn normalise(text: &str) -> String {
    let sorted = sort_attached_keys(text);
    let text = sorted.as_str();
    let mut ids: Vec<String> = Vec::new();
    let mut out = String::new();
    let mut rest = text;
    while !rest.is_empty() {
        let n = rest.bytes().take_while(u8::is_ascii_hexdigit).count();
        let boundary = out.chars().last().is_none_or(|c| !c.is_ascii_hexdigit());
        if n >= 12 && boundary {
            let id = rest[..n].to_owned();
            let i = ids.iter().position(|x| *x == id).unwrap_or_else(|| {
                ids.push(id);
                ids.len() - 1
            });
            out.push_str(&format!("<id{i}>"));
            rest = &rest[n..];
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    let mut result = String::new();
    for (i, part) in out.split("remaining(").enumerate() {
        if i == 0 {
            result.push_str(part);
        } else {
            result.push_str("remaining(R");
            result.push_str(part.trim_start_matches(|c: char| c.is_ascii_digit()));
        }
    }
    result
}

fn sort_attached_keys(text: &str) -> String {
    const OPEN: &str = "attached keys([";
    let Some(start) = text.find(OPEN).map(|i| i + OPEN.len()) else {
        return text.to_owned();
    };
    let Some(len) = text[start..].find("])") else {
        return text.to_owned();
    };
    let mut keys: Vec<&str> = text[start..start + len].split(' ').collect();
    keys.sort_unstable();
    format!("{}{}{}", &text[..start], keys.join(" "), &text[start + len..])
}

fn line(tool: &str, endpoint: &str, args: &[&str]) -> String {
    let o = run(tool, endpoint, args, None);
    format!(
        "{args:?} -> {:?} {:?} {:?}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        error_lines(&o)
    )
}

/// The first lease ID in a `lease grant` answer.
fn granted(line: &str) -> String {
    line.split_whitespace().nth(1).unwrap().to_owned()
}

/// A long-running command whose stdout lines arrive on a channel.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Running {
    fn spawn(tool: &str, endpoint: &str, args: &[&str]) -> Running {
        let mut child = Command::new(tool)
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={endpoint}"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    return;
                }
            }
        });
        Running { child, lines }
    }

    fn lines(&self, n: usize) -> Vec<String> {
        (0..n)
            .map(|_| self.lines.recv_timeout(TIMEOUT).expect("output in time"))
            .collect()
    }

    fn silent(&self) -> bool {
        self.lines.recv_timeout(STILL_WAITING).is_err()
    }

    fn terminate(&mut self) -> Option<i32> {
        let ok = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok);
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code();
            }
            assert!(Instant::now() < deadline, "did not exit on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait(&mut self) -> Option<i32> {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code();
            }
            assert!(Instant::now() < deadline, "did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lease_session(tool: &str, ep: &str) -> Vec<String> {
    let mut out = Vec::new();
    for args in [
        &["lease", "grant"][..],
        &["lease", "grant", "x"],
        &["lease", "revoke"],
        &["lease", "revoke", "zz"],
        &["lease", "timetolive"],
        &["lease", "keep-alive"],
        &["lease", "revoke", "1234"],
        &["lease", "timetolive", "1234"],
        &["lease", "keep-alive", "--once", "1234"],
    ] {
        out.push(line(tool, ep, args));
    }
    let g = run(tool, ep, &["lease", "grant", "60"], None);
    let g = String::from_utf8_lossy(&g.stdout).into_owned();
    out.push(g.clone());
    let id = granted(&g);
    let lease_flag = format!("--lease={id}");
    for args in [
        &["put", "k1", "v", &lease_flag][..],
        &["put", "k2", "v", &lease_flag],
        &["lease", "timetolive", &id],
        &["lease", "timetolive", &id, "--keys"],
        &["lease", "keep-alive", "--once", &id],
        &["lease", "list"],
    ] {
        out.push(line(tool, ep, args));
    }
    out.push(line(tool, ep, &["lease", "revoke", &id]));
    for args in [
        &["lease", "timetolive", &id][..],
        &["lease", "revoke", &id],
        &["get", "k", "--prefix"],
    ] {
        out.push(line(tool, ep, args));
    }
    // keep-alive renews every TTL/3 (2 s here) and ends by itself at the
    // first renewal after the lease is gone.
    let g = run(tool, ep, &["lease", "grant", "6"], None);
    let id = granted(&String::from_utf8_lossy(&g.stdout));
    let mut keeper = Running::spawn(tool, ep, &["lease", "keep-alive", &id]);
    out.push(format!("keep-alive {:?}", keeper.lines(2)));
    out.push(line(tool, ep, &["lease", "revoke", &id]));
    let mut last = String::new();
    while let Ok(l) = keeper.lines.recv_timeout(TIMEOUT) {
        last = l;
    }
    out.push(format!("keep-alive ends {last:?} {:?}", keeper.wait()));
    out.iter().map(|l| normalise(l)).collect()
}

#[test]
fn lease_commands_match_etcdctl() {
    if !etcd_available() {
        return;
    }
    let (reference, ours) = (Etcd::start(), Etcd::start());
    let want = lease_session(ETCDCTL, &reference.endpoint);
    let got = lease_session(TIMONCTL, &ours.endpoint);
    assert_eq!(
        got,
        want,
        "timonctl:\n{}\netcdctl:\n{}",
        got.join("\n"),
        want.join("\n")
    );
}

fn lock_session(tool: &str, ep: &str) -> Vec<String> {
    let mut out: Vec<String> = [&["lock"][..], &["elect"], &["elect", "E"], &["elect", "-l", "E", "p"]]
        .iter()
        .map(|args| line(tool, ep, args))
        .collect();
    let mut first = Running::spawn(tool, ep, &["lock", "L"]);
    out.push(format!("first holds {:?}", first.lines(2)));
    let mut second = Running::spawn(tool, ep, &["lock", "L"]);
    out.push(format!("second waits {}", second.silent()));
    out.push(format!("first exits {:?}", first.terminate()));
    out.push(format!("second holds {:?}", second.lines(2)));
    out.push(format!("second exits {:?}", second.terminate()));
    out.push(line(
        tool,
        ep,
        &["lock", "L", "--", "sh", "-c", "echo $ETCD_LOCK_KEY $ETCD_LOCK_REV"],
    ));
    out.push(line(tool, ep, &["lock", "L", "false"]));
    out.push(line(tool, ep, &["get", "L", "--prefix"]));
    let mut observer = Running::spawn(tool, ep, &["elect", "-l", "E"]);
    let mut c1 = Running::spawn(tool, ep, &["elect", "E", "p1"]);
    out.push(format!("c1 elected {:?}", c1.lines(2)));
    out.push(format!("observer sees {:?}", observer.lines(2)));
    let mut c2 = Running::spawn(tool, ep, &["elect", "E", "p2"]);
    out.push(format!("c2 waits {}", c2.silent()));
    out.push(format!("c1 exits {:?}", c1.terminate()));
    out.push(format!("c2 elected {:?}", c2.lines(2)));
    out.push(format!("observer sees {:?}", observer.lines(2)));
    out.push(format!("c2 exits {:?}", c2.terminate()));
    out.push(format!("observer exits {:?}", observer.terminate()));
    out.push(line(tool, ep, &["get", "E", "--prefix"]));
    out.iter().map(|l| normalise(l)).collect()
}

#[test]
fn lock_and_elect_commands_match_etcdctl() {
    if !etcd_available() {
        return;
    }
    let (reference, ours) = (Etcd::start(), Etcd::start());
    let want = lock_session(ETCDCTL, &reference.endpoint);
    let got = lock_session(TIMONCTL, &ours.endpoint);
    assert_eq!(
        got,
        want,
        "timonctl:\n{}\netcdctl:\n{}",
        got.join("\n"),
        want.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn library_sessions_locks_and_elections() {
    if !etcd_available() {
        return;
    }
    let etcd = Etcd::start();
    let client = Client::connect([etcd.endpoint.as_str()]).await.unwrap();

    // The keep-alive task keeps a 2 s lease alive past its TTL.
    let session = Session::new(&client, 2).await.unwrap();
    client.put("held", "v").lease(session.lease()).await.unwrap();
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        let t = client.lease_time_to_live(session.lease(), true).await.unwrap();
        assert!(t.ttl > 0, "{t:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(client.get("held").await.unwrap().kvs.len(), 1);

    // Lock handoff between two sessions; the fencing revision rises.
    let other = Session::new(&client, 10).await.unwrap();
    let first = client.lock("L", session.lease()).await.unwrap();
    let waiting = tokio::spawn({
        let (client, lease) = (client.clone(), other.lease());
        async move { client.lock("L", lease).await }
    });
    tokio::time::sleep(STILL_WAITING).await;
    assert!(!waiting.is_finished(), "the second lock did not wait");
    client.unlock(first.key.clone()).await.unwrap();
    let second = tokio::time::timeout(TIMEOUT, waiting).await.unwrap().unwrap().unwrap();
    let rev = |r: &Option<timon_client::proto::etcdserverpb::ResponseHeader>| r.as_ref().unwrap().revision;
    assert!(rev(&second.header) > rev(&first.header));
    client.unlock(second.key).await.unwrap();

    // Campaign, observe, proclaim, resign.
    let won = client.campaign("E", "a", session.lease()).await.unwrap();
    let leader = won.leader.unwrap();
    let mut observed = client.observe("E").await.unwrap();
    let value = |r: Option<timon_client::proto::v3electionpb::LeaderResponse>| r.unwrap().kv.unwrap().value;
    assert_eq!(value(observed.next().await.unwrap()), b"a");
    client.proclaim(leader.clone(), "b").await.unwrap();
    assert_eq!(value(observed.next().await.unwrap()), b"b");
    assert_eq!(client.leader("E").await.unwrap().kv.unwrap().value, b"b");
    client.resign(leader.clone()).await.unwrap();
    let err = client.proclaim(leader, "c").await.unwrap_err();
    assert!(err.to_string().contains("election: not leader"), "{err}");
    let err = client.leader("E").await.unwrap_err();
    assert!(err.to_string().contains("election: no leader"), "{err}");

    // Closing a session revokes its lease and deletes its keys.
    session.close().await.unwrap();
    assert!(client.get("held").await.unwrap().kvs.is_empty());
    drop(other);
}
