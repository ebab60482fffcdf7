//! TLS on the member's listeners, as etcd's `transport.TLSInfo` does it:
//! the server certificate (re-read when its files change, so a rotated
//! certificate needs no restart), client certificates verified against the
//! trusted CA and CRL, etcd's allowed-CN / allowed-hostname checks, Go's
//! TLS version and cipher-suite names, and self-signed certificates for
//! `--auto-tls` / `--peer-auto-tls`. The verified client certificate's CN
//! reaches every request as [`ConnInfo`] (auth uses it as the user).
//!
//! What the clients share with the member (PEM files, client configs, the
//! dialing connector) lives in the `timon-tls` crate.

mod acceptor;
pub mod auto;
mod incoming;
mod verify;

use std::net::SocketAddr;
use std::path::PathBuf;

pub use acceptor::Acceptor;
pub use incoming::{incoming, Conn, Serve, Socket};
pub use timon_tls::TlsError;

/// What one side (client or peer) of a member serves and checks.
#[derive(Debug, Clone, Default)]
pub struct TlsInfo {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// With a CA file, etcd requires and verifies client certificates
    /// (whether or not `--client-cert-auth` is set).
    pub trusted_ca_file: Option<PathBuf>,
    pub client_cert_auth: bool,
    pub crl_file: Option<PathBuf>,
    /// `--peer-cert-allowed-cn`: the verified client certificate's CN must be this.
    pub allowed_cn: Option<String>,
    /// `--client-cert-allowed-hostname` / `--peer-cert-allowed-hostname`:
    /// the verified client certificate must be valid for this host.
    pub allowed_hostname: Option<String>,
    /// `--cipher-suites`, Go's names, comma-separated; empty: rustls's defaults.
    pub cipher_suites: String,
    /// `--tls-min-version` / `--tls-max-version`: `TLS1.2`, `TLS1.3` or empty.
    pub min_version: String,
    pub max_version: String,
    /// Self-signed (auto-TLS): peers dialing with it do not verify each other.
    pub self_signed: bool,
    /// `--peer-client-cert-file` / `--peer-client-key-file`: the identity
    /// this member presents when it dials (else `cert_file`/`key_file`).
    pub client_cert_file: Option<PathBuf>,
    pub client_key_file: Option<PathBuf>,
}

impl TlsInfo {
    /// How this member dials the other side with the same files (peers):
    /// its certificate as the client identity, the CA to verify the server.
    pub fn client_tls(&self) -> timon_tls::ClientTls {
        timon_tls::ClientTls {
            ca_file: self.trusted_ca_file.clone(),
            cert_file: Some(self.client_cert_file.clone().unwrap_or_else(|| self.cert_file.clone())),
            key_file: Some(self.client_key_file.clone().unwrap_or_else(|| self.key_file.clone())),
            insecure_skip_verify: self.self_signed || self.trusted_ca_file.is_none(),
        }
    }
}

/// Who is on the other end of a connection; tonic puts it in every
/// request's extensions.
#[derive(Debug, Clone, Default)]
pub struct ConnInfo {
    pub remote_addr: Option<SocketAddr>,
    /// The common name of the client certificate the handshake verified.
    pub common_name: Option<String>,
}
