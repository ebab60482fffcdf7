//! What a client (timonctl, timon-client, a member dialing its peers) needs
//! to dial TLS: etcdctl's `--cacert`, `--cert`, `--key` and
//! `--insecure-skip-tls-verify`, turned into a rustls client config that
//! offers HTTP/2 by ALPN, as grpc-go does.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

use crate::{pem, provider, TlsError};

/// The files and switches of a TLS client.
#[derive(Debug, Clone, Default)]
pub struct ClientTls {
    /// CA certificates the server's certificate must chain to. Without it
    /// (and without `insecure_skip_verify`) the server cannot be verified
    /// and building the config fails.
    pub ca_file: Option<PathBuf>,
    /// This client's certificate, presented when the server asks for one.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Accept any server certificate (etcdctl's `--insecure-skip-tls-verify`,
    /// and members dialing peers that use `--peer-auto-tls`).
    pub insecure_skip_verify: bool,
}

impl ClientTls {
    /// The rustls configuration: TLS 1.2 and 1.3, ALPN `h2`.
    pub fn config(&self) -> Result<Arc<ClientConfig>, TlsError> {
        let builder = ClientConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
        let builder = if self.insecure_skip_verify {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyServer(provider())))
        } else {
            let Some(ca) = &self.ca_file else {
                return Err(TlsError::Config(
                    "a TLS client needs a trusted CA file (or insecure-skip-tls-verify)".into(),
                ));
            };
            builder.with_root_certificates(pem::roots(ca)?)
        };
        let mut config = match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => builder
                .with_client_auth_cert(pem::certs(cert)?, pem::key(key)?)
                .map_err(|e| TlsError::Config(format!("{} and {} do not match: {e}", cert.display(), key.display())))?,
            (None, None) => builder.with_no_client_auth(),
            _ => {
                return Err(TlsError::Config(
                    "a client certificate needs both a cert file and a key file".into(),
                ))
            }
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }
}

/// Accepts whatever certificate the server shows, but still checks that
/// the server holds its key (the handshake signature).
#[derive(Debug)]
struct AcceptAnyServer(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
