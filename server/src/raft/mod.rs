//! Consensus: the only module that imports openraft.
//!
//! [`RaftNode`] is the face the rest of the server sees: `propose` a request
//! and get the applied response back, `read_index` before a linearizable read,
//! `status` for Status/metrics, and the MVCC store that apply writes into.
//!
//! # Layout
//! - `types`: openraft's type config (entry payload, apply response, member).
//! - `log_store`: the fsynced raft log on the storage engine.
//! - `state_machine`: applies entries through `apply`, builds/installs snapshots.
//! - `snapshot`: the snapshot byte format (streamed encode/decode).
//! - `snapshot_store`: the snapshot directory: snapshot files, the current one.
//! - `snapshot_install`: replacing the state machine with a snapshot, crash-safe.
//! - `network`: openraft's network (no peers yet: single-member clusters).

// openraft's storage traits return its large `StorageError` by value.
#![allow(clippy::result_large_err)]

pub mod log_store;
pub mod network;
pub mod snapshot;
pub mod snapshot_install;
pub mod snapshot_store;
pub mod state_machine;
pub mod types;

#[cfg(test)]
mod conformance_test;
#[cfg(test)]
mod snapshot_tests;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{CheckIsLeaderError, ClientWriteError, InitializeError, RaftError};
use timon_proto::timonpb::InternalRaftRequest;

pub use state_machine::StoreHandle;
pub use types::{Applied, Member};

use crate::apply::{EtcdError, Response};
use crate::mvcc::MvccStore;
use crate::storage::SharedEngine;

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
}

/// Why a proposal or read index did not complete. Each maps to the etcd
/// error clients retry on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    #[error("no leader")]
    NoLeader,
    #[error("request timed out")]
    Timeout,
    #[error("server stopped")]
    Stopped,
}

/// A snapshot of raft's progress, for Status and headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RaftStatus {
    pub member_id: u64,
    pub leader: Option<u64>,
    pub term: u64,
    pub last_log_index: u64,
    pub applied_index: u64,
}

pub struct RaftNode {
    raft: types::Raft,
    id: u64,
    store: Arc<StoreHandle>,
    request_timeout: Duration,
}

impl RaftNode {
    /// Opens the log and state machine on `engine` and starts raft. A member
    /// whose log is empty and whose `initial_members` name only itself
    /// initializes a one-member cluster; a restarted member resumes from its
    /// log and state machine.
    pub async fn start(
        id: u64,
        engine: SharedEngine,
        initial_members: BTreeMap<u64, Member>,
        settings: &RaftSettings,
    ) -> anyhow::Result<Self> {
        let config = openraft::Config {
            cluster_name: "timon".into(),
            heartbeat_interval: settings.heartbeat_ms,
            election_timeout_min: settings.election_ms,
            election_timeout_max: settings.election_ms * 2,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(settings.snapshot_count.max(1)),
            max_in_snapshot_log_to_keep: 5_000,
            ..Default::default()
        };
        let config = Arc::new(config.validate()?);
        let log_store = log_store::LogStore::new(engine.clone());
        let state_machine = state_machine::StateMachine::open(engine, &settings.snapshot_dir)?;
        let store = state_machine.store();
        let raft = types::Raft::new(id, config, network::NetworkFactory, log_store, state_machine).await?;
        if !raft.is_initialized().await? {
            match raft.initialize(initial_members).await {
                Ok(()) => {}
                // Another member initialized first; it will replicate to us.
                Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
                Err(e) => return Err(e.into()),
            }
        }
        // etcd's request timeout: 5 s plus two election timeouts.
        let request_timeout = Duration::from_millis(5_000 + 2 * settings.election_ms);
        Ok(Self {
            raft,
            id,
            store,
            request_timeout,
        })
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    /// The MVCC store as of now (a snapshot install swaps it).
    pub fn store(&self) -> Arc<MvccStore> {
        self.store.current()
    }

    /// Replicates `req`, waits until it is applied here and answers what
    /// applying it answered.
    pub async fn propose(&self, req: InternalRaftRequest) -> Result<Result<Response, EtcdError>, ProposeError> {
        let write = self.raft.client_write(req);
        match tokio::time::timeout(self.request_timeout, write).await {
            Err(_) => Err(ProposeError::Timeout),
            Ok(Ok(resp)) => Ok(resp.data.0),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_)))) => Err(ProposeError::NoLeader),
            Ok(Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(_)))) => Err(ProposeError::Timeout),
            Ok(Err(RaftError::Fatal(_))) => Err(ProposeError::Stopped),
        }
    }

    /// Confirms leadership and waits until this member has applied every
    /// entry committed before the call (ReadIndex, DESIGN.md invariant 5).
    pub async fn read_index(&self) -> Result<(), ProposeError> {
        match tokio::time::timeout(self.request_timeout, self.raft.ensure_linearizable()).await {
            Err(_) => Err(ProposeError::Timeout),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(_)))) => Err(ProposeError::NoLeader),
            Ok(Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(_)))) => Err(ProposeError::Timeout),
            Ok(Err(RaftError::Fatal(_))) => Err(ProposeError::Stopped),
        }
    }

    pub fn status(&self) -> RaftStatus {
        let m = self.raft.metrics().borrow().clone();
        RaftStatus {
            member_id: self.id,
            leader: m.current_leader,
            term: m.current_term,
            last_log_index: m.last_log_index.unwrap_or(0),
            applied_index: m.last_applied.map(|l| l.index).unwrap_or(0),
        }
    }

    /// Waits until some member is leader, up to `timeout`.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Option<u64> {
        let mut rx = self.raft.metrics();
        let wait = async {
            loop {
                if let Some(l) = rx.borrow_and_update().current_leader {
                    return Some(l);
                }
                if rx.changed().await.is_err() {
                    return None;
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.ok().flatten()
    }

    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!("raft shutdown: {e}");
        }
    }
}
