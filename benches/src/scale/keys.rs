//! Part `keys`: a 3-member cluster with `--keys` (1M) keys of `--val-size`
//! (1 KiB) random bytes, loaded in Txns. In order:
//!
//! 1. put and range (linearizable) runs of `--duration` on the empty store;
//! 2. the load, then a count-only Range that must count every key, and
//!    each member's peak RSS (VmHWM);
//! 3. the same put and range runs on the loaded store;
//! 4. a Compaction at the latest revision, `--settle`, each member's data
//!    dir (`du`) and dbSize; a Defragment of each member, and again;
//! 5. SIGTERM to a follower, which is started again: the time from its
//!    spawn until a linearizable Range on it answers with the key;
//! 6. each member's peak RSS again (the restarted one's since its restart).

use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use timon_proto::etcdserverpb::kv_client::KvClient;
use timon_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use timon_proto::etcdserverpb::{CompactionRequest, DefragmentRequest, RangeRequest};
use tonic::transport::Channel;

use super::{control, measure, start, version, Env, Server, QUOTA};
use crate::bulk::{self, KeySpace, Keys, Shape, Until};
use crate::compare::cluster::Cluster;
use crate::compare::rss;
use crate::conns::{self, Pool};
use crate::defrag::du;
use crate::progress::Progress;
use crate::recorder::status_text;
use crate::report::Report;
use crate::workload::{Consistency, Workload};

/// Where the loaded keys live.
pub fn space() -> KeySpace {
    KeySpace::new(b"scale/keys/", 10)
}

/// The put and range runs on one store.
#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    pub put: Report,
    pub range: Report,
}

/// One member's data dir and database size after a step.
#[derive(Debug, Clone, Serialize)]
pub struct Disk {
    pub member: String,
    pub du: u64,
    pub db_size: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct KeysRun {
    pub label: String,
    pub version: String,
    pub keys: u64,
    pub value_size: usize,
    pub load_secs: f64,
    /// Load Txns sent again after the server was unavailable ([`bulk::ATTEMPTS`]).
    pub load_retries: u64,
    /// What a count-only Range over the loaded keys answered.
    pub counted: i64,
    pub empty: Throughput,
    pub loaded: Throughput,
    /// VmHWM per member right after the load, and at the end.
    pub peak_rss_after_load_kib: Vec<u64>,
    pub peak_rss_end_kib: Vec<u64>,
    pub compact_revision: i64,
    /// The Compact call's error (a server may time it out and still compact).
    pub compaction_error: Option<String>,
    pub after_compaction: Vec<Disk>,
    /// Seconds each member's Defragment took.
    pub defrag_secs: Vec<f64>,
    pub after_defrag: Vec<Disk>,
    /// The follower that was restarted.
    pub restarted: String,
    /// From its spawn until a linearizable Range on it answered.
    pub restart_serve_secs: f64,
}

pub async fn run(env: &Env<'_>, server: &Server) -> anyhow::Result<KeysRun> {
    let (args, common) = (env.args, env.common);
    let label = &server.label;
    let mut cluster = start(env, "keys", server, 3, QUOTA).await?;
    let endpoints = cluster.endpoints();
    let first = control(&endpoints[0]).await?;
    let version = version(&first).await?;

    let empty = throughput(env, &endpoints, "empty store").await?;

    eprintln!(
        "scale keys: {label}: loading {} keys of {} B",
        args.keys, common.val_size
    );
    let started = Instant::now();
    let pool = Pool::connect(&endpoints, args.load_clients.min(8), None).await?;
    let shape = Shape {
        value_size: common.val_size,
        clients: args.load_clients,
        batch: args.batch,
    };
    let progress = Progress::new(!common.json, Some(args.keys), &format!("{label} load"));
    let space = space();
    let load = bulk::put(
        &pool,
        &space,
        Keys::Fresh,
        &shape,
        Until::Puts(args.keys),
        0x5ca1e,
        &progress,
    )
    .await?;
    progress.finish();
    drop(pool);
    let load_secs = started.elapsed().as_secs_f64();
    let counted = super::count(&first, &space).await?;
    let peak_rss_after_load_kib = peaks(&cluster);
    eprintln!("scale keys: {label}: {counted} keys counted, loaded in {load_secs:.0} s");

    let loaded = throughput(env, &endpoints, &format!("{} keys", args.keys)).await?;

    let compact_revision = super::revision(&first, false).await?;
    let compaction_error = KvClient::new(first.clone())
        .compact(CompactionRequest {
            revision: compact_revision,
            physical: true,
        })
        .await
        .err()
        .map(|e| status_text(&e));
    eprintln!(
        "scale keys: {label}: compacted at {compact_revision}{}; idle for {:?}",
        compaction_error
            .as_ref()
            .map_or(String::new(), |e| format!(" (the call failed: {e})")),
        args.settle
    );
    tokio::time::sleep(args.settle).await;
    let after_compaction = disks(&cluster).await?;
    let mut defrag_secs = Vec::new();
    for m in &cluster.members {
        let t = Instant::now();
        MaintenanceClient::new(control(&m.endpoint).await?)
            .defragment(DefragmentRequest {})
            .await
            .with_context(|| format!("Defragment {}", m.name))?;
        defrag_secs.push(t.elapsed().as_secs_f64());
    }
    let after_defrag = disks(&cluster).await?;

    let follower = super::a_follower(&cluster).await?;
    let restarted = cluster.members[follower].name.clone();
    eprintln!("scale keys: {label}: SIGTERM to {restarted}, then starting it again");
    cluster.terminate(follower, Duration::from_secs(60))?;
    let restart_serve_secs = restart(&mut cluster, follower, &space.key(0)).await?;
    eprintln!("scale keys: {label}: {restarted} served again {restart_serve_secs:.3} s after its spawn");
    let peak_rss_end_kib = peaks(&cluster);
    Ok(KeysRun {
        label: label.clone(),
        version,
        keys: args.keys,
        value_size: common.val_size,
        load_secs,
        load_retries: load.retries,
        counted,
        empty,
        loaded,
        peak_rss_after_load_kib,
        peak_rss_end_kib,
        compact_revision,
        compaction_error,
        after_compaction,
        defrag_secs,
        after_defrag,
        restarted,
        restart_serve_secs,
    })
}

async fn throughput(env: &Env<'_>, endpoints: &[String], what: &str) -> anyhow::Result<Throughput> {
    Ok(Throughput {
        put: measure(env, Workload::Put, endpoints.to_vec(), what).await?,
        range: measure(
            env,
            Workload::Range {
                consistency: Consistency::L,
            },
            endpoints.to_vec(),
            what,
        )
        .await?,
    })
}

fn peaks(cluster: &Cluster) -> Vec<u64> {
    cluster
        .members
        .iter()
        .map(|m| rss::peak_kib(m.pid()).unwrap_or(0))
        .collect()
}

async fn disks(cluster: &Cluster) -> anyhow::Result<Vec<Disk>> {
    let mut out = Vec::new();
    for m in &cluster.members {
        out.push(Disk {
            member: m.name.clone(),
            du: du(&m.data),
            db_size: bulk::db_size(&control(&m.endpoint).await?).await?,
        });
    }
    Ok(out)
}

/// Starts member `i` again and returns the seconds from its spawn until a
/// linearizable Range of `key` on it answered with the key.
async fn restart(cluster: &mut Cluster, i: usize, key: &[u8]) -> anyhow::Result<f64> {
    let endpoint = cluster.members[i].endpoint.clone();
    let spawned = Instant::now();
    cluster.respawn(i)?;
    let deadline = spawned + Duration::from_secs(600);
    let mut last = String::from("no attempt yet");
    while Instant::now() < deadline {
        match read_once(&endpoint, key).await {
            Ok(()) => return Ok(spawned.elapsed().as_secs_f64()),
            Err(e) => last = format!("{e:#}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    anyhow::bail!("{endpoint} did not serve a linearizable Range within 600 s of its restart (last: {last})")
}

async fn read_once(endpoint: &str, key: &[u8]) -> anyhow::Result<()> {
    let attempt = async {
        let channel: Channel = conns::dial(endpoint, None, Duration::from_millis(200)).await?;
        let resp = KvClient::new(channel)
            .range(RangeRequest {
                key: key.to_vec(),
                ..Default::default()
            })
            .await?
            .into_inner();
        anyhow::ensure!(resp.kvs.len() == 1, "the Range found {} keys", resp.kvs.len());
        Ok(())
    };
    tokio::time::timeout(Duration::from_secs(2), attempt)
        .await
        .context("no answer within 2 s")?
}
