//! The workloads, one module each. Every workload connects `--conns`
//! channels, prepares its data outside the measured phase (populating keys,
//! granting leases, creating watchers), then measures with the
//! [`runner`](crate::runner) and returns a [`Report`].
//!
//! # Layout
//! - [`put`]: Put of one key per request.
//! - [`delete`]: DeleteRange of one key per request.
//! - [`range`]: Range of one existing key, linearizable or serializable.
//! - [`txn_put`]: Txn with `--txn-ops` puts and no compares.
//! - [`k8s_update`]: the apiserver's optimistic update: get, then Txn if
//!   mod_revision == R then put else get.
//! - [`k8s_list`]: the apiserver's paginated list of a prefix.
//! - [`watch`]: watchers on a prefix, put-to-event latency, lost events.
//! - [`lease_keepalive`]: LeaseKeepAlive round trips on one stream per client.
//! - [`populate`]: writes the keys a read workload needs, unmeasured.

pub mod delete;
pub mod k8s_list;
pub mod k8s_update;
pub mod lease_keepalive;
pub mod populate;
pub mod put;
pub mod range;
pub mod txn_put;
pub mod watch;

use clap::{Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};

use crate::conns::Pool;
use crate::options::Common;
use crate::progress::Progress;
use crate::report::Report;
use crate::runner::Stop;

/// Range consistency: etcd's `--consistency l|s`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Consistency {
    /// Linearizable (ReadIndex).
    L,
    /// Serializable (local state of the member asked).
    S,
}

#[derive(Subcommand, Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "workload", rename_all = "kebab-case")]
pub enum Workload {
    /// Put: one key per request, value of --val-size bytes.
    Put,
    /// DeleteRange of one key per request (existing or not).
    Delete,
    /// Range of one key from the (populated) key space.
    Range {
        /// l = linearizable, s = serializable.
        #[arg(long, value_enum, default_value = "l")]
        consistency: Consistency,
    },
    /// Txn with --txn-ops puts of distinct keys and no compares.
    TxnPut {
        #[arg(long, default_value_t = 1)]
        txn_ops: usize,
    },
    /// Kubernetes optimistic update: Range, then Txn(mod_revision == R ? Put : Range).
    K8sUpdate,
    /// Kubernetes list: the whole prefix in pages of --limit, revision pinned after page 1.
    K8sList {
        #[arg(long, default_value_t = 500)]
        limit: i64,
    },
    /// N watchers on one prefix over M streams; puts measure put-to-event latency.
    Watch {
        /// Watchers in total.
        #[arg(long, default_value_t = 100)]
        watchers: usize,
        /// Watch streams the watchers are spread over (round-robin on --conns).
        #[arg(long, default_value_t = 10)]
        streams: usize,
    },
    /// LeaseKeepAlive round trips: one lease and one stream per client.
    LeaseKeepalive,
}

impl Workload {
    /// Short name used in reports and the comparison table.
    pub fn name(&self) -> String {
        match self {
            Workload::Put => "put".into(),
            Workload::Delete => "delete".into(),
            Workload::Range {
                consistency: Consistency::L,
            } => "range-l".into(),
            Workload::Range {
                consistency: Consistency::S,
            } => "range-s".into(),
            Workload::TxnPut { .. } => "txn-put".into(),
            Workload::K8sUpdate => "k8s-update".into(),
            Workload::K8sList { .. } => "k8s-list".into(),
            Workload::Watch { .. } => "watch".into(),
            Workload::LeaseKeepalive => "lease-keepalive".into(),
        }
    }
}

/// When the measured phase of a run with these options ends.
pub fn stop(c: &Common) -> Stop {
    match c.duration {
        Some(d) => Stop::Duration(d),
        None => Stop::Total(c.total),
    }
}

/// Runs `workload` with options `c` against `c.endpoints`. The progress bar
/// is drawn if `show_progress` and stderr is a terminal.
pub async fn run(workload: &Workload, c: &Common, show_progress: bool) -> anyhow::Result<Report> {
    c.validate()?;
    let pool = Pool::connect(&c.endpoints, c.conns, c.tls().as_ref()).await?;
    let total = c.duration.is_none().then_some(c.total);
    let progress = Progress::new(show_progress, total, &workload.name());
    let report = match workload {
        Workload::Put => put::run(c, &pool, &progress).await,
        Workload::Delete => delete::run(c, &pool, &progress).await,
        Workload::Range { consistency } => range::run(c, &pool, &progress, *consistency).await,
        Workload::TxnPut { txn_ops } => txn_put::run(c, &pool, &progress, *txn_ops).await,
        Workload::K8sUpdate => k8s_update::run(c, &pool, &progress).await,
        Workload::K8sList { limit } => k8s_list::run(c, &pool, &progress, *limit).await,
        Workload::Watch { watchers, streams } => watch::run(c, &pool, &progress, *watchers, *streams).await,
        Workload::LeaseKeepalive => lease_keepalive::run(c, &pool, &progress).await,
    };
    progress.finish();
    let mut report = report?;
    report.workload = workload.name();
    Ok(report)
}
