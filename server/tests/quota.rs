//! The backend quota and the NOSPACE alarm, side by side with etcd 3.4:
//! a small `--quota-backend-bytes`, puts until `database space exceeded`,
//! then what an operator does (list alarms, delete, compact, defragment,
//! disarm) until writes are accepted again. Every etcdctl answer must be
//! etcd's, apart from member IDs, endpoints and counts that depend on how
//! many puts fit (the two stores differ in how they lay out bytes).

mod support;

use support::{etcd_bin, etcdctl, start, timon_bin, Member};

/// Small enough that a few MiB of values reach it. (timon counts its
/// memtables by the memory they hold, which grows in 1 MiB blocks, and
/// about 2 MiB of that is in use from the start: a quota of a few MiB is the
/// smallest that means something.)
const QUOTA: &str = "--quota-backend-bytes=4194304";
/// Each value: 100 KiB of random letters (incompressible for LZ4, as
/// etcd's bbolt compresses nothing; under Linux's 128 KiB limit on one
/// command-line argument).
const VALUE_BYTES: usize = 100 * 1024;

struct Side {
    name: &'static str,
    member: Member,
    id: String,
}

impl Side {
    fn new(name: &'static str, member: Member) -> Self {
        let (ok, out, err) = etcdctl(&member.endpoint(), &["endpoint", "status", "-w", "json"]);
        assert!(ok, "{name}: endpoint status: {err}");
        let status: serde_json::Value = serde_json::from_str(&out).unwrap();
        let id = status[0]["Status"]["header"]["member_id"].to_string();
        Self { name, member, id }
    }

    /// Runs etcdctl; answers (success, stdout + stderr) with this member's
    /// ID and endpoint replaced by placeholders and clientv3's log lines left
    /// out.
    fn ctl(&self, args: &[&str]) -> (bool, String) {
        let (ok, out, err) = etcdctl(&self.member.endpoint(), args);
        // Without clientv3's own log lines (retry warnings carry times).
        let err: String = err
            .lines()
            .filter(|l| !l.starts_with("{\"level\""))
            .map(|l| format!("{l}\n"))
            .collect();
        let text = format!("{out}{err}")
            .replace(&self.id, "<id>")
            .replace(&self.member.endpoint(), "<endpoint>");
        (ok, text)
    }
}

fn both(etcd: &Side, timon: &Side, args: &[&str]) -> (bool, String) {
    let (e_ok, e) = etcd.ctl(args);
    let (t_ok, t) = timon.ctl(args);
    assert_eq!(
        (e_ok, &e),
        (t_ok, &t),
        "etcdctl {args:?}: {} vs {}",
        etcd.name,
        timon.name
    );
    (e_ok, e)
}

/// Puts 32 KiB values until the quota refuses one; answers how many fit and
/// the refusal.
fn fill(side: &Side) -> (usize, String) {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    for i in 0..200 {
        let value: String = (0..VALUE_BYTES)
            .map(|_| rng.sample(rand::distributions::Alphanumeric) as char)
            .collect();
        let (ok, out) = side.ctl(&["put", &format!("fill/{i:04}"), &value]);
        if !ok {
            return (i, out);
        }
    }
    panic!("{}: 200 puts of {VALUE_BYTES} bytes did not reach the quota", side.name);
}

/// A plain HTTP/1.1 GET on the client port: (status, body).
fn http_get(port: u16, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let status = raw.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, raw.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_string())
}

fn revision(side: &Side) -> i64 {
    let (ok, out, err) = etcdctl(&side.member.endpoint(), &["get", "none", "-w", "json"]);
    assert!(ok, "{err}");
    serde_json::from_str::<serde_json::Value>(&out).unwrap()["header"]["revision"]
        .as_i64()
        .unwrap()
}

#[test]
fn nospace_alarm_sequence_matches_etcd_and_ends_with_writes_accepted() {
    if support::skip_without_etcd("nospace_alarm_sequence_matches_etcd_and_ends_with_writes_accepted") {
        return;
    }
    let etcd = Side::new("etcd", start(etcd_bin(), None, &[QUOTA], &[]));
    let timon = Side::new("timon", start(timon_bin(), None, &[QUOTA], &[]));

    let (e_puts, e_err) = fill(&etcd);
    let (t_puts, t_err) = fill(&timon);
    println!("puts of {VALUE_BYTES} B accepted under a 4 MiB quota: etcd {e_puts}, timon {t_puts}");
    assert!(
        t_puts >= 10,
        "timon took only {t_puts} puts of {VALUE_BYTES} B under a 4 MiB quota"
    );
    assert_eq!(e_err, t_err, "the refusal");
    assert!(t_err.contains("etcdserver: mvcc: database space exceeded"), "{t_err}");

    // The alarm is raised cluster-wide and listed; even a small put is
    // refused now; reads and Status keep working.
    let (_, list) = both(&etcd, &timon, &["alarm", "list"]);
    assert_eq!(list.trim(), "memberID:<id> alarm:NOSPACE");
    both(&etcd, &timon, &["put", "small", "x"]);
    both(
        &etcd,
        &timon,
        &["get", "fill/0000", "--print-value-only", "--keys-only"],
    );
    let status = |side: &Side| {
        let (ok, out, err) = etcdctl(&side.member.endpoint(), &["endpoint", "status", "-w", "json"]);
        assert!(ok, "{err}");
        serde_json::from_str::<serde_json::Value>(&out).unwrap()[0]["Status"]["errors"]
            .to_string()
            .replace(&side.id, "<id>")
    };
    assert_eq!(status(&etcd), status(&timon), "Status.errors");
    // The probes (etcd 3.5+/3.6; etcd 3.4's /health has no reason).
    let port = timon.member.client_port();
    assert_eq!(
        http_get(port, "/health"),
        (503, "{\"health\":\"false\",\"reason\":\"ALARM NOSPACE\"}\n".into())
    );
    assert_eq!(http_get(port, "/health?exclude=NOSPACE").0, 200);
    assert_eq!(http_get(port, "/readyz").0, 200, "NOSPACE is no reason to stop reading");

    // Make room: delete, compact, defragment, disarm.
    let (ok, _) = etcd.ctl(&["del", "fill/", "--prefix"]);
    assert!(ok);
    let (ok, _) = timon.ctl(&["del", "fill/", "--prefix"]);
    assert!(ok);
    for side in [&etcd, &timon] {
        let rev = revision(side).to_string();
        let (ok, out) = side.ctl(&["compaction", "--physical", &rev]);
        assert!(ok, "{}: {out}", side.name);
    }
    both(&etcd, &timon, &["defrag"]);
    both(&etcd, &timon, &["alarm", "disarm"]);
    both(&etcd, &timon, &["alarm", "list"]);
    let (ok, out) = both(&etcd, &timon, &["put", "after", "room"]);
    assert!(ok && out.trim() == "OK", "{out}");
    both(&etcd, &timon, &["get", "after"]);
}
