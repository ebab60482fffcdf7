//! The server side of a TLS listener: a rustls config built from a
//! [`TlsInfo`], rebuilt when one of its files changes (checked at most once
//! a second, on accept). A rebuild that fails (a key written before its
//! certificate, say) keeps the previous config and logs why.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;
use timon_tls::{pem, provider, versions, TlsError};

use super::verify::AllowedNames;
use super::TlsInfo;

/// How often accepts look at the files' modification times.
const CHECK_EVERY: Duration = Duration::from_secs(1);

pub struct Acceptor {
    info: TlsInfo,
    state: Mutex<State>,
}

struct State {
    stamps: Vec<Option<(SystemTime, u64)>>,
    config: Arc<ServerConfig>,
    checked: Instant,
}

impl Acceptor {
    /// Builds the first config; an unreadable or mismatched file is an error
    /// that names it (start-up fails).
    pub fn new(info: TlsInfo) -> Result<Self, TlsError> {
        let config = server_config(&info)?;
        for name in unavailable_suites(&info)? {
            tracing::warn!("cipher suite {name} is not available in timon (rustls); not offered");
        }
        let stamps = stamps(&info);
        Ok(Acceptor {
            info,
            state: Mutex::new(State {
                stamps,
                config,
                checked: Instant::now(),
            }),
        })
    }

    /// The config to accept the next connection with.
    pub fn config(&self) -> Arc<ServerConfig> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.checked.elapsed() >= CHECK_EVERY {
            state.checked = Instant::now();
            let now = stamps(&self.info);
            if now != state.stamps {
                state.stamps = now;
                match server_config(&self.info) {
                    Ok(config) => {
                        tracing::info!(cert_file = %self.info.cert_file.display(), "reloaded TLS certificates");
                        state.config = config;
                    }
                    Err(e) => tracing::warn!("cannot reload TLS certificates, keeping the previous ones: {e}"),
                }
            }
        }
        state.config.clone()
    }
}

fn files(info: &TlsInfo) -> Vec<PathBuf> {
    let mut files = vec![info.cert_file.clone(), info.key_file.clone()];
    files.extend(info.trusted_ca_file.clone());
    files.extend(info.crl_file.clone());
    files
}

fn stamps(info: &TlsInfo) -> Vec<Option<(SystemTime, u64)>> {
    files(info)
        .iter()
        .map(|f| {
            let meta = std::fs::metadata(f).ok()?;
            Some((meta.modified().ok()?, meta.len()))
        })
        .collect()
}

fn unavailable_suites(info: &TlsInfo) -> Result<Vec<String>, TlsError> {
    Ok(versions::cipher_suites(&info.cipher_suites)
        .map_err(TlsError::Config)?
        .unavailable)
}

/// etcd's `TLSInfo.ServerConfig`, in rustls: TLS 1.2 at least, ALPN h2
/// and http/1.1 (one port serves gRPC and the HTTP endpoints).
pub fn server_config(info: &TlsInfo) -> Result<Arc<ServerConfig>, TlsError> {
    let mut provider = (*provider()).clone();
    if !info.cipher_suites.trim().is_empty() {
        let suites = versions::cipher_suites(&info.cipher_suites).map_err(TlsError::Config)?;
        if suites.suites.len() == 3 {
            return Err(TlsError::Config(format!(
                "none of --cipher-suites {:?} is available in timon",
                info.cipher_suites
            )));
        }
        provider.cipher_suites = suites.suites;
    }
    let min = versions::version(&info.min_version).map_err(TlsError::Config)?;
    let max = versions::version(&info.max_version).map_err(TlsError::Config)?;
    let all = [&rustls::version::TLS12, &rustls::version::TLS13];
    let rank = |v: &rustls::SupportedProtocolVersion| {
        if v.version == rustls::ProtocolVersion::TLSv1_2 {
            0
        } else {
            1
        }
    };
    let (lo, hi) = (min.map_or(0, rank), max.map_or(1, rank));
    if lo > hi {
        return Err(TlsError::Config(format!(
            "--tls-min-version {} is above --tls-max-version {}",
            info.min_version, info.max_version
        )));
    }
    let chosen: Vec<_> = all.into_iter().filter(|v| (lo..=hi).contains(&rank(v))).collect();
    let builder = ServerConfig::builder_with_provider(Arc::new(provider.clone())).with_protocol_versions(&chosen)?;
    let builder = if info.trusted_ca_file.is_some() || info.client_cert_auth {
        let Some(ca) = &info.trusted_ca_file else {
            return Err(TlsError::Config(
                "--client-cert-auth needs --trusted-ca-file (the CA client certificates must chain to)".into(),
            ));
        };
        let mut verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(pem::roots(ca)?), Arc::new(provider));
        if let Some(crl) = &info.crl_file {
            verifier = verifier.with_crls(pem::crls(crl)?);
        }
        let verifier = verifier
            .build()
            .map_err(|e| TlsError::Config(format!("{}: {e}", ca.display())))?;
        builder.with_client_cert_verifier(AllowedNames::wrap(verifier, info)?)
    } else {
        builder.with_no_client_auth()
    };
    let mut config = builder
        .with_single_cert(pem::certs(&info.cert_file)?, pem::key(&info.key_file)?)
        .map_err(|e| {
            TlsError::Config(format!(
                "{} and {} do not match: {e}",
                info.cert_file.display(),
                info.key_file.display()
            ))
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
