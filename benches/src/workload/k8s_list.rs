//! `k8s-list`: the Kubernetes apiserver's paginated list. One request is a
//! whole list of the prefix (`--key-space-size` objects): pages of `--limit`,
//! the revision of page 1 pinned for the rest, each next page starting at
//! the last key + "\0". Latency covers every page; the report notes `pages`.
//! A list that does not return every populated object is an error.

use timon_proto::etcdserverpb::kv_client::KvClient;
use timon_proto::etcdserverpb::RangeRequest;
use tonic::transport::Channel;

use super::populate;
use crate::conns::Pool;
use crate::keys;
use crate::options::Common;
use crate::progress::Progress;
use crate::recorder::Recorder;
use crate::report::Report;
use crate::runner::{self, Client, Outcome};

/// Where the listed objects live.
pub const PREFIX: &[u8] = b"/registry/list/";

struct Lister {
    kv: KvClient<Channel>,
    end: Vec<u8>,
    limit: i64,
    expect: u64,
}

impl Client for Lister {
    async fn call(&mut self, _seq: u64) -> Result<Outcome, tonic::Status> {
        let (seen, _pages) = list(&mut self.kv, PREFIX, &self.end, self.limit).await?;
        if seen != self.expect {
            return Err(tonic::Status::data_loss(format!(
                "listed {seen} objects, expected {}",
                self.expect
            )));
        }
        Ok(Outcome::Done)
    }
}

/// One whole list of `[start, end)` as the apiserver pages it: pages of
/// `limit` (0: one page), page 1 at the current revision and the rest
/// pinned to it, each next page from the last key + "\0". Returns the
/// objects and the pages.
pub async fn list(
    kv: &mut KvClient<Channel>,
    start: &[u8],
    end: &[u8],
    limit: i64,
) -> Result<(u64, u64), tonic::Status> {
    let (mut key, mut revision, mut seen, mut pages) = (start.to_vec(), 0, 0u64, 0u64);
    loop {
        let resp = kv
            .range(RangeRequest {
                key: key.clone(),
                range_end: end.to_vec(),
                limit,
                revision,
                ..Default::default()
            })
            .await?
            .into_inner();
        pages += 1;
        if revision == 0 {
            revision = resp.header.as_ref().map_or(0, |h| h.revision);
        }
        seen += resp.kvs.len() as u64;
        match resp.kvs.last() {
            Some(last) if resp.more => {
                key = last.key.clone();
                key.push(0);
            }
            _ => return Ok((seen, pages)),
        }
    }
}

pub async fn run(c: &Common, pool: &Pool, progress: &Progress, limit: i64) -> anyhow::Result<Report> {
    populate::keys(
        pool,
        c.clients,
        PREFIX,
        c.key_size,
        c.key_space_size,
        &keys::value(c.val_size),
    )
    .await?;
    let end = keys::prefix_end(PREFIX);
    let clients: Vec<Lister> = (0..c.clients)
        .map(|i| Lister {
            kv: pool.kv(i),
            end: end.clone(),
            limit,
            expect: c.key_space_size,
        })
        .collect();
    let (mut rec, took) = runner::run(clients, super::stop(c), c.rate, progress).await?;
    // Every successful list returned all n objects: ceil(n / limit) pages.
    let per_list = if limit > 0 {
        c.key_space_size.div_ceil(limit as u64).max(1)
    } else {
        1
    };
    let mut pages = Recorder::default();
    pages.note("pages", rec.hist.len() * per_list);
    rec.merge(pages);
    Ok(Report::new("k8s-list", rec, took))
}
