//! A throw-away PKI made with the `openssl` command, shaped like kubeadm's:
//! an RSA CA, server and peer certificates for 127.0.0.1 and localhost, a
//! client certificate with CN `kube-apiserver-etcd-client`, and the bad
//! ones the security tests need (another CA's client certificate, an
//! expired one). For tests, the benchmark's `--tls` and the jepsen
//! harness's `--tls`; never for a real deployment.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Pki {
    pub dir: tempfile::TempDir,
}

/// Runs openssl in `dir`; panics with its stderr when it fails (a test
/// setup error).
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Pki {
    /// Makes `ca` and `other-ca`, and from `ca`: `server` (SANs 127.0.0.1,
    /// localhost), `peer` (same), `client` (CN kube-apiserver-etcd-client),
    /// `root-client` (CN root), `expired-client`; from `other-ca`:
    /// `foreign-client` and `foreign-peer`.
    pub fn new() -> Pki {
        let dir = tempfile::Builder::new().prefix("timon-pki-").tempdir().expect("temp dir");
        let pki = Pki { dir };
        pki.ca("ca", "etcd-ca");
        pki.ca("other-ca", "other-ca");
        pki.leaf("server", "ca", "kube-etcd", true, 365);
        pki.leaf("peer", "ca", "kube-etcd-peer", true, 365);
        pki.leaf("client", "ca", "kube-apiserver-etcd-client", false, 365);
        pki.leaf("root-client", "ca", "root", false, 365);
        pki.leaf("expired-client", "ca", "kube-apiserver-etcd-client", false, 0);
        pki.leaf("foreign-client", "other-ca", "kube-apiserver-etcd-client", false, 365);
        pki.leaf("foreign-peer", "other-ca", "kube-etcd-peer", true, 365);
        pki
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    /// `name.crt` as a string argument.
    pub fn crt(&self, name: &str) -> String {
        self.path(&format!("{name}.crt")).display().to_string()
    }

    pub fn key(&self, name: &str) -> String {
        self.path(&format!("{name}.key")).display().to_string()
    }

    fn ca(&self, name: &str, cn: &str) {
        openssl(
            self.dir.path(),
            &[
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", &format!("{name}.key"), "-out",
                &format!("{name}.crt"), "-days", "365", "-subj", &format!("/CN={cn}"),
            ],
        );
    }

    /// A certificate signed by `ca`; `days` 0 makes one that has expired
    /// by the time it is used.
    pub fn leaf(&self, name: &str, ca: &str, cn: &str, server: bool, days: u32) {
        let dir = self.dir.path();
        let ext = format!("{name}.ext");
        let usage = if server { "serverAuth,clientAuth" } else { "clientAuth" };
        let mut text = format!("keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage={usage}\n");
        if server {
            text.push_str("subjectAltName=IP:127.0.0.1,DNS:localhost\n");
        }
        std::fs::write(dir.join(&ext), text).expect("write ext file");
        openssl(
            dir,
            &[
                "req", "-newkey", "rsa:2048", "-nodes", "-keyout", &format!("{name}.key"), "-out",
                &format!("{name}.csr"), "-subj", &format!("/CN={cn}"),
            ],
        );
        openssl(
            dir,
            &[
                "x509", "-req", "-in", &format!("{name}.csr"), "-CA", &format!("{ca}.crt"), "-CAkey",
                &format!("{ca}.key"), "-CAcreateserial", "-out", &format!("{name}.crt"), "-days", &days.to_string(),
                "-extfile", &ext,
            ],
        );
    }
}
