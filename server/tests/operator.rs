//! What an operator replacing etcd by timon relies on (issue 14):
//! `timon --version` prints etcd's `--version` lines (timon's version, the
//! etcd API level it speaks, the commit it was built from and the Rust
//! version) and exits 0 without starting a member; under systemd
//! (`Type=notify`, as Debian's etcd.service) timon sends READY=1 once it
//! serves clients, as etcd does.

mod support;

use std::process::Command;

fn version_output(flag: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_timon"))
        .arg(flag)
        // A data dir that would be created if timon started a member.
        .arg("--data-dir=/nonexistent/timon-version-test")
        .output()
        .expect("run timon");
    assert!(out.status.success(), "{flag}: {out:?}");
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn version_prints_etcd_style_lines_and_exits() {
    // Go's flag spellings, as etcd accepts them.
    for flag in ["--version", "-version", "--version=true"] {
        let text = version_output(flag);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{flag}: {text}");
        assert_eq!(lines[0], format!("timon Version: {}", env!("CARGO_PKG_VERSION")));
        assert_eq!(lines[1], "etcd API Version: 3.6.0");
        let sha = lines[2].strip_prefix("Git SHA: ").expect("Git SHA line");
        assert!(lines[3].starts_with("Rust Version: 1."), "{text}");
        assert_eq!(
            lines[4],
            format!("Rust OS/Arch: {}/{}", std::env::consts::OS, std::env::consts::ARCH)
        );
        // Built from this checkout: the SHA names a commit git knows.
        let in_git = Command::new("git")
            .args(["rev-parse", "--git-dir"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .is_ok_and(|o| o.status.success());
        if in_git && std::env::var_os("TIMON_GIT_SHA").is_none() {
            assert!(sha.len() >= 7 && sha.chars().all(|c| c.is_ascii_hexdigit()), "{sha}");
            let known = Command::new("git")
                .args(["cat-file", "-e", &format!("{sha}^{{commit}}")])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .status()
                .expect("git cat-file");
            assert!(known.success(), "Git SHA {sha} is not a commit of this repository");
        }
    }
    assert!(!std::path::Path::new("/nonexistent/timon-version-test").exists());
}

#[test]
fn version_false_starts_normally_so_is_not_a_version_request() {
    // `--version=false` is Go's way of saying "no": timon goes on to parse
    // and validate; an invalid flag value then fails as usual.
    let out = Command::new(env!("CARGO_BIN_EXE_timon"))
        .args(["--version=false", "--max-txn-ops=0"])
        .output()
        .expect("run timon");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).is_empty());
}

#[test]
fn notifies_systemd_when_ready() {
    let dir = tempfile::tempdir().expect("temp dir");
    let socket_path = dir.path().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).expect("bind notify socket");
    let member = support::start_timon_with_env(
        None,
        &[],
        &[("NOTIFY_SOCKET", socket_path.to_str().expect("utf-8 path"))],
    );
    // Ready (it answers Status with a leader): the datagram was sent before
    // the member announced readiness; 5 election timeouts more for a slow machine.
    socket
        .set_read_timeout(Some(5 * support::ELECTION_TIMEOUT))
        .expect("set timeout");
    let mut buf = [0u8; 256];
    let n = socket
        .recv(&mut buf)
        .unwrap_or_else(|e| panic!("no READY=1 from timon: {e}; stderr:\n{}", member.stderr_tail(4000)));
    assert_eq!(std::str::from_utf8(&buf[..n]).expect("utf-8"), "READY=1\n");
}
