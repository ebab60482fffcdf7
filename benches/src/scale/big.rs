//! Part `big`: one member, a put run of `--duration` on the empty store,
//! then new keys of `--val-size` random bytes until the member reports a
//! database size (Status.dbSize) of `--big-size` (12 GiB), then the same put
//! run again. timon runs with `--quota-backend-bytes` twice `--big-size`,
//! at least 8 GiB (timon takes any quota; etcd 3.4 warns above 8 GiB, its
//! largest recommended quota); etcd runs with 8 GiB, loaded to at most
//! [`ETCD_MAX`] so the put run still fits under its quota.

use std::time::Instant;

use serde::Serialize;

use super::{control, measure, start, version, Env, Server, QUOTA};
use crate::bulk::{self, KeySpace, Keys, Shape, Until};
use crate::compare::rss;
use crate::conns::Pool;
use crate::defrag::du;
use crate::progress::Progress;
use crate::report::Report;
use crate::workload::Workload;

/// The largest store etcd is loaded to: 1 GiB under its 8 GiB quota.
pub const ETCD_MAX: u64 = 7 * 1024 * 1024 * 1024;

#[derive(Debug, Clone, Serialize)]
pub struct BigRun {
    pub label: String,
    pub version: String,
    pub quota: u64,
    /// The dbSize the load aimed at.
    pub target: u64,
    pub keys: u64,
    pub value_size: usize,
    pub load_secs: f64,
    /// Load Txns sent again after the server was unavailable ([`bulk::ATTEMPTS`]).
    pub load_retries: u64,
    /// After the load.
    pub db_size: u64,
    pub du: u64,
    /// VmHWM at the end.
    pub peak_rss_kib: u64,
    pub empty_put: Report,
    pub big_put: Report,
}

pub async fn run(env: &Env<'_>, server: &Server) -> anyhow::Result<BigRun> {
    let (args, common) = (env.args, env.common);
    let label = &server.label;
    let (quota, target) = if label == "etcd" {
        (QUOTA, args.big_size.min(ETCD_MAX))
    } else {
        (args.big_size.saturating_mul(2).max(QUOTA), args.big_size)
    };
    let cluster = start(env, "big", server, 1, quota).await?;
    let member = &cluster.members[0];
    let endpoints = cluster.endpoints();
    let status = control(&member.endpoint).await?;
    let version = version(&status).await?;

    let empty_put = measure(env, Workload::Put, endpoints.clone(), "empty store").await?;

    eprintln!(
        "scale big: {label}: loading keys of {} B to a db size of {}",
        common.val_size,
        super::results::human(target)
    );
    let started = Instant::now();
    let pool = Pool::connect(&endpoints, args.load_clients.min(8), None).await?;
    let shape = Shape {
        value_size: common.val_size,
        clients: args.load_clients,
        batch: args.batch,
    };
    let progress = Progress::new(!common.json, None, &format!("{label} load"));
    let load = bulk::put(
        &pool,
        &KeySpace::new(b"scale/big/", 10),
        Keys::Fresh,
        &shape,
        Until::DbSize(status.clone(), target),
        0xb16,
        &progress,
    )
    .await?;
    let keys = load.puts;
    progress.finish();
    drop(pool);
    let load_secs = started.elapsed().as_secs_f64();
    let db_size = bulk::db_size(&status).await?;
    let du = du(&member.data);
    eprintln!(
        "scale big: {label}: {keys} keys in {load_secs:.0} s; db size {}, data dir {}",
        super::results::human(db_size),
        super::results::human(du)
    );

    let big_put = measure(env, Workload::Put, endpoints, "big store").await?;
    Ok(BigRun {
        label: label.clone(),
        version,
        quota,
        target,
        keys,
        value_size: common.val_size,
        load_secs,
        load_retries: load.retries,
        db_size,
        du,
        peak_rss_kib: rss::peak_kib(member.pid()).unwrap_or(0),
        empty_put,
        big_put,
    })
}
