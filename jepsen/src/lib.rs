//! timon-jepsen: a Jepsen-style fault-injection harness for timon, runnable
//! against real etcd too (issue 5).
//!
//! # Layout
//! - `history`: the recorded operations (invoke / ok / fail / info).
//! - `check`: checkers over a history (linearizability, revisions, watch).
//! - `cluster`: starting members on loopback behind controllable proxies.
//! - `nemesis`: faults (kill, pause, partition, ...).
//! - `workload`: clients that generate operations and record the history.
//! - `run`: one scenario end to end, and the suites.

pub mod check;
pub mod history;
