//! etcd's auto-compaction (`etcdserver/api/v3compactor`, 3.5): the leader
//! proposes Compaction requests on its own, so history does not grow
//! without bound.
//!
//! - `--auto-compaction-mode=periodic` (the default) with a retention as a
//!   Go duration (`30m`) or a whole number of hours (`1`): the current
//!   revision is sampled every tenth of the period (at most 6 minutes);
//!   once a period has passed, and then every period (at most an hour), the
//!   store is compacted at the revision sampled a period ago, so no
//!   revision younger than the retention is ever compacted.
//! - `--auto-compaction-mode=revision` with a number N: every 5 minutes the
//!   store is compacted at the current revision minus N, unless that is not
//!   positive or was compacted last time.
//!
//! A retention of 0 (the default) turns it off. Only the leader compacts;
//! a member that stops leading keeps its samples but proposes nothing.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use timon_proto::etcdserverpb::CompactionRequest;
use timon_proto::timonpb::internal_raft_request::Request as RaftRequest;
use tokio::sync::watch;

use crate::rpc::Ctx;

/// How often revision mode looks (etcd's `revInterval`).
const REVISION_INTERVAL: Duration = Duration::from_secs(300);
/// Periodic mode samples the revision this many times per period.
const RETRY_DIVISOR: u32 = 10;

/// What `--auto-compaction-mode` and `--auto-compaction-retention` ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Periodic(Duration),
    Revision(i64),
}

/// etcd's `parseCompactionRetention` and mode check: `None` when the
/// retention is 0 (no auto-compaction).
pub fn parse(mode: &str, retention: &str) -> Result<Option<Mode>, String> {
    let retention = if retention.is_empty() { "0" } else { retention };
    let parsed = match (mode, retention.parse::<i64>()) {
        (_, Ok(n)) if n >= 0 => match mode {
            "revision" => Mode::Revision(n),
            "periodic" => Mode::Periodic(Duration::from_secs(n as u64 * 3600)),
            "" => return Err("--auto-compaction-mode is undefined".into()),
            other => return Err(format!("unknown auto-compaction-mode {other:?}")),
        },
        ("revision" | "periodic", _) => {
            let d =
                timon_go::parse_duration(retention).map_err(|e| format!("error parsing CompactionRetention: {e}"))?;
            match mode {
                // etcd takes the duration's nanoseconds as the count.
                "revision" => Mode::Revision(d.as_nanos().min(i64::MAX as u128) as i64),
                _ => Mode::Periodic(d),
            }
        }
        (other, _) => return Err(format!("unknown auto-compaction-mode {other:?}")),
    };
    Ok(match parsed {
        Mode::Periodic(d) if d.is_zero() => None,
        Mode::Revision(0) => None,
        m => Some(m),
    })
}

/// Periodic mode's bookkeeping (etcd's `Periodic.Run` loop body).
#[derive(Debug)]
pub struct Periodic {
    period: Duration,
    /// The revisions sampled, oldest first: the first is a period old.
    revs: VecDeque<i64>,
    last_success: Instant,
    /// Wait this long after the last success: the period the first time,
    /// then [`Periodic::compact_interval`].
    base_interval: Duration,
}

impl Periodic {
    pub fn new(period: Duration, now: Instant) -> Self {
        Self {
            period,
            revs: VecDeque::new(),
            last_success: now,
            base_interval: period,
        }
    }

    /// How often the revision is sampled.
    pub fn retry_interval(&self) -> Duration {
        self.period.min(Duration::from_secs(3600)) / RETRY_DIVISOR
    }

    fn compact_interval(&self) -> Duration {
        self.period.min(Duration::from_secs(3600))
    }

    fn retentions(&self) -> usize {
        (self.period.as_nanos() / self.retry_interval().as_nanos().max(1)) as usize + 1
    }

    /// Records the current revision (before waiting a retry interval).
    pub fn sample(&mut self, rev: i64) {
        self.revs.push_back(rev);
        if self.revs.len() > self.retentions() {
            self.revs.pop_front();
        }
    }

    /// After a retry interval: the revision to compact at, if it is time.
    pub fn due(&mut self, now: Instant) -> Option<i64> {
        if now.duration_since(self.last_success) < self.base_interval {
            return None;
        }
        if self.base_interval == self.period {
            self.base_interval = self.compact_interval();
        }
        self.revs.front().copied()
    }

    /// The compaction at the revision [`Periodic::due`] answered succeeded
    /// (or that revision was compacted already).
    pub fn succeeded(&mut self, now: Instant) {
        self.last_success = now;
    }
}

/// Revision mode's bookkeeping (etcd's `Revision.Run` loop body).
#[derive(Debug, Default)]
pub struct Revision {
    retention: i64,
    prev: i64,
}

impl Revision {
    pub fn new(retention: i64) -> Self {
        Self { retention, prev: 0 }
    }

    /// The revision to compact at, given the current one.
    pub fn due(&self, current: i64) -> Option<i64> {
        let rev = current - self.retention;
        (rev > 0 && rev != self.prev).then_some(rev)
    }

    pub fn succeeded(&mut self, rev: i64) {
        self.prev = rev;
    }
}

/// Starts the compactor for `mode` until `stop` turns true.
pub fn spawn(ctx: Arc<Ctx>, mode: Mode, mut stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        match mode {
            Mode::Periodic(period) => {
                let mut p = Periodic::new(period, Instant::now());
                loop {
                    p.sample(ctx.raft.store().current_revision());
                    tokio::select! {
                        _ = stop.wait_for(|s| *s) => return,
                        _ = tokio::time::sleep(p.retry_interval()) => {}
                    }
                    if !leads(&ctx) {
                        continue;
                    }
                    let Some(rev) = p.due(Instant::now()) else { continue };
                    tracing::info!(revision = rev, "compact-period" = %timon_go::format_duration(period), "starting auto periodic compaction");
                    let started = Instant::now();
                    if compact(&ctx, rev).await {
                        tracing::info!(revision = rev, "compact-period" = %timon_go::format_duration(period), took = %timon_go::format_duration(started.elapsed()), "completed auto periodic compaction");
                        p.succeeded(Instant::now());
                    }
                }
            }
            Mode::Revision(retention) => {
                let mut r = Revision::new(retention);
                loop {
                    tokio::select! {
                        _ = stop.wait_for(|s| *s) => return,
                        _ = tokio::time::sleep(REVISION_INTERVAL) => {}
                    }
                    if !leads(&ctx) {
                        continue;
                    }
                    let Some(rev) = r.due(ctx.raft.store().current_revision()) else {
                        continue;
                    };
                    tracing::info!(
                        revision = rev,
                        "revision-compaction-retention" = retention,
                        "starting auto revision compaction"
                    );
                    let started = Instant::now();
                    if compact(&ctx, rev).await {
                        tracing::info!(revision = rev, "revision-compaction-retention" = retention, took = %timon_go::format_duration(started.elapsed()), "completed auto revision compaction");
                        r.succeeded(rev);
                    }
                }
            }
        }
    })
}

fn leads(ctx: &Ctx) -> bool {
    ctx.raft.status().leader == Some(ctx.member_id)
}

/// Proposes a compaction; true when it succeeded or `rev` was compacted
/// already (as etcd counts it).
async fn compact(ctx: &Ctx, rev: i64) -> bool {
    let req = RaftRequest::Compaction(CompactionRequest {
        revision: rev,
        physical: false,
    });
    match ctx.propose(req).await {
        Ok(_) => true,
        Err(s) if s.message() == crate::apply::EtcdError::Compacted.to_string() => true,
        Err(s) => {
            tracing::warn!(revision = rev, error = %s.message(), "failed auto compaction");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_parses_as_etcd_3_5() {
        let h = |n: u64| Some(Mode::Periodic(Duration::from_secs(n * 3600)));
        assert_eq!(parse("periodic", "1"), Ok(h(1)));
        assert_eq!(parse("periodic", "72"), Ok(h(72)));
        assert_eq!(
            parse("periodic", "30m"),
            Ok(Some(Mode::Periodic(Duration::from_secs(1800))))
        );
        assert_eq!(parse("periodic", "0"), Ok(None));
        assert_eq!(parse("periodic", ""), Ok(None));
        assert_eq!(parse("periodic", "0s"), Ok(None));
        assert_eq!(parse("revision", "1000"), Ok(Some(Mode::Revision(1000))));
        assert_eq!(parse("revision", "0"), Ok(None));
        assert_eq!(parse("revision", "1us"), Ok(Some(Mode::Revision(1000))));
        assert_eq!(
            parse("sometimes", "1"),
            Err("unknown auto-compaction-mode \"sometimes\"".into())
        );
        assert!(parse("periodic", "soon")
            .unwrap_err()
            .starts_with("error parsing CompactionRetention"));
    }

    #[test]
    fn periodic_compacts_at_the_revision_of_a_period_ago_then_every_period() {
        let period = Duration::from_secs(100);
        let t0 = Instant::now();
        let mut p = Periodic::new(period, t0);
        assert_eq!(p.retry_interval(), Duration::from_secs(10));
        // Sample, wait a retry interval, ask: one sample per 10 s, revision
        // = 1000 + seconds.
        let at = |p: &mut Periodic, secs: u64| {
            p.sample(1000 + secs as i64);
            p.due(t0 + Duration::from_secs(secs + 10))
        };
        for s in (0..90).step_by(10) {
            assert_eq!(at(&mut p, s), None, "nothing before a period passed ({s} s)");
        }
        // 100 s after the start: the sample of 100 s before.
        assert_eq!(at(&mut p, 90), Some(1000));
        p.succeeded(t0 + Duration::from_secs(100));
        for s in (100..190).step_by(10) {
            assert_eq!(at(&mut p, s), None, "({s} s)");
        }
        // The oldest kept sample is 100 s old: 11 samples over 100 s.
        assert_eq!(at(&mut p, 190), Some(1090));
    }

    #[test]
    fn periodic_past_an_hour_samples_every_six_minutes_and_compacts_hourly() {
        let p = Periodic::new(Duration::from_secs(10 * 3600), Instant::now());
        assert_eq!(p.retry_interval(), Duration::from_secs(360));
        assert_eq!(p.compact_interval(), Duration::from_secs(3600));
        assert_eq!(p.retentions(), 101);
    }

    #[test]
    fn revision_mode_keeps_the_last_n_and_does_not_repeat() {
        let mut r = Revision::new(10);
        assert_eq!(r.due(5), None);
        assert_eq!(r.due(10), None);
        assert_eq!(r.due(25), Some(15));
        r.succeeded(15);
        assert_eq!(r.due(25), None);
        assert_eq!(r.due(26), Some(16));
    }
}
