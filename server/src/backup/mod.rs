//! Backups in etcd's own format: a timon snapshot **is** an etcd snapshot.
//!
//! - `bolt`: bbolt's page format and a page-at-a-time reader.
//! - `bolt_write`: a one-pass bulk writer of bbolt files (bounded memory).
//! - `etcd_schema`: etcd's buckets and value encodings.
//! - `export`: the state machine (a consistent engine view) → an etcd
//!   backend file (what `Maintenance.Snapshot` streams).
//! - `restore`: an etcd backend file (from timon or etcd 3.4-3.6) → a new
//!   timon data dir (`timonctl snapshot restore`).
//! - `status`: etcd's `snapshot status` numbers.
//!
//! The bbolt code is ours rather than the `bbolt-rs` crate's: that crate is
//! a transactional database (a multi-GiB load in one transaction holds every
//! dirty page in memory) with a large dependency tree, where a snapshot
//! needs only a sequential writer and a read-only walk.

pub mod bolt;
pub mod bolt_write;
pub mod etcd_schema;
pub mod export;
pub mod restore;
pub mod status;

pub use export::{write_etcd_db, ExportError, Exported};
pub use restore::{restore, RestoreConfig, Restored};
pub use status::{status, Status};

#[cfg(test)]
mod tests;
