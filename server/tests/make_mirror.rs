//! `etcdctl make-mirror` from a real etcd to timon (how an operator can
//! move live data without downtime): the mirror copies what the source
//! holds and follows its writes and deletes, and timon ends equal to etcd.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{etcdctl, etcdctl_bin, start_etcd, start_timon, Member};

/// Every key and value under `prefix` (etcdctl's simple output: key, value
/// lines).
fn dump(m: &Member, prefix: &str) -> String {
    let (ok, out, err) = etcdctl(&m.endpoint(), &["get", prefix, "--prefix"]);
    assert!(ok, "{err}");
    out
}

#[test]
fn make_mirror_from_etcd_keeps_timon_equal_under_writes() {
    if support::skip_without_etcd("make_mirror_from_etcd_keeps_timon_equal_under_writes") {
        return;
    }
    let etcd = start_etcd();
    let timon = start_timon(None, &[]);
    for i in 0..50 {
        etcdctl(&etcd.endpoint(), &["put", &format!("m/{i:03}"), &format!("before {i}")]);
    }
    let mut mirror = Command::new(etcdctl_bin())
        .env("ETCDCTL_API", "3")
        .args([
            &format!("--endpoints={}", etcd.endpoint()),
            "make-mirror",
            "--prefix=m/",
            &timon.endpoint(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run etcdctl make-mirror");
    // Writes and deletes while the mirror runs.
    for i in 0..50 {
        etcdctl(&etcd.endpoint(), &["put", &format!("m/{i:03}"), &format!("during {i}")]);
        if i % 7 == 0 {
            etcdctl(&etcd.endpoint(), &["del", &format!("m/{i:03}")]);
        }
    }
    etcdctl(&etcd.endpoint(), &["put", "m/zzz", "last"]);
    let want = dump(&etcd, "m/");
    let deadline = Instant::now() + Duration::from_secs(60);
    while dump(&timon, "m/") != want {
        assert!(
            Instant::now() < deadline,
            "timon never matched etcd: mirror {:?}\netcd:\n{want}\ntimon:\n{}",
            mirror.try_wait(),
            dump(&timon, "m/")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(want.contains("during 48") && !want.contains("m/049\n"), "{want}");
    let _ = mirror.kill();
    let _ = mirror.wait();
}
