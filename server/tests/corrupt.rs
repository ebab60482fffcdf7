//! The corruption checks (etcd's `corrupt.go`) against a member whose store
//! was altered while it was stopped: the initial check keeps it from
//! starting, the leader's periodic check raises the CORRUPT alarm that
//! stops every write; unaltered members pass both.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use prost::Message;
use support::{etcdctl, start_cluster, timon_bin, Member, ELECTION_TIMEOUT, REQUEST_TIMEOUT};
use timon_proto::mvccpb::KeyValue;
use timon_server::storage::rocks::RocksEngine;
use timon_server::storage::{Cf, Engine, KvRead, WriteBatch};

/// Changes the value of the newest stored revision in a stopped member's
/// store, as a disk or a bug might: same key, same revisions, other bytes.
fn alter_newest_value(data_dir: &Path) {
    let engine = RocksEngine::open(&data_dir.join("member").join("db")).expect("open the stopped member's store");
    let (k, v) = engine.last_in(Cf::Kv, &[], None).unwrap().expect("a stored revision");
    let mut kv = KeyValue::decode(&v[..]).unwrap();
    kv.value = b"altered offline".to_vec();
    let mut batch = WriteBatch::new();
    batch.put(Cf::Kv, k, kv.encode_to_vec());
    engine.write(batch, true).unwrap();
}

fn ctl(m: &Member, args: &[&str]) -> String {
    let (ok, out, err) = etcdctl(&m.endpoint(), args);
    assert!(ok, "etcdctl {args:?}: {err}");
    out
}

/// Status fields of one member: (its id, the leader it names).
fn ids(m: &Member) -> Option<(u64, u64)> {
    let (ok, out, _) = etcdctl(&m.endpoint(), &["endpoint", "status", "-w", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out).ok().filter(|_| ok)?;
    let s = &v[0]["Status"];
    Some((s["header"]["member_id"].as_u64()?, s["leader"].as_u64()?))
}

fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Writes, then stops member `i` once it holds every write.
fn write_and_stop(members: &mut [Member], i: usize) {
    for n in 0..20 {
        ctl(&members[0], &["put", &format!("k/{n:02}"), &format!("v{n}")]);
    }
    // A linearizable read on member i: it applied every write.
    assert_eq!(ctl(&members[i], &["get", "k/19", "--print-value-only"]).trim(), "v19");
    members[i].signal("TERM");
    assert!(
        members[i].wait_exit(REQUEST_TIMEOUT),
        "member {i} did not stop on SIGTERM"
    );
}

#[test]
fn the_initial_check_passes_clean_members_and_stops_an_altered_one() {
    let mut members = start_cluster(timon_bin(), 3, &[]);
    // A clean member restarts with the check and serves.
    write_and_stop(&mut members, 1);
    members[1].add_args(&["--experimental-initial-corrupt-check=true"]);
    members[1].respawn();
    members[1].await_ready();
    assert!(members[1]
        .stderr_tail(1 << 20)
        .contains("initial corruption checking passed; no corruption"));

    write_and_stop(&mut members, 2);
    alter_newest_value(members[2].data_dir());
    members[2].add_args(&["--feature-gates=InitialCorruptCheck=true"]);
    members[2].respawn();
    assert!(
        members[2].wait_exit(10 * REQUEST_TIMEOUT),
        "the altered member kept running; stderr:\n{}",
        members[2].stderr_tail(4000)
    );
    let log = members[2].stderr_tail(1 << 20);
    assert!(log.contains("found different hash values from remote peer"), "{log}");
    assert!(log.contains("found data inconsistency with peers"), "{log}");
    // The others serve on.
    ctl(&members[0], &["put", "after", "ok"]);
}

#[test]
fn the_leaders_periodic_check_raises_corrupt_and_writes_stop() {
    let mut members = start_cluster(timon_bin(), 3, &["--experimental-corrupt-check-time=1s"]);
    let mut leader = None;
    wait_for("an agreed leader", 20 * ELECTION_TIMEOUT, || {
        leader = ids(&members[0]).map(|(_, l)| l).filter(|&l| l != 0);
        leader.is_some()
    });
    let follower = (0..3)
        .find(|&i| ids(&members[i]).is_some_and(|(id, _)| Some(id) != leader))
        .unwrap();
    let other = (0..3).find(|&i| i != follower).unwrap();
    // Clean members: checks pass and writes go on.
    ctl(&members[other], &["put", "before", "ok"]);
    write_and_stop(&mut members, follower);
    alter_newest_value(members[follower].data_dir());
    members[follower].respawn();
    members[follower].await_ready();
    wait_for("the CORRUPT alarm", 30 * ELECTION_TIMEOUT, || {
        ctl(&members[other], &["alarm", "list"]).contains("alarm:CORRUPT")
    });
    let (ok, _, err) = etcdctl(&members[other].endpoint(), &["put", "after", "refused"]);
    assert!(!ok && err.contains("etcdserver: corrupt cluster"), "{err}");
    // Reads go on.
    assert_eq!(
        ctl(&members[other], &["get", "before", "--print-value-only"]).trim(),
        "ok"
    );
    let logs: String = members.iter().map(|m| m.stderr_tail(1 << 20)).collect();
    assert!(logs.contains("same compact revision then hashes must match"), "{logs}");
}
