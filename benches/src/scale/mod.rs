//! `timon-bench scale` (issue 15, "Scale"): timon and etcd with big stores.
//! Each part starts its own fresh cluster of each server in turn (timon,
//! then etcd unless `--etcd-bin none`), under one directory (`--dir`,
//! removed at the end unless `--keep`), fills it through the API with
//! [`bulk`](crate::bulk) loading, measures, and kills it (dropping the
//! [`Cluster`] kills its members, on errors too).
//!
//! # Layout
//! - [`keys`]: `--keys` (1M) keys: peak RSS, disk after compaction and after
//!   defrag, a follower's restart, put and range throughput against an
//!   empty store's.
//! - [`lists`]: a paginated list of `--list-objects` and one unpaginated
//!   Range of `--big-list-objects` of `--big-list-val-size`: time and the
//!   serving member's memory.
//! - [`big`]: one member loaded to `--big-size` (12 GiB): put latency
//!   against an empty store's.
//! - [`compaction`]: a Compaction of `--compaction-revisions` revisions
//!   under an open-loop writer: write latency before, during, after.
//! - [`memory`]: VmRSS sampled while a request runs.
//! - [`results`]: what every part measured, as text or JSON.

pub mod big;
pub mod compaction;
pub mod keys;
pub mod lists;
pub mod memory;
pub mod results;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, ValueEnum};
use timon_proto::etcdserverpb::kv_client::KvClient;
use timon_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use timon_proto::etcdserverpb::{RangeRequest, StatusRequest};
use tonic::transport::Channel;

use crate::bulk::KeySpace;
use crate::compare::cluster::{Cluster, Settings};
use crate::compare::plan::Members;
use crate::conns;
use crate::options::{parse_duration, parse_size, Common};
use crate::report::Report;
use crate::workload::{self, Workload};

/// What `scale` uses from the shared options when they are not given.
pub const DEFAULT_VALUE_SIZE: usize = 1024;
pub const DEFAULT_DURATION: Duration = Duration::from_secs(10);
pub const DEFAULT_CLIENTS: usize = 100;
pub const DEFAULT_CONNS: usize = 10;

/// A part of the bench, run with `--parts`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Keys,
    Lists,
    Big,
    Compaction,
}

#[derive(Args, Debug, Clone)]
pub struct ScaleArgs {
    /// The timon binary [default: $CARGO_TARGET_DIR/release/timon, else target/release/timon].
    #[arg(long)]
    pub timon_bin: Option<PathBuf>,
    /// The etcd binary; `none` measures timon only.
    #[arg(long, default_value = "/usr/bin/etcd")]
    pub etcd_bin: PathBuf,
    /// The parts to run, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "keys,lists,big,compaction")]
    pub parts: Vec<Part>,
    /// Where the data dirs and logs go: a fresh directory is made in it
    /// [default: /var/tmp].
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Keep the data dirs and logs (also when the run fails).
    #[arg(long)]
    pub keep: bool,
    /// Concurrent clients loading the stores.
    #[arg(long, default_value_t = 16)]
    pub load_clients: usize,
    /// Puts per Txn while loading.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// keys: how many keys of --val-size random bytes to load.
    #[arg(long, default_value_t = 1_000_000)]
    pub keys: u64,
    /// keys: idle time after the compaction, before the data dirs are measured.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub settle: Duration,
    /// lists: objects (of --val-size) in the paginated list (pages of 500).
    #[arg(long, default_value_t = 100_000)]
    pub list_objects: u64,
    /// lists: objects in the one unpaginated Range.
    #[arg(long, default_value_t = 100_000)]
    pub big_list_objects: u64,
    /// lists: bytes of each object of the unpaginated Range.
    #[arg(long, default_value = "10KiB", value_parser = parse_size)]
    pub big_list_val_size: u64,
    /// big: the database size (Status.dbSize) to load timon's member to.
    #[arg(long, default_value = "12GiB", value_parser = parse_size)]
    pub big_size: u64,
    /// compaction: revisions to load before compacting.
    #[arg(long, default_value_t = 1_000_000)]
    pub compaction_revisions: u64,
    /// compaction: keys the revisions overwrite, in turn.
    #[arg(long, default_value_t = 10_000)]
    pub compaction_keys: u64,
    /// compaction: puts per Txn while loading; a Txn is one revision, so
    /// 1 (the default) makes every put a revision of its own.
    #[arg(long, default_value_t = 1)]
    pub compaction_batch: usize,
    /// compaction: puts/s of the open-loop writer.
    #[arg(long, default_value_t = 500.0)]
    pub write_rate: f64,
    /// compaction: clients (one connection each) of the open-loop writer.
    #[arg(long, default_value_t = 4)]
    pub write_clients: usize,
    /// compaction: writing before the Compaction call.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub baseline: Duration,
    /// compaction: writing after the compaction finished.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub tail: Duration,
}

/// A server under test.
#[derive(Debug, Clone)]
pub struct Server {
    /// `timon` or `etcd`.
    pub label: String,
    pub bin: PathBuf,
}

/// What every part gets.
pub struct Env<'a> {
    pub args: &'a ScaleArgs,
    pub common: &'a Common,
    /// The directory this run owns.
    pub dir: &'a Path,
}

fn default_timon_bin() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| PathBuf::from("target"), PathBuf::from);
    target.join("release").join("timon")
}

/// `--quota-backend-bytes` of every cluster but `big`'s: etcd's largest
/// recommended quota.
pub const QUOTA: u64 = 8 * 1024 * 1024 * 1024;

pub async fn run(args: &ScaleArgs, common: &Common) -> anyhow::Result<results::Results> {
    anyhow::ensure!(
        args.load_clients > 0 && args.batch > 0 && args.compaction_batch > 0 && args.write_clients > 0,
        "--load-clients, --batch, --compaction-batch and --write-clients must be at least 1"
    );
    anyhow::ensure!(
        args.write_rate > 0.0 && args.write_rate.is_finite(),
        "--write-rate must be positive"
    );
    anyhow::ensure!(
        args.keys > 0 && args.compaction_keys > 0,
        "--keys and --compaction-keys must be at least 1"
    );
    common.validate()?;
    let timon_bin = args.timon_bin.clone().unwrap_or_else(default_timon_bin);
    anyhow::ensure!(
        timon_bin.exists(),
        "timon binary {} does not exist",
        timon_bin.display()
    );
    let mut servers = vec![Server {
        label: "timon".into(),
        bin: timon_bin,
    }];
    if args.etcd_bin.as_os_str() != "none" {
        servers.push(Server {
            label: "etcd".into(),
            bin: args.etcd_bin.clone(),
        });
    }
    let parent = args.dir.clone().unwrap_or_else(|| PathBuf::from("/var/tmp"));
    std::fs::create_dir_all(&parent).with_context(|| format!("create {}", parent.display()))?;
    let dir = tempfile::Builder::new()
        .prefix("timon-bench-scale-")
        .tempdir_in(&parent)
        .with_context(|| format!("make a directory in {}", parent.display()))?;
    // With --keep the directory outlives this run, failed runs included.
    let (path, _removed_on_drop) = if args.keep {
        (dir.keep(), None)
    } else {
        (dir.path().to_path_buf(), Some(dir))
    };
    eprintln!(
        "scale: data dirs and logs in {}{}",
        path.display(),
        if args.keep { " (kept)" } else { "" }
    );
    let env = Env {
        args,
        common,
        dir: &path,
    };
    let mut out = results::Results::default();
    let measured = run_parts(&env, &servers, &mut out).await;
    // What was measured is printed even when a later part failed.
    if common.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print!("{}", out.text());
    }
    measured?;
    Ok(out)
}

/// Each part on each server in turn (timon, then etcd), into `out`.
async fn run_parts(env: &Env<'_>, servers: &[Server], out: &mut results::Results) -> anyhow::Result<()> {
    for part in &env.args.parts {
        for server in servers {
            let context = || format!("{part:?} on {} ({})", server.label, server.bin.display());
            match part {
                Part::Keys => out.keys.push(keys::run(env, server).await.with_context(context)?),
                Part::Lists => out.lists.push(lists::run(env, server).await.with_context(context)?),
                Part::Big => out.big.push(big::run(env, server).await.with_context(context)?),
                Part::Compaction => out
                    .compaction
                    .push(compaction::run(env, server).await.with_context(context)?),
            }
            // The next server gets the disk back (`big` needs ~25 GiB).
            if !env.args.keep {
                let name = format!("{part:?}-{}", server.label).to_lowercase();
                let _ = std::fs::remove_dir_all(env.dir.join(name));
            }
        }
    }
    Ok(())
}

/// Starts `size` members of `server` in `<dir>/<part>-<label>/`.
pub async fn start(env: &Env<'_>, part: &str, server: &Server, size: usize, quota: u64) -> anyhow::Result<Cluster> {
    let dir = env.dir.join(format!("{part}-{}", server.label));
    std::fs::create_dir_all(&dir)?;
    let settings = Settings {
        snapshot_count: 100_000,
        heartbeat_interval_ms: 100,
        election_timeout_ms: 1000,
        quota_backend_bytes: quota,
    };
    eprintln!("scale {part}: starting {size} {} member(s)", server.label);
    Cluster::start(
        &server.label,
        &server.bin,
        size,
        &settings,
        &dir,
        &mut Vec::new(),
        Duration::from_secs(120),
        None,
    )
    .await
}

/// A channel to one member for control requests (Status, Compact, ...),
/// which accepts answers of any size.
pub async fn control(endpoint: &str) -> anyhow::Result<Channel> {
    conns::dial(endpoint, None, Duration::from_secs(5)).await
}

/// The version a member reports in Status.
pub async fn version(member: &Channel) -> anyhow::Result<String> {
    Ok(MaintenanceClient::new(member.clone())
        .status(StatusRequest {})
        .await
        .context("Status")?
        .into_inner()
        .version)
}

/// Runs `workload` with the shared options against `endpoints`: the
/// throughput runs of the keys and big parts.
pub async fn measure(env: &Env<'_>, workload: Workload, endpoints: Vec<String>, what: &str) -> anyhow::Result<Report> {
    let mut options = env.common.clone();
    options.endpoints = endpoints;
    let report = workload::run(&workload, &options, false)
        .await
        .with_context(|| format!("{} ({what})", workload.name()))?;
    eprintln!(
        "scale: {} {what}: {:.0} ops/s, p99 {:.2} ms, {} errors",
        workload.name(),
        report.rps,
        report.latency_ms.p99,
        report.errors
    );
    Ok(report)
}

/// A linearizable count of the keys in `space`.
pub async fn count(member: &Channel, space: &KeySpace) -> anyhow::Result<i64> {
    let resp = KvClient::new(member.clone())
        .range(RangeRequest {
            key: space.prefix.clone(),
            range_end: space.end(),
            count_only: true,
            ..Default::default()
        })
        .await
        .context("count-only Range")?
        .into_inner();
    Ok(resp.count)
}

/// The store's revision as `member` answers it: linearizable (the
/// latest), or serializable (what `member` itself has applied, answered
/// from its own state without asking the leader).
pub async fn revision(member: &Channel, serializable: bool) -> anyhow::Result<i64> {
    let resp = KvClient::new(member.clone())
        .range(RangeRequest {
            key: vec![0],
            limit: 1,
            serializable,
            ..Default::default()
        })
        .await
        .context("Range for the revision")?
        .into_inner();
    Ok(resp.header.map_or(0, |h| h.revision))
}

/// Waits (polling every 10 ms, at most `timeout`) until every member has
/// applied what the leader has, once no more writes come: after a load,
/// a follower may still be applying it, and a linearizable read on it
/// waits for that. Returns how long the wait took.
pub async fn caught_up(cluster: &Cluster, timeout: Duration) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let leader = cluster.endpoints_of(Members::Leader).await?;
    let target = revision(&control(&leader[0]).await?, true).await?;
    let mut members = Vec::new();
    for m in &cluster.members {
        members.push((m.name.clone(), control(&m.endpoint).await?));
    }
    for (name, member) in &members {
        loop {
            let rev = revision(member, true).await?;
            if rev >= target {
                break;
            }
            if started.elapsed() > timeout {
                anyhow::bail!("{name} applied revision {rev}, the leader {target}, after {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    Ok(started.elapsed())
}

/// The index of a member that is not the leader.
pub async fn a_follower(cluster: &Cluster) -> anyhow::Result<usize> {
    for (i, m) in cluster.members.iter().enumerate() {
        let (id, leader) = cluster.status(&m.endpoint).await?;
        if id != leader {
            return Ok(i);
        }
    }
    anyhow::bail!("every member of {} says it leads", cluster.label)
}
