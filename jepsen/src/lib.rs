//! timon-jepsen: a Jepsen-style fault-injection harness for timon, runnable
//! against real etcd too (issue 5).
//!
//! # Layout
//! - `history`: the recorded operations (invoke / ok / fail / info).
//! - `recorder`: the shared history a run appends to, with its monotonic clock.
//! - `check`: checkers over a history (linearizability, revisions, watch,
//!   lists, lock holds and fencing, lease lifetimes, permissions).
//! - `cluster`: starting members on loopback behind controllable proxies
//!   (`cluster::proxy`, `cluster::source`), optionally with mutual TLS
//!   (`timon_tls::test_pki`); `cluster::dial` is how every client reaches them.
//! - `nemesis`: faults (kill, pause, partition, ...) on a timed schedule.
//! - `workload`: clients that generate operations and record the history
//!   (register, watch, kubernetes, lock, lease, auth).
//! - `durability`: the final-read check (no acknowledged write lost).
//! - `panics`: no member logged a panic.
//! - `run`: one scenario end to end, and the quick and long suites.
//! - `suite`: the long suite's plan per server, what counts as a checked
//!   operation, and its results file (JSON lines, Markdown table, total).
//! - `checkbench`: `timon-jepsen check-bench`, the checkers' time per 100k
//!   operations on generated and recorded histories.
//! - `timeline`: timeline.svg, the history drawn (ops per client, fault windows).

pub mod check;
pub mod checkbench;
pub mod cluster;
pub mod durability;
pub mod history;
pub mod nemesis;
pub mod panics;
pub mod recorder;
pub mod run;
pub mod suite;
pub mod timeline;
pub mod workload;
