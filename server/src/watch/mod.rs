//! Watchers and event delivery (DESIGN.md invariant 6), etcd's
//! `watchable_store` in spirit.
//!
//! Apply publishes the events of each committed revision with
//! [`WatchHub::notify`], after the revision's batch is written. A watcher
//! is either
//! - **synced**: it has seen everything up to the current revision and gets
//!   each new revision's events in one [`Delivery`] at notify time; or
//! - **unsynced**: it is behind (it started at an old revision, or its
//!   stream could not take a delivery). The sync task catches it up from
//!   storage in batches of at most [`CATCH_UP_REVS`] revisions, then makes
//!   it synced. Watchers that need the same range of the same revisions in
//!   one pass share one read ([`reads`]).
//!
//! Watchers that want all of a revision's events (or all of a catch-up
//! read) share one copy of them, which the streams encode once
//! ([`events`], `rpc::watch_wire`, `rpc::watch_route`).
//!
//! Delivery never blocks apply: a stream's queue is bounded and a watcher
//! whose stream is full becomes unsynced and catches up from storage later,
//! so a slow consumer costs a bounded queue, never lost events. A watcher
//! whose next revision was compacted gets etcd's compaction response and is
//! dropped.
//!
//! Ordering: all deliveries of one watcher go through the hub's lock, and a
//! synced watcher is only given revisions above the last one it got, so
//! each watcher sees each revision once and in order.

mod events;
mod matcher;
mod queue;
mod reads;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use timon_proto::mvccpb::Event;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::Notify;

pub use events::{Events, SharedEvents};
pub use matcher::Filter;
use matcher::Interest;

use crate::mvcc::ReadView;
use crate::raft::StoreHandle;

/// At most this many revisions per catch-up delivery (etcd's watchBatchMaxRevs).
pub const CATCH_UP_REVS: i64 = 1000;

/// How often the sync task looks at unsynced watchers (etcd: 100 ms).
const SYNC_INTERVAL: Duration = Duration::from_millis(100);

/// What the hub hands a watch stream for one watcher.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub watch_id: i64,
    /// Events in revision order, without prev_kv (the stream adds it).
    pub events: Events,
    /// The header revision: the events' revision at notify time, the store
    /// revision for catch-up (as etcd), 0 for a compaction.
    pub revision: i64,
    /// Non-zero: the watcher's start revision was compacted; it is gone.
    pub compact_revision: i64,
}

/// What goes down one watch stream, in order: the hub's deliveries and the
/// stream's own answers (created, canceled, progress).
#[derive(Debug, Clone, PartialEq)]
pub enum Outbound {
    Delivery(Delivery),
    Control(timon_proto::etcdserverpb::WatchResponse),
}

pub use queue::{queue, Queue, QueueReceiver};

/// Identifies a watcher: its stream and its watch ID on that stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WatcherKey {
    pub stream: u64,
    pub watch_id: i64,
}

/// What a watcher asked for.
#[derive(Debug, Clone)]
pub struct WatchSpec {
    pub key: Vec<u8>,
    /// etcd's raw range end: empty = the key alone, `\0` = every key from
    /// `key`, else `[key, range_end)`.
    pub range_end: Vec<u8>,
    /// The first revision to deliver.
    pub start_rev: i64,
    pub filters: Vec<Filter>,
}

struct Watcher {
    interest: Interest,
    /// The next revision this watcher must get.
    next_rev: i64,
    queue: Queue,
}

#[derive(Default)]
struct Watchers {
    synced: HashMap<WatcherKey, Watcher>,
    unsynced: HashMap<WatcherKey, Watcher>,
}

pub struct WatchHub {
    store: Arc<StoreHandle>,
    watchers: Mutex<Watchers>,
    kick: Notify,
}

impl WatchHub {
    /// A hub reading history from `store`, with its sync task running.
    pub fn start(store: Arc<StoreHandle>) -> Arc<Self> {
        let hub = Arc::new(Self {
            store,
            watchers: Mutex::default(),
            kick: Notify::new(),
        });
        let weak = Arc::downgrade(&hub);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SYNC_INTERVAL);
            loop {
                let Some(hub) = weak.upgrade() else { return };
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = hub.kick.notified() => {}
                }
                hub.sync_unsynced();
            }
        });
        hub
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Watchers> {
        self.watchers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a watcher; the caller has already told its client it exists.
    /// It starts unsynced and the sync task brings it up to date (at once if
    /// it starts after the current revision).
    pub fn watch(&self, key: WatcherKey, spec: WatchSpec, queue: Queue) {
        let watcher = Watcher {
            interest: Interest::new(spec.key, spec.range_end, spec.filters),
            next_rev: spec.start_rev,
            queue,
        };
        let current = self.store.current().current_revision();
        let mut w = self.lock();
        if watcher.next_rev > current {
            w.synced.insert(key, watcher);
        } else {
            w.unsynced.insert(key, watcher);
            drop(w);
            self.kick.notify_one();
        }
    }

    /// Removes a watcher; false if there was none.
    pub fn cancel(&self, key: WatcherKey) -> bool {
        let mut w = self.lock();
        w.synced.remove(&key).is_some() || w.unsynced.remove(&key).is_some()
    }

    /// Removes every watcher of a stream.
    pub fn close_stream(&self, stream: u64) {
        let mut w = self.lock();
        w.synced.retain(|k, _| k.stream != stream);
        w.unsynced.retain(|k, _| k.stream != stream);
    }

    /// Whether a watcher exists and is synced (progress notifications go
    /// only to synced watchers, as in etcd).
    pub fn is_synced(&self, key: WatcherKey) -> bool {
        self.lock().synced.contains_key(&key)
    }

    /// How many watchers exist (synced, unsynced).
    pub fn counts(&self) -> (usize, usize) {
        let w = self.lock();
        (w.synced.len(), w.unsynced.len())
    }

    /// Publishes the events of revision `rev`, committed just now.
    pub fn notify(&self, rev: i64, events: &[Event]) {
        if events.is_empty() {
            return;
        }
        let mut w = self.lock();
        let Watchers { synced, unsynced } = &mut *w;
        let mut fell_behind = Vec::new();
        // The revision's events once, for every watcher that wants them all.
        let mut shared: Option<Arc<SharedEvents>> = None;
        let planted = crate::planted::active("drop-watch-event");
        for (key, watcher) in synced.iter_mut() {
            // A watcher the sync task already gave this revision.
            if watcher.next_rev > rev {
                continue;
            }
            let mine = if watcher.interest.wants_all(events) && !planted {
                Events::Shared(
                    shared
                        .get_or_insert_with(|| Arc::new(SharedEvents::new(events.to_vec())))
                        .clone(),
                )
            } else {
                let mut mine = watcher.interest.select(events);
                // A planted bug (never in normal builds): lose one event.
                if planted {
                    drop_planted_event(&mut mine);
                }
                Events::Own(mine)
            };
            if mine.is_empty() {
                watcher.next_rev = rev + 1;
                continue;
            }
            let d = Delivery {
                watch_id: key.watch_id,
                events: mine,
                revision: rev,
                compact_revision: 0,
            };
            match watcher.queue.try_send(Outbound::Delivery(d)) {
                Ok(()) => watcher.next_rev = rev + 1,
                // Full: catch up from storage later. Closed: stream gone.
                Err(TrySendError::Full(_)) => fell_behind.push((*key, true)),
                Err(TrySendError::Closed(_)) => fell_behind.push((*key, false)),
            }
        }
        let kick = !fell_behind.is_empty();
        for (key, keep) in fell_behind {
            if let Some(watcher) = synced.remove(&key) {
                if keep {
                    unsynced.insert(key, watcher);
                }
            }
        }
        drop(w);
        if kick {
            self.kick.notify_one();
        }
    }

    /// After a snapshot replaced the store, every watcher catches up from
    /// the new store.
    pub fn resync_all(&self) {
        let mut w = self.lock();
        let synced: Vec<_> = w.synced.drain().collect();
        w.unsynced.extend(synced);
        drop(w);
        self.kick.notify_one();
    }

    /// One pass of the sync task: every unsynced watcher gets at most one
    /// batch; a watcher that reached the current revision becomes synced.
    fn sync_unsynced(&self) {
        let mut w = self.lock();
        if w.unsynced.is_empty() {
            return;
        }
        let store = self.store.current();
        // The read view holds off apply, so `current` stays the store's
        // revision while the hub lock holds off notify.
        let view = store.read();
        let current = view.rev();
        let compacted = view.first_rev();
        let keys: Vec<WatcherKey> = w.unsynced.keys().copied().collect();
        let mut reads = reads::Reads::default();
        // Whether a watcher advanced and is still behind: worth another
        // pass at once. A watcher whose stream is full waits for the tick.
        let mut more = false;
        for key in keys {
            let Some(watcher) = w.unsynced.get_mut(&key) else {
                continue;
            };
            if watcher.queue.is_closed() {
                w.unsynced.remove(&key);
                continue;
            }
            // A stream that is not reading: nothing can go out, skip the read.
            if !watcher.queue.has_room() {
                continue;
            }
            if watcher.next_rev < compacted {
                let d = Delivery {
                    watch_id: key.watch_id,
                    events: Events::default(),
                    revision: 0,
                    compact_revision: compacted,
                };
                if watcher.queue.try_send(Outbound::Delivery(d)).is_ok() {
                    w.unsynced.remove(&key);
                }
                continue;
            }
            let until = current.min(watcher.next_rev.saturating_add(CATCH_UP_REVS - 1));
            if watcher.next_rev <= until {
                let room = watcher.queue.room_bytes();
                let (changes, covered) = match reads.changes_between(
                    &view,
                    watcher.interest.key(),
                    watcher.interest.range_end(),
                    watcher.next_rev,
                    until,
                    room,
                ) {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::error!("watch catch-up read failed: {e}");
                        continue;
                    }
                };
                // The read covers this watcher's range: only its filters
                // can make it want less than all of it.
                let events = if watcher.interest.wants_all(changes.events()) {
                    Events::Shared(changes)
                } else {
                    Events::Own(watcher.interest.select(changes.events()))
                };
                if !events.is_empty() {
                    let d = Delivery {
                        watch_id: key.watch_id,
                        events,
                        revision: current,
                        compact_revision: 0,
                    };
                    if watcher.queue.try_send(Outbound::Delivery(d)).is_err() {
                        // Still full (or gone): try again next pass.
                        continue;
                    }
                }
                watcher.next_rev = covered + 1;
                more |= watcher.next_rev <= current;
            }
            if watcher.next_rev > current {
                if let Some(watcher) = w.unsynced.remove(&key) {
                    w.synced.insert(key, watcher);
                }
            }
        }
        drop(view);
        drop(w);
        if more {
            self.kick.notify_one();
        }
    }
}

/// The planted `drop-watch-event` bug: removes the process's
/// [`crate::planted::DROPPED_WATCH_EVENT`]th event handed to a synced
/// watcher, if it is among `events`.
fn drop_planted_event(events: &mut Vec<Event>) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static DELIVERED: AtomicU64 = AtomicU64::new(0);
    let n = events.len() as u64;
    let before = DELIVERED.fetch_add(n, Ordering::Relaxed);
    let nth = crate::planted::DROPPED_WATCH_EVENT;
    if before < nth && nth <= before + n {
        events.remove((nth - before - 1) as usize);
    }
}

#[cfg(test)]
mod tests;
