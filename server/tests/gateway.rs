//! Gateway differential test: the same curl-style JSON requests go to etcd
//! 3.4's HTTP/JSON gateway and to timon's, and every answer must be equal
//! (status and body, parsed as JSON) after dropping cluster_id, member_id
//! and raft_term from headers. Fields that name a member's ports, IDs or
//! sizes (member lists, status, hashes) are left out.
//!
//! `TIMON_DIFF_TARGET=etcd` compares etcd with a second etcd.

mod support;

use serde_json::Value;
use support::http::{normalized, normalized_text, post, request, send, Lines, Target};

struct Pair {
    etcd: Target,
    timon: Target,
}

impl Pair {
    /// Plain HTTP to both.
    fn plain(etcd: &support::Member, timon: &support::Member) -> Pair {
        Pair {
            etcd: Target {
                port: etcd.client_port(),
                tls: None,
            },
            timon: Target {
                port: timon.client_port(),
                tls: None,
            },
        }
    }

    /// Posts to both; asserts equal answers; returns etcd's (normalized).
    async fn same(&self, path: &str, body: &str) -> Value {
        self.same_with(path, body, &[], &[]).await
    }

    /// [`Pair::same`] with headers, and with the top-level fields `masked`
    /// left out.
    async fn same_with(&self, path: &str, body: &str, headers: &[(&str, &str)], masked: &[&str]) -> Value {
        self.same_request("POST", path, body, headers, masked).await
    }

    async fn same_request(
        &self,
        method: &str,
        path: &str,
        body: &str,
        headers: &[(&str, &str)],
        masked: &[&str],
    ) -> Value {
        let (es, eb) = request(&self.etcd, method, path, body, headers).await;
        let (ts, tb) = request(&self.timon, method, path, body, headers).await;
        let (mut e, mut t) = (normalized(&eb), normalized(&tb));
        mask(&mut e, masked);
        mask(&mut t, masked);
        assert_eq!(
            (es, &e),
            (ts, &t),
            "{method} {path} {body}\n etcd:  {es} {eb}\n timon: {ts} {tb}"
        );
        if masked.is_empty() {
            assert_eq!(
                normalized_text(&eb),
                normalized_text(&tb),
                "{method} {path} {body}: field order or escaping"
            );
        }
        e
    }

    /// Opens the same stream on both; returns the two line readers.
    async fn open_stream(&self, path: &str, body: &str) -> (Lines, Lines) {
        let e = send(&self.etcd, "POST", path, body, &[]).await;
        let t = send(&self.timon, "POST", path, body, &[]).await;
        assert_eq!(e.status, t.status, "{path} {body}: status");
        (Lines::new(e), Lines::new(t))
    }
}

/// Drops each `masked` field of an object, in it and in every object
/// below it.
fn mask(v: &mut Value, masked: &[&str]) {
    if let Value::Object(map) = v {
        map.retain(|k, _| !masked.contains(&k.as_str()));
        for field in map.values_mut() {
            if let Value::Array(items) = field {
                items.iter_mut().for_each(|i| mask(i, masked));
            } else if let Value::Object(_) = field {
                mask(field, masked);
            }
        }
    }
}

/// The next line of both streams, equal.
async fn same_line(streams: &mut (Lines, Lines), what: &str) -> Value {
    let e = streams.0.next().await;
    let t = streams.1.next().await;
    let (ev, tv) = (e.as_deref().map(normalized), t.as_deref().map(normalized));
    assert_eq!(ev, tv, "{what}\n etcd:  {e:?}\n timon: {t:?}");
    let text = |l: &Option<String>| l.as_deref().map(normalized_text);
    assert_eq!(text(&e), text(&t), "{what}: field order or escaping");
    ev.unwrap_or(Value::Null)
}

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

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
    // timon's Maintenance service does not implement Hash, MoveLeader and
    // Snapshot (the gRPC API answers Unimplemented): the routes reach it
    // all the same (a stream's error is its error object).
    for (path, body) in [
        ("/v3/maintenance/hash", "{}"),
        ("/v3/maintenance/transfer-leadership", r#"{"targetID":"1"}"#),
    ] {
        let (status, answer) = request(&p.timon, "POST", path, body, &[]).await;
        let unimplemented =
            status == 501 && (answer.contains(r#""code":12"#) || answer.contains(r#"{"error":{"grpc_code":12,"#));
        assert!(
            status == 200 || status == 412 || unimplemented,
            "{path}: {status} {answer}"
        );
    }
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

/// timon's `etcd_debugging_mvcc_watcher_total`, read from /metrics on the
/// client port.
async fn watchers(target: &Target) -> u64 {
    let (status, text) = request(target, "GET", "/metrics", "", &[]).await;
    assert_eq!(status, 200, "{text}");
    text.lines()
        .find_map(|l| l.strip_prefix("etcd_debugging_mvcc_watcher_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
        .unwrap_or_else(|| panic!("no watcher gauge in /metrics"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_drops_a_watch_stream_frees_its_watchers() {
    let timon = support::start_timon(None, &[]);
    let target = Target {
        port: timon.client_port(),
        tls: None,
    };
    let body = format!(
        r#"{{"create_request":{{"key":"{}"}}}} {{"create_request":{{"key":"{}"}}}}"#,
        b64("a"),
        b64("b")
    );
    let mut stream = Lines::new(send(&target, "POST", "/v3/watch", &body, &[]).await);
    for _ in 0..2 {
        let line = stream.next().await.expect("a created response");
        assert!(line.contains(r#""created":true"#), "{line}");
    }
    assert_eq!(watchers(&target).await, 2);
    drop(stream);
    // The server notices the closed connection; 5 s is far above the time
    // it takes (one poll of the connection).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let n = watchers(&target).await;
        if n == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{n} watchers left after the client went away"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A single member serving its client URL over mutual TLS (the test PKI's
/// server certificate), killed on drop.
struct TlsMember {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for TlsMember {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_tls_member(program: &std::path::Path, pki: &timon_tls::test_pki::Pki) -> TlsMember {
    let dir = tempfile::Builder::new()
        .prefix("timon-gw-tls-")
        .tempdir()
        .expect("temp dir");
    let (client, peer) = (support::free_port(), support::free_port());
    let client_url = format!("https://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let args = [
        "--name=m0".to_string(),
        format!("--data-dir={}", dir.path().join("data").display()),
        format!("--listen-client-urls={client_url}"),
        format!("--advertise-client-urls={client_url}"),
        format!("--listen-peer-urls={peer_url}"),
        format!("--initial-advertise-peer-urls={peer_url}"),
        format!("--initial-cluster=m0={peer_url}"),
        format!("--cert-file={}", pki.crt("server")),
        format!("--key-file={}", pki.key("server")),
        format!("--trusted-ca-file={}", pki.path("ca.crt").display()),
        "--client-cert-auth=true".to_string(),
    ];
    let log = std::fs::File::create(dir.path().join("stderr.log")).expect("log file");
    let child = std::process::Command::new(program)
        .args(&args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", program.display()));
    TlsMember {
        child,
        port: client,
        _dir: dir,
    }
}

/// Waits until the member's gateway answers a Status that names a leader.
async fn await_leader(target: &Target) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if let Ok(mut a) = support::http::try_send(target, "POST", "/v3/maintenance/status", "{}", &[]).await {
            use http_body_util::BodyExt;
            let body = (&mut a.body).collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            if a.status == 200 && String::from_utf8_lossy(&body).contains(r#""leader":"#) {
                return;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no leader over TLS on port {}",
            target.port
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_over_tls_answers_as_etcd_does() {
    if support::skip_without_etcd("gateway over TLS") {
        return;
    }
    let pki = timon_tls::test_pki::Pki::new();
    let etcd = start_tls_member(&support::etcd_bin(), &pki);
    let timon = start_tls_member(std::path::Path::new(env!("CARGO_BIN_EXE_timon")), &pki);
    // HTTP/1.1 over TLS, as curl --cacert --cert --key speaks it.
    let mut config = (*pki.client_tls().config().expect("client TLS config")).clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let config = std::sync::Arc::new(config);
    let pair = Pair {
        etcd: Target {
            port: etcd.port,
            tls: Some(config.clone()),
        },
        timon: Target {
            port: timon.port,
            tls: Some(config),
        },
    };
    await_leader(&pair.etcd).await;
    await_leader(&pair.timon).await;
    let (k, v) = (b64("tls"), b64("yes"));
    pair.same("/v3/kv/put", &format!(r#"{{"key":"{k}","value":"{v}"}}"#))
        .await;
    pair.same("/v3/kv/range", &format!(r#"{{"key":"{k}"}}"#)).await;
    pair.same("/v3/kv/range", r#"{"key":"!"}"#).await;
    let mut s = pair
        .open_stream(
            "/v3/watch",
            &format!(r#"{{"create_request":{{"key":"{k}","start_revision":"1"}}}}"#),
        )
        .await;
    same_line(&mut s, "created over TLS").await;
    same_line(&mut s, "history over TLS").await;
    drop(s);
    // With auth on, etcd refuses gateway requests from a certificate with a
    // common name (--client-cert-auth): its gateway could not pass it on.
    pair.same("/v3/auth/user/add", r#"{"name":"root","password":"pw"}"#)
        .await;
    pair.same("/v3/auth/user/grant", r#"{"user":"root","role":"root"}"#)
        .await;
    pair.same("/v3/auth/enable", "{}").await;
    pair.same("/v3/kv/range", &format!(r#"{{"key":"{k}"}}"#)).await;
    pair.same("/v3beta/auth/authenticate", r#"{"name":"root","password":"pw"}"#)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enable_grpc_gateway_false_turns_the_gateway_off() {
    if support::skip_without_etcd("gateway off") {
        return;
    }
    let flags = ["--enable-grpc-gateway=false"];
    let etcd = support::start_member(support::etcd_bin(), &flags);
    let timon = support::start_timon(None, &flags);
    let pair = Pair::plain(&etcd, &timon);
    let body = pair.same("/v3/kv/range", &format!(r#"{{"key":"{}"}}"#, b64("k"))).await;
    assert_eq!(body, Value::String("404 page not found\n".into()));
    pair.same("/v3beta/watch", "{}").await;
}
