//! Part `lists`: on a 3-member cluster, the first member serves
//!
//! 1. the apiserver's paginated list ([`k8s_list::list`]: pages of 500,
//!    revision pinned after page 1) of `--list-objects` (100k) objects of
//!    `--val-size` under k8s-list's prefix, and
//! 2. one unpaginated Range of `--big-list-objects` (100k) objects of
//!    `--big-list-val-size` (10 KiB): a response of about 1 GiB, which the
//!    client accepts whatever its size.
//!
//! Each is timed once every member has applied the load (the wait is
//! reported as `catch-up`), must return every object, and has the member's memory
//! sampled around it ([`memory`](super::memory)). A server that refuses
//! the request has its error text reported as the result.

use std::time::{Duration, Instant};

use serde::Serialize;
use timon_proto::etcdserverpb::kv_client::KvClient;

use super::memory::{Memory, Sampler};
use super::{caught_up, control, start, version, Env, Server, QUOTA};
use crate::bulk::{self, KeySpace, Keys, Shape, Until};
use crate::compare::cluster::Cluster;
use crate::conns::Pool;
use crate::progress::Progress;
use crate::recorder::status_text;
use crate::workload::k8s_list;

/// The apiserver's page size.
pub const LIMIT: i64 = 500;

/// How long the members may take to apply a load before the list.
const CATCH_UP: Duration = Duration::from_secs(120);

/// One list.
#[derive(Debug, Clone, Serialize)]
pub struct List {
    /// `paginated` or `unpaginated`.
    pub name: String,
    pub objects: u64,
    pub value_size: u64,
    pub load_secs: f64,
    /// Load Txns sent again after the server was unavailable ([`bulk::ATTEMPTS`]).
    pub load_retries: u64,
    /// From the load's last answer until every member had applied it.
    pub catch_up_secs: f64,
    /// Objects the list returned (0 if it failed).
    pub listed: u64,
    pub pages: u64,
    pub secs: f64,
    /// The server's or the transport's error, if the list failed.
    pub error: Option<String>,
    /// Of the member that served it.
    pub memory: Memory,
}

#[derive(Debug, Clone, Serialize)]
pub struct ListsRun {
    pub label: String,
    pub version: String,
    /// The member that served the lists, and whether it led.
    pub member: String,
    pub leader: bool,
    pub lists: Vec<List>,
}

pub async fn run(env: &Env<'_>, server: &Server) -> anyhow::Result<ListsRun> {
    let (args, common) = (env.args, env.common);
    let cluster = start(env, "lists", server, 3, QUOTA).await?;
    let first = control(&cluster.members[0].endpoint).await?;
    let version = version(&first).await?;
    let (id, leader) = cluster.status(&cluster.members[0].endpoint).await?;
    let paginated = KeySpace::new(k8s_list::PREFIX, 10);
    let unpaginated = KeySpace::new(b"scale/big-list/", 10);
    let lists = vec![
        list(
            env,
            &cluster,
            "paginated",
            &paginated,
            args.list_objects,
            common.val_size as u64,
            LIMIT,
        )
        .await?,
        list(
            env,
            &cluster,
            "unpaginated",
            &unpaginated,
            args.big_list_objects,
            args.big_list_val_size,
            0,
        )
        .await?,
    ];
    Ok(ListsRun {
        label: server.label.clone(),
        version,
        member: cluster.members[0].name.clone(),
        leader: id == leader,
        lists,
    })
}

/// Loads `objects` of `value_size` into `space`, then lists them on the
/// first member in pages of `limit` (0: one Range).
async fn list(
    env: &Env<'_>,
    cluster: &Cluster,
    name: &str,
    space: &KeySpace,
    objects: u64,
    value_size: u64,
    limit: i64,
) -> anyhow::Result<List> {
    let label = &cluster.label;
    let args = env.args;
    eprintln!("scale lists: {label}: loading {objects} objects of {value_size} B for the {name} list");
    let started = Instant::now();
    let pool = Pool::connect(&cluster.endpoints(), args.load_clients.min(8), None).await?;
    let shape = Shape {
        value_size: value_size as usize,
        clients: args.load_clients,
        // At most 256 KiB per Txn: far under etcd's default
        // --max-request-bytes (1.5 MiB), and small raft entries.
        batch: args.batch.min((256 << 10) / value_size.max(1) as usize).max(1),
    };
    let progress = Progress::new(!env.common.json, Some(objects), &format!("{label} load"));
    let load = bulk::put(
        &pool,
        space,
        Keys::Fresh,
        &shape,
        Until::Puts(objects),
        0x1157,
        &progress,
    )
    .await?;
    progress.finish();
    drop(pool);
    let load_secs = started.elapsed().as_secs_f64();
    // The list is timed on a settled cluster: a follower still applying
    // the load would make its first linearizable page wait for that.
    let catch_up_secs = caught_up(cluster, CATCH_UP).await?.as_secs_f64();
    eprintln!("scale lists: {label}: every member applied the load {catch_up_secs:.3} s after it ended");

    let member = &cluster.members[0];
    let mut kv = KvClient::new(control(&member.endpoint).await?).max_decoding_message_size(usize::MAX);
    eprintln!(
        "scale lists: {label}: the {name} list of {objects} objects on {}",
        member.name
    );
    let sampler = Sampler::start(member.pid());
    let started = Instant::now();
    let answer = k8s_list::list(&mut kv, &space.prefix, &space.end(), limit).await;
    let secs = started.elapsed().as_secs_f64();
    let memory = sampler.stop().await;
    let (listed, pages, error) = match answer {
        Ok((listed, pages)) => (listed, pages, None),
        Err(status) => (0, 0, Some(status_text(&status))),
    };
    eprintln!(
        "scale lists: {label}: {name}: {listed} objects in {pages} pages, {secs:.3} s{}",
        error.as_ref().map_or(String::new(), |e| format!(", error: {e}"))
    );
    Ok(List {
        name: name.into(),
        objects,
        value_size,
        load_secs,
        load_retries: load.retries,
        catch_up_secs,
        listed,
        pages,
        secs,
        error,
        memory,
    })
}
