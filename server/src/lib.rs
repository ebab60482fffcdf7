//! timon: a Raft-replicated key-value store that speaks the etcd v3 API.
//!
//! # Layout
//! - `storage`: the engine seam (RocksDB shipped, in-memory for tests); the only rocksdb import.
//! - `mvcc`: revisions, the key index, reads at a revision, compaction.
//! - `apply`: one raft entry -> one atomic write batch; etcd's request semantics.
//! - `auth`: users, roles, permissions, the auth revision (replicated), passwords, tokens.
//! - `backup`: snapshots in etcd's backend format (bbolt): export, restore, status.
//! - `raft`: the only openraft import: log store, state machine, node.
//! - `rpc`: thin tonic services, validation, etcd's errors and headers.
//! - `config`: etcd-compatible flags (every etcd 3.4-3.6 flag accepted), ETCD_* variables, --config-file.
//! - `ids`: etcd's member and cluster IDs; `identity`: this member's, fixed per data dir.
//! - `watch`: watchers and event delivery (synced / catching up from storage).
//! - `lease`: the leader's in-memory lease deadlines, checkpoint schedule and revoke rate
//!   limits (the table itself is `apply::lease`).
//! - `tls`: TLS on the listeners (reloaded certificates, client-certificate checks, auto-TLS).
//! - `gateway`: etcd's HTTP/JSON gateway (`/v3/...`) on the client URLs, over the gRPC services in-process.
//! - `metrics`: /version, /metrics on --listen-metrics-urls (and the client URLs); `health`: the probes
//!   /health, /livez, /readyz.
//! - `disk_metrics`: etcd's fsync, backend commit and leader change metrics, observed where they happen.
//! - `corrupt`: the initial and periodic corruption checks (HashKV compared with peers).
//! - `compactor`: auto-compaction on the leader (--auto-compaction-mode/-retention).
//! - `logs`: etcd's log lines (zap JSON or console) on `--log-outputs`.
//! - `node`: start-up, wiring, shutdown.
//! - `version`: what `timon --version` prints (timon, the etcd API level, commit, compiler).
//! - `planted`: faults for harness tests, compiled in only with `planted-bugs`.

pub mod apply;
pub mod auth;
pub mod backup;
pub mod compactor;
pub mod config;
pub mod corrupt;
pub mod disk_metrics;
pub mod gateway;
pub mod health;
pub mod identity;
pub mod ids;
pub mod lease;
pub mod logs;
pub mod metrics;
pub mod mvcc;
pub mod node;
pub mod planted;
pub mod raft;
pub mod rpc;
pub mod storage;
pub mod tls;
pub mod version;
pub mod watch;
