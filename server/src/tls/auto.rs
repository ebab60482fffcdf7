//! `--auto-tls` and `--peer-auto-tls`: a self-signed certificate for the
//! listen URLs' hosts, written under the data dir (`fixtures/client` or
//! `fixtures/peer`, `cert.pem` and `key.pem`) and reused while both files
//! exist, as etcd's `transport.SelfCert` does. etcd signs with P-521; ring
//! has no P-521 signing, so timon uses P-256 (what clients see is the same:
//! a self-signed ECDSA certificate, organisation "etcd").

use std::fs;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, SystemTime};

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose, SanType,
    PKCS_ECDSA_P256_SHA256,
};

use super::TlsInfo;

/// Writes (or finds) `dir/cert.pem` and `dir/key.pem` for `hosts`, valid
/// for `years` years (`--self-signed-cert-validity`, etcd's default 1).
pub fn self_cert(dir: &Path, hosts: &[String], years: u32) -> anyhow::Result<TlsInfo> {
    use anyhow::Context;
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    let info = TlsInfo {
        cert_file: cert_path.clone(),
        key_file: key_path.clone(),
        self_signed: true,
        ..TlsInfo::default()
    };
    if cert_path.exists() && key_path.exists() {
        return Ok(info);
    }
    fs::create_dir_all(dir).with_context(|| format!("cannot create cert directory {}", dir.display()))?;
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "etcd");
    params.distinguished_name = name;
    let now = SystemTime::now();
    params.not_before = now.into();
    params.not_after = (now + Duration::from_secs(365 * 24 * 3600 * u64::from(years.max(1)))).into();
    params.key_usages = vec![KeyUsagePurpose::KeyEncipherment, KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    for host in hosts {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        params.subject_alt_names.push(match host.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(host.try_into()?),
        });
    }
    let cert = params.self_signed(&key)?;
    fs::write(&cert_path, cert.pem()).with_context(|| format!("cannot write {}", cert_path.display()))?;
    write_private(&key_path, key.serialize_pem().as_bytes())?;
    tracing::info!("generated self-signed certificate {}", cert_path.display());
    Ok(info)
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    Ok(())
}
