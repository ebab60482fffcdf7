//! Differential test: a seeded random sequence of KV requests goes to real
//! etcd and to timon, and every response must be identical, apart from the
//! outer header's cluster_id, member_id and raft_term. Errors must carry the
//! same gRPC code and message. Both servers start empty, so revisions must
//! match exactly.
//!
//! Every 100 requests, and for every retained revision at the end, HashKV
//! must answer the same on both (etcd's hash of the MVCC history).
//!
//! Reproduce a failure with the printed seed: `DIFF_SEED=<seed>`; change the
//! length with `DIFF_OPS=<n>` (default 2000); leave out request categories
//! with `DIFF_SKIP=grpc-limit,compact,txn`. `TIMON_DIFF_TARGET=etcd`
//! compares etcd with a second etcd, which proves the harness itself sound.
//!
//! The generator keeps to requests whose etcd answer is deterministic: sorts
//! on a target other than KEY (which can tie) only over ranges that can hold
//! at most 12 keys, because etcd's Go sort is an insertion sort (stable) up
//! to 12 elements and an unstable pdqsort above.

mod support;

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use timon_proto::etcdserverpb::compare::{CompareTarget, TargetUnion};
use timon_proto::etcdserverpb::kv_client::KvClient;
use timon_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use timon_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use timon_proto::etcdserverpb::request_op::Request;
use timon_proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, Compare, DeleteRangeRequest, DeleteRangeResponse, HashKvRequest, PutRequest,
    PutResponse, RangeRequest, RangeResponse, RequestOp, ResponseHeader, TxnRequest, TxnResponse,
};
use tonic::transport::Channel;

/// A small key space so that requests collide: prefixes of each other, keys
/// with NUL and 0xff bytes, neighbours in byte order.
const KEYS: &[&[u8]] = &[
    b"\x00",
    b"\x01",
    b"a",
    b"a/",
    b"a/b",
    b"a/b/c",
    b"a/c",
    b"a\x00",
    b"ab",
    b"b",
    b"b\x00",
    b"b/x",
    b"c",
    b"foo",
    b"foo/bar",
    b"foo0",
    b"z",
    b"\xfe",
    b"\xff",
    b"\xff\xff",
];

const VALUES: &[&[u8]] = &[b"", b"v1", b"v2", b"x", b"\x00", b"zz", b"\xff", b"v1\x00"];

/// etcd's --max-request-bytes default is 1.5 MiB; gRPC accepts up to 512 KiB
/// more before rejecting the message itself.
const TOO_LARGE_FOR_RAFT: usize = 1024 * 1024 + 600 * 1024;
const TOO_LARGE_FOR_GRPC: usize = 2 * 1024 * 1024 + 512 * 1024;

#[derive(Debug, Clone)]
enum Op {
    Range(RangeRequest),
    Put(PutRequest),
    Delete(DeleteRangeRequest),
    Txn(TxnRequest),
    Compact(CompactionRequest),
}

#[derive(Debug, PartialEq)]
enum Outcome {
    Range(RangeResponse),
    Put(PutResponse),
    Delete(DeleteRangeResponse),
    Txn(TxnResponse),
    Compact(CompactionResponse),
    Error { code: tonic::Code, message: String },
}

impl Outcome {
    /// The store revision a successful response reports.
    fn revision(&self) -> Option<i64> {
        let header = match self {
            Outcome::Range(r) => r.header.as_ref(),
            Outcome::Put(r) => r.header.as_ref(),
            Outcome::Delete(r) => r.header.as_ref(),
            Outcome::Txn(r) => r.header.as_ref(),
            Outcome::Compact(r) => r.header.as_ref(),
            Outcome::Error { .. } => None,
        };
        header.map(|h| h.revision)
    }
}

/// Clears the fields of the outer header that legitimately differ between
/// two clusters. Inner (txn) headers are compared untouched.
fn normalise(header: &mut Option<ResponseHeader>) {
    if let Some(h) = header.as_mut() {
        h.cluster_id = 0;
        h.member_id = 0;
        h.raft_term = 0;
    }
}

fn outcome<T>(result: Result<tonic::Response<T>, tonic::Status>, wrap: impl FnOnce(T) -> Outcome) -> Outcome {
    match result {
        Ok(resp) => {
            let mut out = wrap(resp.into_inner());
            match &mut out {
                Outcome::Range(r) => normalise(&mut r.header),
                Outcome::Put(r) => normalise(&mut r.header),
                Outcome::Delete(r) => normalise(&mut r.header),
                Outcome::Txn(r) => normalise(&mut r.header),
                Outcome::Compact(r) => normalise(&mut r.header),
                Outcome::Error { .. } => {}
            }
            out
        }
        Err(status) => Outcome::Error {
            code: status.code(),
            message: status.message().to_string(),
        },
    }
}

async fn send(kv: &mut KvClient<Channel>, op: &Op) -> Outcome {
    match op.clone() {
        Op::Range(r) => outcome(kv.range(r).await, Outcome::Range),
        Op::Put(r) => outcome(kv.put(r).await, Outcome::Put),
        Op::Delete(r) => outcome(kv.delete_range(r).await, Outcome::Delete),
        Op::Txn(r) => outcome(kv.txn(r).await, Outcome::Txn),
        Op::Compact(r) => outcome(kv.compact(r).await, Outcome::Compact),
    }
}

/// The end of the range holding every key that starts with `key` (etcd's
/// clientv3 GetPrefixRangeEnd): "\0" (everything from `key`) if `key` is all
/// 0xff bytes.
fn prefix_end(key: &[u8]) -> Vec<u8> {
    let mut end = key.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// How many keys of [`KEYS`] the interval can hold: an upper bound on how
/// many keys a range over it returns.
fn coverage(key: &[u8], range_end: &[u8]) -> usize {
    KEYS.iter()
        .filter(|k| match range_end {
            [] => **k == key,
            [0] => **k >= key,
            end => **k >= key && **k < end,
        })
        .count()
}

/// Requests generator; tracks the revisions the reference etcd reported so
/// that it can aim at current, old, compacted and future revisions.
struct Gen {
    rng: StdRng,
    current_rev: i64,
    /// etcd's compactMainRev: -1 until the first successful compaction.
    compact_rev: i64,
    /// Categories of requests to leave out while a known difference is
    /// being fixed (`DIFF_SKIP=grpc-limit,compact,txn`).
    skip: Vec<String>,
}

impl Gen {
    fn chance(&mut self, percent: u32) -> bool {
        self.rng.gen_range(0..100) < percent
    }

    fn key(&mut self) -> Vec<u8> {
        KEYS[self.rng.gen_range(0..KEYS.len())].to_vec()
    }

    fn value(&mut self) -> Vec<u8> {
        match self.rng.gen_range(0..10) {
            0..=6 => VALUES[self.rng.gen_range(0..VALUES.len())].to_vec(),
            7..=8 => {
                let len = self.rng.gen_range(0..12);
                (0..len).map(|_| self.rng.gen()).collect()
            }
            _ => vec![b'v'; self.rng.gen_range(100..3000)],
        }
    }

    /// A key and a range end: single key, prefix, from-key ("\0"), another
    /// key (possibly below `key`, giving an empty range) or "\xff".
    fn interval(&mut self) -> (Vec<u8>, Vec<u8>) {
        let key = self.key();
        let end = match self.rng.gen_range(0..10) {
            0..=3 => Vec::new(),
            4..=5 => prefix_end(&key),
            6 => vec![0],
            7..=8 => self.key(),
            _ => vec![0xff],
        };
        if self.chance(3) {
            return (vec![0], vec![0]); // every key
        }
        (key, end)
    }

    /// A revision to read at: mostly valid, sometimes current, future,
    /// compacted or negative (which etcd treats as "current" in Range but as
    /// "compacted" in a txn once anything is compacted).
    fn read_rev(&mut self, sane: bool) -> i64 {
        let low = self.compact_rev.max(1);
        let roll = self.rng.gen_range(0..100);
        if sane || roll < 40 {
            return match self.rng.gen_range(0..3) {
                0 => 0,
                1 => self.current_rev,
                _ => self.rng.gen_range(low..=self.current_rev.max(low)),
            };
        }
        match roll {
            40..=69 => self.rng.gen_range(low..=self.current_rev.max(low)),
            70..=79 => self.current_rev + self.rng.gen_range(1..=3),
            80..=91 if self.compact_rev > 1 => self.rng.gen_range(1..self.compact_rev),
            80..=91 => 0,
            _ => -self.rng.gen_range(1..=3),
        }
    }

    fn range(&mut self, sane: bool) -> RangeRequest {
        let (key, range_end) = self.interval();
        let mut sort_target = self.rng.gen_range(0..5);
        if sort_target != SortTarget::Key as i32 && coverage(&key, &range_end) > 12 {
            sort_target = SortTarget::Key as i32;
        }
        let limit = match self.rng.gen_range(0..10) {
            0..=5 => 0,
            6..=8 => self.rng.gen_range(1..=5),
            _ => *[-1, 100].get(self.rng.gen_range(0..2)).unwrap_or(&0),
        };
        let mut rev_bound = || {
            if self.chance(85) {
                0
            } else {
                self.rng.gen_range(1..=self.current_rev.max(1) + 1)
            }
        };
        let min_mod_revision = rev_bound();
        let max_mod_revision = rev_bound();
        let min_create_revision = rev_bound();
        let max_create_revision = rev_bound();
        RangeRequest {
            key,
            range_end,
            limit,
            revision: self.read_rev(sane),
            sort_order: if self.chance(60) {
                SortOrder::None as i32
            } else {
                self.rng.gen_range(1..=2)
            },
            sort_target,
            serializable: self.chance(30),
            keys_only: self.chance(20),
            count_only: self.chance(15),
            min_mod_revision,
            max_mod_revision,
            min_create_revision,
            max_create_revision,
        }
    }

    fn put(&mut self, key: Vec<u8>, sane: bool) -> PutRequest {
        let ignore_value = self.chance(if sane { 0 } else { 6 });
        let ignore_lease = self.chance(if sane { 0 } else { 6 });
        // ignore_value wants no value; sometimes send one anyway (an error).
        let value = if ignore_value && self.chance(70) {
            Vec::new()
        } else {
            self.value()
        };
        PutRequest {
            key,
            value,
            lease: 0,
            prev_kv: self.chance(35),
            ignore_value,
            ignore_lease,
        }
    }

    fn delete(&mut self) -> DeleteRangeRequest {
        let (key, range_end) = self.interval();
        DeleteRangeRequest {
            key,
            range_end,
            prev_kv: self.chance(40),
        }
    }

    fn compare(&mut self) -> Compare {
        let (key, range_end) = if self.chance(20) {
            self.interval()
        } else {
            (self.key(), Vec::new())
        };
        let target = self.rng.gen_range(0..5);
        let rev_near = |g: &mut Gen| {
            if g.chance(30) {
                0
            } else {
                g.rng.gen_range(0..=g.current_rev + 1)
            }
        };
        let mut union = match CompareTarget::try_from(target).unwrap_or(CompareTarget::Version) {
            CompareTarget::Version => TargetUnion::Version(self.rng.gen_range(0..4)),
            CompareTarget::Create => TargetUnion::CreateRevision(rev_near(self)),
            CompareTarget::Mod => TargetUnion::ModRevision(rev_near(self)),
            CompareTarget::Value => TargetUnion::Value(self.value()),
            CompareTarget::Lease => TargetUnion::Lease(self.rng.gen_range(0..2)),
        };
        // A union that does not match the target compares against zero.
        if self.chance(8) {
            union = TargetUnion::Version(1);
        }
        Compare {
            result: self.rng.gen_range(0..4),
            target,
            key,
            range_end,
            target_union: if self.chance(3) { None } else { Some(union) },
        }
    }

    /// Txn ops. In a "clean" txn, put keys never repeat or fall in a delete
    /// interval anywhere in the tree, so etcd accepts it; otherwise anything
    /// goes (duplicate keys, ignore_value puts, bad revisions).
    fn ops(
        &mut self,
        depth: u32,
        clean: bool,
        puts: &mut Vec<Vec<u8>>,
        dels: &mut Vec<(Vec<u8>, Vec<u8>)>,
    ) -> Vec<RequestOp> {
        let n = self.rng.gen_range(0..=4);
        let mut ops = Vec::with_capacity(n);
        for _ in 0..n {
            let request = match self.rng.gen_range(0..100) {
                0..=34 => Request::RequestRange(self.range(clean)),
                35..=69 => {
                    let key = self.key();
                    if clean && (puts.contains(&key) || dels.iter().any(|(k, e)| in_interval(&key, k, e))) {
                        Request::RequestRange(self.range(clean))
                    } else {
                        puts.push(key.clone());
                        Request::RequestPut(self.put(key, clean))
                    }
                }
                70..=89 => {
                    let del = self.delete();
                    if clean && puts.iter().any(|p| in_interval(p, &del.key, &del.range_end)) {
                        Request::RequestRange(self.range(clean))
                    } else {
                        dels.push((del.key.clone(), del.range_end.clone()));
                        Request::RequestDeleteRange(del)
                    }
                }
                _ if depth < 2 => Request::RequestTxn(self.txn_with(depth + 1, clean, puts, dels)),
                _ => Request::RequestRange(self.range(clean)),
            };
            ops.push(RequestOp { request: Some(request) });
        }
        ops
    }

    fn txn_with(
        &mut self,
        depth: u32,
        clean: bool,
        puts: &mut Vec<Vec<u8>>,
        dels: &mut Vec<(Vec<u8>, Vec<u8>)>,
    ) -> TxnRequest {
        let compare = (0..self.rng.gen_range(0..=3)).map(|_| self.compare()).collect();
        let success = self.ops(depth, clean, puts, dels);
        let failure = self.ops(depth, clean, puts, dels);
        TxnRequest {
            compare,
            success,
            failure,
        }
    }

    fn txn(&mut self) -> TxnRequest {
        let clean = self.chance(70);
        let mut txn = self.txn_with(0, clean, &mut Vec::new(), &mut Vec::new());
        // etcd checks ignore_value/ignore_lease against the state before the
        // txn, so a txn that deletes a key and then puts it with an ignore
        // flag passes the check and then panics etcd 3.4 mid-apply
        // ("unexpected error during txn"). Never send that.
        if has_delete(&txn) {
            clear_ignore_flags(&mut txn);
        }
        txn
    }

    /// Txns that etcd rejects before applying (or that sit on a limit).
    fn bad_txn(&mut self) -> TxnRequest {
        let range_a = || RequestOp {
            request: Some(Request::RequestRange(RangeRequest {
                key: b"a".to_vec(),
                ..Default::default()
            })),
        };
        let put = |k: &[u8]| RequestOp {
            request: Some(Request::RequestPut(PutRequest {
                key: k.to_vec(),
                value: b"d".to_vec(),
                ..Default::default()
            })),
        };
        match self.rng.gen_range(0..9) {
            // 129 ops: too many.
            0 => TxnRequest {
                success: (0..129).map(|_| range_a()).collect(),
                ..Default::default()
            },
            // Exactly 128 ops in failure and 128 compares: accepted.
            1 => TxnRequest {
                compare: (0..128)
                    .map(|_| Compare {
                        key: b"a".to_vec(),
                        target: 2,
                        result: 1,
                        target_union: Some(TargetUnion::ModRevision(0)),
                        ..Default::default()
                    })
                    .collect(),
                failure: (0..128).map(|_| range_a()).collect(),
                ..Default::default()
            },
            // A nested txn may only use what its parent leaves of the budget.
            2 => {
                let inner = TxnRequest {
                    success: (0..30).map(|_| range_a()).collect(),
                    ..Default::default()
                };
                let mut success: Vec<RequestOp> = (0..self.rng.gen_range(97..=99)).map(|_| range_a()).collect();
                success.push(RequestOp {
                    request: Some(Request::RequestTxn(inner)),
                });
                TxnRequest {
                    success,
                    ..Default::default()
                }
            }
            // Duplicate put keys, at one level or across nesting levels.
            3 => TxnRequest {
                success: vec![put(b"a"), put(b"b"), put(b"a")],
                ..Default::default()
            },
            4 => {
                let inner = TxnRequest {
                    success: vec![put(b"a")],
                    failure: vec![put(b"a")],
                    ..Default::default()
                };
                let outer_dup = self.chance(50);
                let mut success = vec![RequestOp {
                    request: Some(Request::RequestTxn(inner)),
                }];
                if outer_dup {
                    success.push(put(b"a"));
                }
                TxnRequest {
                    success,
                    ..Default::default()
                }
            }
            // Empty keys in a compare or in an op.
            5 => TxnRequest {
                compare: vec![Compare {
                    key: Vec::new(),
                    ..Default::default()
                }],
                ..Default::default()
            },
            6 => TxnRequest {
                failure: vec![RequestOp {
                    request: Some(Request::RequestDeleteRange(DeleteRangeRequest::default())),
                }],
                ..Default::default()
            },
            // A RequestOp with no request at all.
            7 => TxnRequest {
                success: vec![RequestOp { request: None }],
                ..Default::default()
            },
            // Put and delete of the same key.
            _ => TxnRequest {
                success: vec![
                    put(b"foo"),
                    RequestOp {
                        request: Some(Request::RequestDeleteRange(DeleteRangeRequest {
                            key: b"f".to_vec(),
                            range_end: prefix_end(b"f"),
                            prev_kv: false,
                        })),
                    },
                ],
                ..Default::default()
            },
        }
    }

    fn compact(&mut self) -> CompactionRequest {
        let low = self.compact_rev.max(0) + 1;
        let revision = match self.rng.gen_range(0..100) {
            // Mostly a short step, so plenty of history stays readable.
            0..=69 if low <= self.current_rev => self.rng.gen_range(low..=low + (self.current_rev - low) / 4),
            0..=69 => self.current_rev,
            70..=79 => self.compact_rev.max(0) - self.rng.gen_range(0..=1),
            80..=89 => self.current_rev + self.rng.gen_range(1..=2),
            _ => self.rng.gen_range(-1..=1),
        };
        CompactionRequest {
            revision,
            physical: self.chance(30),
        }
    }

    /// Requests that must fail: empty keys, oversized requests; and a large
    /// range key that must not fail (reads are not raft proposals).
    fn bad_request(&mut self) -> Op {
        match self.rng.gen_range(0..10) {
            0 => Op::Range(RangeRequest {
                key: Vec::new(),
                range_end: vec![0],
                ..Default::default()
            }),
            1 => Op::Put(PutRequest {
                key: Vec::new(),
                value: b"v".to_vec(),
                ..Default::default()
            }),
            2 => Op::Delete(DeleteRangeRequest {
                key: Vec::new(),
                range_end: b"z".to_vec(),
                prev_kv: true,
            }),
            3 => Op::Put(PutRequest {
                key: self.key(),
                value: vec![b'x'; TOO_LARGE_FOR_RAFT],
                ..Default::default()
            }),
            4 => {
                let big = PutRequest {
                    key: self.key(),
                    value: vec![b'y'; TOO_LARGE_FOR_RAFT / 2],
                    ..Default::default()
                };
                let mut other = big.clone();
                other.key = if big.key == b"a" { b"b".to_vec() } else { b"a".to_vec() };
                Op::Txn(TxnRequest {
                    success: vec![
                        RequestOp {
                            request: Some(Request::RequestPut(big)),
                        },
                        RequestOp {
                            request: Some(Request::RequestPut(other)),
                        },
                    ],
                    ..Default::default()
                })
            }
            5 => Op::Delete(DeleteRangeRequest {
                key: vec![b'k'; TOO_LARGE_FOR_RAFT],
                ..Default::default()
            }),
            6 => Op::Range(RangeRequest {
                key: vec![b'k'; TOO_LARGE_FOR_RAFT],
                ..Default::default()
            }),
            7 => {
                let key = self.key();
                if self.skip.iter().any(|s| s == "grpc-limit") {
                    return Op::Range(RangeRequest {
                        key,
                        ..Default::default()
                    });
                }
                Op::Put(PutRequest {
                    key,
                    value: vec![b'x'; TOO_LARGE_FOR_GRPC],
                    ..Default::default()
                })
            }
            8 => Op::Put(PutRequest {
                key: self.key(),
                value: vec![b'm'; 1024 * 1024],
                ..Default::default()
            }),
            _ => Op::Put(PutRequest {
                key: self.key(),
                ignore_value: true,
                ignore_lease: true,
                prev_kv: true,
                ..Default::default()
            }),
        }
    }

    fn op(&mut self) -> Op {
        let op = self.any_op();
        // Skipped categories become a harmless read, after the generator
        // consumed the same randomness, so a seed stays comparable.
        let category = match &op {
            Op::Compact(_) => "compact",
            Op::Txn(_) => "txn",
            _ => "",
        };
        if self.skip.iter().any(|s| s == category) {
            return Op::Range(RangeRequest {
                key: b"a".to_vec(),
                ..Default::default()
            });
        }
        op
    }

    fn any_op(&mut self) -> Op {
        match self.rng.gen_range(0..1000) {
            0..=299 => {
                let key = self.key();
                let sane = self.chance(80);
                Op::Put(self.put(key, sane))
            }
            300..=549 => Op::Range(self.range(false)),
            550..=659 => Op::Delete(self.delete()),
            660..=909 => Op::Txn(self.txn()),
            910..=929 => Op::Compact(self.compact()),
            930..=969 => Op::Txn(self.bad_txn()),
            _ => self.bad_request(),
        }
    }
}

/// Whether etcd answers `op` from the member's local state without a read
/// index: a txn of serializable ranges only (an empty txn counts).
fn serves_locally(op: &Op) -> bool {
    let Op::Txn(t) = op else { return false };
    t.success
        .iter()
        .chain(&t.failure)
        .all(|op| matches!(&op.request, Some(Request::RequestRange(r)) if r.serializable))
}

/// Makes a request's outcome deterministic across a cluster's members:
/// clears every `serializable` flag, and in a txn that writes, reads every
/// range at the current revision. etcd 3.4 diverges when a writing txn
/// ranges over a compacted (or negative) revision: the member that proposed
/// it answers "required revision has been compacted" and changes nothing,
/// while the other members apply the txn and move to the next revision
/// (seen with seeds 4749711230992628721, op #35, and 16696510328383899541,
/// op #39). timon refuses it on every member.
fn for_cluster(op: &mut Op) {
    fn writes(t: &TxnRequest) -> bool {
        t.success.iter().chain(&t.failure).any(|op| match &op.request {
            Some(Request::RequestRange(_)) | None => false,
            Some(Request::RequestTxn(inner)) => writes(inner),
            Some(_) => true,
        })
    }
    fn txn(t: &mut TxnRequest, pin: bool) {
        for op in t.success.iter_mut().chain(t.failure.iter_mut()) {
            match &mut op.request {
                Some(Request::RequestRange(r)) => {
                    r.serializable = false;
                    if pin {
                        r.revision = 0;
                    }
                }
                Some(Request::RequestTxn(inner)) => txn(inner, pin),
                _ => {}
            }
        }
    }
    match op {
        Op::Range(r) => r.serializable = false,
        Op::Txn(t) => {
            let pin = writes(t);
            txn(t, pin)
        }
        _ => {}
    }
}

fn has_delete(txn: &TxnRequest) -> bool {
    txn.success.iter().chain(&txn.failure).any(|op| match &op.request {
        Some(Request::RequestDeleteRange(_)) => true,
        Some(Request::RequestTxn(inner)) => has_delete(inner),
        _ => false,
    })
}

fn clear_ignore_flags(txn: &mut TxnRequest) {
    for op in txn.success.iter_mut().chain(txn.failure.iter_mut()) {
        match &mut op.request {
            Some(Request::RequestPut(put)) => {
                put.ignore_value = false;
                put.ignore_lease = false;
            }
            Some(Request::RequestTxn(inner)) => clear_ignore_flags(inner),
            _ => {}
        }
    }
}

/// Whether `key` is in the interval `[start, end)` as etcd reads a range
/// ("" = only `start`, "\0" = everything from `start`).
fn in_interval(key: &[u8], start: &[u8], end: &[u8]) -> bool {
    match end {
        [] => key == start,
        [0] => key >= start,
        end => key >= start && key < end,
    }
}

/// Debug text made readable: byte lists print as escaped strings (long ones
/// cut short) and the whole text is capped, since values can be megabytes.
fn shown(x: &impl std::fmt::Debug) -> String {
    let text = bytes_as_strings(&format!("{x:?}"));
    const MAX: usize = 12_000;
    if text.len() <= MAX {
        return text;
    }
    let head: String = text.chars().take(MAX / 2).collect();
    let tail: String = text
        .chars()
        .rev()
        .take(MAX / 2)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("{head}\n... ({} bytes elided) ...\n{tail}", text.len() - MAX)
}

/// Rewrites every non-empty `[n, n, ...]` list of bytes in Debug output as
/// `b"..."` (the only number lists in these messages are keys and values).
fn bytes_as_strings(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(1 << 20));
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after.find(']').unwrap_or(after.len());
        let bytes: Option<Vec<u8>> = after[..close].split(", ").map(|n| n.parse::<u8>().ok()).collect();
        match bytes {
            Some(bytes) if close > 0 => {
                let shown: String = bytes
                    .iter()
                    .take(64)
                    .flat_map(|b| std::ascii::escape_default(*b))
                    .map(char::from)
                    .collect();
                let more = if bytes.len() > 64 {
                    format!("...({} bytes)", bytes.len())
                } else {
                    String::new()
                };
                out.push_str(&format!("b\"{shown}\"{more}"));
                rest = after.get(close + 1..).unwrap_or("");
            }
            _ => {
                out.push('[');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Where the Debug texts of two outcomes first differ, with some context:
/// the responses can be long and differ in one field.
fn first_difference(a: &Outcome, b: &Outcome) -> String {
    let (a, b) = (bytes_as_strings(&format!("{a:?}")), bytes_as_strings(&format!("{b:?}")));
    let at = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    let window = |s: &str| {
        let start = s.char_indices().map(|(i, _)| i).rfind(|&i| i + 150 <= at).unwrap_or(0);
        s[start..].chars().take(300).collect::<String>()
    };
    format!(
        "first difference at byte {at}:\n  etcd:   ...{}\n  target: ...{}",
        window(&a),
        window(&b)
    )
}

fn env_u64(name: &str) -> Option<u64> {
    let raw = std::env::var(name).ok()?;
    Some(raw.parse().unwrap_or_else(|_| panic!("{name}={raw} is not a number")))
}

/// The reference (etcd) and the target, each one or several members; op i
/// goes to member i mod n on both sides.
struct Pair {
    etcd: Vec<support::Member>,
    server: Vec<support::Member>,
    reference: Vec<KvClient<Channel>>,
    target: Vec<KvClient<Channel>>,
    reference_maint: Vec<MaintenanceClient<Channel>>,
    target_maint: Vec<MaintenanceClient<Channel>>,
    target_name: &'static str,
}

/// What a HashKV call answered, as far as etcd 3.4 and timon must agree:
/// timon also fills etcd 3.6's `hash_revision`, which 3.4 does not know.
#[derive(Debug, PartialEq)]
enum HashOutcome {
    Hash {
        hash: u32,
        compact_revision: i64,
        revision: i64,
    },
    Error {
        code: tonic::Code,
        message: String,
    },
}

async fn hash_kv(m: &mut MaintenanceClient<Channel>, revision: i64) -> (HashOutcome, i64) {
    match m.hash_kv(HashKvRequest { revision }).await {
        Ok(r) => {
            let r = r.into_inner();
            let out = HashOutcome::Hash {
                hash: r.hash,
                compact_revision: r.compact_revision,
                revision: r.header.map_or(0, |h| h.revision),
            };
            (out, r.hash_revision)
        }
        Err(s) => (
            HashOutcome::Error {
                code: s.code(),
                message: s.message().to_string(),
            },
            0,
        ),
    }
}

/// A failure of the connection rather than an answer from the server.
fn is_transport_failure(out: &Outcome) -> bool {
    matches!(out, Outcome::Error { code: tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Internal, message }
        if !message.starts_with("etcdserver:"))
}

impl Pair {
    /// HashKV on member `m` of both sides, at the current revision and at
    /// `revisions` (etcd's hash of the MVCC history: equal histories must
    /// hash equal, compacted and future revisions fail alike).
    async fn check_hashes(&mut self, m: usize, seed: u64, at: &str, revisions: &[i64]) {
        // Bring member m up to date first (a linearizable read), as a
        // follower's HashKV reads its own applied state.
        let sync = Op::Range(RangeRequest {
            key: b"a".to_vec(),
            ..Default::default()
        });
        let _ = tokio::join!(send(&mut self.reference[m], &sync), send(&mut self.target[m], &sync));
        for &revision in std::iter::once(&0).chain(revisions) {
            let ((mut expected, _), (actual, hash_revision)) = tokio::join!(
                hash_kv(&mut self.reference_maint[m], revision),
                hash_kv(&mut self.target_maint[m], revision)
            );
            // etcd 3.4's HashKV can answer differently for a few
            // milliseconds from the hash it settles on, with no write in
            // between (seen at the end of a run, with DIFF_SEED=
            // 4417893047155517250: wrong for ~15 ms between right answers;
            // cause not pinned, its backend's periodic commit is the
            // suspect). timon's first answer must be the one etcd settles
            // on: only etcd is asked again.
            let settle = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
            while expected != actual && tokio::time::Instant::now() < settle {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                expected = hash_kv(&mut self.reference_maint[m], revision).await.0;
            }
            assert_eq!(
                expected, actual,
                "HashKV(revision {revision}) on member {m} {at} (DIFF_SEED={seed}): etcd vs {}",
                self.target_name
            );
            if let (HashOutcome::Hash { revision: current, .. }, false) = (&actual, support::target_is_etcd()) {
                let covered = if revision == 0 { *current } else { revision };
                assert_eq!(hash_revision, covered, "timon's hash_revision for HashKV({revision})");
            }
        }
    }

    async fn check(&mut self, index: usize, seed: u64, op: &Op) -> Outcome {
        let m = index % self.reference.len();
        if self.reference.len() > 1 && serves_locally(op) {
            // A read served from local state (etcd: a txn whose ranges are
            // all serializable, vacuously so with none) may be stale on a
            // follower, by a different amount on each side: first bring
            // member m up to date with a linearizable read.
            let sync = Op::Range(RangeRequest {
                key: b"a".to_vec(),
                ..Default::default()
            });
            let _ = tokio::join!(send(&mut self.reference[m], &sync), send(&mut self.target[m], &sync));
        }
        let (expected, actual) = tokio::join!(send(&mut self.reference[m], op), send(&mut self.target[m], op));
        if is_transport_failure(&expected)
            || is_transport_failure(&actual)
            || !self.etcd[m].is_running()
            || !self.server[m].is_running()
        {
            panic!(
                "op #{index} (DIFF_SEED={seed}) lost a server\nrequest: {}\netcd: {}\n{}: {}\netcd stderr:\n{}\n{} stderr:\n{}",
                shown(op),
                shown(&expected),
                self.target_name,
                shown(&actual),
                self.etcd[m].stderr_tail(4000),
                self.target_name,
                self.server[m].stderr_tail(4000)
            );
        }
        if expected != actual {
            panic!(
                "differential mismatch at op #{index} (DIFF_SEED={seed})\nrequest: {}\netcd: {}\n{}: {}\n{}",
                shown(op),
                shown(&expected),
                self.target_name,
                shown(&actual),
                first_difference(&expected, &actual)
            );
        }
        expected
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn random_kv_ops_match_etcd() {
    differential("random_kv_ops_match_etcd", 1).await;
}

/// The same on a 3-member timon and a 3-member etcd, requests spread over
/// the members (reads linearizable: a serializable read on a follower may
/// be stale on either side, by a different amount).
#[tokio::test(flavor = "multi_thread")]
async fn random_kv_ops_match_etcd_on_three_members() {
    differential("random_kv_ops_match_etcd_on_three_members", 3).await;
}

async fn differential(test: &str, members: usize) {
    if support::skip_without_etcd(test) {
        return;
    }
    let seed = env_u64("DIFF_SEED").unwrap_or_else(rand::random);
    let count = env_u64("DIFF_OPS").unwrap_or(2000) as usize;
    let target_name = support::target_name();
    println!(
        "differential: DIFF_SEED={seed} DIFF_OPS={count} members={members} target={target_name} DIFF_SKIP={:?}",
        std::env::var("DIFF_SKIP").unwrap_or_default()
    );

    let (etcd, target) = if members == 1 {
        (vec![support::start_etcd()], vec![support::start_target()])
    } else {
        let target_bin = if support::target_is_etcd() {
            support::etcd_bin()
        } else {
            support::timon_bin()
        };
        (
            support::start_cluster(support::etcd_bin(), members, &[]),
            support::start_cluster(target_bin, members, &[]),
        )
    };
    let (mut reference, mut target_kv) = (Vec::new(), Vec::new());
    let (mut reference_maint, mut target_maint) = (Vec::new(), Vec::new());
    for (e, t) in etcd.iter().zip(&target) {
        let (kv, maint) = support::connect(&e.endpoint()).await;
        reference.push(kv);
        reference_maint.push(maint);
        let (kv, maint) = support::connect(&t.endpoint()).await;
        target_kv.push(kv);
        target_maint.push(maint);
    }
    let mut pair = Pair {
        etcd,
        server: target,
        reference,
        target: target_kv,
        reference_maint,
        target_maint,
        target_name,
    };
    let skip: Vec<String> = std::env::var("DIFF_SKIP")
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let mut gen = Gen {
        rng: StdRng::seed_from_u64(seed),
        current_rev: 1,
        compact_rev: -1,
        skip,
    };

    // What the run covered, printed at the end: a generator that drifts
    // into only errors would otherwise pass silently.
    let mut tally: BTreeMap<String, usize> = BTreeMap::new();
    for index in 0..count {
        let mut op = gen.op();
        if members > 1 {
            for_cluster(&mut op);
        }
        let out = pair.check(index, seed, &op).await;
        if std::env::var_os("DIFF_TRACE").is_some() {
            println!("#{index} member {}: {} => {}", index % members, shown(&op), shown(&out));
            let probe = Op::Range(RangeRequest {
                key: b"a".to_vec(),
                serializable: true,
                ..Default::default()
            });
            let mut revs = Vec::new();
            for m in 0..members {
                let e = send(&mut pair.reference[m], &probe).await.revision();
                let t = send(&mut pair.target[m], &probe).await.revision();
                revs.push((e, t));
            }
            println!("   serializable revisions per member (etcd, {target_name}): {revs:?}");
        }
        let kind = match (&op, &out) {
            (Op::Compact(req), Outcome::Compact(_)) => {
                gen.compact_rev = req.revision;
                "compact ok".to_string()
            }
            (_, Outcome::Error { code, message }) => format!("error {code:?}: {message}"),
            (_, Outcome::Range(r)) => format!("range ok ({})", if r.kvs.is_empty() { "empty" } else { "kvs" }),
            (_, Outcome::Txn(t)) => format!("txn ok (succeeded={})", t.succeeded),
            (_, Outcome::Put(_)) => "put ok".to_string(),
            (_, Outcome::Delete(d)) => format!("delete ok ({})", if d.deleted > 0 { "deleted" } else { "none" }),
            (_, Outcome::Compact(_)) => "compact ok".to_string(),
        };
        *tally.entry(kind).or_default() += 1;
        if let Some(rev) = out.revision() {
            gen.current_rev = rev;
        }
        if index % 100 == 99 {
            // HashKV at the current revision, retained ones, the compacted
            // one, a future one and a negative one, on one member in turn
            // (picked without the generator's rng: seeds stay as they were).
            let low = gen.compact_rev.max(1);
            let revisions = [
                gen.current_rev,
                (low + gen.current_rev) / 2,
                low,
                gen.compact_rev,
                gen.current_rev + 1,
                -1,
            ];
            pair.check_hashes(index / 100 % members, seed, &format!("after op #{index}"), &revisions)
                .await;
        }
    }
    let every: Vec<i64> = (gen.compact_rev.max(1)..=gen.current_rev).collect();
    for m in 0..members {
        pair.check_hashes(m, seed, "at the end", &every).await;
    }

    // Sweep the whole retained history: every key at every revision.
    let first = gen.compact_rev.max(1);
    for (i, revision) in (first..=gen.current_rev).enumerate() {
        let op = Op::Range(RangeRequest {
            key: vec![0],
            range_end: vec![0],
            revision,
            ..Default::default()
        });
        pair.check(count + i, seed, &op).await;
    }
    for (kind, n) in &tally {
        println!("differential: {n:5} {}", kind.chars().take(150).collect::<String>());
    }
    println!(
        "differential: {count} ops matched (seed {seed}, final revision {}, compacted at {}, history swept from {first})",
        gen.current_rev, gen.compact_rev
    );
}
