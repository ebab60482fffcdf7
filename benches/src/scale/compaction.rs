//! Part `compaction`: on a 3-member cluster, `--compaction-revisions` (1M)
//! puts overwriting `--compaction-keys` (10k) keys in turn, one revision
//! each (in Txns of `--compaction-batch` puts, 1 by default), then the
//! open-loop [`Writer`] at `--write-rate` over every member; after
//! `--baseline`, a Compaction at the latest revision with `physical:
//! false`, as etcd's auto-compaction and kube-apiserver send it; writing
//! goes on until the compaction finished and for `--tail` more.
//!
//! When it finished, from each member's `/metrics` (client URL, polled
//! every 50 ms), once every member has: etcd and timon answer once the
//! compaction is applied and compact storage in the background, then count
//! it in the histogram
//! `etcd_debugging_mvcc_db_compaction_total_duration_milliseconds` (whose
//! sum gives each member's compaction time). A server without the histogram
//! (timon before it compacted in the background, which compacted inside the
//! apply of the request) is done when `etcd_debugging_mvcc_compact_revision`
//! reaches the revision. A Compact call that fails (a server may time it out and still
//! compact) is reported and the wait goes on. The write latencies are split
//! at the call and at the finish ([`phases`]).

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
use crate::recorder::status_text;

/// etcd's histogram of whole compactions (timon's too, since it compacts in
/// the background).
const HISTOGRAM: &str = "etcd_debugging_mvcc_db_compaction_total_duration_milliseconds";
/// The store's compacted revision: set when the compaction is applied, so
/// it only tells when a server that compacts inside the apply is done.
const COMPACT_REVISION: &str = "etcd_debugging_mvcc_compact_revision";

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
    /// Load Txns sent again after the server was unavailable ([`bulk::ATTEMPTS`]).
    pub load_retries: u64,
    pub compact_revision: i64,
    /// From the call to its answer.
    pub answer_secs: f64,
    /// The call's error (a server may time it out and still compact).
    pub answer_error: Option<String>,
    /// From the call until the compaction finished (see the module doc).
    pub finished_secs: f64,
    /// How the end was seen: `histogram` (etcd), `compact revision`
    /// (timon), or `answer` (a server without /metrics).
    pub finished_by: String,
    /// etcd only: the compaction's duration per member, from the histogram.
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

    let before = scrape_all(&cluster).await;
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
    let compact_revision = super::revision(&first, false).await?;
    let call = Instant::now();
    let answer = KvClient::new(first.clone())
        .compact(CompactionRequest {
            revision: compact_revision,
            physical: false,
        })
        .await;
    let answered = Instant::now();
    let answer_error = answer.err().map(|e| status_text(&e));
    let (finished, finished_by, member_compaction_ms) = match &before {
        Ok(before) => {
            let (at, after) = wait_finished(&cluster, before, compact_revision).await?;
            let by = if before[0].count.is_some() {
                "histogram"
            } else {
                "compact revision"
            };
            let ms = after
                .iter()
                .zip(before)
                .filter_map(|(a, b)| Some(a.sum? - b.sum?))
                .collect();
            (at, by, ms)
        }
        Err(e) => {
            if let Some(error) = &answer_error {
                anyhow::bail!(
                    "Compaction at revision {compact_revision}: {error}; and no /metrics to see it finish: {e:#}"
                );
            }
            (answered, "answer", Vec::new())
        }
    };
    eprintln!(
        "scale compaction: {label}: compacted at {compact_revision}: answered after {:.3} s{}, finished after {:.3} s (by {finished_by}); writing for {:?} more",
        (answered - call).as_secs_f64(),
        answer_error.as_ref().map_or(String::new(), |e| format!(" ({e})")),
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
        answer_error,
        finished_secs: (finished - call).as_secs_f64(),
        finished_by: finished_by.into(),
        member_compaction_ms,
        phases: phases(&samples, "compaction", started, call, finished, end),
    })
}

/// What a member's `/metrics` says about compactions.
#[derive(Debug, Clone, Copy)]
struct Seen {
    /// [`HISTOGRAM`]'s count and sum (etcd).
    count: Option<f64>,
    sum: Option<f64>,
    /// [`COMPACT_REVISION`] (both).
    compact_revision: Option<i64>,
}

impl Seen {
    /// Whether the member finished compacting at `revision` since `before`.
    fn finished(&self, before: &Seen, revision: i64) -> bool {
        match (before.count, self.count) {
            (Some(b), Some(n)) => n > b,
            _ => self.compact_revision.is_some_and(|r| r >= revision),
        }
    }
}

/// Every member's [`Seen`].
async fn scrape_all(cluster: &Cluster) -> anyhow::Result<Vec<Seen>> {
    let mut out = Vec::new();
    for m in &cluster.members {
        let seen = scrape(&m.endpoint)
            .await
            .with_context(|| format!("{} /metrics", m.name))?;
        anyhow::ensure!(
            seen.count.is_some() || seen.compact_revision.is_some(),
            "{}: /metrics has neither {HISTOGRAM} nor {COMPACT_REVISION}",
            m.name
        );
        out.push(seen);
    }
    Ok(out)
}

/// Polls until every member finished compacting at `revision`; returns
/// when, and what the members said then.
async fn wait_finished(cluster: &Cluster, before: &[Seen], revision: i64) -> anyhow::Result<(Instant, Vec<Seen>)> {
    let deadline = Instant::now() + Duration::from_secs(1800);
    while Instant::now() < deadline {
        if let Ok(now) = scrape_all(cluster).await {
            if now.iter().zip(before).all(|(n, b)| n.finished(b, revision)) {
                return Ok((Instant::now(), now));
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("the compaction at {revision} did not finish on every member within 30 minutes")
}

/// Reads `<endpoint>/metrics` (plain HTTP/1.0).
async fn scrape(endpoint: &str) -> anyhow::Result<Seen> {
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
    let value = |name: &str| {
        let name = format!("{name} ");
        page.lines()
            .find_map(|l| l.strip_prefix(&name))
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    Ok(Seen {
        count: value(&format!("{HISTOGRAM}_count")),
        sum: value(&format!("{HISTOGRAM}_sum")),
        compact_revision: value(COMPACT_REVISION).map(|r| r as i64),
    })
}
