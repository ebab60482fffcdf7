//! `--client-cert-auth`: a verified client certificate's CN is the user of
//! a request without a token (etcd's AuthInfoFromTLS), against timon and
//! etcd 3.4.23 with the same flags and etcdctl session; every line compared.

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use timon_tls::test_pki::Pki;

use support::{etcd_bin, etcdctl_bin, free_port, skip_without_etcd, timon_bin};

/// A server process, killed when dropped.
struct Proc {
    child: Child,
    endpoint: String,
    _tmp: tempfile::TempDir,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn etcdctl(endpoint: &str, pki: &Pki, cert: &str, args: &[&str]) -> String {
    let out = Command::new(etcdctl_bin())
        .env_clear()
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .arg(format!("--cacert={}", pki.path("ca.crt").display()))
        .arg(format!("--cert={}", pki.crt(cert)))
        .arg(format!("--key={}", pki.key(cert)))
        .args(args)
        .output()
        .expect("run etcdctl");
    let stderr: Vec<String> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| !l.starts_with("{\"level\""))
        .map(str::to_string)
        .collect();
    format!(
        "{:?} {:?} {:?}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        stderr
    )
}

/// One member of `program` with TLS on the client port and client
/// certificates required and used for auth; waits until root's
/// certificate gets an answer.
fn start(program: &Path, pki: &Pki) -> Proc {
    let tmp = tempfile::tempdir().expect("temp dir");
    let (client, peer) = (free_port(), free_port());
    let endpoint = format!("https://127.0.0.1:{client}");
    let log = std::fs::File::create(tmp.path().join("stderr.log")).expect("log");
    let child = Command::new(program)
        .arg("--name=m0")
        .arg(format!("--data-dir={}", tmp.path().join("data").display()))
        .arg(format!("--listen-client-urls={endpoint}"))
        .arg(format!("--advertise-client-urls={endpoint}"))
        .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer}"))
        .arg(format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer}"))
        .arg(format!("--initial-cluster=m0=http://127.0.0.1:{peer}"))
        .arg(format!("--cert-file={}", pki.crt("server")))
        .arg(format!("--key-file={}", pki.key("server")))
        .arg(format!("--trusted-ca-file={}", pki.path("ca.crt").display()))
        .arg("--client-cert-auth=true")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn server");
    let proc = Proc {
        child,
        endpoint,
        _tmp: tmp,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !etcdctl(&proc.endpoint, pki, "root-client", &["endpoint", "health"]).starts_with("Some(0)") {
        assert!(
            Instant::now() < deadline,
            "{} did not become healthy",
            program.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    proc
}

fn session(endpoint: &str, pki: &Pki) -> Vec<String> {
    const ROOT: &str = "root-client";
    const KUBE: &str = "client";
    let steps: &[(&str, &[&str])] = &[
        (ROOT, &["user", "add", "root:rootpw"]),
        (ROOT, &["user", "add", "kube-apiserver-etcd-client", "--no-password"]),
        (ROOT, &["role", "add", "r"]),
        (
            ROOT,
            &["role", "grant-permission", "r", "--prefix", "readwrite", "/registry/"],
        ),
        (ROOT, &["user", "grant-role", "kube-apiserver-etcd-client", "r"]),
        (ROOT, &["auth", "enable"]),
        (KUBE, &["put", "/registry/a", "v"]),
        (KUBE, &["get", "/registry/", "--prefix"]),
        (KUBE, &["put", "other", "v"]),
        (KUBE, &["get", "other"]),
        (KUBE, &["user", "list"]),
        (KUBE, &["user", "get", "kube-apiserver-etcd-client"]),
        (ROOT, &["user", "list"]),
        (ROOT, &["put", "other", "v"]),
        // A token wins over the certificate.
        (KUBE, &["--user=root:rootpw", "user", "list"]),
        (KUBE, &["--user=root:wrong", "get", "other"]),
        (ROOT, &["user", "revoke-role", "kube-apiserver-etcd-client", "r"]),
        (KUBE, &["get", "/registry/a"]),
        (ROOT, &["auth", "disable"]),
        (KUBE, &["get", "other"]),
    ];
    steps
        .iter()
        .map(|(cert, args)| format!("[{cert}] {args:?} => {}", etcdctl(endpoint, pki, cert, args)))
        .collect()
}

#[test]
fn a_client_certificate_names_the_user_as_in_etcd() {
    if skip_without_etcd("a_client_certificate_names_the_user_as_in_etcd") {
        return;
    }
    let pki = Pki::new();
    let etcd = start(&etcd_bin(), &pki);
    let timon = start(&timon_bin(), &pki);
    let expected = session(&etcd.endpoint, &pki);
    let actual = session(&timon.endpoint, &pki);
    if std::env::var_os("TIMON_TEST_VERBOSE").is_some() {
        println!("{}", expected.join("\n"));
    }
    let differing: Vec<String> = expected
        .iter()
        .zip(&actual)
        .filter(|(e, a)| e != a)
        .map(|(e, a)| format!("etcd:  {e}\ntimon: {a}"))
        .collect();
    assert!(differing.is_empty(), "{}", differing.join("\n"));
}
