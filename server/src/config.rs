//! etcd-compatible configuration: etcd's flag names and defaults, each flag
//! also read from its `ETCD_*` environment variable, Go-style single-dash
//! flags accepted, so `timon` drops into an etcd systemd unit.
//!
//! Flags etcd has that timon does not act on yet are accepted and reported
//! at start-up (see [`Config::ignored_flags`]); a flag etcd does not have is
//! an error.

use std::path::PathBuf;

use clap::Parser;
use url::Url;

pub const DEFAULT_MAX_REQUEST_BYTES: u64 = 1024 * 1024 + 512 * 1024;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "timon",
    version,
    about = "timon: an etcd replacement (etcd v3 API over Raft and RocksDB)"
)]
pub struct Config {
    /// Human-readable name for this member.
    #[arg(long, env = "ETCD_NAME", default_value = "default")]
    pub name: String,

    /// Path to the data directory (default: <name>.etcd).
    #[arg(long, env = "ETCD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// List of URLs to listen on for client traffic.
    #[arg(long, env = "ETCD_LISTEN_CLIENT_URLS", default_value = "http://localhost:2379")]
    pub listen_client_urls: String,

    /// List of this member's client URLs to advertise to the rest of the cluster.
    #[arg(long, env = "ETCD_ADVERTISE_CLIENT_URLS", default_value = "http://localhost:2379")]
    pub advertise_client_urls: String,

    /// List of URLs to listen on for peer traffic.
    #[arg(long, env = "ETCD_LISTEN_PEER_URLS", default_value = "http://localhost:2380")]
    pub listen_peer_urls: String,

    /// List of this member's peer URLs to advertise to the rest of the cluster.
    #[arg(
        long,
        env = "ETCD_INITIAL_ADVERTISE_PEER_URLS",
        default_value = "http://localhost:2380"
    )]
    pub initial_advertise_peer_urls: String,

    /// Initial cluster configuration for bootstrapping (default: <name>=<initial-advertise-peer-urls>).
    #[arg(long, env = "ETCD_INITIAL_CLUSTER")]
    pub initial_cluster: Option<String>,

    /// Initial cluster state ('new' or 'existing').
    #[arg(long, env = "ETCD_INITIAL_CLUSTER_STATE", default_value = "new", value_parser = ["new", "existing"])]
    pub initial_cluster_state: String,

    /// Initial cluster token for the etcd cluster during bootstrap.
    #[arg(long, env = "ETCD_INITIAL_CLUSTER_TOKEN", default_value = "etcd-cluster")]
    pub initial_cluster_token: String,

    /// Maximum client request size in bytes the server will accept.
    #[arg(long, env = "ETCD_MAX_REQUEST_BYTES", default_value_t = DEFAULT_MAX_REQUEST_BYTES)]
    pub max_request_bytes: u64,

    /// Maximum number of operations permitted in a transaction.
    #[arg(long, env = "ETCD_MAX_TXN_OPS", default_value_t = 128)]
    pub max_txn_ops: u64,

    /// Raise alarms when backend size exceeds the given quota (0 defaults to low space quota).
    #[arg(long, env = "ETCD_QUOTA_BACKEND_BYTES", default_value_t = 0)]
    pub quota_backend_bytes: i64,

    /// Time (in milliseconds) of a heartbeat interval.
    #[arg(long, env = "ETCD_HEARTBEAT_INTERVAL", default_value_t = 100)]
    pub heartbeat_interval: u64,

    /// Time (in milliseconds) for an election to timeout.
    #[arg(long, env = "ETCD_ELECTION_TIMEOUT", default_value_t = 1000)]
    pub election_timeout: u64,

    /// Number of committed transactions to trigger a snapshot to disk.
    #[arg(long, env = "ETCD_SNAPSHOT_COUNT", default_value_t = 100_000)]
    pub snapshot_count: u64,

    /// Configures log level. Only supports debug, info, warn, error, panic, or fatal.
    #[arg(long, env = "ETCD_LOG_LEVEL", default_value = "info",
          value_parser = ["debug", "info", "warn", "error", "panic", "fatal"])]
    pub log_level: String,

    /// Specify 'zap' for structured logging or 'capnslog'.
    #[arg(long, env = "ETCD_LOGGER", default_value = "zap", value_parser = ["zap", "capnslog"])]
    pub logger: String,

    /// Specify 'stdout' or 'stderr' to skip journald logging even when running under systemd.
    #[arg(long, env = "ETCD_LOG_OUTPUTS", default_value = "default")]
    pub log_outputs: String,

    // --- etcd flags accepted for drop-in compatibility, not acted on yet ---
    /// Accepted for compatibility; the v2 API is not served.
    #[arg(long, env = "ETCD_ENABLE_V2", num_args = 0..=1, default_missing_value = "true")]
    pub enable_v2: Option<bool>,
    /// Accepted for compatibility; not acted on yet.
    #[arg(long, env = "ETCD_AUTO_COMPACTION_MODE")]
    pub auto_compaction_mode: Option<String>,
    /// Accepted for compatibility; not acted on yet.
    #[arg(long, env = "ETCD_AUTO_COMPACTION_RETENTION")]
    pub auto_compaction_retention: Option<String>,
    /// List of URLs to serve /health, /version and /metrics on (http).
    #[arg(long, env = "ETCD_LISTEN_METRICS_URLS")]
    pub listen_metrics_urls: Option<String>,
    /// Accepted for compatibility; not acted on yet.
    #[arg(long, env = "ETCD_ENABLE_PPROF", num_args = 0..=1, default_missing_value = "true")]
    pub enable_pprof: Option<bool>,
    /// Accepted for compatibility; not acted on yet.
    #[arg(long, env = "ETCD_STRICT_RECONFIG_CHECK", num_args = 0..=1, default_missing_value = "true")]
    pub strict_reconfig_check: Option<bool>,
    /// Interval of progress notifications to watchers that asked for them
    /// (a Go duration such as 10m or 500ms).
    #[arg(long, env = "ETCD_EXPERIMENTAL_WATCH_PROGRESS_NOTIFY_INTERVAL")]
    pub experimental_watch_progress_notify_interval: Option<String>,
    /// Whether the leader checkpoints remaining lease TTLs through raft, so
    /// a leader change does not restart leases from their full TTL. etcd
    /// 3.4's default is false; timon's is true.
    #[arg(long, env = "ETCD_EXPERIMENTAL_ENABLE_LEASE_CHECKPOINT", num_args = 0..=1, default_missing_value = "true")]
    pub experimental_enable_lease_checkpoint: Option<bool>,
    /// Accepted for compatibility: timon always persists checkpoints.
    #[arg(long, env = "ETCD_EXPERIMENTAL_ENABLE_LEASE_CHECKPOINT_PERSIST", num_args = 0..=1, default_missing_value = "true")]
    pub experimental_enable_lease_checkpoint_persist: Option<bool>,
    /// How often each long lease's remaining TTL is checkpointed (a Go
    /// duration; etcd's default 5m; at least 1s).
    #[arg(long, env = "ETCD_EXPERIMENTAL_LEASE_CHECKPOINT_INTERVAL")]
    pub experimental_lease_checkpoint_interval: Option<String>,
}

/// The shortest lease checkpoint interval: each checkpoint is a raft entry
/// per long lease, so a shorter one would flood the log.
pub const MIN_LEASE_CHECKPOINT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// A Go duration (`time.ParseDuration`): numbers with units h, m, s, ms,
/// us, ns, e.g. `10m`, `1m30s`, `500ms`.
pub fn parse_go_duration(text: &str) -> Option<std::time::Duration> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let secs = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total += number * secs;
        rest = &rest[unit_len..];
    }
    Some(std::time::Duration::from_secs_f64(total))
}

/// A flag value that parses but makes no sense.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("invalid value {0:?} for flag -experimental-watch-progress-notify-interval: time: invalid duration")]
    BadDuration(String),
    #[error("invalid value {0:?} for flag -experimental-lease-checkpoint-interval: time: invalid duration")]
    BadCheckpointInterval(String),
    #[error("invalid URL {url:?} in --{flag}: {reason}")]
    BadUrl {
        flag: &'static str,
        url: String,
        reason: String,
    },
    #[error("--initial-cluster {0:?}: each member must be name=URL")]
    BadInitialCluster(String),
    #[error("--initial-cluster has no member named {name:?} (the --name of this member)")]
    NotInInitialCluster { name: String },
    #[error("--initial-cluster-state existing is not supported yet: a single member bootstraps with 'new'")]
    ExistingUnsupported,
    #[error("--max-request-bytes must be positive")]
    ZeroRequestBytes,
    #[error("--max-txn-ops must be positive")]
    ZeroTxnOps,
    #[error("--election-timeout[{election}ms] should be at least 5 times as --heartbeat-interval[{heartbeat}ms]")]
    ElectionTooShort { election: u64, heartbeat: u64 },
}

/// Go's flag package accepts `-name value` as well as `--name value`; etcd
/// users' unit files use both.
pub fn normalize_go_flags(args: impl IntoIterator<Item = String>) -> Vec<String> {
    args.into_iter()
        .enumerate()
        .map(|(i, a)| {
            let single_dash_long = a.starts_with('-') && !a.starts_with("--") && a.len() > 2;
            if i > 0 && single_dash_long && a.as_bytes()[1].is_ascii_alphabetic() {
                format!("-{a}")
            } else {
                a
            }
        })
        .collect()
}

/// Splits a comma-separated URL list and checks each is an `http://host:port` URL.
pub fn parse_urls(flag: &'static str, list: &str) -> Result<Vec<Url>, ConfigError> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            let bad = |reason: &str| ConfigError::BadUrl {
                flag,
                url: s.to_string(),
                reason: reason.into(),
            };
            let url = Url::parse(s).map_err(|e| bad(&e.to_string()))?;
            match url.scheme() {
                "http" => {}
                "https" | "unixs" => return Err(bad("TLS is not supported yet; use http")),
                _ => return Err(bad("URL scheme must be http")),
            }
            if url.host_str().is_none() || url.port_or_known_default().is_none() {
                return Err(bad("URL must name a host and a port"));
            }
            Ok(url)
        })
        .collect()
}

/// One `name=URL` pair of --initial-cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitialMember {
    pub name: String,
    pub peer_urls: Vec<String>,
}

impl Config {
    /// Parses the process arguments (and ETCD_* variables).
    pub fn from_env_args() -> Result<Self, clap::Error> {
        Config::try_parse_from(normalize_go_flags(std::env::args()))
    }

    pub fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("{}.etcd", self.name)))
    }

    /// --initial-cluster as members, with etcd's default of this member alone
    /// at its advertised peer URLs. A name given several times collects URLs.
    pub fn initial_members(&self) -> Result<Vec<InitialMember>, ConfigError> {
        let spec = match &self.initial_cluster {
            Some(s) => s.clone(),
            None => self
                .initial_advertise_peer_urls
                .split(',')
                .map(|u| format!("{}={}", self.name, u.trim()))
                .collect::<Vec<_>>()
                .join(","),
        };
        let mut members: Vec<InitialMember> = Vec::new();
        for pair in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, url) = pair
                .split_once('=')
                .ok_or_else(|| ConfigError::BadInitialCluster(pair.into()))?;
            parse_urls("initial-cluster", url)?;
            match members.iter_mut().find(|m| m.name == name) {
                Some(m) => m.peer_urls.push(url.to_string()),
                None => members.push(InitialMember {
                    name: name.to_string(),
                    peer_urls: vec![url.to_string()],
                }),
            }
        }
        if !members.iter().any(|m| m.name == self.name) {
            return Err(ConfigError::NotInInitialCluster {
                name: self.name.clone(),
            });
        }
        Ok(members)
    }

    /// --experimental-watch-progress-notify-interval, etcd's default 10 min.
    pub fn progress_notify_interval(&self) -> Result<std::time::Duration, ConfigError> {
        match &self.experimental_watch_progress_notify_interval {
            None => Ok(std::time::Duration::from_secs(600)),
            Some(v) => parse_go_duration(v)
                .filter(|d| !d.is_zero())
                .ok_or_else(|| ConfigError::BadDuration(v.clone())),
        }
    }

    /// The lease checkpoint interval (--experimental-lease-checkpoint-interval,
    /// default 5 min, raised to [`MIN_LEASE_CHECKPOINT_INTERVAL`]), or None
    /// with --experimental-enable-lease-checkpoint=false.
    pub fn lease_checkpoint_interval(&self) -> Result<Option<std::time::Duration>, ConfigError> {
        if self.experimental_enable_lease_checkpoint == Some(false) {
            return Ok(None);
        }
        let interval = match &self.experimental_lease_checkpoint_interval {
            None => std::time::Duration::from_secs(300),
            Some(v) => parse_go_duration(v).ok_or_else(|| ConfigError::BadCheckpointInterval(v.clone()))?,
        };
        Ok(Some(interval.max(MIN_LEASE_CHECKPOINT_INTERVAL)))
    }

    /// Checks the values clap cannot: URLs, limits, the initial cluster.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.progress_notify_interval()?;
        self.lease_checkpoint_interval()?;
        parse_urls("listen-client-urls", &self.listen_client_urls)?;
        parse_urls("advertise-client-urls", &self.advertise_client_urls)?;
        parse_urls("listen-peer-urls", &self.listen_peer_urls)?;
        parse_urls("initial-advertise-peer-urls", &self.initial_advertise_peer_urls)?;
        self.initial_members()?;
        if self.max_request_bytes == 0 {
            return Err(ConfigError::ZeroRequestBytes);
        }
        if self.max_txn_ops == 0 {
            return Err(ConfigError::ZeroTxnOps);
        }
        if self.election_timeout < 5 * self.heartbeat_interval {
            return Err(ConfigError::ElectionTooShort {
                election: self.election_timeout,
                heartbeat: self.heartbeat_interval,
            });
        }
        Ok(())
    }

    /// The compatibility flags that were given but are not acted on yet.
    pub fn ignored_flags(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.enable_v2 == Some(true) {
            out.push("--enable-v2");
        }
        if self.auto_compaction_retention.is_some() || self.auto_compaction_mode.is_some() {
            out.push("--auto-compaction-mode/--auto-compaction-retention");
        }
        if self.enable_pprof == Some(true) {
            out.push("--enable-pprof");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_checkpoint_interval_defaults_to_5m_and_is_at_least_1s() {
        use std::time::Duration;
        let c = Config::try_parse_from(["timon"]).unwrap();
        assert_eq!(c.lease_checkpoint_interval(), Ok(Some(Duration::from_secs(300))));
        let c = Config::try_parse_from(["timon", "--experimental-lease-checkpoint-interval", "10ms"]).unwrap();
        assert_eq!(c.lease_checkpoint_interval(), Ok(Some(Duration::from_secs(1))));
        let c = Config::try_parse_from(["timon", "--experimental-lease-checkpoint-interval", "2s"]).unwrap();
        assert_eq!(c.lease_checkpoint_interval(), Ok(Some(Duration::from_secs(2))));
        let c = Config::try_parse_from(["timon", "--experimental-enable-lease-checkpoint=false"]).unwrap();
        assert_eq!(c.lease_checkpoint_interval(), Ok(None));
        let c = Config::try_parse_from(["timon", "--experimental-lease-checkpoint-interval", "x"]).unwrap();
        assert!(c.lease_checkpoint_interval().is_err());
    }

    #[test]
    fn go_durations() {
        use std::time::Duration;
        assert_eq!(parse_go_duration("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse_go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_go_duration("1h"), Some(Duration::from_secs(3600)));
        for bad in ["", "10", "1x", "m"] {
            assert_eq!(parse_go_duration(bad), None, "{bad}");
        }
        let c = Config::try_parse_from(["timon", "--experimental-watch-progress-notify-interval", "2s"]).unwrap();
        assert_eq!(c.progress_notify_interval(), Ok(Duration::from_secs(2)));
        let c = Config::try_parse_from(["timon", "--experimental-watch-progress-notify-interval", "soon"]).unwrap();
        assert!(c.validate().is_err());
    }

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        let mut v = vec!["timon".to_string()];
        v.extend(args.iter().map(|s| s.to_string()));
        Config::try_parse_from(normalize_go_flags(v))
    }

    #[test]
    fn defaults_are_etcds() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.name, "default");
        assert_eq!(c.data_dir(), PathBuf::from("default.etcd"));
        assert_eq!(c.listen_client_urls, "http://localhost:2379");
        assert_eq!(c.initial_advertise_peer_urls, "http://localhost:2380");
        assert_eq!(c.max_request_bytes, 1_572_864);
        assert_eq!(c.max_txn_ops, 128);
        assert_eq!(
            c.initial_members().unwrap(),
            vec![InitialMember {
                name: "default".into(),
                peer_urls: vec!["http://localhost:2380".into()]
            }]
        );
        c.validate().unwrap();
    }

    #[test]
    fn go_style_single_dash_and_equals() {
        let c = parse(&["-name", "n1", "--data-dir=/tmp/x", "-max-txn-ops=5"]).unwrap();
        assert_eq!(c.name, "n1");
        assert_eq!(c.data_dir(), PathBuf::from("/tmp/x"));
        assert_eq!(c.max_txn_ops, 5);
    }

    #[test]
    fn unknown_flag_and_bad_values_fail() {
        assert!(parse(&["--no-such-flag", "1"]).is_err());
        assert!(parse(&["--max-txn-ops", "many"]).is_err());
        assert!(parse(&["--initial-cluster-state", "old"]).is_err());
        let c = parse(&["--listen-client-urls", "localhost:2379"]).unwrap();
        assert!(matches!(c.validate(), Err(ConfigError::BadUrl { .. })));
        let c = parse(&["--name", "a", "--initial-cluster", "b=http://127.0.0.1:2380"]).unwrap();
        assert_eq!(c.validate(), Err(ConfigError::NotInInitialCluster { name: "a".into() }));
        let c = parse(&["--heartbeat-interval", "500"]).unwrap();
        assert!(matches!(c.validate(), Err(ConfigError::ElectionTooShort { .. })));
    }

    #[test]
    fn env_vars_are_read_and_flags_win() {
        // clap reads the environment at parse time; use names no other test sets.
        let cmd = <Config as clap::CommandFactory>::command();
        let name = cmd.get_arguments().find(|a| a.get_id() == "max_txn_ops").unwrap();
        assert_eq!(name.get_env().unwrap(), "ETCD_MAX_TXN_OPS");
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            let expected = format!("ETCD_{}", id.to_uppercase());
            assert_eq!(
                arg.get_env().and_then(|e| e.to_str()),
                Some(expected.as_str()),
                "flag {id}"
            );
        }
    }
}
