//! etcd's "Logging" and "Profiling and monitoring" flags.

use clap::Args;

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Logging")]
pub struct LoggingFlags {
    /// Configures log level. Only supports debug, info, warn, error, panic, or fatal.
    #[arg(long, env = "ETCD_LOG_LEVEL", default_value = "info",
          value_parser = ["debug", "info", "warn", "error", "panic", "fatal"])]
    pub log_level: String,

    /// Specify 'zap' for structured logging or 'capnslog'.
    #[arg(long, env = "ETCD_LOGGER", default_value = "zap", value_parser = ["zap", "capnslog"])]
    pub logger: String,

    /// Specify 'stdout' or 'stderr' to skip journald logging even when running under systemd,
    /// or list comma-separated output targets (files are appended to).
    #[arg(long, env = "ETCD_LOG_OUTPUTS", default_value = "default")]
    pub log_outputs: String,

    /// Configures log format. Only supports json, console (etcd 3.6).
    #[arg(long, env = "ETCD_LOG_FORMAT", default_value = "json", value_parser = ["json", "console"])]
    pub log_format: String,

    /// List of URLs to listen on for the metrics and health endpoints (/health, /version, /metrics).
    #[arg(long, env = "ETCD_LISTEN_METRICS_URLS")]
    pub listen_metrics_urls: Option<String>,
}
