//! `timonctl` against `etcdctl` 3.4: the same command sequence runs with
//! etcdctl on one etcd and with timonctl on an identically configured
//! second etcd (same name and advertised peer URL, hence the same cluster
//! and member ids and the same revisions). Every step must give the same
//! stdout (byte for byte, and equal JSON after parsing), the same exit code
//! and the same `Error:` line.

mod common;

use common::ctl::{error_lines, run, TIMONCTL};
use common::{etcd_available, free_port, Etcd, ETCDCTL};

struct Pair {
    reference: Etcd,
    ours: Etcd,
}

impl Pair {
    fn start() -> Pair {
        Pair {
            reference: Etcd::start(),
            ours: Etcd::start(),
        }
    }
}

/// Runs `args` through both tools and asserts identical results, with each
/// side's own endpoint replaced by `EP` (both are `127.0.0.1:` plus a
/// five-digit port, so column widths agree).
fn same(pair: &Pair, args: &[&str], stdin: Option<&str>) -> String {
    let want = run(ETCDCTL, &pair.reference.endpoint, args, stdin);
    let got = run(TIMONCTL, &pair.ours.endpoint, args, stdin);
    let want_out = String::from_utf8_lossy(&want.stdout).replace(&pair.reference.endpoint, "EP");
    let got_out = String::from_utf8_lossy(&got.stdout).replace(&pair.ours.endpoint, "EP");
    let context = format!(
        "args {args:?} stdin {stdin:?}\netcdctl stderr: {}\ntimonctl stderr: {}",
        String::from_utf8_lossy(&want.stderr),
        String::from_utf8_lossy(&got.stderr)
    );
    assert_eq!(got.status.code(), want.status.code(), "exit code; {context}");
    assert_eq!(error_lines(&got), error_lines(&want), "error line; {context}");
    if args.contains(&"json") {
        let parse = |text: &str| -> Vec<serde_json::Value> {
            text.lines()
                .filter(|l| l.starts_with('{') || l.starts_with('['))
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("json {l:?}: {e}; {context}")))
                .collect()
        };
        assert_eq!(parse(&got_out), parse(&want_out), "parsed json; {context}");
    }
    assert_eq!(got_out, want_out, "stdout; {context}");
    got_out
}

#[test]
fn kv_commands_match_etcdctl() {
    if !etcd_available() {
        return;
    }
    let pair = Pair::start();
    let s = |args: &[&str]| same(&pair, args, None);

    s(&["put", "foo", "bar"]);
    s(&["put", "foo", "baz", "--prev-kv"]);
    s(&["-w", "json", "put", "foo", "qux", "--prev-kv"]);
    s(&["-w", "json", "put", "fresh", "x"]);
    for (k, v) in [
        ("a", "3"),
        ("ab", "1"),
        ("b", "2"),
        ("c", "0"),
        ("k x", "v y"),
        ("<&>", "\u{e9}"),
    ] {
        s(&["put", k, v]);
    }
    s(&["put", "--", "dash", "-v"]);
    same(&pair, &["put", "piped"], Some("from stdin\n"));
    s(&["put"]);
    s(&["put", "k", "--ignore-value", "v"]);
    s(&["put", "k", "v", "--lease", "zz"]);

    let gets: &[&[&str]] = &[
        &["get", "foo"],
        &["get", "missing"],
        &["get", "a", "c"],
        &["get", "a", "--prefix"],
        &["get", "", "--prefix"],
        &["get", "ab", "--from-key"],
        &["get", "", "--from-key"],
        &["get", "", "--prefix", "--limit", "2"],
        &["get", "foo", "--rev", "2"],
        &["get", "foo", "--rev=3"],
        &["get", "", "--prefix", "--keys-only"],
        &["get", "", "--prefix", "--print-value-only"],
        &["get", "a", "--consistency", "s"],
        &["get", "", "--prefix", "--order", "DESCEND"],
        &["get", "", "--prefix", "--order", "descend", "--sort-by", "value"],
        &["get", "", "--prefix", "--sort-by", "CREATE", "--order", "ASCEND"],
        &[
            "get",
            "",
            "--prefix",
            "--sort-by",
            "MODIFY",
            "--order",
            "DESCEND",
            "--limit",
            "3",
        ],
        &["get", "", "--prefix", "--sort-by", "VERSION", "--order", "DESCEND"],
        &["get", "", "--prefix", "--sort-by", "KEY", "--order", "DESCEND"],
        &["--hex", "get", "", "--prefix"],
        &["get"],
        &["get", "a", "b", "--prefix"],
        &["get", "a", "--prefix", "--from-key"],
        &["get", "a", "--consistency", "x"],
        &["get", "a", "--order", "sideways"],
        &["get", "a", "--sort-by", "colour"],
        &["-w", "table", "get", "a"],
        &["-w", "xml", "get", "a"],
        &["-w", "json", "get", "a", "--print-value-only"],
    ];
    for args in gets {
        s(args);
        if !args.contains(&"-w") && !args.contains(&"--print-value-only") {
            let mut json = vec!["-w", "json"];
            json.extend_from_slice(args);
            s(&json);
        }
    }

    s(&["del", "foo", "--prev-kv"]);
    s(&["-w", "json", "del", "a", "--prefix", "--prev-kv"]);
    s(&["del", "missing"]);
    s(&["del", "b", "c"]);
    s(&["-w", "json", "del", "nothing"]);
    s(&["del"]);
    s(&["del", "a", "b", "c"]);
    s(&["del", "a", "b", "--from-key"]);
    s(&["del", "d", "--from-key", "--prev-kv"]);
    s(&["get", "", "--prefix"]);
    s(&["del", "", "--prefix"]);
    s(&["-w", "json", "get", "", "--prefix"]);
}

#[test]
fn txn_matches_etcdctl() {
    if !etcd_available() {
        return;
    }
    let pair = Pair::start();
    let t = |args: &[&str], stdin: &str| same(&pair, args, Some(stdin));
    let s = |args: &[&str]| same(&pair, args, None);

    s(&["put", "a", "1"]);
    s(&["put", "b", "x"]);
    t(&["txn"], "mod(\"a\") > \"0\"\n\nput a 2\nget a\ndel zz\n\nget a\n\n");
    t(
        &["txn"],
        "val(\"b\") = \"nope\"\n\nput a 3\n\nget a\nput q r --prev-kv\n\n",
    );
    t(
        &["-w", "json", "txn"],
        "ver(\"a\") = \"2\"\nc(\"a\") < \"100\"\n\nput \"a\" \"quoted value\"\nget a --prefix --keys-only\n\ndel a\n\n",
    );
    t(
        &["-w", "json", "txn"],
        "value(\"b\") != \"x\"\n\nput a 4\n\nget \"\" --prefix\nget a --rev 2\n\n",
    );
    t(&["txn", "-i"], "version(\"zz\") = \"0\"\n\nput zz new\n\n\n");
    t(&["txn", "--interactive"], "\n\nget a\n\n");
    t(
        &["txn"],
        "create(\"a\") = \"2\"\nmod(\"b\") != \"3\"\n\ndel a --prev-kv\n\n\n",
    );
    // Errors: etcd's own, malformed input, missing blank lines.
    t(&["txn"], "\n\nput a 1\ndel a\n\n\n");
    t(&["txn"], "bogus\n\n\n\n");
    t(&["txn"], "mod(\"a\") >\n\n\n\n");
    t(&["txn"], "mod(\"a\") > \"x\"\n\n\n\n");
    t(&["txn"], "size(\"a\") = \"1\"\n\n\n\n");
    t(&["txn"], "\nput\n\n\n");
    t(&["txn"], "\nwatch a\n\n\n");
    t(&["txn"], "\n\n");
    t(&["txn"], "mod(\"a\") > \"0\"");
    t(&["txn", "extra"], "\n\n\n");
    s(&["get", "", "--prefix"]);
}

#[test]
fn compaction_and_endpoints_match_etcdctl() {
    if !etcd_available() {
        return;
    }
    let pair = Pair::start();
    let s = |args: &[&str]| same(&pair, args, None);
    for value in ["1", "2", "3", "4"] {
        s(&["put", "k", value]);
    }
    s(&["compaction", "3"]);
    s(&["compaction", "3"]);
    s(&["get", "k", "--rev", "2"]);
    s(&["-w", "json", "get", "k", "--rev", "3"]);
    s(&["compaction", "100"]);
    s(&["compaction", "--physical", "4"]);
    s(&["-w", "json", "compaction", "5"]);
    s(&["compaction"]);
    s(&["compaction", "abc"]);

    for format in ["simple", "json", "table"] {
        let args = ["-w", format, "endpoint", "status"];
        let want = run(ETCDCTL, &pair.reference.endpoint, &args, None);
        let got = run(TIMONCTL, &pair.ours.endpoint, &args, None);
        assert_eq!(got.status.code(), want.status.code(), "{args:?}");
        let want_text = String::from_utf8_lossy(&want.stdout).replace(&pair.reference.endpoint, "EP");
        let got_text = String::from_utf8_lossy(&got.stdout).replace(&pair.ours.endpoint, "EP");
        assert_eq!(mask_db_size(&got_text), mask_db_size(&want_text), "{args:?}");
    }

    // Health: everything but the measured time must match.
    let strip_took = |text: &str| -> serde_json::Value {
        let mut value: serde_json::Value = serde_json::from_str(text.trim()).expect("health json");
        if let Some(items) = value.as_array_mut() {
            for item in items {
                if let Some(fields) = item.as_object_mut() {
                    fields.remove("took");
                }
            }
        }
        value
    };
    let want = run(
        ETCDCTL,
        &pair.reference.endpoint,
        &["-w", "json", "endpoint", "health"],
        None,
    );
    let got = run(
        TIMONCTL,
        &pair.ours.endpoint,
        &["-w", "json", "endpoint", "health"],
        None,
    );
    assert_eq!(got.status.code(), want.status.code());
    let want_text = String::from_utf8_lossy(&want.stdout).replace(&pair.reference.endpoint, "EP");
    let got_text = String::from_utf8_lossy(&got.stdout).replace(&pair.ours.endpoint, "EP");
    assert_eq!(strip_took(&got_text), strip_took(&want_text));
    let got = run(TIMONCTL, &pair.ours.endpoint, &["endpoint", "health"], None);
    assert_eq!(got.status.code(), Some(0));
    assert!(got.stdout.is_empty());
    let line = String::from_utf8_lossy(&got.stderr).into_owned();
    assert!(
        line.starts_with(&format!(
            "{} is healthy: successfully committed proposal: took = ",
            pair.ours.endpoint
        )),
        "{line}"
    );
}

/// The bbolt file grows with etcd's batched commits, so its size depends on
/// timing; blank it out of every format of `endpoint status`.
fn mask_db_size(text: &str) -> String {
    let mut masked = String::new();
    for line in text.lines() {
        if line.starts_with('[') {
            let mut value: serde_json::Value = serde_json::from_str(line).expect("status json");
            for item in value.as_array_mut().into_iter().flatten() {
                if let Some(status) = item.get_mut("Status").and_then(|s| s.as_object_mut()) {
                    status.remove("dbSize");
                    status.remove("dbSizeInUse");
                }
            }
            masked.push_str(&value.to_string());
        } else if line.starts_with('|') {
            let mut cells: Vec<String> = line.split('|').map(str::to_owned).collect();
            if let Some(cell) = cells.get_mut(4) {
                *cell = " ".repeat(cell.chars().count());
            }
            masked.push_str(&cells.join("|"));
        } else {
            let mut fields: Vec<&str> = line.split(", ").collect();
            if fields.len() > 3 {
                fields[3] = "SIZE";
            }
            masked.push_str(&fields.join(", "));
        }
        masked.push('\n');
    }
    masked
}

#[test]
fn unreachable_endpoint_fails_like_etcdctl() {
    if !etcd_available() {
        return;
    }
    let dead = format!("127.0.0.1:{}", free_port());
    for args in [
        &["--command-timeout=1s", "get", "a"][..],
        &["--command-timeout=1s", "endpoint", "health"][..],
    ] {
        let want = run(ETCDCTL, &dead, args, None);
        let got = run(TIMONCTL, &dead, args, None);
        assert_eq!(got.status.code(), want.status.code(), "{args:?}");
        assert_eq!(error_lines(&got), error_lines(&want), "{args:?}");
    }
}

#[test]
fn command_line_errors_match_etcdctl() {
    if !etcd_available() {
        return;
    }
    // Rejected before dialing, so no server is needed. etcdctl also prints
    // its usage text on stdout here; timonctl does not, so only the exit
    // code and the `Error:` line are compared.
    let dead = format!("127.0.0.1:{}", free_port());
    for args in [
        &["get", "--bogus", "a"][..],
        &["get", "--bogus=1", "a"][..],
        &["get", "-x", "a"][..],
        &["get", "--limit", "abc", "a"][..],
        &["-w", "yaml", "get", "a"][..],
    ] {
        let want = run(ETCDCTL, &dead, args, None);
        let got = run(TIMONCTL, &dead, args, None);
        assert_eq!(got.status.code(), want.status.code(), "{args:?}");
        // cobra prints a flag error and etcdctl prints it again; once is enough.
        let mut want_errors = error_lines(&want);
        want_errors.dedup();
        assert_eq!(error_lines(&got), want_errors, "{args:?}");
    }
}

#[test]
fn count_only_prints_the_count_in_json() {
    if !etcd_available() {
        return;
    }
    // etcdctl 3.4 has no --count-only, so this is checked on its own.
    let etcd = Etcd::start();
    for key in ["a", "b", "c"] {
        assert!(run(TIMONCTL, &etcd.endpoint, &["put", key, "v"], None).status.success());
    }
    let got = run(
        TIMONCTL,
        &etcd.endpoint,
        &["-w", "json", "get", "", "--prefix", "--count-only"],
        None,
    );
    assert!(got.status.success());
    let value: serde_json::Value = serde_json::from_slice(&got.stdout).expect("json");
    assert_eq!(value["count"], 3);
    assert!(value.get("kvs").is_none());
    let simple = run(TIMONCTL, &etcd.endpoint, &["get", "a", "--count-only"], None);
    assert_eq!(simple.status.code(), Some(128));
}

#[test]
fn boolean_flags_accept_explicit_values_like_cobra() {
    if !etcd_available() {
        return;
    }
    let pair = Pair::start();
    let s = |args: &[&str]| same(&pair, args, None);
    s(&["put", "a", "1"]);
    s(&["put", "ab", "2", "--prev-kv=true"]);
    s(&["get", "a", "--prefix=true", "--keys-only=false"]);
    s(&["get", "a", "--prefix=false"]);
    s(&["--hex=false", "get", "a", "--prefix"]);
    s(&["del", "a", "--prefix=true", "--prev-kv"]);
}
