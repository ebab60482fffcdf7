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
    let initial_cluster = initial_cluster_of(&out);
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
    // Like etcd, a learner serves serializable reads only.
    for args in [&["get", "before-add"][..], &["put", "k", "v"][..]] {
        let (ok, _, err) = etcdctl(&learner.endpoint(), args);
        assert!(
            !ok && err.contains("etcdserver: rpc not supported for learner"),
            "{args:?}: {err}"
        );
    }

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

/// A member's ports and IDs replaced by its position, so etcd's and timon's
/// outputs for clusters on different ports compare.
fn normalise(text: &str, members: &[Member], ids: &[u64]) -> String {
    let mut out = text.to_string();
    for (i, m) in members.iter().enumerate() {
        out = out
            .replace(&m.client_port().to_string(), &format!("<client{i}>"))
            .replace(&m.peer_url(), &format!("<peer{i}>"));
    }
    for (i, id) in ids.iter().enumerate() {
        // Decimal in JSON (kept valid JSON), hex in text.
        out = out
            .replace(&format!(":{id}"), &format!(":\"<id{i}>\""))
            .replace(&format!("{id:x}"), &format!("<id{i}>"));
    }
    out
}

/// Member IDs by member position (m0, m1, ...), from `member list -w json`.
fn ids_by_name(eps: &str, n: usize) -> Vec<u64> {
    let (_, out, _) = etcdctl(eps, &["member", "list", "-w", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("member list json");
    (0..n)
        .map(|i| {
            v["members"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["name"] == format!("m{i}"))
                .and_then(|m| m["ID"].as_u64())
                .expect("member id")
        })
        .collect()
}

/// The JSON shape: every object key path, with values dropped.
fn shape(v: &serde_json::Value, path: &str, out: &mut std::collections::BTreeSet<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                let p = format!("{path}.{k}");
                out.insert(p.clone());
                shape(v, &p, out);
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| shape(v, &format!("{path}[]"), out)),
        _ => {}
    }
}

#[test]
fn etcdctl_shows_a_timon_cluster_as_an_etcd_cluster() {
    if support::skip_without_etcd("etcdctl_shows_a_timon_cluster_as_an_etcd_cluster") {
        return;
    }
    let etcd = start_cluster(support::etcd_bin(), 3, &[]);
    let timon = start_cluster(timon_bin(), 3, &[]);
    let (etcd_ids, timon_ids) = (
        ids_by_name(&etcd[0].endpoint(), 3),
        ids_by_name(&timon[0].endpoint(), 3),
    );
    // The member list, in every format: identical once ports and IDs are
    // named by member (rows are in ID order, so sort them).
    for format in ["simple", "json", "table"] {
        let run = |members: &[Member], ids: &[u64]| {
            let (ok, out, err) = etcdctl(&members[0].endpoint(), &["member", "list", "-w", format]);
            assert!(ok, "{err}");
            let text = normalise(&out, members, ids);
            if format == "json" {
                let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
                v["header"] = serde_json::Value::Null;
                let mut members = v["members"].as_array().unwrap().clone();
                members.sort_by_key(|m| m["name"].as_str().unwrap_or("").to_string());
                return serde_json::to_string_pretty(&members).unwrap();
            }
            // Table cells are padded to the ID's hex width, which differs.
            let mut lines: Vec<String> = text
                .lines()
                .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
                .collect();
            lines.sort();
            lines.join("\n")
        };
        assert_eq!(
            run(&timon, &timon_ids),
            run(&etcd, &etcd_ids),
            "member list -w {format}"
        );
    }
    // endpoint status --cluster: the same rows and fields; values that
    // legitimately differ (version, sizes, terms, indexes) aside.
    let (ok, out, err) = etcdctl(&etcd[0].endpoint(), &["endpoint", "status", "--cluster", "-w", "json"]);
    assert!(ok, "{err}");
    let etcd_status: serde_json::Value = serde_json::from_str(&out).unwrap();
    let (ok, out, err) = etcdctl(&timon[0].endpoint(), &["endpoint", "status", "--cluster", "-w", "json"]);
    assert!(ok, "{err}");
    let timon_status: serde_json::Value = serde_json::from_str(&out).unwrap();
    let (mut a, mut b) = (Default::default(), Default::default());
    shape(&etcd_status, "", &mut a);
    shape(&timon_status, "", &mut b);
    assert_eq!(b, a, "endpoint status --cluster -w json fields");
    for side in [&etcd_status, &timon_status] {
        let rows = side.as_array().unwrap();
        assert_eq!(rows.len(), 3);
        let leaders: std::collections::BTreeSet<u64> =
            rows.iter().map(|r| r["Status"]["leader"].as_u64().unwrap()).collect();
        assert_eq!(leaders.len(), 1, "all members name the same leader");
    }
    let (ok, out, err) = etcdctl(&timon[0].endpoint(), &["endpoint", "health", "--cluster"]);
    assert!(ok, "{out}{err}");
    assert_eq!(
        err.matches("is healthy: successfully committed proposal").count(),
        3,
        "{err}"
    );
    // defrag --cluster: one line per member, the same once ports are named.
    let defrag = |members: &[Member], ids: &[u64]| {
        let (ok, out, err) = etcdctl(&members[0].endpoint(), &["defrag", "--cluster"]);
        assert!(ok, "{out}{err}");
        let mut lines: Vec<String> = normalise(&out, members, ids).lines().map(str::to_string).collect();
        lines.sort();
        lines
    };
    let expected = defrag(&etcd, &etcd_ids);
    assert_eq!(expected.len(), 3, "{expected:?}");
    assert_eq!(defrag(&timon, &timon_ids), expected, "defrag --cluster");
}

/// etcd serves clients only once the member's attributes are published
/// through raft, however long its quorum takes to come, so a voter added
/// right after every member said it was ready finds every member started
/// (otherwise: `etcdserver: re-configuration failed due to not enough
/// started members`). The first member starts alone here, for longer than
/// timon used to wait for its quorum (10 election timeouts) before serving
/// anyway.
#[test]
fn a_member_serves_clients_only_once_published() {
    let ports = support::free_port_pairs(3);
    let metrics = free_port();
    let fast = ["--election-timeout=100", "--heartbeat-interval=20"];
    let mut first_args = fast.to_vec();
    let metrics_url = format!("--listen-metrics-urls=http://127.0.0.1:{metrics}");
    first_args.push(&metrics_url);
    let mut first = support::launch_member(timon_bin(), 0, &ports, &first_args);
    // Alone, it answers probes (unhealthy: no leader) but not clients,
    // past 3 times the old 10 x 100 ms wait (a bound on how long this test
    // waits for something that must not happen).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    let mut probed = false;
    while std::time::Instant::now() < deadline {
        assert!(first.is_running(), "{}", first.stderr_tail(4000));
        probed |= http_status(metrics, "/health") == Some(503);
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(probed, "the metrics port never answered 503 while alone");
    let log = first.stderr_tail(1 << 20);
    assert!(!log.contains("ready to serve client requests"), "{log}");
    let (ok, _, _) = etcdctl(&first.endpoint(), &["--command-timeout=1s", "endpoint", "status"]);
    assert!(!ok, "a member alone answered clients");

    let mut others: Vec<Member> = (1..3)
        .map(|i| support::launch_member(timon_bin(), i, &ports, &fast))
        .collect();
    first.await_ready();
    for m in &mut others {
        m.await_ready();
    }
    let peer_url = format!("http://127.0.0.1:{}", free_port());
    let (ok, out, err) = etcdctl(
        &first.endpoint(),
        &["member", "add", "m9", &format!("--peer-urls={peer_url}")],
    );
    assert!(ok, "member add right after the cluster was ready: {out}{err}");
    let log = first.stderr_tail(1 << 20);
    let (published, ready) = (
        log.find("published local member to cluster through raft"),
        log.find("ready to serve client requests"),
    );
    assert!(published.is_some() && published < ready, "{log}");
}

/// The status code of a plain HTTP GET, None if nothing answers.
fn http_status(port: u16, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    raw.split(' ').nth(1)?.parse().ok()
}

/// The `ETCD_INITIAL_CLUSTER` value `etcdctl member add` printed.
fn initial_cluster_of(member_add_output: &str) -> String {
    member_add_output
        .lines()
        .find_map(|l| l.strip_prefix("ETCD_INITIAL_CLUSTER=\""))
        .and_then(|v| v.strip_suffix('"'))
        .expect("member add prints ETCD_INITIAL_CLUSTER")
        .to_string()
}

/// `etcdctl member add NAME` then starts the member as member add told,
/// waiting until it serves.
fn add_and_start(eps: &str, name: &str) -> Member {
    let peer_port = free_port();
    let peer_url = format!("http://127.0.0.1:{peer_port}");
    let (ok, out, err) = etcdctl(eps, &["member", "add", name, &format!("--peer-urls={peer_url}")]);
    assert!(ok, "member add {name}: {err}");
    let initial_cluster = initial_cluster_of(&out);
    start_joining(timon_bin(), name, peer_port, &initial_cluster, &[])
}

/// A member added after its leader joined catches up. It replays the log
/// from the first entry, whose configuration names neither the leader nor
/// itself, and more entries than one AppendEntries carries come before the
/// one naming the leader; peer admission refused that leader as an unknown
/// sender until a peer vouched for it (`raft/vouch.rs`). Before, the new
/// member stayed behind for ever (found by the harness's member-replace
/// nemesis).
#[test]
fn a_member_added_after_its_leader_joined_catches_up() {
    let members = start_cluster(timon_bin(), 3, &[]);
    // openraft sends at most 300 entries per AppendEntries; one put each.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (mut kv, _) = support::connect(&members[0].endpoint()).await;
        for i in 0..700 {
            kv.put(timon_proto::etcdserverpb::PutRequest {
                key: format!("before/{i:03}").into_bytes(),
                value: b"v".to_vec(),
                ..Default::default()
            })
            .await
            .unwrap();
        }
    });
    let three = endpoints(&members.iter().collect::<Vec<_>>());
    let m4 = add_and_start(&three, "m4");
    let four = format!("{three},{}", m4.endpoint());
    let m4_id = member_list(&four)
        .into_iter()
        .find(|r| r[2] == "m4")
        .expect("m4 listed")[0]
        .clone();
    let (ok, out, err) = etcdctl(&four, &["move-leader", &m4_id]);
    assert!(ok, "move-leader: {out}{err}");
    assert_eq!(leader_id(&four), m4_id);
    // Waits until m5 serves: it must have caught up with m4's log.
    let m5 = add_and_start(&four, "m5");
    let (ok, out, err) = etcdctl(&m5.endpoint(), &["get", "before/699"]);
    assert!(ok && out == "before/699\nv\n", "{out}{err}");
    put_get(&m5.endpoint(), "after-m5");
    drop((m4, m5));
}
