//! etcd-compatible configuration: etcd's flag names and defaults, grouped
//! by the topics of `etcd --help`, each flag also read from its `ETCD_*`
//! environment variable, Go-style single-dash flags, etcd 3.6's spellings
//! and `--config-file` (etcd's YAML), so `timon` drops into an etcd unit
//! file or kubeadm manifest.
//!
//! # Layout
//! - `member`, `cluster`, `security`, `logging`, `experimental`: the flags
//!   timon acts on, one clap group per topic (`auth::AuthFlags` for auth).
//! - `etcd_flags`: every flag of etcd 3.4, 3.5 and 3.6; `args` takes out
//!   the ones timon does not act on (each reported at start-up) and
//!   rewrites 3.6's renames and feature gates. A flag no etcd has is an error.
//! - `file`: `--config-file`.
//! - `duration`: Go's `time.ParseDuration`.
//! - `urls`: URL lists (`http`, `https`, `unix`, `unixs`).

mod args;
mod cluster;
pub mod duration;
pub mod etcd_flags;
mod experimental;
mod file;
mod logging;
mod member;
mod security;
pub mod urls;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser};

pub use args::normalize_go_flags;
pub use cluster::ClusterFlags;
pub use duration::parse_go_duration;
pub use experimental::ExperimentalFlags;
pub use logging::LoggingFlags;
pub use member::{MemberFlags, DEFAULT_MAX_REQUEST_BYTES};
pub use security::{ClientTlsFlags, PeerTlsFlags, TlsCommonFlags};
pub use urls::parse_urls;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "timon",
    about = "timon: an etcd replacement (etcd v3 API over Raft and RocksDB)",
    // Go's flag package lets a later flag override an earlier one.
    args_override_self = true
)]
pub struct Config {
    #[command(flatten)]
    pub member: MemberFlags,
    #[command(flatten)]
    pub cluster: ClusterFlags,
    #[command(flatten)]
    pub client_tls: ClientTlsFlags,
    #[command(flatten)]
    pub peer_tls: PeerTlsFlags,
    #[command(flatten)]
    pub tls: TlsCommonFlags,
    #[command(flatten)]
    pub logging: LoggingFlags,
    #[command(flatten)]
    pub experimental: ExperimentalFlags,

    /// Path to the server configuration file (etcd's YAML). When given, the
    /// other flags and the environment are ignored, as in etcd.
    #[arg(long, env = "ETCD_CONFIG_FILE")]
    pub config_file: Option<PathBuf>,

    /// etcd flags that were given but that timon accepts without acting on
    /// them; start-up logs one line for each.
    #[arg(skip)]
    pub not_acted_on: Vec<String>,
    #[command(flatten)]
    pub auth: crate::auth::AuthFlags,

    /// Print the version and exit (`crate::version`). Not read from
    /// ETCD_VERSION: container images set that variable to etcd's version.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub version: Option<bool>,
}

/// The shortest lease checkpoint interval: each checkpoint is a raft entry
/// per long lease, so a shorter one would flood the log.
pub const MIN_LEASE_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);

/// A flag value that parses but makes no sense.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("invalid value {0:?} for flag -experimental-watch-progress-notify-interval: time: invalid duration")]
    BadDuration(String),
    #[error("invalid value {0:?} for flag -experimental-lease-checkpoint-interval: time: invalid duration")]
    BadCheckpointInterval(String),
    /// etcd's own text.
    #[error("{0}")]
    AutoCompaction(String),
    #[error("invalid value {0:?} for flag -experimental-warning-apply-duration: time: invalid duration")]
    BadWarningApplyDuration(String),
    #[error("invalid value {0:?} for flag -experimental-compaction-sleep-interval: time: invalid duration")]
    BadCompactionSleepInterval(String),
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
    #[error("--max-request-bytes must be positive")]
    ZeroRequestBytes,
    #[error("--max-txn-ops must be positive")]
    ZeroTxnOps,
    #[error("--election-timeout[{election}ms] should be at least 5 times as --heartbeat-interval[{heartbeat}ms]")]
    ElectionTooShort { election: u64, heartbeat: u64 },
    #[error("TLS key/cert (--cert-file, --key-file) must be provided for client url {0} with HTTPS scheme")]
    ClientTlsMissing(String),
    #[error("TLS key/cert (--peer-cert-file, --peer-key-file) must be provided for peer url {0} with HTTPS scheme")]
    PeerTlsMissing(String),
    #[error("{0}")]
    Args(String),
}

/// One `name=URL` pair of --initial-cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitialMember {
    pub name: String,
    pub peer_urls: Vec<String>,
}

impl Config {
    /// Parses the process arguments (and ETCD_* variables, or the config file).
    pub fn from_env_args() -> Result<Self, clap::Error> {
        let mut args: Vec<String> = std::env::args().collect();
        if let Ok(gates) = std::env::var("ETCD_FEATURE_GATES") {
            args.push(format!("--feature-gates={gates}"));
        }
        let mut cfg = Self::parse_args(args)?;
        if cfg.config_file.is_none() {
            cfg.not_acted_on.extend(args::env_not_acted_on(&known_flags()));
        }
        Ok(cfg)
    }

    /// Parses `args` (program name first) as etcd would.
    pub fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Self, clap::Error> {
        let known = known_flags();
        let fail = |msg: String| Config::command().error(clap::error::ErrorKind::ValueValidation, msg);
        let prepared = args::prepare(args, &known).map_err(fail)?;
        let mut cfg = Self::from_prepared(prepared.args.clone())?;
        cfg.not_acted_on = prepared.not_acted_on;
        if let Some(path) = cfg.config_file.clone() {
            // etcd: the file replaces the flags (and the environment).
            let mut from_file = vec![prepared.args[0].clone()];
            for arg in file::args_from_file(&path).map_err(fail)? {
                let name = arg.trim_start_matches('-').split('=').next().unwrap_or("");
                if known.contains(name)
                    || etcd_flags::ETCD_FLAGS.iter().any(|f| f.name == name)
                    || name == "feature-gates"
                {
                    from_file.push(arg);
                }
            }
            let prepared = args::prepare(from_file, &known).map_err(fail)?;
            cfg = Self::from_prepared_without_env(prepared.args)?;
            cfg.not_acted_on = prepared.not_acted_on;
            cfg.config_file = Some(path);
        }
        Ok(cfg)
    }

    fn from_prepared(args: Vec<String>) -> Result<Self, clap::Error> {
        Config::try_parse_from(args)
    }

    /// Parses without reading `ETCD_*` variables (a config file replaces them).
    fn from_prepared_without_env(args: Vec<String>) -> Result<Self, clap::Error> {
        let mut cmd = Config::command();
        let ids: Vec<clap::Id> = cmd.get_arguments().map(|a| a.get_id().clone()).collect();
        for id in ids {
            cmd = cmd.mut_arg(id, |a| a.env(None::<&str>));
        }
        let matches = cmd.try_get_matches_from(args)?;
        Config::from_arg_matches(&matches)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.member
            .data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("{}.etcd", self.member.name)))
    }

    /// --initial-cluster as members, with etcd's default of this member alone
    /// at its advertised peer URLs. A name given several times collects URLs.
    pub fn initial_members(&self) -> Result<Vec<InitialMember>, ConfigError> {
        let name = &self.member.name;
        let spec = match &self.cluster.initial_cluster {
            Some(s) => s.clone(),
            None => self
                .cluster
                .initial_advertise_peer_urls
                .split(',')
                .map(|u| format!("{name}={}", u.trim()))
                .collect::<Vec<_>>()
                .join(","),
        };
        let mut members: Vec<InitialMember> = Vec::new();
        for pair in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (member, url) = pair
                .split_once('=')
                .ok_or_else(|| ConfigError::BadInitialCluster(pair.into()))?;
            parse_urls("initial-cluster", url)?;
            match members.iter_mut().find(|m| m.name == member) {
                Some(m) => m.peer_urls.push(url.to_string()),
                None => members.push(InitialMember {
                    name: member.to_string(),
                    peer_urls: vec![url.to_string()],
                }),
            }
        }
        if !members.iter().any(|m| &m.name == name) {
            return Err(ConfigError::NotInInitialCluster { name: name.clone() });
        }
        Ok(members)
    }

    /// --experimental-watch-progress-notify-interval, etcd's default 10 min.
    pub fn progress_notify_interval(&self) -> Result<Duration, ConfigError> {
        match &self.experimental.experimental_watch_progress_notify_interval {
            None => Ok(Duration::from_secs(600)),
            Some(v) => parse_go_duration(v)
                .filter(|d| !d.is_zero())
                .ok_or_else(|| ConfigError::BadDuration(v.clone())),
        }
    }

    /// The lease checkpoint interval (--experimental-lease-checkpoint-interval,
    /// default 5 min, raised to [`MIN_LEASE_CHECKPOINT_INTERVAL`]), or None
    /// with --experimental-enable-lease-checkpoint=false.
    pub fn lease_checkpoint_interval(&self) -> Result<Option<Duration>, ConfigError> {
        let x = &self.experimental;
        if x.experimental_enable_lease_checkpoint == Some(false) {
            return Ok(None);
        }
        let interval = match &x.experimental_lease_checkpoint_interval {
            None => Duration::from_secs(300),
            Some(v) => parse_go_duration(v).ok_or_else(|| ConfigError::BadCheckpointInterval(v.clone()))?,
        };
        Ok(Some(interval.max(MIN_LEASE_CHECKPOINT_INTERVAL)))
    }

    /// --auto-compaction-mode and --auto-compaction-retention, checked as
    /// etcd does; None when the retention is 0.
    pub fn auto_compaction(&self) -> Result<Option<crate::compactor::Mode>, ConfigError> {
        crate::compactor::parse(
            &self.member.auto_compaction_mode,
            &self.member.auto_compaction_retention,
        )
        .map_err(ConfigError::AutoCompaction)
    }

    /// --experimental-corrupt-check-time: None when 0 (etcd's default: no
    /// periodic check).
    pub fn corrupt_check_time(&self) -> Result<Option<Duration>, ConfigError> {
        match &self.experimental.experimental_corrupt_check_time {
            None => Ok(None),
            Some(v) => {
                let d = parse_go_duration(v).ok_or_else(|| ConfigError::BadDuration(v.clone()))?;
                Ok((!d.is_zero()).then_some(d))
            }
        }
    }

    /// --experimental-warning-apply-duration (3.6: --warning-apply-duration),
    /// etcd's default 100ms: slower applies are logged.
    pub fn warning_apply_duration(&self) -> Result<Duration, ConfigError> {
        match &self.experimental.experimental_warning_apply_duration {
            None => Ok(experimental::DEFAULT_WARNING_APPLY_DURATION),
            Some(v) => parse_go_duration(v).ok_or_else(|| ConfigError::BadWarningApplyDuration(v.clone())),
        }
    }

    /// --experimental-compaction-batch-limit and
    /// --experimental-compaction-sleep-interval (3.6: without
    /// `experimental-`): how fast the background compaction deletes, with
    /// etcd's defaults for unset and 0.
    pub fn compaction_pacing(&self) -> Result<crate::mvcc::Pacing, ConfigError> {
        let mut pacing = crate::mvcc::Pacing::default();
        match self.experimental.experimental_compaction_batch_limit {
            Some(n) if n < 0 => pacing.batch_limit = usize::MAX,
            Some(n) if n > 0 => pacing.batch_limit = usize::try_from(n).unwrap_or(usize::MAX),
            _ => {}
        }
        if let Some(v) = &self.experimental.experimental_compaction_sleep_interval {
            let d = parse_go_duration(v).ok_or_else(|| ConfigError::BadCompactionSleepInterval(v.clone()))?;
            if !d.is_zero() {
                pacing.sleep = d;
            }
        }
        Ok(pacing)
    }

    /// Checks the values clap cannot: URLs, limits, the initial cluster, TLS
    /// files present for https URLs.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.progress_notify_interval()?;
        self.warning_apply_duration()?;
        self.compaction_pacing()?;
        self.lease_checkpoint_interval()?;
        self.corrupt_check_time()?;
        self.auto_compaction()?;
        let client_tls = self.client_tls.cert_file.is_some() && self.client_tls.key_file.is_some()
            || self.client_tls.auto_tls == Some(true);
        let peer_tls = self.peer_tls.peer_cert_file.is_some() && self.peer_tls.peer_key_file.is_some()
            || self.peer_tls.peer_auto_tls == Some(true);
        for url in parse_urls("listen-client-urls", &self.member.listen_client_urls)? {
            if urls::is_tls(&url) && !client_tls {
                return Err(ConfigError::ClientTlsMissing(
                    url.to_string().trim_end_matches('/').into(),
                ));
            }
        }
        parse_urls("advertise-client-urls", &self.cluster.advertise_client_urls)?;
        for url in parse_urls("listen-peer-urls", &self.member.listen_peer_urls)? {
            if urls::is_tls(&url) && !peer_tls {
                return Err(ConfigError::PeerTlsMissing(
                    url.to_string().trim_end_matches('/').into(),
                ));
            }
        }
        parse_urls("initial-advertise-peer-urls", &self.cluster.initial_advertise_peer_urls)?;
        if let Some(m) = &self.logging.listen_metrics_urls {
            parse_urls("listen-metrics-urls", m)?;
        }
        self.initial_members()?;
        if self.member.max_request_bytes == 0 {
            return Err(ConfigError::ZeroRequestBytes);
        }
        if self.member.max_txn_ops == 0 {
            return Err(ConfigError::ZeroTxnOps);
        }
        if self.member.election_timeout < 5 * self.member.heartbeat_interval {
            return Err(ConfigError::ElectionTooShort {
                election: self.member.election_timeout,
                heartbeat: self.member.heartbeat_interval,
            });
        }
        Ok(())
    }

    /// The etcd flags given that timon accepts without acting on them.
    pub fn ignored_flags(&self) -> &[String] {
        &self.not_acted_on
    }
}

/// The long flag names clap defines.
fn known_flags() -> BTreeSet<String> {
    Config::command()
        .get_arguments()
        .filter_map(|a| a.get_long().map(str::to_owned))
        .collect()
}

#[cfg(test)]
mod tests;
