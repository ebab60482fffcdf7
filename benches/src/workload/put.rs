//! `put`: one Put per request, key from the key space, value of `--val-size`.

use timon_proto::etcdserverpb::kv_client::KvClient;
use timon_proto::etcdserverpb::PutRequest;
use tonic::transport::Channel;

use crate::conns::Pool;
use crate::keys::{self, KeyGen};
use crate::options::Common;
use crate::progress::Progress;
use crate::report::Report;
use crate::runner::{self, Client, Outcome};

struct Putter {
    kv: KvClient<Channel>,
    keys: KeyGen,
    value: Vec<u8>,
}

impl Client for Putter {
    async fn call(&mut self, seq: u64) -> Result<Outcome, tonic::Status> {
        let req = PutRequest {
            key: self.keys.next(seq),
            value: self.value.clone(),
            ..Default::default()
        };
        self.kv.put(req).await?;
        Ok(Outcome::Done)
    }
}

pub async fn run(c: &Common, pool: &Pool, progress: &Progress) -> anyhow::Result<Report> {
    let clients = (0..c.clients)
        .map(|i| Putter {
            kv: pool.kv(i),
            keys: KeyGen::new(b"", c.key_size, c.key_space_size, c.sequential_keys, i),
            value: keys::value(c.val_size),
        })
        .collect();
    let (rec, took) = runner::run(clients, super::stop(c), c.rate, progress).await?;
    Ok(Report::new("put", rec, took))
}
