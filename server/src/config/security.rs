//! etcd's "Security" flags: TLS on the client and peer URLs. Each side
//! becomes a [`TlsInfo`] (or none: plain text) in `node`.

use std::path::PathBuf;

use clap::Args;

use crate::tls::TlsInfo;

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Security (client)")]
pub struct ClientTlsFlags {
    /// Path to the client server TLS cert file.
    #[arg(long, env = "ETCD_CERT_FILE")]
    pub cert_file: Option<PathBuf>,
    /// Path to the client server TLS key file.
    #[arg(long, env = "ETCD_KEY_FILE")]
    pub key_file: Option<PathBuf>,
    /// Enable client cert authentication.
    #[arg(long, env = "ETCD_CLIENT_CERT_AUTH", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub client_cert_auth: Option<bool>,
    /// Path to the client certificate revocation list file.
    #[arg(long, env = "ETCD_CLIENT_CRL_FILE")]
    pub client_crl_file: Option<PathBuf>,
    /// Comma-separated list of SAN hostnames for client cert authentication.
    #[arg(long, env = "ETCD_CLIENT_CERT_ALLOWED_HOSTNAME")]
    pub client_cert_allowed_hostname: Option<String>,
    /// Path to the client server TLS trusted CA cert file.
    #[arg(long, env = "ETCD_TRUSTED_CA_FILE")]
    pub trusted_ca_file: Option<PathBuf>,
    /// Client TLS using generated certificates.
    #[arg(long, env = "ETCD_AUTO_TLS", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub auto_tls: Option<bool>,
}

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Security (peer)")]
pub struct PeerTlsFlags {
    /// Path to the peer server TLS cert file.
    #[arg(long, env = "ETCD_PEER_CERT_FILE")]
    pub peer_cert_file: Option<PathBuf>,
    /// Path to the peer server TLS key file.
    #[arg(long, env = "ETCD_PEER_KEY_FILE")]
    pub peer_key_file: Option<PathBuf>,
    /// Enable peer client cert authentication.
    #[arg(long, env = "ETCD_PEER_CLIENT_CERT_AUTH", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub peer_client_cert_auth: Option<bool>,
    /// Path to the peer server TLS trusted CA file.
    #[arg(long, env = "ETCD_PEER_TRUSTED_CA_FILE")]
    pub peer_trusted_ca_file: Option<PathBuf>,
    /// Peer TLS using generated certificates.
    #[arg(long, env = "ETCD_PEER_AUTO_TLS", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub peer_auto_tls: Option<bool>,
    /// Path to the peer certificate revocation list file.
    #[arg(long, env = "ETCD_PEER_CRL_FILE")]
    pub peer_crl_file: Option<PathBuf>,
    /// Path to an explicit peer client TLS cert file otherwise peer cert file will be used when client auth is required.
    #[arg(long, env = "ETCD_PEER_CLIENT_CERT_FILE")]
    pub peer_client_cert_file: Option<PathBuf>,
    /// Path to an explicit peer client TLS key file otherwise peer key file will be used when client auth is required.
    #[arg(long, env = "ETCD_PEER_CLIENT_KEY_FILE")]
    pub peer_client_key_file: Option<PathBuf>,
    /// Comma-separated list of allowed CNs for inter-peer TLS authentication.
    #[arg(long, env = "ETCD_PEER_CERT_ALLOWED_CN")]
    pub peer_cert_allowed_cn: Option<String>,
    /// Comma-separated list of allowed SAN hostnames for inter-peer TLS authentication.
    #[arg(long, env = "ETCD_PEER_CERT_ALLOWED_HOSTNAME")]
    pub peer_cert_allowed_hostname: Option<String>,
}

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Security (both)")]
pub struct TlsCommonFlags {
    /// Comma-separated list of supported TLS cipher suites between client/server and peers (empty will be auto-populated by Go).
    #[arg(long, env = "ETCD_CIPHER_SUITES", default_value = "")]
    pub cipher_suites: String,
    /// Minimum TLS version supported by etcd (TLS1.2 or TLS1.3).
    #[arg(long, env = "ETCD_TLS_MIN_VERSION", default_value = "TLS1.2")]
    pub tls_min_version: String,
    /// Maximum TLS version supported by etcd (empty: no limit).
    #[arg(long, env = "ETCD_TLS_MAX_VERSION", default_value = "")]
    pub tls_max_version: String,
    /// The validity period of the client and peer certificates that are automatically generated, in years.
    #[arg(long, env = "ETCD_SELF_SIGNED_CERT_VALIDITY", default_value_t = 1)]
    pub self_signed_cert_validity: u32,
}

impl TlsCommonFlags {
    fn apply(&self, info: &mut TlsInfo) {
        info.cipher_suites = self.cipher_suites.clone();
        info.min_version = self.tls_min_version.clone();
        info.max_version = self.tls_max_version.clone();
    }
}

impl ClientTlsFlags {
    /// The client side's files, when a cert and key were given (auto-TLS is
    /// resolved by `node`, which knows the data dir).
    pub fn info(&self, common: &TlsCommonFlags) -> Option<TlsInfo> {
        let (cert, key) = (self.cert_file.clone()?, self.key_file.clone()?);
        let mut info = TlsInfo {
            cert_file: cert,
            key_file: key,
            trusted_ca_file: self.trusted_ca_file.clone(),
            client_cert_auth: self.client_cert_auth == Some(true),
            crl_file: self.client_crl_file.clone(),
            allowed_hostname: self.client_cert_allowed_hostname.clone(),
            ..TlsInfo::default()
        };
        common.apply(&mut info);
        Some(info)
    }
}

impl PeerTlsFlags {
    pub fn info(&self, common: &TlsCommonFlags) -> Option<TlsInfo> {
        let (cert, key) = (self.peer_cert_file.clone()?, self.peer_key_file.clone()?);
        let mut info = TlsInfo {
            cert_file: cert,
            key_file: key,
            trusted_ca_file: self.peer_trusted_ca_file.clone(),
            client_cert_auth: self.peer_client_cert_auth == Some(true),
            crl_file: self.peer_crl_file.clone(),
            allowed_cn: self.peer_cert_allowed_cn.clone(),
            allowed_hostname: self.peer_cert_allowed_hostname.clone(),
            client_cert_file: self.peer_client_cert_file.clone(),
            client_key_file: self.peer_client_key_file.clone(),
            ..TlsInfo::default()
        };
        common.apply(&mut info);
        Some(info)
    }
}
