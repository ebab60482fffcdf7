//! openraft's type configuration for timon: what a log entry carries, what
//! applying one answers, and how a member is described.

use std::fmt;

use serde::{Deserialize, Serialize};
use timon_proto::timonpb::InternalRaftRequest;

use crate::apply::{EtcdError, Response};

/// A member as the raft membership config records it: the etcd Member fields
/// that must survive restarts and travel in snapshots.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub name: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{:?}", self.name, self.peer_urls)
    }
}

/// What applying one log entry answers to the proposer: the etcd response,
/// or the etcd error the request failed with inside apply (e.g. a compaction
/// of a future revision). Blank and membership entries answer `Empty`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Applied(pub Result<Response, EtcdError>);

openraft::declare_raft_types!(
    /// timon's raft types.
    pub TypeConfig:
        D = InternalRaftRequest,
        R = Applied,
        NodeId = u64,
        Node = Member,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = super::snapshot_file::SnapshotFile,
        AsyncRuntime = openraft::TokioRuntime,
);

/// An apply result with the log index of its entry.
pub type Indexed = (Result<Response, EtcdError>, u64);

pub type Raft = openraft::Raft<TypeConfig>;
pub type LogId = openraft::LogId<u64>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type Vote = openraft::Vote<u64>;
pub type StorageError = openraft::StorageError<u64>;
pub type StoredMembership = openraft::StoredMembership<u64, Member>;
pub type SnapshotMeta = openraft::SnapshotMeta<u64, Member>;
pub type Snapshot = openraft::Snapshot<TypeConfig>;

/// Turns any error into openraft's opaque error payload.
pub(crate) fn any(e: impl std::error::Error + 'static) -> openraft::AnyError {
    openraft::AnyError::new(&e)
}

/// A failure reading the state machine.
pub(crate) fn sm_read(e: impl std::error::Error + 'static) -> StorageError {
    openraft::StorageIOError::read_state_machine(any(e)).into()
}

/// A failure writing the state machine.
pub(crate) fn sm_write(e: impl std::error::Error + 'static) -> StorageError {
    openraft::StorageIOError::write_state_machine(any(e)).into()
}

/// A failure reading snapshot `meta` (`None`: a snapshot not yet built).
pub(crate) fn snapshot_read(meta: Option<&SnapshotMeta>, e: impl std::error::Error + 'static) -> StorageError {
    openraft::StorageIOError::read_snapshot(meta.map(SnapshotMeta::signature), any(e)).into()
}

/// A failure writing snapshot `meta` (`None`: a snapshot being received).
pub(crate) fn snapshot_write(meta: Option<&SnapshotMeta>, e: impl std::error::Error + 'static) -> StorageError {
    openraft::StorageIOError::write_snapshot(meta.map(SnapshotMeta::signature), any(e)).into()
}
