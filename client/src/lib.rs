//! An async Rust client for timon and any etcd v3 server, plus the
//! `timonctl` command built on it.
//!
//! ```no_run
//! # async fn demo() -> timon_client::Result<()> {
//! let client = timon_client::Client::connect(["127.0.0.1:2379", "127.0.0.1:22379"]).await?;
//! client.put("greeting", "hello").await?;
//! let got = client.get("greet").prefix().limit(10).serializable().await?;
//! assert_eq!(got.kvs[0].value, b"hello");
//! # Ok(()) }
//! ```
//!
//! Requests are builders: chain options, then `.await` (each builder
//! implements `IntoFuture`). Responses are the etcd wire types from
//! [`timon_proto`], re-exported as [`proto`].
//!
//! # Layout
//! - `client`: endpoints, dialing, failover between endpoints, the
//!   cheap-to-clone [`Client`].
//! - `retry`: which failures are retried, where, and for how long; every
//!   request goes through it (read its docs before relying on writes).
//! - `kv`: get / put / delete builders.
//! - `txn`: [`Compare`], [`Op`] and the txn builder.
//! - `maintenance`: compaction and status.
//! - `cluster`: membership (list, add, remove, promote, update).
//! - `watch`: watch builders, shared watch streams and watchers that resume
//!   on another member (read its docs for the delivery guarantees).
//! - `lease`: grant / revoke / time-to-live / list / keep-alive, and
//!   [`Session`], a lease kept alive in the background.
//! - `lock`: lock / unlock through the Lock service.
//! - `election`: campaign / proclaim / resign / leader / observe through the
//!   Election service.
//! - `auth`: the Auth API (users, roles, enable) and the token every
//!   request carries once the client authenticated.
//! - `error`: the [`Error`] type, with etcd's message and gRPC code, and its
//!   classification for retries.

#[macro_use]
mod macros;

mod auth;
mod client;
mod cluster;
mod election;
mod error;
mod kv;
mod lease;
mod lock;
mod maintenance;
mod retry;
mod txn;
mod watch;

pub use client::{Client, ConnectOptions};
pub use election::Observe;
pub use error::{Error, Result};
pub use kv::{prefix_range_end, Delete, DeleteRequest, Get, GetRequest, Put, PutRequest};
pub use lease::{KeepAlive, Session, LEASE_NOT_FOUND};
pub use maintenance::Compact;
pub use timon_proto as proto;
pub use timon_proto::etcdserverpb::compare::CompareResult;
pub use timon_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
pub use timon_tls::ClientTls;
pub use txn::{Compare, NumberCompare, Op, Txn, TxnRequest, ValueCompare};
pub use watch::{is_progress_notify, Watch, WatchStream, Watcher};

/// The future type every request builder turns into.
pub type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'static>>;
