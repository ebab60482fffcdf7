//! Membership through etcdctl 3.4, as an operator runs it: member list and
//! endpoint status on a 3-member cluster; learner add -> start -> promote ->
//! remove; removing the leader; a removed member stops serving; etcd's
//! errors for promoting a learner that is not in sync and for unknown IDs.

mod support;

use std::time::{Duration, Instant};

use support::{etcdctl, free_port, start_cluster, start_joining, timon_bin, Member};

fn endpoints(members: &[&Member]) -> String {
    members.iter().map(|m| m.endpoint()).collect::<Vec<_>>().join(",")
}

/// `etcdctl member list` rows: (id, status, name, peer urls, client urls, is learner).
fn member_list(eps: &str) -> Vec<Vec<String>> {
    let (ok, out, err) = etcdctl(eps, &["member", "list"]);
    assert!(ok, "member list failed: {err}");
    out.lines()
        .map(|l| l.split(", ").map(str::to_string).collect())
        .collect()
}

/// The hex ID of the member etcdctl reports as leader.
fn leader_id(eps: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, out, _) = etcdctl(eps, &["endpoint", "status"]);
        // endpoint, id, version, db size, is leader, is learner, term, index, applied, errors
        if let Some(row) = out
            .lines()
            .map(|l| l.split(", ").collect::<Vec<_>>())
            .find(|r| r.get(4) == Some(&"true"))
        {
            return row[1].to_string();
        }
        assert!(Instant::now() < deadline, "no leader in endpoint status:\n{out}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn put_get(eps: &str, key: &str) {
    let (ok, _, err) = etcdctl(eps, &["put", key, "v"]);
    assert!(ok, "put {key} failed: {err}");
    let (ok, out, err) = etcdctl(eps, &["get", key]);
    assert!(ok && out == format!("{key}\nv\n"), "get {key}: {out:?} {err}");
}

#[test]
fn member_list_and_endpoint_status_show_the_cluster() {
    let members = start_cluster(timon_bin(), 3, &[]);
    let eps = endpoints(&members.iter().collect::<Vec<_>>());
    let rows = member_list(&members[1].endpoint());
    assert_eq!(rows.len(), 3);
    for (i, m) in members.iter().enumerate() {
        let row = rows
            .iter()
            .find(|r| r[2] == format!("m{i}"))
            .expect("every member listed by name");
        assert_eq!(row[1], "started");
        assert_eq!(row[3], m.peer_url());
        assert_eq!(row[4], m.endpoint());
        assert_eq!(row[5], "false");
    }
    let (ok, out, err) = etcdctl(&members[0].endpoint(), &["endpoint", "status", "--cluster"]);
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 3);
    assert_eq!(
        out.lines().filter(|l| l.split(", ").nth(4) == Some("true")).count(),
        1,
        "{out}"
    );
    let (ok, out, err) = etcdctl(&eps, &["endpoint", "health"]);
    assert!(ok, "{out}{err}");
}

#[test]
fn learner_add_start_promote_remove() {
    let members = start_cluster(timon_bin(), 3, &[]);
    let eps = members[0].endpoint();
    put_get(&eps, "before-add");

    let peer_port = free_port();
    let peer_url = format!("http://127.0.0.1:{peer_port}");
    let (ok, out, err) = etcdctl(
        &eps,
        &["member", "add", "m3", "--learner", &format!("--peer-urls={peer_url}")],
    );
    assert!(ok, "member add: {err}");
    let initial_cluster = out
        .lines()
        .find_map(|l| l.strip_prefix("ETCD_INITIAL_CLUSTER=\""))
        .and_then(|v| v.strip_suffix('"'))
        .expect("member add prints ETCD_INITIAL_CLUSTER")
        .to_string();
    assert!(out.contains("ETCD_INITIAL_CLUSTER_STATE=\"existing\""), "{out}");
    let row = member_list(&eps)
        .into_iter()
        .find(|r| r[3] == peer_url)
        .expect("learner listed");
    assert_eq!(
        (row[1].as_str(), row[2].as_str(), row[5].as_str()),
        ("unstarted", "", "true")
    );
    let id = row[0].clone();

    // Promoting a learner that has not caught up: etcd's refusal.
    let (ok, _, err) = etcdctl(&eps, &["member", "promote", &id]);
    assert!(!ok);
    assert!(
        err.contains("etcdserver: can only promote a learner member which is in sync with leader"),
        "{err}"
    );

    let mut learner = start_joining(timon_bin(), "m3", peer_port, &initial_cluster, &[]);
    // The learner replicates everything and serves serializable reads.
    let (ok, out, _) = etcdctl(&learner.endpoint(), &["get", "before-add", "--consistency=s"]);
    assert!(ok && out == "before-add\nv\n", "{out}");
    let row = member_list(&eps).into_iter().find(|r| r[3] == peer_url).unwrap();
    assert_eq!((row[1].as_str(), row[2].as_str()), ("started", "m3"));

    let (ok, out, err) = etcdctl(&eps, &["member", "promote", &id]);
    assert!(ok, "promote: {err}");
    assert!(out.contains("promoted in cluster"), "{out}");
    let row = member_list(&eps).into_iter().find(|r| r[3] == peer_url).unwrap();
    assert_eq!(row[5], "false");
    put_get(&learner.endpoint(), "after-promote");

    let (ok, out, err) = etcdctl(&eps, &["member", "remove", &id]);
    assert!(ok, "remove: {err}");
    assert!(out.contains("removed from cluster"), "{out}");
    assert_eq!(member_list(&eps).len(), 3);
    assert!(
        learner.wait_exit(Duration::from_secs(15)),
        "a removed member must stop serving; stderr:\n{}",
        learner.stderr_tail(3000)
    );
    assert!(learner.stderr_tail(4000).contains("permanently removed"));
    put_get(&eps, "after-remove");

    // An unknown ID: etcd's error.
    let (ok, _, err) = etcdctl(&eps, &["member", "remove", &id]);
    assert!(!ok && err.contains("etcdserver: member not found"), "{err}");
}

#[test]
fn removing_the_leader_keeps_the_cluster_available() {
    let mut members = start_cluster(timon_bin(), 3, &[]);
    let all = endpoints(&members.iter().collect::<Vec<_>>());
    let leader = leader_id(&all);
    let idx = members
        .iter()
        .position(|m| {
            let (_, out, _) = etcdctl(&m.endpoint(), &["endpoint", "status"]);
            out.split(", ").nth(1) == Some(leader.as_str())
        })
        .expect("leader among members");
    let (ok, out, err) = etcdctl(&all, &["member", "remove", &leader]);
    assert!(ok, "remove leader: {out}{err}");
    assert!(
        members[idx].wait_exit(Duration::from_secs(15)),
        "the removed leader must stop serving; stderr:\n{}",
        members[idx].stderr_tail(3000)
    );
    let rest: Vec<&Member> = members
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != idx)
        .map(|(_, m)| m)
        .collect();
    let rest_eps = endpoints(&rest);
    let new_leader = leader_id(&rest_eps);
    assert_ne!(new_leader, leader);
    for m in &rest {
        put_get(&m.endpoint(), &format!("after-leader-removal-{}", m.client_port()));
    }
    assert_eq!(member_list(&rest_eps).len(), 2);
    members[idx].kill9();
}
