//! A throw-away PKI made with the `openssl` command, shaped like kubeadm's:
//! an RSA CA, server and peer certificates for 127.0.0.1 and localhost
//! (members and the harness's proxies all listen there), and a client
//! certificate with CN `kube-apiserver-etcd-client`. [`Pki::member_flags`]
//! are kubeadm's TLS flags for both ports; clients dial with
//! [`Pki::client_tls`]. [`Pki::new`] adds the bad certificates the security
//! tests need (another CA's, an expired one). For tests, the benchmark's
//! `--tls` and the jepsen harness's `--tls`; never for a real deployment.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{ClientTls, TlsError};

pub struct Pki {
    dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl Pki {
    /// Makes `ca` and, signed by it, `server`, `peer` (both for serving and
    /// dialing, SANs 127.0.0.1 and localhost) and `client` in `dir`
    /// (created if missing).
    pub fn make(dir: &Path) -> Result<Pki, TlsError> {
        std::fs::create_dir_all(dir).map_err(|e| TlsError::Config(format!("create {}: {e}", dir.display())))?;
        let pki = Pki {
            dir: dir.to_path_buf(),
            _tmp: None,
        };
        pki.ca("ca", "etcd-ca")?;
        pki.leaf("server", "ca", "kube-etcd", true, 365)?;
        pki.leaf("peer", "ca", "kube-etcd-peer", true, 365)?;
        pki.leaf("client", "ca", "kube-apiserver-etcd-client", false, 365)?;
        Ok(pki)
    }

    /// [`Pki::make`] in a temporary directory (removed on drop), plus
    /// `other-ca` and: `root-client` (CN root), `expired-client`, and from
    /// `other-ca` `foreign-client` and `foreign-peer`. Panics if openssl
    /// fails (a test setup error).
    pub fn new() -> Pki {
        let tmp = tempfile::Builder::new()
            .prefix("timon-pki-")
            .tempdir()
            .expect("temp dir");
        let mut pki = Pki::make(tmp.path()).expect("make the test PKI");
        pki._tmp = Some(tmp);
        let extra = [
            pki.ca("other-ca", "other-ca"),
            pki.leaf("root-client", "ca", "root", false, 365),
            pki.leaf("expired-client", "ca", "kube-apiserver-etcd-client", false, 0),
            pki.leaf("foreign-client", "other-ca", "kube-apiserver-etcd-client", false, 365),
            pki.leaf("foreign-peer", "other-ca", "kube-etcd-peer", true, 365),
        ];
        for made in extra {
            made.expect("make the test PKI");
        }
        pki
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// `name.crt` as a string argument.
    pub fn crt(&self, name: &str) -> String {
        self.path(&format!("{name}.crt")).display().to_string()
    }

    pub fn key(&self, name: &str) -> String {
        self.path(&format!("{name}.key")).display().to_string()
    }

    /// kubeadm's TLS flags: mutual TLS on the client and the peer port.
    pub fn member_flags(&self) -> Vec<String> {
        let ca = self.path("ca.crt").display().to_string();
        vec![
            format!("--cert-file={}", self.crt("server")),
            format!("--key-file={}", self.key("server")),
            format!("--trusted-ca-file={ca}"),
            "--client-cert-auth=true".into(),
            format!("--peer-cert-file={}", self.crt("peer")),
            format!("--peer-key-file={}", self.key("peer")),
            format!("--peer-trusted-ca-file={ca}"),
            "--peer-client-cert-auth=true".into(),
        ]
    }

    /// A client that verifies members against the CA and presents `client`.
    pub fn client_tls(&self) -> ClientTls {
        ClientTls {
            ca_file: Some(self.path("ca.crt")),
            cert_file: Some(self.path("client.crt")),
            key_file: Some(self.path("client.key")),
            insecure_skip_verify: false,
        }
    }

    /// A self-signed CA `name.crt` / `name.key`.
    pub fn ca(&self, name: &str, cn: &str) -> Result<(), TlsError> {
        self.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
            "-days",
            "365",
            "-subj",
            &format!("/CN={cn}"),
        ])
    }

    /// A certificate signed by `ca`: for serving and dialing with the
    /// loopback SANs (`server`), or for client auth only; `days` 0 makes one
    /// that has expired by the time it is used.
    pub fn leaf(&self, name: &str, ca: &str, cn: &str, server: bool, days: u32) -> Result<(), TlsError> {
        let ext = format!("{name}.ext");
        let usage = if server { "serverAuth,clientAuth" } else { "clientAuth" };
        let mut text = format!("keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage={usage}\n");
        if server {
            text.push_str("subjectAltName=IP:127.0.0.1,DNS:localhost\n");
        }
        std::fs::write(self.path(&ext), text).map_err(|e| TlsError::Config(format!("write {ext}: {e}")))?;
        self.openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={cn}"),
        ])?;
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.crt"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            &format!("{name}.crt"),
            "-days",
            &days.to_string(),
            "-extfile",
            &ext,
        ])
    }

    /// Runs openssl in the PKI's directory.
    fn openssl(&self, args: &[&str]) -> Result<(), TlsError> {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(&self.dir)
            .output()
            .map_err(|e| TlsError::Config(format!("run openssl (the test PKI needs the openssl command): {e}")))?;
        if !out.status.success() {
            return Err(TlsError::Config(format!(
                "openssl {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_certificates_name_loopback_and_the_client_config_loads() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::make(dir.path()).unwrap();
        let text = Command::new("openssl")
            .args(["x509", "-noout", "-text", "-in"])
            .arg(pki.path("peer.crt"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&text.stdout);
        assert!(
            text.contains("IP Address:127.0.0.1") && text.contains("DNS:localhost"),
            "{text}"
        );
        assert!(pki.member_flags().iter().any(|f| f == "--peer-client-cert-auth=true"));
        pki.client_tls().config().expect("client config from the PKI's files");
    }
}
