//! Gateway differential test: the same curl-style JSON requests go to etcd
//! 3.4's HTTP/JSON gateway and to timon's, and every answer must be equal
//! after dropping cluster_id, member_id and raft_term from headers: the same
//! status, the same JSON, and the same text with those values blanked
//! (field order, escaping). Fields that name a member's ports or IDs
//! (member lists) are left out; Status, Hash and Snapshot, whose answers
//! differ by design (versions, the backend's own bytes), are checked on
//! timon alone.
//!
//! `TIMON_DIFF_TARGET=etcd` compares etcd with a second etcd. The transports
//! (TLS) and switches are in `gateway_transport.rs`.

mod support;

use support::http::{b64, mask, normalized, post, request, same_line, Pair};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_answers_as_etcd_does() {
    if support::skip_without_etcd("gateway differential") {
        return;
    }
    let etcd = support::start_etcd();
    let timon = support::start_target();
    let pair = Pair::plain(&etcd, &timon);
    kv(&pair).await;
    txn(&pair).await;
    bad_input(&pair).await;
    lease(&pair).await;
    watch(&pair).await;
    cluster_and_maintenance(&pair).await;
    lock_and_election(&pair).await;
    auth(&pair).await;
}

async fn kv(p: &Pair) {
    let (foo, bar) = (b64("foo"), b64("bar"));
    p.same("/v3/kv/put", &format!(r#"{{"key":"{foo}","value":"{bar}"}}"#))
        .await;
    p.same(
        "/v3/kv/put",
        &format!(r#"{{"key":"{foo}","value":"{}","prev_kv":true}}"#, b64("baz")),
    )
    .await;
    for k in ["foo/a", "foo/b", "foo/c", "fop"] {
        p.same("/v3/kv/put", &format!(r#"{{"key":"{}","value":"{}"}}"#, b64(k), b64(k)))
            .await;
    }
    p.same("/v3/kv/range", &format!(r#"{{"key":"{foo}"}}"#)).await;
    let (start, end) = (b64("foo/"), b64("foo0"));
    p.same("/v3/kv/range", &format!(r#"{{"key":"{start}","range_end":"{end}"}}"#))
        .await;
    p.same(
        "/v3beta/kv/range",
        &format!(r#"{{"key":"{start}","rangeEnd":"{end}","limit":2}}"#),
    )
    .await;
    p.same(
        "/v3/kv/range",
        &format!(
            r#"{{"key":"{start}","range_end":"{end}","sort_order":"DESCEND","sort_target":"MOD","keys_only":true}}"#
        ),
    )
    .await;
    p.same(
        "/v3/kv/range",
        &format!(r#"{{"key":"AA==","range_end":"AA==","count_only":true}}"#),
    )
    .await;
    p.same(
        "/v3/kv/range",
        &format!(r#"{{"key":"{foo}","revision":"2","serializable":true}}"#),
    )
    .await;
    p.same(
        "/v3/kv/range",
        &format!(r#"{{"key":"AA==","range_end":"AA==","min_mod_revision":"4","max_create_revision":"5"}}"#),
    )
    .await;
    p.same(
        "/v3/kv/deleterange",
        &format!(r#"{{"key":"{}","prev_kv":true}}"#, b64("fop")),
    )
    .await;
    p.same("/v3/kv/deleterange", &format!(r#"{{"key":"{}"}}"#, b64("absent")))
        .await;
    p.same("/v3/kv/range", &format!(r#"{{"key":"{foo}","revision":"100"}}"#))
        .await;
}

async fn txn(p: &Pair) {
    let foo = b64("foo");
    // Every compare target and result, against the same key.
    for (target, field, value) in [
        ("VERSION", "version", r#""2""#.to_string()),
        ("CREATE", "create_revision", r#""2""#.to_string()),
        ("MOD", "mod_revision", r#""3""#.to_string()),
        ("VALUE", "value", format!(r#""{}""#, b64("baz"))),
        ("LEASE", "lease", r#""0""#.to_string()),
    ] {
        for result in ["EQUAL", "GREATER", "LESS", "NOT_EQUAL"] {
            let body = format!(
                r#"{{"compare":[{{"key":"{foo}","target":"{target}","result":"{result}","{field}":{value}}}],
                "success":[{{"request_range":{{"key":"{foo}"}}}}],
                "failure":[{{"request_put":{{"key":"{foo}","value":"{}","prev_kv":true}}}}]}}"#,
                b64("baz")
            );
            p.same("/v3/kv/txn", &body).await;
        }
    }
    // Ranges in compares, deletes and a nested txn.
    let body = format!(
        r#"{{"compare":[{{"key":"{}","range_end":"{}","target":"VERSION","result":"GREATER","version":"0"}}],
        "success":[{{"request_delete_range":{{"key":"{}","prev_kv":true}}}},
                   {{"request_txn":{{"success":[{{"request_range":{{"key":"{}","range_end":"{}"}}}}]}}}}]}}"#,
        b64("foo/"),
        b64("foo0"),
        b64("foo/a"),
        b64("foo/"),
        b64("foo0")
    );
    p.same("/v3/kv/txn", &body).await;
    // etcd's own refusals: duplicate keys in a txn.
    let body = format!(r#"{{"success":[{{"request_put":{{"key":"{foo}"}}}},{{"request_put":{{"key":"{foo}"}}}}]}}"#);
    p.same("/v3/kv/txn", &body).await;
    p.same("/v3/kv/compaction", r#"{"revision":"3","physical":true}"#).await;
    p.same("/v3/kv/range", &format!(r#"{{"key":"{foo}","revision":"2"}}"#))
        .await;
    p.same("/v3/kv/compaction", r#"{"revision":"2"}"#).await;
}

async fn bad_input(p: &Pair) {
    let foo = b64("foo");
    let before = p.same("/v3/kv/range", r#"{"key":"AA==","range_end":"AA=="}"#).await;
    for (path, body) in [
        ("/v3/kv/range", ""),
        ("/v3/kv/range", r#"{"key":"#),
        ("/v3/kv/range", r#"{"key": x}"#),
        ("/v3/kv/range", r#"[1]"#),
        ("/v3/kv/range", "null"),
        ("/v3/kv/range", r#"{"key":[102,111,111]}"#),
        ("/v3/kv/range", r#"{"key":["YQ=="]}"#),
        ("/v3/kv/range", r#"{"key":[300]}"#),
        ("/v3/kv/range", r#"{"key":"YQ=="}garbage"#),
        ("/v3/kv/range/", "{}"),
        ("/V3/kv/range", "{}"),
        ("/v3/kv/put", r#"{"key":5,"value":"YQ=="}"#),
        ("/v3/kv/put", r#"{"key":"!!!","value":"YQ=="}"#),
        ("/v3/kv/put", r#"{"key":"Zm9vY","value":"YQ=="}"#),
        (
            "/v3/kv/put",
            &format!(r#"{{"key":"{foo}","value":"YQ==","lease":"abc"}}"#),
        ),
        (
            "/v3/kv/put",
            &format!(r#"{{"key":"{foo}","value":"YQ==","lease":true}}"#),
        ),
        (
            "/v3/kv/put",
            &format!(r#"{{"key":"{foo}","value":"YQ==","prev_kv":"yes"}}"#),
        ),
        (
            "/v3/kv/put",
            &format!(r#"{{"key":"{foo}","value":"YQ==","lease":"77"}}"#),
        ),
        ("/v3/kv/range", &format!(r#"{{"key":"{foo}","sort_order":"BAD"}}"#)),
        (
            "/v3/kv/range",
            &format!(r#"{{"key":"{foo}","sort_order":1,"limit":1.5}}"#),
        ),
        (
            "/v3/kv/range",
            &format!(r#"{{"key":"{foo}","limit":"99999999999999999999"}}"#),
        ),
        (
            "/v3/kv/range",
            &format!(r#"{{"key":"{foo}","limit":"2","revision":-1}}"#),
        ),
        ("/v3/watch", r#"{"create_request":{"key":"YQ==","watch_id":"x"}}"#),
        (
            "/v3/kv/range",
            &format!(r#"{{"key":"{foo}","unknown_field":1,"limit":null}}"#),
        ),
        ("/v3/kv/txn", r#"{"compare":{"key":"YQ=="}}"#),
        ("/v3/kv/txn", r#"{"success":[{"request_put":"x"}]}"#),
        ("/v3/kv/nope", "{}"),
        ("/v3alpha/kv/range", &format!(r#"{{"key":"{foo}"}}"#)),
        ("/v3/", "{}"),
        ("/nope", "{}"),
    ] {
        p.same(path, body).await;
    }
    p.same_request("GET", "/v3/kv/range", "", &[], &[]).await;
    p.same_request("OPTIONS", "/v3/kv/range", "", &[], &[]).await;
    p.same_request("PUT", "/v3/kv/put", "", &[], &[]).await;
    // A value over --max-request-bytes (1.5 MiB) and one over the gRPC
    // receive limit (2 MiB and a little).
    for size in [1_600_000, 2_200_000] {
        let big = "A".repeat(size / 3 * 4);
        p.same("/v3/kv/put", &format!(r#"{{"key":"{foo}","value":"{big}"}}"#))
            .await;
    }
    // Nothing of the above was applied.
    let after = p.same("/v3/kv/range", r#"{"key":"AA==","range_end":"AA=="}"#).await;
    assert_eq!(before, after, "a refused request changed the store");
}

async fn lease(p: &Pair) {
    p.same("/v3/lease/grant", r#"{"TTL":"60","ID":"1000"}"#).await;
    p.same("/v3/lease/grant", r#"{"TTL":60,"ID":1000}"#).await;
    p.same(
        "/v3/kv/put",
        &format!(r#"{{"key":"{}","lease":"1000"}}"#, b64("leased")),
    )
    .await;
    p.same("/v3/lease/timetolive", r#"{"ID":"1000","keys":true}"#).await;
    p.same("/v3/kv/lease/timetolive", r#"{"ID":"1001"}"#).await;
    p.same("/v3/lease/leases", "{}").await;
    p.same("/v3/kv/lease/leases", "").await;
    let mut ka = p.open_stream("/v3/lease/keepalive", r#"{"ID":"1000"}"#).await;
    same_line(&mut ka, "keepalive").await;
    same_line(&mut ka, "keepalive end").await;
    let mut ka = p
        .open_stream("/v3/lease/keepalive", r#"{"ID":"1000"} {"ID":"1000"}"#)
        .await;
    same_line(&mut ka, "keepalive 1").await;
    same_line(&mut ka, "keepalive 2").await;
    same_line(&mut ka, "keepalive end").await;
    let mut ka = p.open_stream("/v3/lease/keepalive", r#"{"ID":"4242"}"#).await;
    same_line(&mut ka, "keepalive of an unknown lease").await;
    p.same("/v3/lease/keepalive", r#"{"ID":"#).await;
    p.same("/v3/lease/revoke", r#"{"ID":"1000"}"#).await;
    p.same("/v3/kv/lease/revoke", r#"{"ID":"1000"}"#).await;
    p.same("/v3/kv/range", &format!(r#"{{"key":"{}"}}"#, b64("leased")))
        .await;
}

async fn watch(p: &Pair) {
    let w = b64("w");
    let create = format!(r#"{{"create_request":{{"key":"{w}","prev_kv":true}}}}"#);
    let mut s = p.open_stream("/v3/watch", &create).await;
    same_line(&mut s, "watch created").await;
    p.same("/v3/kv/put", &format!(r#"{{"key":"{w}","value":"{}"}}"#, b64("1")))
        .await;
    same_line(&mut s, "watch put event").await;
    p.same("/v3/kv/put", &format!(r#"{{"key":"{w}","value":"{}"}}"#, b64("2")))
        .await;
    same_line(&mut s, "watch put event with prev_kv").await;
    p.same("/v3/kv/deleterange", &format!(r#"{{"key":"{w}"}}"#)).await;
    same_line(&mut s, "watch delete event").await;
    drop(s);
    // From a past revision, with a filter, two watchers on one stream.
    let body = format!(
        r#"{{"create_request":{{"key":"{w}","start_revision":"4","filters":["NODELETE"]}}}}
           {{"create_request":{{"key":"AA==","range_end":"AA==","start_revision":"20","watch_id":"7","fragment":true}}}}"#
    );
    let mut s = p.open_stream("/v3/watch", &body).await;
    // The two watchers' lines interleave as they are ready, on either server.
    let (mut e, mut t) = (Vec::new(), Vec::new());
    for _ in 0..4 {
        e.push(normalized(&s.0.next().await.unwrap_or_default()).to_string());
        t.push(normalized(&s.1.next().await.unwrap_or_default()).to_string());
    }
    e.sort();
    t.sort();
    assert_eq!(e, t, "two watchers on one stream");
    drop(s);
    // Progress and cancel requests on the stream.
    let body = format!(
        r#"{{"create_request":{{"key":"{w}"}}}} {{"progress_request":{{}}}} {{"cancel_request":{{"watch_id":"0"}}}}"#
    );
    let mut s = p.open_stream("/v3/watch", &body).await;
    for what in ["created", "progress", "canceled"] {
        same_line(&mut s, what).await;
    }
    drop(s);
    // A compacted start revision.
    let mut s = p
        .open_stream(
            "/v3/watch",
            &format!(r#"{{"create_request":{{"key":"{w}","start_revision":"2"}}}}"#),
        )
        .await;
    same_line(&mut s, "watch from a compacted revision").await;
    drop(s);
    p.same("/v3/watch", r#"{"create_request":"#).await;
    p.same("/v3/watch", r#"{"create_request":{"key":"!!"}}"#).await;
}

async fn cluster_and_maintenance(p: &Pair) {
    let ids = ["ID", "peerURLs", "clientURLs", "name"];
    p.same_with("/v3/cluster/member/list", "{}", &[], &ids).await;
    p.same("/v3/cluster/member/remove", r#"{"ID":"1"}"#).await;
    p.same(
        "/v3/cluster/member/update",
        r#"{"ID":"1","peerURLs":["http://127.0.0.1:1"]}"#,
    )
    .await;
    p.same("/v3/cluster/member/promote", r#"{"ID":"1"}"#).await;
    p.same("/v3/cluster/member/add", r#"{"peerURLs":["not a url"]}"#).await;
    // etcd 3.4 answers alarms and defragment without a header; timon fills
    // it as 3.5 does.
    p.same_with("/v3/maintenance/alarm", r#"{"action":"GET"}"#, &[], &["header"])
        .await;
    let deactivate = r#"{"action":"DEACTIVATE","alarm":"NOSPACE"}"#;
    p.same_with("/v3/maintenance/alarm", deactivate, &[], &["header"]).await;
    let status_fields = [
        "version",
        "dbSize",
        "leader",
        "raftIndex",
        "raftTerm",
        "raftAppliedIndex",
        "dbSizeInUse",
        "storageVersion",
        "dbSizeQuota",
    ];
    let e = request(&p.etcd, "POST", "/v3/maintenance/status", "{}", &[]).await;
    let t = request(&p.timon, "POST", "/v3/maintenance/status", "{}", &[]).await;
    assert_eq!((e.0, t.0), (200, 200), "status: {e:?} {t:?}");
    for f in &status_fields[..7] {
        assert!(t.1.contains(&format!("\"{f}\":")), "status lacks {f}: {}", t.1);
    }
    // Hash covers the whole backend, whose bytes differ between bbolt and
    // RocksDB: timon's must answer, with a hash.
    let (status, answer) = request(&p.timon, "POST", "/v3/maintenance/hash", "{}", &[]).await;
    assert!(
        status == 200 && answer.contains(r#""hash":"#),
        "hash: {status} {answer}"
    );
    // MoveLeader to a member that does not exist: etcd's error.
    p.same("/v3/maintenance/transfer-leadership", r#"{"targetID":"1"}"#)
        .await;
    p.same_with("/v3/maintenance/defragment", "{}", &[], &["header"]).await;
}

async fn lock_and_election(p: &Pair) {
    p.same("/v3/lease/grant", r#"{"TTL":"60","ID":"2000"}"#).await;
    let name = b64("mylock");
    p.same("/v3/lock/lock", &format!(r#"{{"name":"{name}","lease":"2000"}}"#))
        .await;
    let key = b64("mylock/7d0");
    p.same("/v3/lock/unlock", &format!(r#"{{"key":"{key}"}}"#)).await;
    let el = b64("myelection");
    let campaign = p
        .same(
            "/v3/election/campaign",
            &format!(r#"{{"name":"{el}","lease":"2000","value":"{}"}}"#, b64("a")),
        )
        .await;
    let leader = campaign["leader"].to_string();
    p.same("/v3/election/leader", &format!(r#"{{"name":"{el}"}}"#)).await;
    p.same(
        "/v3/election/proclaim",
        &format!(r#"{{"leader":{leader},"value":"{}"}}"#, b64("b")),
    )
    .await;
    let mut obs = p
        .open_stream("/v3/election/observe", &format!(r#"{{"name":"{el}"}}"#))
        .await;
    same_line(&mut obs, "observe").await;
    drop(obs);
    p.same("/v3/election/resign", &format!(r#"{{"leader":{leader}}}"#))
        .await;
    p.same("/v3/election/leader", &format!(r#"{{"name":"{el}"}}"#)).await;
    p.same(
        "/v3/election/proclaim",
        &format!(r#"{{"leader":{leader},"value":"{}"}}"#, b64("c")),
    )
    .await;
    p.same("/v3/lease/revoke", r#"{"ID":"2000"}"#).await;
}

async fn auth(p: &Pair) {
    p.same("/v3/auth/enable", "{}").await;
    p.same("/v3/auth/user/add", r#"{"name":"root","password":"rootpw"}"#)
        .await;
    p.same("/v3/auth/role/add", r#"{"name":"root"}"#).await;
    p.same("/v3/auth/user/grant", r#"{"user":"root","role":"root"}"#).await;
    p.same("/v3/auth/user/add", r#"{"name":"alice","password":"alicepw"}"#)
        .await;
    p.same("/v3/auth/role/add", r#"{"name":"reader"}"#).await;
    let (a, z) = (b64("a"), b64("z"));
    p.same(
        "/v3/auth/role/grant",
        &format!(r#"{{"name":"reader","perm":{{"permType":"READ","key":"{a}","range_end":"{z}"}}}}"#),
    )
    .await;
    p.same("/v3/auth/user/grant", r#"{"user":"alice","role":"reader"}"#)
        .await;
    p.same("/v3/auth/user/get", r#"{"name":"alice"}"#).await;
    p.same("/v3/auth/role/get", r#"{"role":"reader"}"#).await;
    p.same("/v3/auth/user/list", "{}").await;
    p.same("/v3/auth/role/list", "{}").await;
    p.same("/v3/auth/enable", "{}").await;
    // Without a token, with a bad one, then with each user's own.
    let range = format!(r#"{{"key":"{}"}}"#, b64("foo"));
    p.same("/v3/kv/range", &range).await;
    p.same_with("/v3/kv/range", &range, &[("authorization", "bogus")], &[])
        .await;
    p.same("/v3/auth/authenticate", r#"{"name":"root","password":"wrong"}"#)
        .await;
    let root = token(p, "root", "rootpw").await;
    let alice = token(p, "alice", "alicepw").await;
    for (path, body) in [
        ("/v3/kv/range", range.clone()),
        ("/v3/kv/put", format!(r#"{{"key":"{}","value":"{a}"}}"#, b64("b"))),
        ("/v3/auth/user/list", "{}".to_string()),
        ("/v3/auth/user/get", r#"{"name":"alice"}"#.to_string()),
    ] {
        for (who, tok) in [("root", &root), ("alice", &alice)] {
            let e = request(&p.etcd, "POST", path, &body, &[("authorization", tok.0.as_str())]).await;
            let t = request(&p.timon, "POST", path, &body, &[("authorization", tok.1.as_str())]).await;
            assert_eq!(
                (e.0, normalized(&e.1)),
                (t.0, normalized(&t.1)),
                "{who}: {path} {body}\n etcd:  {e:?}\n timon: {t:?}"
            );
        }
    }
    p.same("/v3/auth/user/changepw", r#"{"name":"alice","password":"new"}"#)
        .await;
    let e = request(
        &p.etcd,
        "POST",
        "/v3/auth/disable",
        "{}",
        &[("authorization", root.0.as_str())],
    )
    .await;
    let t = request(
        &p.timon,
        "POST",
        "/v3/auth/disable",
        "{}",
        &[("authorization", root.1.as_str())],
    )
    .await;
    assert_eq!((e.0, normalized(&e.1)), (t.0, normalized(&t.1)), "auth disable");
    p.same("/v3/auth/user/revoke", r#"{"name":"alice","role":"reader"}"#)
        .await;
    p.same(
        "/v3/auth/role/revoke",
        &format!(r#"{{"role":"reader","key":"{a}","range_end":"{z}"}}"#),
    )
    .await;
    p.same("/v3/auth/role/delete", r#"{"role":"reader"}"#).await;
    p.same("/v3/auth/user/delete", r#"{"name":"alice"}"#).await;
    p.same("/v3/auth/user/delete", r#"{"name":"alice"}"#).await;
}

/// Authenticates on both; the answers are equal but for the token itself.
async fn token(p: &Pair, name: &str, password: &str) -> (String, String) {
    let body = format!(r#"{{"name":"{name}","password":"{password}"}}"#);
    let e = post(&p.etcd, "/v3/auth/authenticate", &body, &[]).await;
    let t = post(&p.timon, "/v3/auth/authenticate", &body, &[]).await;
    let (mut ev, mut tv) = (normalized(&e.1), normalized(&t.1));
    let tokens = (
        ev["token"].as_str().unwrap_or_default().to_string(),
        tv["token"].as_str().unwrap_or_default().to_string(),
    );
    mask(&mut ev, &["token"]);
    mask(&mut tv, &["token"]);
    assert_eq!(
        (e.0, ev),
        (t.0, tv),
        "authenticate {name}\n etcd:  {e:?}\n timon: {t:?}"
    );
    tokens
}
