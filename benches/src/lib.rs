//! timon-bench: a load generator that speaks the etcd v3 gRPC API (so it
//! measures timon and etcd alike), shaped like etcd's `tools/benchmark`, and
//! the side-by-side comparison of a timon cluster with an etcd cluster.
//!
//! # Layout
//! - [`options`]: the flags every workload shares (endpoints, conns,
//!   clients, total/duration, key and value sizes, rate, json).
//! - [`conns`]: `--conns` gRPC channels, handed round-robin to clients.
//! - [`keys`]: key and value generation (sequential or random in a key space).
//! - [`rate`]: the `--rate` limiter shared by every client.
//! - [`runner`]: the closed loop that drives `--clients` tasks until
//!   `--total` requests or `--duration`, timing each request.
//! - [`recorder`]: per-client latency histogram, error and note counts.
//! - [`report`]: HDR-histogram summary (etcd's text layout, or JSON).
//! - [`progress`]: the progress bar, shown only on a terminal.
//! - [`bulk`]: unmeasured bulk loading (Txns of random-valued puts) for
//!   the benches that need a big store.
//! - [`workload`]: one module per workload (put, range, txn-put,
//!   k8s-update, k8s-list, watch, lease-keepalive).
//! - [`compare`]: starts a timon and an etcd cluster, runs every workload
//!   on both, A/B alternating, and writes the table, JSON and SVG chart.
//! - [`stall`]: the longest write stall when a leader gets SIGTERM, on
//!   timon and on etcd.
//! - [`defrag`]: write latency while one member defragments a store of
//!   `--size`, on timon and on etcd.
//! - [`scale`]: timon and etcd with big stores: 1M keys, big lists, a
//!   12 GiB member, a compaction of 1M revisions under writes.

pub mod bulk;
pub mod compare;
pub mod conns;
pub mod defrag;
pub mod keys;
pub mod options;
pub mod progress;
pub mod rate;
pub mod recorder;
pub mod report;
pub mod runner;
pub mod scale;
pub mod stall;
pub mod workload;
