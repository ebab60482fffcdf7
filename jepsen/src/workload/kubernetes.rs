//! The `kubernetes` workload: etcd traffic as the Kubernetes apiserver
//! makes it (DESIGN.md, "How Kubernetes uses it"), on a few objects
//! `jepsen/k8s/pods/NN` with unique values:
//!
//! - create: Txn if create_revision(key) == 0 then Put else Range,
//!   recorded as a cas expecting mod_revision 0 (the same condition);
//! - update: Get, then Txn if mod_revision == the one read then Put else
//!   Range, recorded as a read and a cas;
//! - delete: Get, then Txn if mod_revision == the one read then DeleteRange
//!   else Range, recorded as a read and a guarded delete;
//! - list: Range over the prefix with a limit, then each next page from
//!   the last key + "\0" pinned to the first page's revision, until `more`
//!   is false; a completed list is a [`RecordedList`] for `check::list`.
//!
//! So the linearizability checker sees every object as a register with
//! guarded writes and deletes, and the list checker sees the snapshots.
//! Clients are bound to one member each and continue as a new process
//! after an `Info`, as in the register workload.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use timon_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use timon_proto::etcdserverpb::kv_client::KvClient;
use timon_proto::etcdserverpb::request_op::Request;
use timon_proto::etcdserverpb::{Compare, RangeRequest};
use tokio::time::Instant;
use tonic::transport::Channel;

use crate::check::list::{ListItem, RecordedList};
use crate::cluster::Endpoint;
use crate::history::{Kind, Op};
use crate::recorder::Recorder;
use crate::workload::register::{self, Done};

/// Workload parameters.
#[derive(Debug, Clone)]
pub struct Config {
    pub clients: usize,
    pub objects: usize,
    /// The list page size (Range limit).
    pub page: i64,
    /// A request not answered within this is abandoned (Info for writes).
    pub op_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            clients: 5,
            objects: 8,
            page: 3,
            op_timeout: Duration::from_secs(2),
        }
    }
}

/// Every object: `[PREFIX, RANGE_END)`.
pub const PREFIX: &str = "jepsen/k8s/pods/";
/// `PREFIX` with its last byte ('/') + 1.
pub const RANGE_END: &str = "jepsen/k8s/pods0";

/// The name of object `i`.
pub fn key(i: usize) -> String {
    format!("{PREFIX}{i:02}")
}

/// Runs `cfg.clients` clients (client i on member i mod n) until
/// `deadline`; answers every completed list.
pub async fn run(
    endpoints: &[Endpoint],
    cfg: &Config,
    rec: &Recorder,
    seed: u64,
    deadline: Instant,
) -> anyhow::Result<Vec<RecordedList>> {
    let values = Arc::new(AtomicU64::new(1));
    let mut tasks = Vec::new();
    for c in 0..cfg.clients {
        let client = Client {
            process: c as i64,
            kv: register::client(&endpoints[c % endpoints.len()])?,
            cfg: cfg.clone(),
            rec: rec.clone(),
            values: values.clone(),
        };
        let rng = StdRng::seed_from_u64(seed.wrapping_mul(1_000_033).wrapping_add(c as u64));
        tasks.push(tokio::spawn(client.run(rng, deadline)));
    }
    let mut lists = Vec::new();
    for t in tasks {
        lists.extend(t.await?);
    }
    lists.sort_by_key(|l| l.invoke);
    Ok(lists)
}

struct Client {
    process: i64,
    kv: KvClient<Channel>,
    cfg: Config,
    rec: Recorder,
    values: Arc<AtomicU64>,
}

impl Client {
    async fn run(mut self, mut rng: StdRng, deadline: Instant) -> Vec<RecordedList> {
        let mut lists = Vec::new();
        while Instant::now() < deadline {
            let k = key(rng.gen_range(0..self.cfg.objects));
            let roll: f64 = rng.gen();
            if roll < 0.3 {
                match self.list().await {
                    Ok(l) => lists.push(l),
                    Err(refused) => self.back_off(refused).await,
                }
            } else if roll < 0.5 {
                let value = self.values.fetch_add(1, Ordering::Relaxed);
                let op = Op::Cas {
                    key: k.clone(),
                    expect: 0,
                    value,
                };
                let created = Compare {
                    result: CompareResult::Equal as i32,
                    target: CompareTarget::Create as i32,
                    key: k.as_bytes().to_vec(),
                    target_union: Some(TargetUnion::CreateRevision(0)),
                    range_end: Vec::new(),
                };
                let put = Request::RequestPut(register::put(&k, value));
                self.invoke(&op);
                let request = register::guarded(&mut self.kv, &op, created, put);
                let done = register::classify(false, self.cfg.op_timeout, request).await;
                self.complete(op, done).await;
            } else {
                let read = Op::Read {
                    key: k.clone(),
                    value: None,
                    mod_revision: None,
                };
                self.invoke(&read);
                let done = register::execute(&mut self.kv, &read, self.cfg.op_timeout).await;
                let Some(Op::Read {
                    mod_revision: Some(m), ..
                }) = self.complete(read, done).await
                else {
                    continue;
                };
                let op = if roll < 0.85 {
                    Op::Cas {
                        key: k,
                        expect: m,
                        value: self.values.fetch_add(1, Ordering::Relaxed),
                    }
                } else {
                    Op::Delete { key: k, expect: m }
                };
                self.invoke(&op);
                let done = register::execute(&mut self.kv, &op, self.cfg.op_timeout).await;
                self.complete(op, done).await;
            }
        }
        lists
    }

    fn invoke(&self, op: &Op) {
        self.rec.record(self.process, Kind::Invoke, op.clone(), None, None);
    }

    /// Records how `op` ended; answers the completed op when it succeeded
    /// (a read carries its result).
    async fn complete(&mut self, op: Op, done: Done) -> Option<Op> {
        let refused = matches!(&done, Done::Fail(_, e) if e.contains("refused"));
        let mut answer = None;
        match done {
            Done::Ok(op, rev) => {
                answer = Some(op.clone());
                self.rec.record(self.process, Kind::Ok, op, rev, None);
            }
            Done::CasMismatch(_, rev) => {
                self.rec
                    .record(self.process, Kind::Fail, op, rev, Some("compare failed".into()))
            }
            Done::Fail(rev, e) => self.rec.record(self.process, Kind::Fail, op, rev, Some(e)),
            Done::Info(e) => {
                self.rec.record(self.process, Kind::Info, op, None, Some(e));
                self.process += self.cfg.clients as i64;
            }
        }
        self.back_off(refused).await;
        answer
    }

    /// The member is down: do not spin on refused connections.
    async fn back_off(&self, refused: bool) {
        if refused {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// One paginated list; `Err(refused)` when a page failed.
    async fn list(&mut self) -> Result<RecordedList, bool> {
        let invoke = self.rec.now();
        let mut items: Vec<ListItem> = Vec::new();
        let (mut revision, mut pages) = (0, 0);
        let mut from = PREFIX.as_bytes().to_vec();
        loop {
            let req = RangeRequest {
                key: from,
                range_end: RANGE_END.as_bytes().to_vec(),
                limit: self.cfg.page,
                revision: if pages == 0 { 0 } else { revision },
                ..Default::default()
            };
            let page = match tokio::time::timeout(self.cfg.op_timeout, self.kv.range(req)).await {
                Ok(Ok(r)) => r.into_inner(),
                Ok(Err(status)) => return Err(register::describe(&status).contains("refused")),
                Err(_) => return Err(false),
            };
            if pages == 0 {
                revision = page.header.map_or(0, |h| h.revision);
            }
            pages += 1;
            for kv in &page.kvs {
                items.push(ListItem {
                    key: String::from_utf8_lossy(&kv.key).into_owned(),
                    value: register::parse_value(&kv.value).ok(),
                    mod_revision: kv.mod_revision,
                });
            }
            let Some(last) = page.kvs.last().filter(|_| page.more) else {
                break;
            };
            from = last.key.clone();
            from.push(0);
        }
        Ok(RecordedList {
            process: self.process,
            prefix: PREFIX.into(),
            range_end: RANGE_END.into(),
            invoke,
            complete: self.rec.now(),
            revision,
            pages,
            items,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_keys_sort_by_number_inside_the_range() {
        let keys: Vec<String> = (0..12).map(key).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        assert!(keys.iter().all(|k| k.as_str() >= PREFIX && k.as_str() < RANGE_END));
    }
}
