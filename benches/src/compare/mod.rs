//! The side-by-side comparison: starts a 3-member timon cluster and a
//! 3-member etcd cluster on loopback with the same settings, runs every
//! workload of the [`plan`] against both (A/B order alternating per
//! workload and round), samples each member's peak RSS after every
//! workload, prints the [`table`] and writes `<results-dir>/<date>.json`
//! and `<date>.svg`. Data dirs and logs live in a temporary directory
//! (kept with `--keep`); every process started here is killed on exit.
//!
//! # Layout
//! - [`cluster`]: starting and stopping a 3-member cluster of either server.
//! - [`plan`]: the workloads and their options.
//! - [`rss`]: peak RSS from `/proc/<pid>/status`.
//! - [`cpu`]: CPU time from `/proc/<pid>/stat`.
//! - [`results`]: the JSON shape and the timon/etcd ratios.
//! - [`table`], [`chart`]: the text table and the SVG chart.
//! - [`date`]: the UTC stamp naming the result files.

pub mod chart;
pub mod cluster;
pub mod cpu;
pub mod date;
pub mod plan;
pub mod results;
pub mod rss;
pub mod table;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;

use crate::options::Common;
use crate::report::Report;
use crate::workload;
use cluster::{Cluster, Settings};
use results::{Results, Row, Side};

#[derive(Args, Debug, Clone)]
pub struct CompareArgs {
    /// The timon binary [default: $CARGO_TARGET_DIR/release/timon, else target/release/timon].
    #[arg(long)]
    pub timon_bin: Option<PathBuf>,
    /// The etcd binary (3.4.23 is the reference).
    #[arg(long, default_value = "etcd")]
    pub etcd_bin: PathBuf,
    /// Workloads to run, comma-separated [default: all]:
    /// put,put-1client,put-1client-f,range-l,range-s,txn-put,k8s-update,k8s-list,watch,lease-keepalive.
    #[arg(long, value_delimiter = ',')]
    pub workloads: Vec<String>,
    /// How often each workload runs on each server; the median by throughput is reported.
    #[arg(long, default_value_t = 1)]
    pub rounds: usize,
    /// Watchers of the watch workload.
    #[arg(long, default_value_t = 1000)]
    pub watchers: usize,
    /// Watch streams the watchers are spread over.
    #[arg(long, default_value_t = 10)]
    pub streams: usize,
    /// Objects under the prefix k8s-list lists.
    #[arg(long, default_value_t = 5000)]
    pub list_objects: u64,
    /// Where <date>.json and <date>.svg go.
    #[arg(long, default_value = "benches/results")]
    pub results_dir: PathBuf,
    /// Free text stored in the JSON and the chart title (e.g. "debug build").
    #[arg(long, default_value = "")]
    pub label: String,
    /// --snapshot-count of both servers.
    #[arg(long, default_value_t = 100_000)]
    pub snapshot_count: u64,
    /// --heartbeat-interval (ms) of both servers.
    #[arg(long, default_value_t = 100)]
    pub heartbeat_interval: u64,
    /// --election-timeout (ms) of both servers.
    #[arg(long, default_value_t = 1000)]
    pub election_timeout: u64,
    /// --quota-backend-bytes of both servers (8 GiB, etcd's suggested maximum).
    #[arg(long, default_value_t = 8 * 1024 * 1024 * 1024)]
    pub quota_backend_bytes: u64,
    /// Keep the data dirs and logs (their path is printed).
    #[arg(long)]
    pub keep: bool,
    /// Both servers with mutual TLS on client and peer ports (kubeadm's
    /// flags, a throw-away PKI); the workloads dial with a client certificate.
    #[arg(long)]
    pub tls: bool,
}

/// Clients and connections of the comparison when not given: the issue's
/// target load (100 clients).
pub const DEFAULT_CLIENTS: usize = 100;
pub const DEFAULT_CONNS: usize = 10;

fn default_timon_bin() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| PathBuf::from("target"), PathBuf::from);
    target.join("release").join("timon")
}

/// Runs `step` on `cluster` and reads every member's peak RSS afterwards.
/// The CPU time the members used during the measured part of the run (the
/// report's last `total_secs`, setup left out) goes in the report's notes
/// as [`results::SERVER_CPU_US`], this process's own (the load
/// generator's) as [`results::BENCH_CPU_US`].
async fn measure(
    step: &plan::Step,
    cluster: &Cluster,
    tls: Option<&cluster::Tls>,
) -> anyhow::Result<(Report, Vec<u64>)> {
    let mut options = step.options.clone();
    options.endpoints = cluster.endpoints_of(step.to).await?;
    if let Some(tls) = tls {
        let client = tls.client();
        (options.cacert, options.cert, options.key) = (client.ca_file, client.cert_file, client.key_file);
    }
    eprintln!(
        "compare: {} on {} ({}) ...",
        step.name,
        cluster.label,
        options.endpoints.join(",")
    );
    let timeline = cpu::Timeline::start(cluster.members.iter().map(|m| m.pid()).collect());
    let mut report = workload::run(&step.workload, &options, true)
        .await
        .with_context(|| format!("{} on {}", step.name, cluster.label))?;
    let measured_from = Instant::now()
        .checked_sub(Duration::from_secs_f64(report.total_secs))
        .unwrap_or_else(Instant::now);
    let (members_us, bench_us) = timeline.since(measured_from);
    drop(timeline);
    report.workload = step.name.clone();
    report.notes.insert(results::SERVER_CPU_US.into(), members_us);
    report.notes.insert(results::BENCH_CPU_US.into(), bench_us);
    let rss = cluster
        .members
        .iter()
        .map(|m| rss::peak_kib(m.pid()).unwrap_or(0))
        .collect();
    eprintln!(
        "compare: {} on {}: {:.1} ops/s, p99 {:.2} ms, {} errors",
        step.name, cluster.label, report.rps, report.latency_ms.p99, report.errors
    );
    Ok((report, rss))
}

/// The whole comparison; returns the results it also printed and wrote.
pub async fn run(args: &CompareArgs, base: &Common) -> anyhow::Result<Results> {
    let timon_bin = args.timon_bin.clone().unwrap_or_else(default_timon_bin);
    anyhow::ensure!(
        timon_bin.exists(),
        "timon binary {} does not exist (benches/compare builds it; or pass --timon-bin)",
        timon_bin.display()
    );
    anyhow::ensure!(args.rounds >= 1, "--rounds must be at least 1");
    let knobs = plan::Knobs {
        watchers: args.watchers,
        streams: args.streams,
        list_objects: args.list_objects,
    };
    let steps = plan::plan(base, &knobs, &args.workloads)?;
    for s in &steps {
        s.options.validate().with_context(|| s.name.clone())?;
    }
    let settings = Settings {
        snapshot_count: args.snapshot_count,
        heartbeat_interval_ms: args.heartbeat_interval,
        election_timeout_ms: args.election_timeout,
        quota_backend_bytes: args.quota_backend_bytes,
    };
    let dir = tempfile::Builder::new().prefix("timon-bench-").tempdir()?;
    let tls = if args.tls {
        Some(cluster::Tls::new(dir.path())?)
    } else {
        None
    };
    let mut ports = Vec::new();
    let start = Duration::from_secs(60);
    let (clusters, date) = {
        let timon = Cluster::start(
            "timon",
            &timon_bin,
            3,
            &settings,
            dir.path(),
            &mut ports,
            start,
            tls.as_ref(),
        )
        .await?;
        let etcd = Cluster::start(
            "etcd",
            &args.etcd_bin,
            3,
            &settings,
            dir.path(),
            &mut ports,
            start,
            tls.as_ref(),
        )
        .await?;
        ([timon, etcd], date::stamp_now())
    };
    let mut runs: Vec<[Vec<Report>; 2]> = steps.iter().map(|_| [Vec::new(), Vec::new()]).collect();
    let mut rss: Vec<[Vec<u64>; 2]> = steps.iter().map(|_| [Vec::new(), Vec::new()]).collect();
    for round in 0..args.rounds {
        for (i, step) in steps.iter().enumerate() {
            let order = if (i + round) % 2 == 0 { [0, 1] } else { [1, 0] };
            for c in order {
                let (report, peak) = measure(step, &clusters[c], tls.as_ref()).await?;
                runs[i][c].push(report);
                rss[i][c] = peak;
            }
        }
    }
    let rows: Vec<Row> = steps
        .iter()
        .zip(runs.into_iter().zip(rss))
        .map(|(step, ([t, e], [tr, er]))| Row::new(&step.name, Side::new(t, tr), Side::new(e, er)))
        .collect();
    drop(clusters);
    let results = Results {
        date,
        label: args.label.clone(),
        cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
        timon_bin: timon_bin.display().to_string(),
        etcd_bin: args.etcd_bin.display().to_string(),
        rounds: args.rounds,
        settings: serde_json::to_value(&settings)?,
        plan: serde_json::to_value(&steps)?,
        rows,
    };
    print!("{}", table::render(&results.rows, results.cpus));
    std::fs::create_dir_all(&args.results_dir).with_context(|| format!("create {}", args.results_dir.display()))?;
    let json = args.results_dir.join(format!("{}.json", results.date));
    let svg = args.results_dir.join(format!("{}.svg", results.date));
    std::fs::write(&json, serde_json::to_string_pretty(&results)?)
        .with_context(|| format!("write {}", json.display()))?;
    std::fs::write(&svg, chart::svg(&results)).with_context(|| format!("write {}", svg.display()))?;
    println!("wrote {} and {}", json.display(), svg.display());
    if args.keep {
        println!("data dirs and logs kept in {}", dir.keep().display());
    }
    Ok(results)
}
