//! etcd's v3 wire API and timon's internal raft messages, generated from the
//! `.proto` files in `proto/` by `build.rs`.
//!
//! # Layout
//! - [`mvccpb`]: `KeyValue` and watch `Event`.
//! - [`authpb`]: stored users, roles and permissions.
//! - [`etcdserverpb`]: the KV, Watch, Lease, Cluster, Maintenance and Auth
//!   services with their messages, as of etcd 3.6.
//! - [`v3lockpb`], [`v3electionpb`]: the Lock and Election services.
//! - [`timonpb`]: `InternalRaftRequest`, the command carried by the raft log,
//!   and the `Peer` service members speak to each other.
//!
//! Message, field and enum names and field numbers are etcd's, so the bytes
//! on the wire are exactly what etcd clients send and expect. Every generated
//! type also derives `serde::Serialize` and `serde::Deserialize`.

/// The encoded `FileDescriptorSet` of every .proto file: the JSON gateway
/// reads message and field names from it.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/timon_descriptor.bin"));

/// Multi-version key-value records and watch events (etcd's `mvccpb`).
pub mod mvccpb {
    tonic::include_proto!("mvccpb");
}

/// Authentication records (etcd's `authpb`).
pub mod authpb {
    tonic::include_proto!("authpb");
}

/// The etcd v3 client API (etcd's `etcdserverpb`).
pub mod etcdserverpb {
    tonic::include_proto!("etcdserverpb");
}

/// The lock service (etcd's `v3lockpb`).
pub mod v3lockpb {
    tonic::include_proto!("v3lockpb");
}

/// The election service (etcd's `v3electionpb`).
pub mod v3electionpb {
    tonic::include_proto!("v3electionpb");
}

/// timon's internal messages: the raft command envelope and the peer API.
pub mod timonpb {
    tonic::include_proto!("timonpb");
}
