//! Go's names for TLS versions (`--tls-min-version`, `--tls-max-version`,
//! etcd 3.5's `tlsutil.GetTLSVersion`) and cipher suites (`--cipher-suites`,
//! `tlsutil.GetCipherSuite`), mapped onto what rustls offers. rustls has no
//! CBC, RC4, 3DES or static-RSA suites: a name Go knows but rustls lacks is
//! reported back so the server can say it is not used; a name Go does not
//! know is etcd's error.

use rustls::crypto::ring::cipher_suite as ring;
use rustls::{SupportedCipherSuite, SupportedProtocolVersion};

/// A TLS version by etcd's spelling; `""` means no bound.
pub fn version(name: &str) -> Result<Option<&'static SupportedProtocolVersion>, String> {
    match name {
        "" => Ok(None),
        "TLS1.2" => Ok(Some(&rustls::version::TLS12)),
        "TLS1.3" => Ok(Some(&rustls::version::TLS13)),
        other => Err(format!(
            "unexpected TLS version {other:?} (must be one of: TLS1.2, TLS1.3)"
        )),
    }
}

/// The TLS 1.2 suites rustls offers, by Go's names (Go accepts the names
/// without `_SHA256` for ChaCha20 too).
fn rustls_suite(name: &str) -> Option<SupportedCipherSuite> {
    Some(match name {
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" => ring::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" => ring::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305" | "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256" => {
            ring::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        }
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" => ring::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" => ring::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305" | "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256" => {
            ring::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
        }
        _ => return None,
    })
}

/// Suites Go knows (`tls.CipherSuites()` and `tls.InsecureCipherSuites()`)
/// that rustls does not implement.
const GO_ONLY: &[&str] = &[
    "TLS_RSA_WITH_RC4_128_SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
];

/// The suites named in `--cipher-suites` (comma-separated): the ones rustls
/// has, and the ones Go knows that rustls lacks (to report). The TLS 1.3
/// suites are always added, as Go always enables them.
pub struct CipherSuites {
    pub suites: Vec<SupportedCipherSuite>,
    pub unavailable: Vec<String>,
}

pub fn cipher_suites(list: &str) -> Result<CipherSuites, String> {
    let mut suites = Vec::new();
    let mut unavailable = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match rustls_suite(name) {
            Some(s) => suites.push(s),
            None if GO_ONLY.contains(&name) => unavailable.push(name.to_owned()),
            None => return Err(format!("unexpected TLS cipher suite {name:?}")),
        }
    }
    suites.extend([
        ring::TLS13_AES_128_GCM_SHA256,
        ring::TLS13_AES_256_GCM_SHA384,
        ring::TLS13_CHACHA20_POLY1305_SHA256,
    ]);
    Ok(CipherSuites { suites, unavailable })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_names_map_or_fail_as_etcd() {
        let c = cipher_suites("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_RSA_WITH_AES_128_CBC_SHA").unwrap();
        assert_eq!(c.suites.len(), 4);
        assert_eq!(c.unavailable, vec!["TLS_RSA_WITH_AES_128_CBC_SHA".to_owned()]);
        assert_eq!(
            cipher_suites("TLS_NOPE").err().unwrap(),
            "unexpected TLS cipher suite \"TLS_NOPE\""
        );
        assert!(version("TLS1.2").unwrap().is_some());
        assert!(version("").unwrap().is_none());
        assert!(version("TLS1.1").is_err());
    }
}
