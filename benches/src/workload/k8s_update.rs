//! `k8s-update`: the Kubernetes apiserver's optimistic update. Each request
//! is a Range of one object followed by `Txn(if mod_revision(key) == R then
//! Put else Range)`; latency covers both round trips. A failed compare (two
//! clients raced for the key) is a successful request noted as `conflicts`.

use timon_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use timon_proto::etcdserverpb::kv_client::KvClient;
use timon_proto::etcdserverpb::request_op::Request;
use timon_proto::etcdserverpb::{Compare, PutRequest, RangeRequest, RequestOp, TxnRequest};
use tonic::transport::Channel;

use super::populate;
use crate::conns::Pool;
use crate::keys::{self, KeyGen};
use crate::options::Common;
use crate::progress::Progress;
use crate::report::Report;
use crate::runner::{self, Client, Outcome};

/// Where the objects live, shaped like the apiserver's keys.
pub const PREFIX: &[u8] = b"/registry/bench/";

struct Updater {
    kv: KvClient<Channel>,
    keys: KeyGen,
    value: Vec<u8>,
}

impl Client for Updater {
    async fn call(&mut self, seq: u64) -> Result<Outcome, tonic::Status> {
        let key = self.keys.next(seq);
        let got = self
            .kv
            .range(RangeRequest {
                key: key.clone(),
                ..Default::default()
            })
            .await?
            .into_inner();
        let rev = got.kvs.first().map_or(0, |kv| kv.mod_revision);
        let txn = TxnRequest {
            compare: vec![Compare {
                result: CompareResult::Equal as i32,
                target: CompareTarget::Mod as i32,
                key: key.clone(),
                range_end: Vec::new(),
                target_union: Some(TargetUnion::ModRevision(rev)),
            }],
            success: vec![RequestOp {
                request: Some(Request::RequestPut(PutRequest {
                    key: key.clone(),
                    value: self.value.clone(),
                    ..Default::default()
                })),
            }],
            failure: vec![RequestOp {
                request: Some(Request::RequestRange(RangeRequest {
                    key,
                    ..Default::default()
                })),
            }],
        };
        let resp = self.kv.txn(txn).await?.into_inner();
        Ok(if resp.succeeded {
            Outcome::Done
        } else {
            Outcome::Noted("conflicts")
        })
    }
}

pub async fn run(c: &Common, pool: &Pool, progress: &Progress) -> anyhow::Result<Report> {
    let value = keys::value(c.val_size);
    populate::keys(pool, c.clients, PREFIX, c.key_size, c.key_space_size, &value).await?;
    let clients = (0..c.clients)
        .map(|i| Updater {
            kv: pool.kv(i),
            keys: KeyGen::new(PREFIX, c.key_size, c.key_space_size, c.sequential_keys, i),
            value: value.clone(),
        })
        .collect();
    let (rec, took) = runner::run(clients, super::stop(c), c.rate, progress).await?;
    Ok(Report::new("k8s-update", rec, took))
}
