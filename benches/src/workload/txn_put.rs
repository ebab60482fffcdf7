//! `txn-put`: a Txn without compares whose success branch puts `--txn-ops`
//! distinct keys (consecutive indexes from the drawn one, wrapping).

use anyhow::bail;
use timon_proto::etcdserverpb::kv_client::KvClient;
use timon_proto::etcdserverpb::request_op::Request;
use timon_proto::etcdserverpb::{PutRequest, RequestOp, TxnRequest};
use tonic::transport::Channel;

use crate::conns::Pool;
use crate::keys::{self, KeyGen};
use crate::options::Common;
use crate::progress::Progress;
use crate::report::Report;
use crate::runner::{self, Client, Outcome};

struct TxnPutter {
    kv: KvClient<Channel>,
    keys: KeyGen,
    ops: u64,
    space: u64,
    value: Vec<u8>,
}

impl Client for TxnPutter {
    async fn call(&mut self, seq: u64) -> Result<Outcome, tonic::Status> {
        let first = self.keys.index(seq);
        let success = (0..self.ops)
            .map(|j| RequestOp {
                request: Some(Request::RequestPut(PutRequest {
                    key: self.keys.key_at((first + j) % self.space),
                    value: self.value.clone(),
                    ..Default::default()
                })),
            })
            .collect();
        self.kv
            .txn(TxnRequest {
                success,
                ..Default::default()
            })
            .await?;
        Ok(Outcome::Done)
    }
}

pub async fn run(c: &Common, pool: &Pool, progress: &Progress, txn_ops: usize) -> anyhow::Result<Report> {
    if txn_ops == 0 || txn_ops as u64 > c.key_space_size {
        bail!(
            "--txn-ops {txn_ops} must be between 1 and --key-space-size {}",
            c.key_space_size
        );
    }
    let clients = (0..c.clients)
        .map(|i| TxnPutter {
            kv: pool.kv(i),
            keys: KeyGen::new(b"", c.key_size, c.key_space_size, c.sequential_keys, i),
            ops: txn_ops as u64,
            space: c.key_space_size,
            value: keys::value(c.val_size),
        })
        .collect();
    let (rec, took) = runner::run(clients, super::stop(c), c.rate, progress).await?;
    Ok(Report::new("txn-put", rec, took))
}
