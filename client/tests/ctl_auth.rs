//! `timonctl`'s auth commands and `--user` / `--password` against etcdctl
//! 3.4: the same session runs with etcdctl on one etcd and with timonctl
//! on an identically configured second etcd; every step must give the same
//! stdout, exit code and `Error:` line.

mod common;

use common::ctl::{error_lines, run, TIMONCTL};
use common::{etcd_available, Etcd, ETCDCTL};

const ROOT: &str = "--user=root:rootpw";
const ALICE: &str = "--user=alice:alicepw";

fn same(reference: &Etcd, ours: &Etcd, args: &[&str], stdin: Option<&str>) {
    let want = run(ETCDCTL, &reference.endpoint, args, stdin);
    let got = run(TIMONCTL, &ours.endpoint, args, stdin);
    let context = format!(
        "args {args:?} stdin {stdin:?}\netcdctl stderr: {}\ntimonctl stderr: {}",
        String::from_utf8_lossy(&want.stderr),
        String::from_utf8_lossy(&got.stderr)
    );
    assert_eq!(got.status.code(), want.status.code(), "exit code; {context}");
    assert_eq!(error_lines(&got), error_lines(&want), "error line; {context}");
    assert_eq!(
        String::from_utf8_lossy(&got.stdout),
        String::from_utf8_lossy(&want.stdout),
        "stdout; {context}"
    );
}

#[test]
fn auth_user_and_role_commands_match_etcdctl() {
    if !etcd_available() {
        return;
    }
    let (reference, ours) = (Etcd::start(), Etcd::start());
    let s = |args: &[&str]| same(&reference, &ours, args, None);
    let with_stdin = |args: &[&str], stdin: &str| same(&reference, &ours, args, Some(stdin));

    s(&["auth", "enable"]);
    s(&["user", "add", "root:rootpw"]);
    s(&["user", "add", "root:again"]);
    s(&["user", "add", "alice:alicepw"]);
    s(&["user", "add", "carol", "--no-password"]);
    with_stdin(&["user", "add", "dave", "--interactive=false"], "davepw\n");
    s(&["user", "add", "bob", "--new-user-password=bobpw"]);
    s(&["user", "add", ":nope"]);
    s(&["role", "add", "reader"]);
    s(&["role", "add", "reader"]);
    s(&["role", "grant-permission", "reader", "read", "foo"]);
    s(&[
        "role",
        "grant-permission",
        "reader",
        "--prefix=true",
        "readwrite",
        "pre/",
    ]);
    s(&["role", "grant-permission", "reader", "--from-key", "write", "m"]);
    s(&["role", "grant-permission", "reader", "read", "a", "c"]);
    s(&["role", "grant-permission", "reader", "readwrite", ""]);
    s(&["role", "grant-permission", "reader", "bogus", "x"]);
    s(&["role", "grant-permission", "reader", "--prefix", "read", "a", "b"]);
    s(&["role", "grant-permission", "nosuch", "read", "x"]);
    s(&["role", "get", "reader"]);
    s(&["role", "get", "nosuch"]);
    s(&["role", "list"]);
    s(&["user", "grant-role", "alice", "reader"]);
    s(&["user", "grant-role", "alice", "nosuch"]);
    s(&["user", "get", "alice"]);
    s(&["user", "get", "alice", "--detail"]);
    s(&["user", "list"]);
    s(&["user", "revoke-role", "alice", "nosuch"]);
    s(&["role", "revoke-permission", "reader", "", "--prefix"]);
    s(&["role", "revoke-permission", "reader", "nothere"]);
    s(&["user", "delete", "bob"]);
    s(&["user", "delete", "bob"]);
    s(&["auth", "enable"]);
    s(&["user", "list"]);
    s(&["get", "foo"]);
    s(&["--user=alice:wrong", "get", "foo"]);
    s(&["--user=carol:pw", "get", "foo"]);
    s(&[ALICE, "put", "pre/1", "v"]);
    s(&[ALICE, "get", "pre/", "--prefix"]);
    s(&[ALICE, "put", "x", "v"]);
    s(&[ALICE, "user", "get", "alice"]);
    s(&[ALICE, "user", "list"]);
    s(&["--user=alice", "--password=alicepw", "get", "pre/1"]);
    s(&[ROOT, "user", "delete", "root"]);
    s(&[ROOT, "role", "delete", "reader"]);
    s(&[ROOT, "user", "get", "alice"]);
    with_stdin(&[ROOT, "user", "passwd", "alice", "--interactive=false"], "newpw\n");
    s(&[ALICE, "get", "pre/1"]);
    s(&["--user=alice:newpw", "get", "pre/1"]);
    s(&[ROOT, "auth", "disable"]);
    s(&["user", "list"]);
}

/// `auth status` (etcd 3.5's command; etcd 3.4 has no AuthStatus RPC) on
/// timon (`TIMON_CLUSTER_SERVER`): root only once auth is on, as in etcd 3.5.
#[test]
fn auth_status_on_timon() {
    if std::env::var_os("TIMON_CLUSTER_SERVER").is_none() {
        eprintln!("skipping: etcd 3.4 has no AuthStatus; set TIMON_CLUSTER_SERVER to a timon binary");
        return;
    }
    let cluster = common::cluster::Cluster::start(1);
    let ep = &cluster.endpoints()[0];
    let ctl = |args: &[&str]| {
        let out = run(TIMONCTL, ep, args, None);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            error_lines(&out),
        )
    };
    assert_eq!(
        ctl(&["auth", "status"]),
        (
            Some(0),
            "Authentication Status: false\nAuthRevision: 1\n".into(),
            vec![]
        )
    );
    assert_eq!(ctl(&["user", "add", "root:rootpw"]).0, Some(0));
    // timonctl adds the root role and grants it, as etcdctl: revisions 3, 4.
    assert_eq!(ctl(&["auth", "enable"]).1, "Authentication Enabled\n");
    assert_eq!(
        ctl(&["auth", "status"]),
        (
            Some(1),
            String::new(),
            vec!["Error: etcdserver: user name is empty".to_string()]
        )
    );
    assert_eq!(
        ctl(&["--user=root:rootpw", "auth", "status"]),
        (Some(0), "Authentication Status: true\nAuthRevision: 4\n".into(), vec![])
    );
}
