//! `timon-bench stall`: the longest write stall when the leader of a
//! 3-member cluster gets SIGTERM (issue 13: a rolling restart must cost no
//! election timeout). For each server and round it starts a fresh cluster,
//! runs one closed-loop client writing through the two followers
//! (alternating), sends SIGTERM to the leader after a steady second, and
//! keeps writing until the remaining members named a new leader and wrote
//! for two more seconds. The stall is the longest gap between two
//! consecutive acknowledged writes from half a second before the signal on.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use timon_proto::etcdserverpb::kv_client::KvClient;
use timon_proto::etcdserverpb::PutRequest;
use tonic::transport::Channel;

use crate::compare::cluster::{Cluster, Settings};

#[derive(Args, Debug, Clone)]
pub struct StallArgs {
    /// The timon binary [default: $CARGO_TARGET_DIR/debug/timon, else target/debug/timon].
    #[arg(long)]
    pub timon_bin: Option<PathBuf>,
    /// The etcd binary (3.4.23 is the reference); `none` measures timon only.
    #[arg(long, default_value = "etcd")]
    pub etcd_bin: PathBuf,
    /// Fresh clusters per server.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// --heartbeat-interval (ms) of both servers.
    #[arg(long, default_value_t = 100)]
    pub heartbeat_interval: u64,
    /// --election-timeout (ms) of both servers.
    #[arg(long, default_value_t = 1000)]
    pub election_timeout: u64,
}

/// One SIGTERM of a leader under load.
#[derive(Debug, Clone)]
pub struct Stall {
    /// The longest gap between consecutive acknowledged writes around the signal.
    pub longest: Duration,
    /// The longest gap in the steady second before (the baseline).
    pub steady: Duration,
    pub writes: usize,
    pub errors: usize,
}

fn default_timon_bin() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| PathBuf::from("target"), PathBuf::from);
    target.join("debug").join("timon")
}

pub async fn run(args: &StallArgs) -> anyhow::Result<()> {
    let timon_bin = args.timon_bin.clone().unwrap_or_else(default_timon_bin);
    anyhow::ensure!(
        timon_bin.exists(),
        "timon binary {} does not exist",
        timon_bin.display()
    );
    let settings = Settings {
        snapshot_count: 100_000,
        heartbeat_interval_ms: args.heartbeat_interval,
        election_timeout_ms: args.election_timeout,
        quota_backend_bytes: 8 * 1024 * 1024 * 1024,
    };
    let mut servers = vec![("timon", timon_bin)];
    if args.etcd_bin.as_os_str() != "none" {
        servers.push(("etcd", args.etcd_bin.clone()));
    }
    let mut results: Vec<(&str, Vec<Stall>)> = servers.iter().map(|(l, _)| (*l, Vec::new())).collect();
    for round in 1..=args.rounds {
        for (i, (label, bin)) in servers.iter().enumerate() {
            let dir = tempfile::Builder::new().prefix("timon-bench-stall-").tempdir()?;
            let mut ports = Vec::new();
            let cluster = Cluster::start(
                label,
                bin,
                3,
                &settings,
                dir.path(),
                &mut ports,
                Duration::from_secs(60),
                None,
            )
            .await?;
            let stall = measure(&cluster)
                .await
                .with_context(|| format!("{label} round {round}"))?;
            println!(
                "{label} round {round}: longest write stall {:.1} ms (steady before: {:.1} ms), {} writes, {} errors",
                ms(stall.longest),
                ms(stall.steady),
                stall.writes,
                stall.errors
            );
            results[i].1.push(stall);
        }
    }
    for (label, stalls) in &results {
        let mut longest: Vec<f64> = stalls.iter().map(|s| ms(s.longest)).collect();
        longest.sort_by(f64::total_cmp);
        println!(
            "{label}: longest write stall after leader SIGTERM over {} rounds: min {:.1} ms, median {:.1} ms, max {:.1} ms",
            longest.len(),
            longest[0],
            longest[longest.len() / 2],
            longest[longest.len() - 1]
        );
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// SIGTERMs the leader of `cluster` under one writer through its followers.
async fn measure(cluster: &Cluster) -> anyhow::Result<Stall> {
    let mut ids = Vec::new();
    for m in &cluster.members {
        ids.push(cluster.status(&m.endpoint).await?);
    }
    let leader_id = ids[0].1;
    let Some(leader) = ids.iter().position(|(id, _)| *id == leader_id) else {
        bail!("no member is the leader {leader_id:x}");
    };
    let mut followers = Vec::new();
    for (i, m) in cluster.members.iter().enumerate() {
        if i != leader {
            let channel = crate::conns::dial(&m.endpoint, None, Duration::from_secs(2)).await?;
            followers.push(KvClient::new(channel));
        }
    }
    let mut acked: Vec<Instant> = Vec::new();
    let mut errors = 0;
    let started = Instant::now();
    let mut signalled: Option<Instant> = None;
    let mut n = 0u64;
    loop {
        let now = Instant::now();
        if signalled.is_none() && now >= started + Duration::from_secs(1) {
            sigterm(cluster.members[leader].pid())?;
            signalled = Some(Instant::now());
        }
        if let Some(at) = signalled {
            if now >= at + Duration::from_secs(3) {
                break;
            }
        }
        n += 1;
        if put(&mut followers[(n % 2) as usize], n).await {
            acked.push(Instant::now());
        } else {
            errors += 1;
        }
    }
    let at = signalled.expect("signalled");
    let gap = |from: Instant, to: Instant| {
        acked
            .windows(2)
            .filter(|w| w[1] >= from && w[0] <= to)
            .map(|w| w[1] - w[0])
            .max()
            .unwrap_or_default()
    };
    Ok(Stall {
        longest: gap(at - Duration::from_millis(500), at + Duration::from_secs(3)),
        steady: gap(started, at - Duration::from_millis(500)),
        writes: acked.len(),
        errors,
    })
}

async fn put(kv: &mut KvClient<Channel>, n: u64) -> bool {
    let req = PutRequest {
        key: format!("stall/{}", n % 100).into_bytes(),
        value: n.to_string().into_bytes(),
        ..Default::default()
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(10), kv.put(req)).await,
        Ok(Ok(_))
    )
}

fn sigterm(pid: u32) -> anyhow::Result<()> {
    let ok = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()?
        .success();
    anyhow::ensure!(ok, "kill -TERM {pid} failed");
    Ok(())
}
