//! `range`: one single-key Range per request over a populated key space,
//! linearizable (`--consistency l`, ReadIndex) or serializable (`s`).

use anyhow::bail;
use timon_proto::etcdserverpb::kv_client::KvClient;
use timon_proto::etcdserverpb::RangeRequest;
use tonic::transport::Channel;

use super::{populate, Consistency};
use crate::conns::Pool;
use crate::keys::{self, KeyGen};
use crate::options::Common;
use crate::progress::Progress;
use crate::report::Report;
use crate::runner::{self, Client, Outcome};

struct Reader {
    kv: KvClient<Channel>,
    keys: KeyGen,
    serializable: bool,
}

impl Client for Reader {
    async fn call(&mut self, seq: u64) -> Result<Outcome, tonic::Status> {
        let req = RangeRequest {
            key: self.keys.next(seq),
            serializable: self.serializable,
            ..Default::default()
        };
        let resp = self.kv.range(req).await?.into_inner();
        if resp.kvs.len() != 1 {
            // Every key was populated: a miss means the read was wrong.
            return Err(tonic::Status::data_loss(format!(
                "expected 1 key, got {}",
                resp.kvs.len()
            )));
        }
        Ok(Outcome::Done)
    }
}

pub async fn run(c: &Common, pool: &Pool, progress: &Progress, consistency: Consistency) -> anyhow::Result<Report> {
    if c.key_space_size > 10_000_000 {
        bail!(
            "range populates the whole key space first; --key-space-size {} is too big",
            c.key_space_size
        );
    }
    populate::keys(
        pool,
        c.clients,
        b"",
        c.key_size,
        c.key_space_size,
        &keys::value(c.val_size),
    )
    .await?;
    let clients = (0..c.clients)
        .map(|i| Reader {
            kv: pool.kv(i),
            keys: KeyGen::new(b"", c.key_size, c.key_space_size, c.sequential_keys, i),
            serializable: consistency == Consistency::S,
        })
        .collect();
    let (rec, took) = runner::run(clients, super::stop(c), c.rate, progress).await?;
    Ok(Report::new("range", rec, took))
}
