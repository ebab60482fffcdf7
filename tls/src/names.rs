//! The names in a certificate: its subject common name (the auth user of a
//! client that presents it, etcd's `AuthInfoFromTLS`) and whether it is
//! valid for a host (Go's `x509.Certificate.VerifyHostname`, as etcd's
//! `--client-cert-allowed-hostname` and `--peer-cert-allowed-hostname` use).

use std::net::IpAddr;

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The first common name of the certificate's subject, if it parses.
pub fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_owned)
}

/// Whether the certificate names `host` in its subject alternative names:
/// an IP host must be one of the IP SANs; a DNS host matches a DNS SAN,
/// case-insensitively, with a leading `*.` matching one label. Like Go
/// since 1.15, the common name is not consulted.
pub fn valid_for_host(der: &[u8], host: &str) -> bool {
    let Ok((_, cert)) = X509Certificate::from_der(der) else {
        return false;
    };
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let want_ip: Option<IpAddr> = host.parse().ok();
    san.value.general_names.iter().any(|name| match (name, want_ip) {
        (GeneralName::IPAddress(bytes), Some(ip)) => match (bytes.len(), ip) {
            (4, IpAddr::V4(v4)) => *bytes == v4.octets(),
            (16, IpAddr::V6(v6)) => *bytes == v6.octets(),
            _ => false,
        },
        (GeneralName::DNSName(pattern), None) => dns_matches(pattern, host),
        _ => false,
    })
}

fn dns_matches(pattern: &str, host: &str) -> bool {
    let (pattern, host) = (
        pattern.to_ascii_lowercase(),
        host.trim_end_matches('.').to_ascii_lowercase(),
    );
    match pattern.strip_prefix("*.") {
        Some(suffix) => host
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
        None => pattern == host,
    }
}

#[cfg(test)]
mod tests {
    use super::dns_matches;

    #[test]
    fn wildcards_match_one_label() {
        assert!(dns_matches("*.example.com", "a.example.com"));
        assert!(!dns_matches("*.example.com", "a.b.example.com"));
        assert!(!dns_matches("*.example.com", "example.com"));
        assert!(dns_matches("Node1.Local", "node1.local."));
        assert!(!dns_matches("node1.local", "node2.local"));
    }
}
