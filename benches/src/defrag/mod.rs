//! `timon-bench defrag`: write latency while a member defragments (issue
//! 13: timon compacts RocksDB while it serves; etcd stops the world). For
//! each server in turn it starts one member on free loopback ports in a
//! temporary data dir, fills its store to `--size` ([`load`]), leaves it
//! idle for `--settle`, runs a steady
//! writer ([`writer`]) for `--baseline`, calls Maintenance.Defragment, keeps
//! writing until it answered and for `--tail` more, kills the member, and
//! prints per server the defrag's duration, the sizes before and after, and
//! the write latencies per phase ([`results`]).

pub mod load;
pub mod results;
pub mod writer;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use timon_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use timon_proto::etcdserverpb::{DefragmentRequest, StatusRequest};
use tokio::time::Instant;

use crate::bulk;
use crate::compare::cluster::{Cluster, Settings};
use crate::conns::{self, Pool};
use crate::options::{parse_duration, parse_size, Common};
use crate::progress::Progress;
use results::ServerRun;

/// What `defrag` uses from the shared options when they are not given.
pub const DEFAULT_RATE: f64 = 500.0;
pub const DEFAULT_CLIENTS: usize = 4;
pub const DEFAULT_VALUE_SIZE: usize = 1024;

#[derive(Args, Debug, Clone)]
pub struct DefragArgs {
    /// The timon binary [default: $CARGO_TARGET_DIR/release/timon, else target/release/timon].
    #[arg(long)]
    pub timon_bin: Option<PathBuf>,
    /// The etcd binary; `none` measures timon only.
    #[arg(long, default_value = "etcd")]
    pub etcd_bin: PathBuf,
    /// The database size (Status.dbSize) to fill each store to: `1GiB`, `8MiB`, bytes.
    #[arg(long, default_value = "1GiB", value_parser = parse_size)]
    pub size: u64,
    /// Idle time after the store is filled and compacted, before writing
    /// starts: for the work the load left behind (RocksDB's background
    /// compactions) to finish, as it has on a store that serves for a while.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub settle: Duration,
    /// Steady writing before the Defragment call.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub baseline: Duration,
    /// Steady writing after the Defragment call answered.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub tail: Duration,
    /// Concurrent clients filling the store.
    #[arg(long, default_value_t = 16)]
    pub load_clients: usize,
    /// Puts per Txn while filling the store.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
}

fn default_timon_bin() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| PathBuf::from("target"), PathBuf::from);
    target.join("release").join("timon")
}

/// `--quota-backend-bytes` of both servers: etcd's largest recommended
/// quota, far above any `--size` this is meant for.
const QUOTA: u64 = 8 * 1024 * 1024 * 1024;

pub async fn run(args: &DefragArgs, common: &Common) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.load_clients > 0 && args.batch > 0,
        "--load-clients and --batch must be at least 1"
    );
    anyhow::ensure!(
        common.clients > 0 && common.conns > 0,
        "--clients and --conns must be at least 1"
    );
    anyhow::ensure!(common.rate > 0.0 && common.rate.is_finite(), "--rate must be positive");
    let timon_bin = args.timon_bin.clone().unwrap_or_else(default_timon_bin);
    anyhow::ensure!(
        timon_bin.exists(),
        "timon binary {} does not exist",
        timon_bin.display()
    );
    let mut servers = vec![("timon", timon_bin)];
    if args.etcd_bin.as_os_str() != "none" {
        servers.push(("etcd", args.etcd_bin.clone()));
    }
    let mut runs = Vec::new();
    for (label, bin) in &servers {
        let run = measure(label, bin, args, common)
            .await
            .with_context(|| format!("{label} ({})", bin.display()))?;
        runs.push(run);
    }
    if common.json {
        println!("{}", serde_json::to_string_pretty(&runs)?);
    } else {
        print!("{}", results::text(&runs));
    }
    Ok(())
}

/// One server: start, fill, measure, kill (by dropping the cluster).
async fn measure(label: &str, bin: &Path, args: &DefragArgs, common: &Common) -> anyhow::Result<ServerRun> {
    let dir = tempfile::Builder::new().prefix("timon-bench-defrag-").tempdir()?;
    let settings = Settings {
        snapshot_count: 100_000,
        heartbeat_interval_ms: 100,
        election_timeout_ms: 1000,
        quota_backend_bytes: QUOTA,
    };
    let cluster = Cluster::start(
        label,
        bin,
        1,
        &settings,
        dir.path(),
        &mut Vec::new(),
        Duration::from_secs(60),
        None,
    )
    .await?;
    let member = &cluster.members[0];
    let data_dir = dir.path().join(format!("{}.data", member.name));
    let endpoints = vec![member.endpoint.clone()];
    let control = conns::dial(&member.endpoint, None, Duration::from_secs(5)).await?;
    let version = MaintenanceClient::new(control.clone())
        .status(StatusRequest {})
        .await?
        .into_inner()
        .version;

    let plan = load::Plan {
        size: args.size,
        value_size: common.val_size,
        clients: args.load_clients,
        batch: args.batch,
    };
    eprintln!("{label}: filling the store to {} (db size)", results::human(args.size));
    let progress = Progress::new(!common.json, None, &format!("{label} load"));
    let load_pool = Pool::connect(&endpoints, args.load_clients.min(8), None).await?;
    let loaded = load::fill(&load_pool, &control, &plan, &progress).await?;
    progress.finish();
    drop(load_pool);
    eprintln!(
        "{label}: {} keys, {} overwrites ({} Txns sent again), compacted at {} in {:.0} s; data dir {}; idle for {:?}",
        loaded.keys,
        loaded.overwrites,
        loaded.retries,
        loaded.compact_revision,
        loaded.secs,
        results::human(du(&data_dir)),
        args.settle
    );
    tokio::time::sleep(args.settle).await;
    eprintln!(
        "{label}: data dir {}; writing {} puts/s for {:?}, then Defragment",
        results::human(du(&data_dir)),
        common.rate,
        args.baseline
    );

    let pool = Pool::connect(&endpoints, common.conns, None).await?;
    let writer = writer::Writer::start(
        &pool,
        common.clients,
        common.rate,
        &load::space(),
        loaded.keys,
        common.val_size,
    );
    tokio::time::sleep(args.baseline).await;
    let db_size_before = bulk::db_size(&control).await?;
    let du_before = du(&data_dir);
    let defrag_start = Instant::now();
    MaintenanceClient::new(control.clone())
        .defragment(DefragmentRequest {})
        .await
        .context("Defragment")?;
    let defrag_end = Instant::now();
    eprintln!(
        "{label}: Defragment answered after {:.3} s; writing for {:?} more",
        (defrag_end - defrag_start).as_secs_f64(),
        args.tail
    );
    tokio::time::sleep(args.tail).await;
    let started = writer.started;
    let (end, samples) = writer.stop().await?;
    let db_size_after = bulk::db_size(&control).await?;
    let du_after = du(&data_dir);
    drop(cluster);
    Ok(ServerRun {
        label: label.to_string(),
        binary: bin.display().to_string(),
        version,
        keys: loaded.keys,
        overwrites: loaded.overwrites,
        value_size: common.val_size,
        compact_revision: loaded.compact_revision,
        load_secs: loaded.secs,
        defrag_secs: (defrag_end - defrag_start).as_secs_f64(),
        db_size_before,
        db_size_after,
        du_before,
        du_after,
        phases: results::phases(&samples, "defrag", started, defrag_start, defrag_end, end),
    })
}

/// Bytes allocated on disk under `path`, as `du` counts them (files that
/// vanish while it walks, like RocksDB files compacted away, count as 0).
pub fn du(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => m.blocks() * 512 + du(&e.path()),
            Ok(m) => m.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}
