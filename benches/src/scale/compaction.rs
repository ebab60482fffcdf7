//! Part `compaction`: on a 3-member cluster, `--compaction-revisions` (1M)
//! puts overwriting `--compaction-keys` (10k) keys in turn, one revision
//! each (in Txns of `--compaction-batch` puts, 1 by default), then the
//! open-loop [`Writer`] at `--write-rate` over every member; after
//! `--baseline`, a Compaction at the latest revision with `physical:
//! false`, as etcd's auto-compaction and kube-apiserver send it; writing
//! goes on until the compaction finished and for `--tail` more.
//!
//! When it finished: timon compacts inside the apply of the request, so
//! its answer comes when the member answering has compacted. etcd answers
//! once the compaction is scheduled and compacts in the background; each
//! member then counts it in the histogram
//! `etcd_debugging_mvcc_db_compaction_total_duration_milliseconds` on its
//! client URL's `/metrics`, polled every 50 ms: finished is when every
//! member counted it. The write latencies are split at the call and at
//! that point ([`phases`]).

use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use timon_proto::etcdserverpb::kv_client::KvClient;
use timon_proto::etcdserverpb::CompactionRequest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::{control, start, version, Env, Server, QUOTA};
use crate::bulk::{self, KeySpace, Keys, Shape, Until};
use crate::compare::cluster::Cluster;
use crate::conns::Pool;
use crate::defrag::results::{phases, Phase};
use crate::defrag::writer::Writer;
use crate::progress::Progress;

/// etcd's histogram of whole compactions.
const METRIC: &str = "etcd_debugging_mvcc_db_compaction_total_duration_milliseconds";

#[derive(Debug, Clone, Serialize)]
pub struct CompactionRun {
    pub label: String,
    pub version: String,
    /// Puts loaded, and per Txn (one revision).
    pub revisions: u64,
    pub puts_per_revision: usize,
    pub keys: u64,
    pub value_size: usize,
    pub load_secs: f64,
    /// Load Txns sent again after the server timed out them ([`bulk::ATTEMPTS`]).
    pub load_retries: u64,
    pub compact_revision: i64,
    /// From the call to its answer.
    pub answer_secs: f64,
    /// From the call until the compaction finished (see the module doc).
    pub finished_secs: f64,
    /// How the end was seen: `answer` or `metrics`.
    pub finished_by: String,
    /// etcd only: the compaction's duration per member, from the metric.
    pub member_compaction_ms: Vec<f64>,
    /// `baseline`, `compaction`, `after`.
    pub phases: Vec<Phase>,
}

pub async fn run(env: &Env<'_>, server: &Server) -> anyhow::Result<CompactionRun> {
    let (args, common) = (env.args, env.common);
    let label = &server.label;
    let cluster = start(env, "compaction", server, 3, QUOTA).await?;
    let endpoints = cluster.endpoints();
    let first = control(&endpoints[0]).await?;
    let version = version(&first).await?;

    eprintln!(
        "scale compaction: {label}: loading {} revisions over {} keys",
        args.compaction_revisions, args.compaction_keys
    );
    let started = std::time::Instant::now();
    let pool = Pool::connect(&endpoints, args.load_clients.min(8), None).await?;
    let shape = Shape {
        value_size: common.val_size,
        clients: args.load_clients,
        batch: args.compaction_batch,
    };
    let progress = Progress::new(!common.json, Some(args.compaction_revisions), &format!("{label} load"));
    let space = KeySpace::new(b"scale/compaction/", 10);
    let load = bulk::put(
        &pool,
        &space,
        Keys::Overwrite(args.compaction_keys),
        &shape,
        Until::Puts(args.compaction_revisions),
        0xc0,
        &progress,
    )
    .await?;
    progress.finish();
    drop(pool);
    let load_secs = started.elapsed().as_secs_f64();

    let before = metrics(&cluster).await;
    let pool = Pool::connect(&endpoints, args.write_clients, None).await?;
    eprintln!(
        "scale compaction: {label}: loaded in {load_secs:.0} s; writing {} puts/s",
        args.write_rate
    );
    let writer = Writer::start(
        &pool,
        args.write_clients,
        args.write_rate,
        &space,
        args.compaction_keys,
        common.val_size,
    );
    tokio::time::sleep(args.baseline).await;
    let compact_revision = super::latest_revision(&first).await?;
    let call = Instant::now();
    KvClient::new(first.clone())
        .compact(CompactionRequest {
            revision: compact_revision,
            physical: false,
        })
        .await
        .with_context(|| format!("Compaction at revision {compact_revision}"))?;
    let answered = Instant::now();
    let (finished, finished_by, member_compaction_ms) = match before {
        Some(before) => {
            let (at, after) = wait_counted(&cluster, &before).await?;
            let ms = after.iter().zip(&before).map(|(a, b)| a.1 - b.1).collect();
            (at, "metrics", ms)
        }
        None => (answered, "answer", Vec::new()),
    };
    eprintln!(
        "scale compaction: {label}: compacted at {compact_revision}: answered after {:.3} s, finished after {:.3} s ({finished_by}); writing for {:?} more",
        (answered - call).as_secs_f64(),
        (finished - call).as_secs_f64(),
        args.tail
    );
    tokio::time::sleep(args.tail).await;
    let started = writer.started;
    let (end, samples) = writer.stop().await?;
    Ok(CompactionRun {
        label: label.clone(),
        version,
        revisions: args.compaction_revisions,
        puts_per_revision: args.compaction_batch,
        keys: args.compaction_keys,
        value_size: common.val_size,
        load_secs,
        load_retries: load.retries,
        compact_revision,
        answer_secs: (answered - call).as_secs_f64(),
        finished_secs: (finished - call).as_secs_f64(),
        finished_by: finished_by.into(),
        member_compaction_ms,
        phases: phases(&samples, "compaction", started, call, finished, end),
    })
}

/// Every member's (count, sum) of [`METRIC`], or None if one does not
/// expose it (timon).
async fn metrics(cluster: &Cluster) -> Option<Vec<(f64, f64)>> {
    let mut out = Vec::new();
    for m in &cluster.members {
        out.push(compactions(&m.endpoint).await.ok()??);
    }
    Some(out)
}

/// Polls until every member counted one more compaction than `before`;
/// returns when, and the counts then.
async fn wait_counted(cluster: &Cluster, before: &[(f64, f64)]) -> anyhow::Result<(Instant, Vec<(f64, f64)>)> {
    let deadline = Instant::now() + Duration::from_secs(1800);
    while Instant::now() < deadline {
        if let Some(now) = metrics(cluster).await {
            if now.iter().zip(before).all(|(n, b)| n.0 > b.0) {
                return Ok((Instant::now(), now));
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("the compaction did not finish on every member within 30 minutes ({METRIC})")
}

/// `(count, sum)` of [`METRIC`] from `<endpoint>/metrics` (plain HTTP/1.0),
/// None if the page does not have it.
async fn compactions(endpoint: &str) -> anyhow::Result<Option<(f64, f64)>> {
    let host = endpoint.trim_start_matches("http://");
    let fetch = async {
        let mut stream = tokio::net::TcpStream::connect(host).await?;
        stream
            .write_all(format!("GET /metrics HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
            .await?;
        let mut page = String::new();
        stream.read_to_string(&mut page).await?;
        anyhow::Ok(page)
    };
    let page = tokio::time::timeout(Duration::from_secs(2), fetch)
        .await
        .context("GET /metrics timed out")??;
    let value = |suffix: &str| {
        let name = format!("{METRIC}_{suffix} ");
        page.lines()
            .find_map(|l| l.strip_prefix(&name))
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    Ok(value("count").zip(value("sum")))
}
