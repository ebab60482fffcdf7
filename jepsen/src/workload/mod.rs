//! Workloads: clients that generate operations against the cluster and
//! record them in the history.
//!
//! - `register`: reads, writes and compare-and-sets of a few keys.
//! - `watch`: register writers plus watchers that reconnect and resume;
//!   records every event each watcher received.
//! - `kubernetes`: the apiserver's guarded creates, updates and deletes
//!   and paginated lists; records every completed list.
//! - `lock`: clients with leases contend for one `v3lock` lock and fence
//!   their writes with the lock key.
//! - `lease`: clients attach a key to each lease and read it while they
//!   renew, revoke or abandon the lease (`renewer` keeps leases alive for
//!   both lease workloads).
//! - `auth`: users with different roles read and write while an admin
//!   grants and revokes their roles' permissions.

pub mod auth;
pub mod kubernetes;
pub mod lease;
pub mod lock;
pub mod register;
pub mod renewer;
pub mod watch;

use crate::check::list::RecordedList;
use crate::check::watch::RecordedWatch;

/// What a workload recorded besides the history, for the checkers.
#[derive(Debug, Clone, Default)]
pub struct Recorded {
    /// The watchers of the `watch` workload.
    pub watches: Vec<RecordedWatch>,
    /// The paginated lists of the `kubernetes` workload.
    pub lists: Vec<RecordedList>,
}
