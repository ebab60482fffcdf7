//! The `watch` workload: the register workload's clients write (mostly
//! puts and compare-and-sets of unique values, some reads) while several
//! watchers watch every register key with `prev_kv`, and every event each
//! watcher receives is recorded ([`RecordedWatch`]) for `check::watch`.
//!
//! Watchers start at random times during the run, each from revision 1,
//! from an older revision (random, up to the member's current one), or
//! from "now" (start revision 0: its start is the created answer's header
//! revision + 1). Each is one logical watcher over many streams: a stream
//! lasts a few seconds or until it fails (a killed, paused or leaderless
//! member: streams ask `hasleader`), then the watcher reconnects to a
//! random member and resumes from the last revision it received + 1.
//!
//! After the writers stop (at the time limit; the nemesis heals then), each
//! watcher keeps going until it has received the highest acknowledged write
//! revision, or the catch-up time runs out. It is then recorded with
//! `until_end`, which makes the checker require every acknowledged write
//! from its start revision on.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use timon_proto::etcdserverpb::watch_client::WatchClient;
use timon_proto::etcdserverpb::watch_request::RequestUnion;
use timon_proto::etcdserverpb::{RangeRequest, WatchCreateRequest, WatchRequest, WatchResponse};
use timon_proto::mvccpb;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;

use crate::check::watch::{EventType, RecordedWatch, WatchEnd, WatchEvent};
use crate::cluster::Endpoint;
use crate::history::{History, Kind, Op};
use crate::recorder::Recorder;
use crate::workload::register;

/// Workload parameters.
#[derive(Debug, Clone)]
pub struct Config {
    /// The writers (the register workload, write-heavy).
    pub writes: register::Config,
    pub watchers: usize,
    /// A stream lasts a random time in this range, then reconnects.
    pub stream_life: (Duration, Duration),
    /// How long after the writers stop watchers may take to catch up.
    pub catch_up: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            writes: register::Config {
                read_fraction: 0.2,
                ..register::Config::default()
            },
            watchers: 6,
            stream_life: (Duration::from_secs(2), Duration::from_secs(6)),
            catch_up: Duration::from_secs(30),
        }
    }
}

/// Every register key: `[PREFIX, RANGE_END)`.
pub const PREFIX: &str = "jepsen/register/";
/// `PREFIX` with its last byte ('/') + 1.
pub const RANGE_END: &str = "jepsen/register0";

/// Where a watcher starts.
#[derive(Debug, Clone, Copy)]
enum Start {
    First,
    Older,
    Now,
}

/// Runs the writers until `deadline` and the watchers until they caught up;
/// answers every watcher's record.
pub async fn run(
    endpoints: &[Endpoint],
    cfg: &Config,
    rec: &Recorder,
    seed: u64,
    deadline: Instant,
) -> anyhow::Result<Vec<RecordedWatch>> {
    let (target_tx, target_rx) = watch::channel(None);
    let mut watchers = Vec::new();
    for i in 0..cfg.watchers {
        let start = [Start::First, Start::Now, Start::Older][i % 3];
        let w = Watcher {
            id: format!("w{i}-{start:?}").to_lowercase(),
            endpoints: endpoints.to_vec(),
            cfg: cfg.clone(),
            rng: StdRng::seed_from_u64(seed.wrapping_mul(7_919).wrapping_add(i as u64)),
            target: target_rx.clone(),
            stop: deadline + cfg.catch_up,
        };
        watchers.push(tokio::spawn(w.run(start, deadline)));
    }
    let writes = register::run(endpoints, &cfg.writes, rec, seed, deadline).await;
    // Writers are done: every acknowledged write is in the history.
    let _ = target_tx.send(Some(max_acked_revision(&rec.snapshot())));
    let mut out = Vec::new();
    for w in watchers {
        out.push(w.await?);
    }
    writes?;
    Ok(out)
}

/// The highest revision an acknowledged write (or cas) got; 0 if none.
pub fn max_acked_revision(history: &History) -> i64 {
    history
        .iter()
        .filter(|e| e.kind == Kind::Ok && matches!(e.op, Op::Write { .. } | Op::Cas { .. }))
        .filter_map(|e| e.revision)
        .max()
        .unwrap_or(0)
}

struct Watcher {
    id: String,
    endpoints: Vec<Endpoint>,
    cfg: Config,
    rng: StdRng,
    /// The revision to reach before stopping, once the writers stopped.
    target: watch::Receiver<Option<i64>>,
    /// Give up here, caught up or not.
    stop: Instant,
}

/// Why a stream ended.
enum StreamEnd {
    /// Reconnect (lifetime over, error, member down).
    Again,
    /// Caught up with the target, or out of time.
    Done,
    /// The server canceled the watcher because its revision was compacted.
    Compacted(i64),
}

impl Watcher {
    fn caught_up(&self, w: &RecordedWatch) -> bool {
        match *self.target.borrow() {
            Some(t) => w.start_revision > 0 && w.last_revision().unwrap_or(w.start_revision - 1) >= t,
            None => false,
        }
    }

    async fn run(mut self, start: Start, deadline: Instant) -> RecordedWatch {
        let span = deadline.saturating_duration_since(Instant::now());
        let delay = self.rng.gen_range(Duration::ZERO..=span / 2);
        tokio::time::sleep(delay).await;
        let start_revision = match start {
            Start::First => 1,
            Start::Now => 0,
            Start::Older => match self.current_revision().await {
                Some(cur) => self.rng.gen_range(1..=cur.max(1)),
                None => 1,
            },
        };
        let mut w = RecordedWatch {
            id: self.id.clone(),
            key: PREFIX.into(),
            range_end: Some(RANGE_END.into()),
            start_revision,
            prev_kv: true,
            events: Vec::new(),
            end: WatchEnd::Open,
            until_end: false,
        };
        loop {
            if self.caught_up(&w) || Instant::now() >= self.stop {
                break;
            }
            let endpoint = self.endpoints[self.rng.gen_range(0..self.endpoints.len())].clone();
            let life = self.rng.gen_range(self.cfg.stream_life.0..=self.cfg.stream_life.1);
            match self.stream(&endpoint, &mut w, Instant::now() + life).await {
                StreamEnd::Again => {}
                StreamEnd::Done => break,
                StreamEnd::Compacted(compact_revision) => {
                    w.end = WatchEnd::Compacted { compact_revision };
                    return w;
                }
            }
        }
        // Kept open past the writes: it owes every acknowledged write.
        w.until_end = self.target.borrow().is_some();
        w
    }

    /// Any member's current revision (a serializable Range's header).
    async fn current_revision(&mut self) -> Option<i64> {
        while Instant::now() < self.stop {
            let endpoint = &self.endpoints[self.rng.gen_range(0..self.endpoints.len())];
            if let Ok(mut kv) = register::client(endpoint) {
                let req = RangeRequest {
                    key: PREFIX.as_bytes().to_vec(),
                    serializable: true,
                    count_only: true,
                    ..Default::default()
                };
                if let Ok(Ok(r)) = tokio::time::timeout(Duration::from_secs(2), kv.range(req)).await {
                    return r.into_inner().header.map(|h| h.revision);
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        None
    }

    /// One stream on `endpoint` until `until`: creates the watcher from the
    /// next revision `w` needs and appends what arrives.
    async fn stream(&mut self, endpoint: &Endpoint, w: &mut RecordedWatch, until: Instant) -> StreamEnd {
        let until = until.min(self.stop);
        let from = match w.last_revision() {
            Some(r) => r + 1,
            None => w.start_revision,
        };
        let Ok(channel) = endpoint.lazy() else {
            return StreamEnd::Again;
        };
        let mut client = WatchClient::new(channel);
        let (tx, rx) = mpsc::channel(1);
        let create = WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                key: PREFIX.as_bytes().to_vec(),
                range_end: RANGE_END.as_bytes().to_vec(),
                start_revision: from,
                prev_kv: true,
                ..Default::default()
            })),
        };
        if tx.send(create).await.is_err() {
            return StreamEnd::Again;
        }
        let mut request = tonic::Request::new(ReceiverStream::new(rx));
        request
            .metadata_mut()
            .insert("hasleader", tonic::metadata::MetadataValue::from_static("true"));
        let opened = tokio::time::timeout_at(until, client.watch(request)).await;
        let Ok(Ok(response)) = opened else {
            // Refused or hanging (a paused member): try another soon.
            tokio::time::sleep_until((Instant::now() + Duration::from_millis(100)).min(until)).await;
            return StreamEnd::Again;
        };
        let mut incoming = response.into_inner();
        let mut created = false;
        loop {
            if self.caught_up(w) {
                return StreamEnd::Done;
            }
            let next = tokio::select! {
                m = incoming.message() => m,
                _ = tokio::time::sleep_until(until) => {
                    return if Instant::now() >= self.stop { StreamEnd::Done } else { StreamEnd::Again };
                }
                _ = self.target.changed() => continue,
            };
            let Ok(Some(resp)) = next else {
                return StreamEnd::Again;
            };
            if !created {
                if !resp.created || resp.canceled {
                    return StreamEnd::Again;
                }
                created = true;
                if w.start_revision == 0 {
                    w.start_revision = resp.header.as_ref().map_or(0, |h| h.revision) + 1;
                }
                continue;
            }
            if resp.compact_revision != 0 {
                return StreamEnd::Compacted(resp.compact_revision);
            }
            if resp.canceled {
                return StreamEnd::Again;
            }
            record(w, &resp);
        }
    }
}

/// Appends a response's events, as received.
fn record(w: &mut RecordedWatch, resp: &WatchResponse) {
    for ev in &resp.events {
        let Some(kv) = &ev.kv else { continue };
        let kind = if ev.r#type == mvccpb::event::EventType::Delete as i32 {
            EventType::Delete
        } else {
            EventType::Put
        };
        let parse = |v: &[u8]| std::str::from_utf8(v).ok().and_then(|s| s.parse::<u64>().ok());
        w.events.push(WatchEvent {
            revision: kv.mod_revision,
            key: String::from_utf8_lossy(&kv.key).into_owned(),
            kind,
            value: (kind == EventType::Put).then(|| parse(&kv.value)).flatten(),
            prev_value: ev.prev_kv.as_ref().and_then(|p| parse(&p.value)),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testgen::*;

    #[test]
    fn the_target_is_the_highest_acknowledged_write() {
        let h = vec![
            inv(1, 0, write("a", 1)),
            ok(1, 1, write("a", 1), Some(4)),
            inv(2, 2, cas("a", 4, 2)),
            ok(2, 3, cas("a", 4, 2), Some(6)),
            inv(3, 4, read0("a")),
            ok(3, 5, read("a", Some(2), Some(6)), Some(9)),
            inv(1, 6, write("a", 3)),
            fail(1, 7, write("a", 3)),
        ];
        assert_eq!(max_acked_revision(&h), 6);
        assert_eq!(max_acked_revision(&vec![]), 0);
    }

    #[test]
    fn the_range_end_is_the_prefix_end() {
        let mut end = PREFIX.as_bytes().to_vec();
        *end.last_mut().unwrap() += 1;
        assert_eq!(end, RANGE_END.as_bytes());
    }
}
