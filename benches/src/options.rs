//! The flags every workload shares, with etcd `tools/benchmark`'s names.
//! Parsing and validation only; the workloads read these values.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use clap::Args;
use serde::Serialize;

/// How much load, where, and what keys and values look like.
#[derive(Args, Debug, Clone, Serialize)]
pub struct Common {
    /// Client URLs, comma-separated (`host:port` or `http://host:port`).
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:2379", global = true)]
    pub endpoints: Vec<String>,
    /// gRPC connections (HTTP/2 channels); connection i goes to endpoint i mod len.
    #[arg(long, default_value_t = 1, global = true)]
    pub conns: usize,
    /// Concurrent clients; client j sends on connection j mod conns.
    #[arg(long, default_value_t = 1, global = true)]
    pub clients: usize,
    /// Requests to send in total (ignored when --duration is given).
    #[arg(long, default_value_t = 10_000, global = true)]
    pub total: u64,
    /// Run for this long instead of --total: seconds, or with a unit (500ms, 30s, 2m).
    #[arg(long, value_parser = parse_duration, global = true)]
    #[serde(serialize_with = "ser_opt_duration")]
    pub duration: Option<Duration>,
    /// Bytes of each key (for prefixed workloads: bytes after the prefix).
    #[arg(long, default_value_t = 8, global = true)]
    pub key_size: usize,
    /// Bytes of each value (also `--value-size`).
    #[arg(long, alias = "value-size", default_value_t = 256, global = true)]
    pub val_size: usize,
    /// Number of distinct keys the workload touches.
    #[arg(long, default_value_t = 1000, global = true)]
    pub key_space_size: u64,
    /// Pick keys in order (request n uses key n mod key-space-size) instead of at random.
    #[arg(long, global = true)]
    pub sequential_keys: bool,
    /// Maximum requests per second over all clients (0 = unlimited).
    #[arg(long, default_value_t = 0.0, global = true)]
    pub rate: f64,
    /// Print the result as one JSON object instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Verify TLS servers with this CA bundle (etcd benchmark's --cacert).
    #[arg(long, global = true)]
    pub cacert: Option<PathBuf>,
    /// Client certificate for TLS servers that require one.
    #[arg(long, global = true)]
    pub cert: Option<PathBuf>,
    /// Key of --cert.
    #[arg(long, global = true)]
    pub key: Option<PathBuf>,
    /// Accept any TLS server certificate.
    #[arg(long, global = true)]
    pub insecure_skip_tls_verify: bool,
}

impl Common {
    /// TLS when a CA, certificate or key is given (as etcd's benchmark and
    /// etcdctl decide), or when verification is skipped.
    pub fn tls(&self) -> Option<timon_tls::ClientTls> {
        let any = self.cacert.is_some() || self.cert.is_some() || self.key.is_some() || self.insecure_skip_tls_verify;
        any.then(|| timon_tls::ClientTls {
            ca_file: self.cacert.clone(),
            cert_file: self.cert.clone(),
            key_file: self.key.clone(),
            insecure_skip_verify: self.insecure_skip_tls_verify,
        })
    }

    /// Rejects combinations that cannot run (no endpoints, keys too short
    /// for the key space, ...), naming the flag.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.endpoints.is_empty() {
            bail!("--endpoints: at least one endpoint is needed");
        }
        if self.conns == 0 || self.clients == 0 {
            bail!("--conns and --clients must be at least 1");
        }
        if self.key_space_size == 0 {
            bail!("--key-space-size must be at least 1");
        }
        let digits = (self.key_space_size - 1).max(1).ilog10() as usize + 1;
        if self.key_size < digits {
            bail!(
                "--key-size {} is too short for --key-space-size {} (needs {digits} bytes)",
                self.key_size,
                self.key_space_size
            );
        }
        if self.val_size < 8 {
            bail!("--val-size must be at least 8 (the watch workload stores a timestamp in it)");
        }
        if self.rate < 0.0 || !self.rate.is_finite() {
            bail!("--rate must be a non-negative number");
        }
        Ok(())
    }
}

/// `30`, `30s`, `500ms`, `2m`: a whole or fractional number with an optional unit.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: f64 = number.parse().map_err(|_| format!("not a duration: {text:?}"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1e3,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("unknown unit {unit:?} in {text:?} (use ms, s, m or h)")),
    };
    if !secs.is_finite() || secs <= 0.0 {
        return Err(format!("duration must be positive: {text:?}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// `1GiB`, `512MiB`, `64KiB`, `1048576`: bytes, with an optional binary
/// unit (`K`, `M`, `G` mean the same as `KiB`, `MiB`, `GiB`).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| format!("not a size: {text:?}"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kib" | "kb" => 10,
        "m" | "mib" | "mb" => 20,
        "g" | "gib" | "gb" => 30,
        _ => return Err(format!("unknown unit {unit:?} in {text:?} (use KiB, MiB or GiB)")),
    };
    n.checked_mul(1 << shift)
        .filter(|b| *b > 0)
        .ok_or_else(|| format!("size must be positive and fit 64 bits: {text:?}"))
}

fn ser_opt_duration<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&d.as_secs_f64()),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_and_without_units() {
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("5d").is_err());
    }

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("8M").unwrap(), 8 << 20);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("0").is_err());
        assert!(parse_size("1TiB").is_err());
    }
}
