//! timon's logs are etcd's (issue 14): every line is one zap JSON object
//! with `level`, `ts`, `caller` and `msg`, and the events operators alert on
//! are logged with etcd's messages and fields: start-up and readiness, a
//! slow apply, a compaction, a peer going away and coming back, a snapshot
//! sent to it and received by it, a leader change, and (with the planted
//! `slow-fsync` fault) a slow fdatasync. `--log-outputs` writes to files;
//! an unwritable one stops timon at start.

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{connect, start_cluster, start_timon, timon_bin, Member, ELECTION_TIMEOUT};
use timon_proto::etcdserverpb::{CompactionRequest, PutRequest, StatusRequest};

/// How long a line may take to appear: the events are driven by elections
/// and RPC deadlines, so 30 election timeouts leaves a loaded machine room.
const LINE_TIMEOUT: Duration = Duration::from_secs(30 * ELECTION_TIMEOUT.as_secs());

/// Parses every line of `text` as a zap JSON object, failing on any other.
fn zap_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            for key in ["level", "ts", "caller", "msg"] {
                assert!(v[key].is_string(), "no string {key:?} in {line}");
            }
            let level = v["level"].as_str().unwrap();
            assert!(
                ["debug", "info", "warn", "error", "panic", "fatal"].contains(&level),
                "{line}"
            );
            let ts = v["ts"].as_str().unwrap();
            // zap's ISO 8601: 2026-12-06T04:52:07.212Z
            assert!(
                ts.len() == 24 && ts.ends_with('Z') && &ts[10..11] == "T" && &ts[19..20] == ".",
                "{line}"
            );
            let caller = v["caller"].as_str().unwrap();
            assert!(caller.contains(".rs:") || caller.contains(':'), "{line}");
            v
        })
        .collect()
}

/// The lines of `member`'s log so far (all checked by [`zap_lines`]).
fn log_of(member: &Member) -> Vec<Value> {
    zap_lines(&std::fs::read_to_string(member.stderr_path()).unwrap_or_default())
}

/// Waits until `member`'s log has a line for which `want` holds; returns it.
fn wait_line(member: &Member, what: &str, want: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + LINE_TIMEOUT;
    loop {
        if let Some(line) = log_of(member).into_iter().find(|l| want(l)) {
            return line;
        }
        assert!(
            Instant::now() < deadline,
            "no {what} line within {LINE_TIMEOUT:?}; log:\n{}",
            member.stderr_tail(6000)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn msg_is(line: &Value, msg: &str) -> bool {
    line["msg"] == msg
}

async fn put(m: &Member, key: &str) {
    let (mut kv, _) = connect(&m.endpoint()).await;
    kv.put(PutRequest {
        key: key.into(),
        value: b"v".to_vec(),
        ..Default::default()
    })
    .await
    .expect("put");
}

async fn ids(m: &Member) -> (u64, u64, u64) {
    let (_, mut maint) = connect(&m.endpoint()).await;
    let s = maint.status(StatusRequest {}).await.expect("status").into_inner();
    (s.header.map_or(0, |h| h.member_id), s.leader, s.raft_term)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_logs_etcds_start_up_apply_and_compaction_lines_as_zap_json() {
    // Every apply is "too long" with a threshold of 1ns.
    let member = start_timon(None, &["--experimental-warning-apply-duration=1ns"]);
    let (id, _, _) = ids(&member).await;
    put(&member, "a").await;
    put(&member, "a").await;
    let (mut kv, _) = connect(&member.endpoint()).await;
    kv.compact(CompactionRequest {
        revision: 2,
        physical: true,
    })
    .await
    .expect("compact");

    let start = wait_line(&member, "starting", |l| msg_is(l, "starting an etcd server"));
    assert_eq!(start["etcd-version"], "3.6.0");
    assert_eq!(start["name"], "m0");
    let prefix = format!("{id:x} became leader at term ");
    wait_line(&member, "leader", |l| {
        l["logger"] == "raft" && l["msg"].as_str().is_some_and(|m| m.starts_with(&prefix))
    });
    let prefix = format!("raft.node: {id:x} elected leader {id:x} at term ");
    wait_line(&member, "elected", |l| {
        l["logger"] == "raft" && l["msg"].as_str().is_some_and(|m| m.starts_with(&prefix))
    });
    let published = wait_line(&member, "published", |l| {
        msg_is(l, "published local member to cluster through raft")
    });
    assert_eq!(
        published["local-member-attributes"],
        format!("{{Name:m0 ClientURLs:[{}]}}", member.endpoint())
    );
    let caps = wait_line(&member, "capabilities", |l| {
        msg_is(l, "enabled capabilities for version")
    });
    assert_eq!(caps["cluster-version"], "3.6");
    wait_line(&member, "ready", |l| msg_is(l, "ready to serve client requests"));
    let serving = wait_line(&member, "serving", |l| {
        msg_is(l, "serving client traffic insecurely; this is strongly discouraged!")
    });
    assert_eq!(serving["address"], format!("127.0.0.1:{}", member.client_port()));

    let slow = wait_line(&member, "slow apply", |l| {
        msg_is(l, "apply request took too long") && l["request"] == r#"put:<key:"a" value_size:1 >"#
    });
    assert_eq!(slow["level"], "warn");
    assert_eq!(slow["expected-duration"], "1ns");
    assert!(slow["took"].as_str().is_some_and(|t| t.ends_with('s')), "{slow}");
    let compacted = wait_line(&member, "compaction", |l| msg_is(l, "finished scheduled compaction"));
    assert_eq!(compacted["compact-revision"], 2);
    assert!(compacted["took"].is_string(), "{compacted}");
    // Callers are zap's short ones: directory and file of timon's source.
    assert!(
        log_of(&member)
            .iter()
            .any(|l| l["caller"].as_str().unwrap().starts_with("src/node.rs:")),
        "{}",
        member.stderr_tail(3000)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_logs_peer_snapshot_and_leader_change_lines() {
    // A short log, so a follower that misses writes gets a snapshot.
    let mut members = start_cluster(timon_bin(), 3, &["--snapshot-count", "50"]);
    let (_, leader, term) = ids(&members[0]).await;
    let mut member_ids = Vec::new();
    for m in &members {
        member_ids.push(ids(m).await.0);
    }
    let l = member_ids
        .iter()
        .position(|&id| id == leader)
        .expect("the leader is a member");
    let f = (l + 1) % 3;
    let peer = format!("{:x}", member_ids[f]);
    wait_line(&members[l], "peer active", |x| {
        msg_is(x, "peer became active") && x["peer-id"] == peer.as_str()
    });

    // The follower stops answering: the leader says so, and writes go on.
    members[f].signal("STOP");
    wait_line(&members[l], "peer inactive", |x| {
        msg_is(x, "peer became inactive (message send to peer failed)") && x["peer-id"] == peer.as_str()
    });
    for i in 0..200 {
        put(&members[l], &format!("k/{i:03}")).await;
    }
    members[f].signal("CONT");
    let sent = wait_line(&members[l], "snapshot sent", |x| {
        msg_is(x, "sent database snapshot") && x["remote-peer-id"] == peer.as_str()
    });
    assert!(sent["snapshot-index"].as_u64().is_some_and(|i| i > 0), "{sent}");
    assert!(sent["bytes"].as_u64().is_some_and(|b| b > 0), "{sent}");
    let received = wait_line(&members[f], "snapshot received", |x| {
        msg_is(x, "received and saved database snapshot")
    });
    assert_eq!(received["incoming-snapshot-index"], sent["snapshot-index"]);
    // Active again, after the inactive line.
    let deadline = Instant::now() + LINE_TIMEOUT;
    loop {
        let log = log_of(&members[l]);
        let inactive = log
            .iter()
            .position(|x| msg_is(x, "peer became inactive (message send to peer failed)"))
            .expect("inactive line");
        if log[inactive..]
            .iter()
            .any(|x| msg_is(x, "peer became active") && x["peer-id"] == peer.as_str())
        {
            break;
        }
        assert!(Instant::now() < deadline, "{} not active again", peer);
        std::thread::sleep(Duration::from_millis(50));
    }

    // The leader dies: a survivor says it lost (or changed) its leader, and
    // the new leader says it became leader at a higher term.
    members[l].kill9();
    let old = format!("{leader:x}");
    let lost = |x: &Value| {
        let msg = x["msg"].as_str().unwrap_or_default();
        x["logger"] == "raft"
            && (msg.contains(&format!(" lost leader {old} at term "))
                || msg.contains(&format!(" changed leader from {old} to ")))
    };
    let deadline = Instant::now() + LINE_TIMEOUT;
    let (new_leader, new_term) = loop {
        let mut found = None;
        for (i, m) in members.iter().enumerate() {
            if i == l {
                continue;
            }
            let log = log_of(m);
            let id = format!("{:x}", member_ids[i]);
            let became = log.iter().rev().find_map(|x| {
                let msg = x["msg"].as_str()?;
                let t: u64 = msg
                    .strip_prefix(&format!("{id} became leader at term "))?
                    .parse()
                    .ok()?;
                (t > term).then_some(t)
            });
            if let (Some(t), true) = (
                became,
                members
                    .iter()
                    .enumerate()
                    .any(|(j, o)| j != l && log_of(o).iter().any(lost)),
            ) {
                found = Some((i, t));
            }
        }
        if let Some(found) = found {
            break found;
        }
        assert!(
            Instant::now() < deadline,
            "no new leader logged within {LINE_TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let id = format!("{:x}", member_ids[new_leader]);
    wait_line(&members[new_leader], "elected", |x| {
        x["msg"].as_str() == Some(&format!("raft.node: {id} elected leader {id} at term {new_term}")[..])
            || x["msg"].as_str()
                == Some(&format!("raft.node: {id} changed leader from {old} to {id} at term {new_term}")[..])
    });
    for (i, m) in members.iter().enumerate() {
        if i != l {
            log_of(m); // every line of every survivor is zap JSON
        }
    }
}

/// `timon-planted`, built beside the test binaries by scripts/test
/// (DEVELOPERS.md, "Planted bugs").
fn planted_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("timon-planted"))
        .expect("target dir");
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p timon-server --bin timon-planted --features planted-bugs`",
        bin.display()
    );
    bin
}

#[test]
fn a_slow_disk_logs_slow_fdatasync() {
    // The fault stalls a synced raft log write by 1.2 s inside the timed
    // write, as a stalled fdatasync would; the start-up's first appends hit it.
    let member = support::start_program(planted_binary(), &[], &[("TIMON_PLANTED_BUG", "slow-fsync")]);
    let slow = wait_line(&member, "slow fdatasync", |l| msg_is(l, "slow fdatasync"));
    assert_eq!(slow["level"], "warn");
    assert_eq!(slow["expected-duration"], "1s");
    let took = slow["took"].as_str().unwrap();
    let took = timon_go::parse_duration(took).expect("a Go duration");
    assert!(took > Duration::from_secs(1), "{slow}");
}

#[test]
fn log_outputs_write_files_and_an_unwritable_one_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("timon.log");
    let flag = format!("--log-outputs=stderr,{}", file.display());
    let member = start_timon(None, &[&flag]);
    let in_file = || zap_lines(&std::fs::read_to_string(&file).unwrap_or_default());
    let deadline = Instant::now() + LINE_TIMEOUT;
    while !in_file().iter().any(|l| msg_is(l, "ready to serve client requests")) {
        assert!(Instant::now() < deadline, "nothing in {}", file.display());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(log_of(&member)
        .iter()
        .any(|l| msg_is(l, "ready to serve client requests")));
    drop(member);

    let data = dir.path().join("data");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_timon"))
        .args(["--data-dir", data.to_str().unwrap()])
        .arg("--log-outputs=/nonexistent/dir/timon.log")
        .output()
        .expect("run timon");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines = zap_lines(&stderr);
    assert_eq!(lines.len(), 1, "{stderr}");
    assert_eq!(lines[0]["level"], "fatal");
    let error = lines[0]["error"].as_str().unwrap();
    assert!(
        error.starts_with(r#"couldn't open sink "/nonexistent/dir/timon.log": open /nonexistent/dir/timon.log: "#),
        "{error}"
    );
    assert!(
        !data.exists(),
        "a data dir was created before the log outputs were checked"
    );
}

#[test]
fn console_format_is_zaps_console_encoder() {
    let member = start_timon(None, &["--log-format=console"]);
    let deadline = Instant::now() + LINE_TIMEOUT;
    loop {
        let text = std::fs::read_to_string(member.stderr_path()).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains("\tready to serve client requests")) {
            let parts: Vec<&str> = line.split('\t').collect();
            assert_eq!(parts[1], "info", "{line}");
            assert!(parts[2].contains(".rs:"), "{line}");
            break;
        }
        assert!(Instant::now() < deadline, "no console line:\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
