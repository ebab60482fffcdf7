//! etcd's extra check on verified client certificates: with an allowed CN
//! (`--peer-cert-allowed-cn`) or an allowed hostname
//! (`--client-cert-allowed-hostname`, `--peer-cert-allowed-hostname`), a
//! certificate that chains to the CA but names someone else is refused
//! with etcd's "client certificate authentication failed".

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use timon_tls::{names, TlsError};

use super::TlsInfo;

#[derive(Debug)]
pub struct AllowedNames {
    inner: Arc<dyn ClientCertVerifier>,
    /// Comma-separated in the flag (etcd 3.5+); one match suffices.
    cns: Vec<String>,
    hostnames: Vec<String>,
}

fn list(flag: &Option<String>) -> Vec<String> {
    flag.iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

impl AllowedNames {
    /// The verifier itself when no name is required, else it wrapped.
    pub fn wrap(inner: Arc<dyn ClientCertVerifier>, info: &TlsInfo) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
        let (cns, hostnames) = (list(&info.allowed_cn), list(&info.allowed_hostname));
        match (cns.is_empty(), hostnames.is_empty()) {
            (true, true) => Ok(inner),
            (false, false) => Err(TlsError::Config(format!(
                "AllowedCN and AllowedHostname are mutually exclusive (cn={:?}, hostname={:?})",
                cns.join(","),
                hostnames.join(",")
            ))),
            _ => Ok(Arc::new(AllowedNames { inner, cns, hostnames })),
        }
    }

    fn allowed(&self, cert: &[u8]) -> bool {
        if !self.cns.is_empty() {
            let cn = names::common_name(cert);
            return self.cns.iter().any(|allowed| cn.as_deref() == Some(allowed.as_str()));
        }
        self.hostnames.iter().any(|host| names::valid_for_host(cert, host))
    }
}

impl ClientCertVerifier for AllowedNames {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self.inner.verify_client_cert(end_entity, intermediates, now)?;
        if self.allowed(end_entity) {
            Ok(verified)
        } else {
            Err(rustls::Error::General(
                "client certificate authentication failed".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
