//! Consensus: the only module that imports openraft.
//!
//! [`RaftNode`] is the face the rest of the server sees: `propose` a request
//! and get the applied response back, `read_index` before a linearizable read,
//! `status` for Status/metrics, and the MVCC store that apply writes into.
//!
//! # Layout
//! - `types`: openraft's type config (entry payload, apply response, member).
//! - `log_store`: the fsynced raft log on the storage engine.
//! - `log_growth`: the log bounded in bytes: a snapshot each time it grew by 256 MiB,
//!   at most 64 MiB kept before a snapshot (besides openraft's counts).
//! - `state_machine`: applies entries through `apply`, builds/installs snapshots.
//! - `snapshot`: the snapshot byte format (streamed encode/decode).
//! - `snapshot_store`: the snapshot directory: the current snapshot, data files in transit.
//! - `snapshot_data`: a snapshot's data, written from an engine view when it travels.
//! - `snapshot_file`: openraft's `SnapshotData`, a file or the promise of one.
//! - `snapshot_install`: replacing the state machine with a snapshot, crash-safe.
//! - `network`: the peer transport, client side (openraft's network, forwarding).
//! - `append_stream`: AppendEntries as messages on one stream per follower.
//! - `service`: the peer transport, server side (the `timonpb.Peer` service).
//! - `read_index`: batched read-index rounds on the leader.
//! - `forward`: a follower's reads and writes to its leader, batched into shared calls.
//! - `node`: [`RaftNode`], start-up, proposing, reads.
//! - `membership`: the member list and membership changes with etcd's checks.
//! - `lease`: lease deadlines on the leader, expiry revokes, renew/time-to-live forwarding.
//! - `hash_peers`: the other members' HashKV, for the corruption checks.
//! - `transfer`: leadership transfer (MoveLeader, and the hand-off when the leader stops).
//! - `leader_log`: etcd's raft lines on role and leader changes.
//! - `apply_log`: what applying logs ("apply request took too long", "finished scheduled compaction").

// openraft's storage traits return its large `StorageError` by value.
#![allow(clippy::result_large_err)]

mod append_stream;
pub mod apply_log;
mod forward;
pub mod hash_peers;
pub mod leader_log;
pub mod lease;
pub mod log_growth;
pub mod log_store;
pub mod membership;
pub mod network;
mod node;
pub mod propose_batch;
pub mod read_index;
pub mod service;
pub mod snapshot;
pub mod snapshot_data;
pub mod snapshot_file;
pub mod snapshot_install;
pub mod snapshot_store;
pub mod state_machine;
pub mod transfer;
pub mod types;
pub mod vouch;

#[cfg(test)]
mod append_stream_tests;
#[cfg(test)]
mod auth_apply_tests;
#[cfg(test)]
mod batch_apply_tests;
#[cfg(test)]
mod conformance_test;
#[cfg(test)]
mod forward_tests;
#[cfg(test)]
mod snapshot_tests;
#[cfg(test)]
mod stand_in_peer;

use std::path::PathBuf;

pub use membership::{MemberError, MembershipChange};
pub use node::{MemberInfo, RaftNode, RaftStatus};
pub use state_machine::StoreHandle;
pub use transfer::TransferError;
pub use types::{Applied, Member};

/// Timing and snapshot settings, from etcd's flags and the data dir.
#[derive(Debug, Clone)]
pub struct RaftSettings {
    /// --heartbeat-interval, in ms.
    pub heartbeat_ms: u64,
    /// --election-timeout, in ms.
    pub election_ms: u64,
    /// --snapshot-count: entries between snapshots.
    pub snapshot_count: u64,
    /// Where snapshot files are kept: `<data-dir>/member/snap`.
    pub snapshot_dir: PathBuf,
    /// How often the leader checkpoints remaining lease TTLs (None: never).
    pub lease_checkpoint_interval: Option<std::time::Duration>,
    /// How to dial peers (TLS with the peer certificate, or plain).
    pub peer_dialer: network::PeerDialer,
    /// The member's auth tokens, which applied auth requests update.
    pub auth_tokens: std::sync::Arc<crate::auth::Tokens>,
    /// --experimental-warning-apply-duration: slower applies are logged.
    pub warning_apply_duration: std::time::Duration,
    /// --experimental-compaction-batch-limit and -sleep-interval.
    pub compaction_pacing: crate::mvcc::Pacing,
}

/// Why a proposal or read index did not complete. Each maps to the etcd
/// error clients retry on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum ProposeError {
    #[error("no leader")]
    NoLeader,
    /// This member is not the leader (internal: callers forward instead).
    #[error("not leader")]
    NotLeader,
    #[error("leader changed")]
    LeaderChanged,
    #[error("request timed out")]
    Timeout,
    /// The leader's state machine did not catch up with its commit index in
    /// time (etcd's `waitAppliedIndex`, before answering from lease state).
    #[error("waiting for the applied index took too long")]
    AppliedIndexTimeout,
    #[error("server stopped")]
    Stopped,
}

impl ProposeError {
    /// The status a leader answers a follower's read-index request (or
    /// lease call) with when it fails; [`ProposeError::from_status`] reads
    /// it back.
    pub(crate) fn to_status(&self) -> tonic::Status {
        use tonic::Status;
        match self {
            Self::NotLeader | Self::LeaderChanged => Status::failed_precondition("leader changed"),
            Self::NoLeader => Status::unavailable("no leader"),
            Self::Timeout | Self::AppliedIndexTimeout => Status::deadline_exceeded("request timed out"),
            Self::Stopped => Status::aborted("server stopped"),
        }
    }

    /// A leader's failed answer read back.
    pub(crate) fn from_status(s: &tonic::Status) -> Self {
        match s.code() {
            tonic::Code::FailedPrecondition => Self::LeaderChanged,
            tonic::Code::DeadlineExceeded => Self::Timeout,
            tonic::Code::Aborted => Self::Stopped,
            // The leader could not be reached: it is gone or partitioned.
            _ => Self::LeaderChanged,
        }
    }
}
