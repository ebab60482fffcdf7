//! The test PKI of a `--tls` run, made with the openssl command line in the
//! run's directory and shaped like kubeadm's: an RSA CA, one server and one
//! peer certificate every member shares (SANs `IP:127.0.0.1` and
//! `DNS:localhost`: members and proxies all listen on 127.0.0.1, so a
//! connection through a proxy still reaches a name the certificate holds),
//! and the harness's client certificate. [`Pki::member_flags`] are
//! kubeadm's TLS flags for both ports; the clients dial with
//! [`Pki::client_tls`].

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use timon_tls::ClientTls;

/// The files of one run's PKI (`<dir>/ca.crt`, `server.crt`, ...).
#[derive(Debug, Clone)]
pub struct Pki {
    dir: PathBuf,
}

/// What a certificate may be used for.
#[derive(Clone, Copy)]
enum Usage {
    /// Server and client auth with the loopback SANs (members: they serve,
    /// and dial peers and their own client port with the same certificate).
    Member,
    /// Client auth only.
    Client,
}

impl Pki {
    /// Makes the CA and the `server`, `peer` and `client` certificates in
    /// `dir` (created if missing).
    pub fn make(dir: &Path) -> anyhow::Result<Pki> {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        let pki = Pki { dir: dir.to_path_buf() };
        pki.openssl("req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 30 -subj /CN=jepsen-etcd-ca")?;
        pki.leaf("server", "jepsen-etcd", Usage::Member)?;
        pki.leaf("peer", "jepsen-etcd-peer", Usage::Member)?;
        pki.leaf("client", "jepsen-client", Usage::Client)?;
        Ok(pki)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn arg(&self, name: &str) -> String {
        self.file(name).display().to_string()
    }

    /// kubeadm's TLS flags: mutual TLS on the client and the peer port.
    pub fn member_flags(&self) -> Vec<String> {
        vec![
            format!("--cert-file={}", self.arg("server.crt")),
            format!("--key-file={}", self.arg("server.key")),
            format!("--trusted-ca-file={}", self.arg("ca.crt")),
            "--client-cert-auth=true".into(),
            format!("--peer-cert-file={}", self.arg("peer.crt")),
            format!("--peer-key-file={}", self.arg("peer.key")),
            format!("--peer-trusted-ca-file={}", self.arg("ca.crt")),
            "--peer-client-cert-auth=true".into(),
        ]
    }

    /// The harness's clients: verify members against the CA, present the
    /// client certificate.
    pub fn client_tls(&self) -> ClientTls {
        ClientTls {
            ca_file: Some(self.file("ca.crt")),
            cert_file: Some(self.file("client.crt")),
            key_file: Some(self.file("client.key")),
            insecure_skip_verify: false,
        }
    }

    /// A key and a certificate signed by the CA.
    fn leaf(&self, name: &str, cn: &str, usage: Usage) -> anyhow::Result<()> {
        let ext = format!("{name}.ext");
        let text = match usage {
            Usage::Member => concat!(
                "keyUsage=digitalSignature,keyEncipherment\n",
                "extendedKeyUsage=serverAuth,clientAuth\n",
                "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
            ),
            Usage::Client => "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n",
        };
        std::fs::write(self.file(&ext), text).with_context(|| format!("write {ext}"))?;
        self.openssl(&format!(
            "req -newkey rsa:2048 -nodes -keyout {name}.key -out {name}.csr -subj /CN={cn}"
        ))?;
        self.openssl(&format!(
            "x509 -req -in {name}.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out {name}.crt -days 30 -extfile {ext}"
        ))
    }

    /// Runs `openssl` in the PKI's directory; `args` are split at spaces
    /// (file names are relative to the directory and hold none).
    fn openssl(&self, args: &str) -> anyhow::Result<()> {
        let out = Command::new("openssl")
            .args(args.split(' '))
            .current_dir(&self.dir)
            .output()
            .context("run openssl (the --tls PKI needs the openssl command)")?;
        if !out.status.success() {
            bail!("openssl {args} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn makes_member_certificates_for_loopback_and_a_client_config() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::make(dir.path()).unwrap();
        let text = Command::new("openssl")
            .args(["x509", "-noout", "-text", "-in"])
            .arg(dir.path().join("peer.crt"))
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
