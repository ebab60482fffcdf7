//! `delete`: one DeleteRange of one key per request, as the apiserver
//! deletes an object. Keys come from the key space whether or not they
//! exist (a delete of nothing still goes through raft and apply).

use timon_proto::etcdserverpb::kv_client::KvClient;
use timon_proto::etcdserverpb::DeleteRangeRequest;
use tonic::transport::Channel;

use crate::conns::Pool;
use crate::keys::KeyGen;
use crate::options::Common;
use crate::progress::Progress;
use crate::report::Report;
use crate::runner::{self, Client, Outcome};

struct Deleter {
    kv: KvClient<Channel>,
    keys: KeyGen,
}

impl Client for Deleter {
    async fn call(&mut self, seq: u64) -> Result<Outcome, tonic::Status> {
        let req = DeleteRangeRequest {
            key: self.keys.next(seq),
            ..Default::default()
        };
        self.kv.delete_range(req).await?;
        Ok(Outcome::Done)
    }
}

pub async fn run(c: &Common, pool: &Pool, progress: &Progress) -> anyhow::Result<Report> {
    let clients = (0..c.clients)
        .map(|i| Deleter {
            kv: pool.kv(i),
            keys: KeyGen::new(b"", c.key_size, c.key_space_size, c.sequential_keys, i),
        })
        .collect();
    let (rec, took) = runner::run(clients, super::stop(c), c.rate, progress).await?;
    Ok(Report::new("delete", rec, took))
}
