//! Compaction: dropping the revisions no read at or after the compaction
//! revision can need, in the background (etcd's `kvstore_compaction.go`).
//!
//! For each key, the newest revision at or below the compaction revision is
//! kept while it is a value, so reads at the compaction revision still see
//! it; a key whose newest revision there is a tombstone loses its whole
//! history up to it. Everything newer than the compaction revision stays.
//!
//! Applying a Compaction only records it: the write txn sets the store's
//! compacted revision (reads below it are refused from then on) and writes
//! it to [`meta::COMPACT_REV`] (etcd's `scheduledCompactRev`), then hands
//! it to the store's `Compactor`. Its thread does the work apply used to
//! wait for, as etcd's does:
//! 1. the index, [`INDEX_KEYS_PER_STEP`] keys per hold of the store lock,
//!    collecting the revisions to keep;
//! 2. storage, [`Pacing::batch_limit`] revisions per batch with
//!    [`Pacing::sleep`] between batches (etcd's
//!    `--experimental-compaction-batch-limit` and `-sleep-interval`); the
//!    last batch writes [`meta::FINISHED_COMPACT_REV`].
//!
//! No read sees a deleted revision: reads below the compacted revision are
//! refused, reads at or above it fetch only revisions the index keeps, and
//! a revision is deleted only once the index let go of it. A restart with
//! the scheduled revision above the finished one compacts again (etcd's
//! "resume scheduled compaction"); doing it twice changes nothing.

use std::collections::BTreeSet;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::compact_metrics::METRICS;
use super::revision::{main_rev_start, Revision};
use super::state::State;
use crate::storage::keys::meta;
use crate::storage::{Cf, Scan, SharedEngine, StorageError, WriteBatch};

/// Keys of the index compacted per hold of the store lock: writes and
/// reads wait at most this long for the compaction.
pub const INDEX_KEYS_PER_STEP: usize = 1000;

/// Dropped revisions stored next to each other at least this many times
/// are deleted by one range deletion instead of one deletion each (fewer
/// tombstones for RocksDB to write, flush and compact away).
pub const RANGE_DELETE_FROM: usize = 16;

/// How fast storage is compacted: etcd's
/// `--experimental-compaction-batch-limit` and
/// `--experimental-compaction-sleep-interval`, with etcd's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pacing {
    /// Revisions looked at (and deleted, those not kept) per batch.
    pub batch_limit: usize,
    /// Pause between batches.
    pub sleep: Duration,
}

impl Default for Pacing {
    fn default() -> Self {
        Self {
            batch_limit: 1000,
            sleep: Duration::from_millis(10),
        }
    }
}

/// Where the compactor is: compactions up to `scheduled` are asked for,
/// up to `finished` done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub scheduled: i64,
    pub finished: i64,
    /// Stopped (the store is being replaced or dropped, or storage failed):
    /// nothing more will finish.
    pub stopped: bool,
}

struct Shared {
    engine: SharedEngine,
    state: Arc<RwLock<State>>,
    progress: Mutex<Progress>,
    changed: Condvar,
    /// The same progress for async waiters.
    watch: watch::Sender<Progress>,
    pacing: Mutex<Pacing>,
}

/// The store's background compactor: one thread, started when there is
/// something to compact.
pub(crate) struct Compactor {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Compactor {
    /// A compactor for a store whose storage is compacted up to `finished`.
    pub(crate) fn new(engine: SharedEngine, state: Arc<RwLock<State>>, finished: i64) -> Self {
        let progress = Progress {
            scheduled: finished,
            finished,
            stopped: false,
        };
        Self {
            shared: Arc::new(Shared {
                engine,
                state,
                progress: Mutex::new(progress),
                changed: Condvar::new(),
                watch: watch::Sender::new(progress),
                pacing: Mutex::new(Pacing::default()),
            }),
            thread: Mutex::new(None),
        }
    }

    pub(crate) fn set_pacing(&self, pacing: Pacing) {
        *lock(&self.shared.pacing) = pacing;
    }

    pub(crate) fn progress(&self) -> Progress {
        *lock(&self.shared.progress)
    }

    /// Asks for the storage to be compacted at `rev` (the store's compacted
    /// revision is `rev` already).
    pub(crate) fn schedule(&self, rev: i64) {
        if !self.shared.update(|p| p.scheduled = p.scheduled.max(rev)) {
            return;
        }
        let mut thread = lock(&self.thread);
        if thread.as_ref().is_none_or(|t| t.is_finished()) {
            let shared = self.shared.clone();
            let spawned = std::thread::Builder::new()
                .name("compaction".into())
                .spawn(move || shared.work());
            match spawned {
                Ok(t) => *thread = Some(t),
                Err(e) => tracing::error!({ error = %e }, "failed to start the compaction thread"),
            }
        }
    }

    /// Stops the thread after the batch it is writing, and waits for that:
    /// when this returns, the compactor writes nothing more.
    pub(crate) fn stop(&self) {
        self.shared.update(|p| p.stopped = true);
        if let Some(t) = lock(&self.thread).take() {
            let _ = t.join();
        }
    }

    /// Blocks until everything scheduled is finished (or the compactor
    /// stopped).
    pub(crate) fn wait_idle(&self) {
        let mut p = lock(&self.shared.progress);
        while !p.stopped && p.finished < p.scheduled {
            p = self.shared.changed.wait(p).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Waits until storage is compacted at `rev` or later (or the
    /// compactor stopped).
    pub(crate) async fn finished(&self, rev: i64) {
        let mut rx = self.shared.watch.subscribe();
        let _ = rx.wait_for(|p| p.stopped || p.finished >= rev).await;
    }
}

impl Drop for Compactor {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Shared {
    /// Changes the progress unless stopped; tells every waiter. Answers
    /// whether it was not stopped.
    fn update(&self, change: impl FnOnce(&mut Progress)) -> bool {
        let mut p = lock(&self.progress);
        if p.stopped {
            return false;
        }
        change(&mut p);
        self.watch.send_replace(*p);
        self.changed.notify_all();
        true
    }

    fn stopped(&self) -> bool {
        lock(&self.progress).stopped
    }

    /// Sleeps for `d` unless stopped meanwhile; answers whether stopped.
    fn pause(&self, d: Duration) -> bool {
        let deadline = Instant::now() + d;
        let mut p = lock(&self.progress);
        loop {
            let now = Instant::now();
            if p.stopped || now >= deadline {
                return p.stopped;
            }
            p = self
                .changed
                .wait_timeout(p, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// The thread: compacts whatever is scheduled, newest first, until
    /// stopped.
    fn work(&self) {
        loop {
            let target = {
                let mut p = lock(&self.progress);
                loop {
                    if p.stopped {
                        return;
                    }
                    if p.scheduled > p.finished {
                        break p.scheduled;
                    }
                    p = self.changed.wait(p).unwrap_or_else(PoisonError::into_inner);
                }
            };
            match self.compact(target) {
                Ok(true) => {
                    self.update(|p| p.finished = p.finished.max(target));
                }
                Ok(false) => return,
                Err(e) => {
                    tracing::error!(
                        { "compact-revision" = target, error = %e },
                        "failed to compact; compaction resumes at the next start"
                    );
                    self.update(|p| p.stopped = true);
                    return;
                }
            }
        }
    }

    /// Compacts the index and then storage at `rev`; `false` when stopped
    /// before the end.
    fn compact(&self, rev: i64) -> Result<bool, StorageError> {
        let start = Instant::now();
        let mut keep = BTreeSet::new();
        let mut from = Vec::new();
        loop {
            let step = Instant::now();
            let next = {
                let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
                state.index.compact_some(rev, &from, INDEX_KEYS_PER_STEP, &mut keep)
            };
            METRICS.index_pause_ms.observe(millis(step.elapsed()));
            let Some(next) = next else { break };
            if self.stopped() {
                return Ok(false);
            }
            from = next;
            // Let the writers and readers the step held up go first.
            std::thread::yield_now();
        }

        let end = main_rev_start(rev.saturating_add(1));
        let mut from = Vec::new();
        let mut deleted = 0;
        loop {
            let step = Instant::now();
            let pacing = *lock(&self.pacing);
            let (mut batch, dropped, last) = self.deletions(&from, &end, &keep, pacing.batch_limit.max(1))?;
            deleted += dropped;
            if last.is_none() {
                batch.put(Cf::Meta, meta::FINISHED_COMPACT_REV, rev.to_be_bytes().to_vec());
            }
            if self.stopped() {
                return Ok(false);
            }
            let write = Instant::now();
            self.engine.write(batch, false)?;
            crate::disk_metrics::backend_commit(write.elapsed());
            METRICS.db_pause_ms.observe(millis(step.elapsed()));
            let Some(mut last) = last else { break };
            last.push(0);
            from = last;
            if self.pause(pacing.sleep) {
                return Ok(false);
            }
        }
        METRICS.keys.inc_by(deleted as u64);
        METRICS.total_ms.observe(millis(start.elapsed()));
        tracing::info!(
            { "compact-revision" = rev, took = %timon_go::format_duration(start.elapsed()) },
            "finished scheduled compaction"
        );
        Ok(true)
    }

    /// The deletions of the first `limit` stored revisions from `from` up to
    /// `end` that `keep` does not hold, how many revisions they drop, and
    /// the last revision looked at when there may be more.
    fn deletions(
        &self,
        from: &[u8],
        end: &[u8],
        keep: &BTreeSet<Revision>,
        limit: usize,
    ) -> Result<(WriteBatch, usize, Option<Vec<u8>>), StorageError> {
        let mut runs = Runs::default();
        let (mut seen, mut last) = (0, None);
        self.engine.scan(Cf::Kv, from, Some(end), &mut |k, _| {
            match Revision::from_bytes(k) {
                Some(r) if !keep.contains(&r) => runs.drop(k),
                _ => runs.keep(),
            }
            seen += 1;
            if seen == limit {
                last = Some(k.to_vec());
                return Scan::Stop;
            }
            Scan::Continue
        })?;
        runs.keep();
        Ok((runs.batch, runs.dropped, last))
    }
}

/// The deletions of one batch, gathered as runs of dropped revisions that
/// are next to each other in storage.
#[derive(Default)]
struct Runs {
    batch: WriteBatch,
    /// The run so far: its stored keys (all of them until it is long
    /// enough for a range deletion, then the first and the last).
    run: Vec<Vec<u8>>,
    run_len: usize,
    dropped: usize,
}

impl Runs {
    fn drop(&mut self, key: &[u8]) {
        if self.run_len >= RANGE_DELETE_FROM {
            self.run.truncate(1);
        }
        self.run.push(key.to_vec());
        self.run_len += 1;
        self.dropped += 1;
    }

    /// A kept revision (or the batch's end) ends the run.
    fn keep(&mut self) {
        if self.run_len >= RANGE_DELETE_FROM {
            if let (Some(first), Some(last)) = (self.run.first(), self.run.last()) {
                // Just past the last: no stored key lies between it and
                // `last` + 0x00.
                let mut end = last.clone();
                end.push(0);
                self.batch.delete_range(Cf::Kv, first.clone(), end);
            }
        } else {
            for key in self.run.drain(..) {
                self.batch.delete(Cf::Kv, key);
            }
        }
        self.run.clear();
        self.run_len = 0;
    }
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
