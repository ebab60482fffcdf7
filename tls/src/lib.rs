//! TLS for timon, the parts the server and the clients share: reading PEM
//! files (with errors that name the file), the one crypto provider (ring),
//! rustls client configurations as etcd's `transport.TLSInfo` builds them,
//! the tonic connector that dials TCP then TLS, and reading a verified
//! certificate's names (CN for auth, SANs for the allowed-hostname checks).
//!
//! # Layout
//! - `pem`: certificates, keys and CRLs from files.
//! - `client`: [`ClientTls`] -> `rustls::ClientConfig` (CA roots, client
//!   identity, `--insecure-skip-tls-verify`), and [`connector::TlsConnector`].
//! - `names`: a certificate's common name and subject alternative names.
//! - `versions`: Go's names of TLS versions and cipher suites -> rustls's.
//! - `test_pki`: a throw-away PKI (openssl) for tests, benchmarks and jepsen.

pub mod client;
pub mod connector;
pub mod names;
pub mod pem;
pub mod test_pki;
pub mod versions;

use std::sync::Arc;

pub use client::ClientTls;
pub use connector::TlsConnector;

/// The crypto provider every timon TLS config uses: ring (no C toolchain
/// beyond what ring itself builds, unlike aws-lc). rustls deprecates it for
/// lacking post-quantum key exchange; Go's TLS in etcd 3.4/3.5 has none
/// either, so clients and peers lose nothing they had.
#[allow(deprecated)]
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS setting that cannot be used, naming the file or value at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {path}: {reason}")]
    File {
        what: &'static str,
        path: String,
        reason: String,
    },
    #[error("{path} holds no {what}")]
    Empty { what: &'static str, path: String },
    #[error("{0}")]
    Config(String),
}

impl From<rustls::Error> for TlsError {
    fn from(e: rustls::Error) -> Self {
        TlsError::Config(e.to_string())
    }
}
