//! The shared, append-only history of one run: a monotonic clock started
//! with the run, and the entries clients and the nemesis append to it.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::history::{Entry, History, Kind, Op};

/// Cheap to clone; all clones append to the same history.
#[derive(Clone)]
pub struct Recorder {
    start: Instant,
    entries: Arc<Mutex<History>>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

impl Recorder {
    pub fn new() -> Recorder {
        Recorder {
            start: Instant::now(),
            entries: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Nanoseconds since the run started.
    pub fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Appends one entry stamped with the current time. The time is taken
    /// under the lock, so entries are in time order.
    pub fn record(&self, process: i64, kind: Kind, op: Op, revision: Option<i64>, error: Option<String>) {
        let mut entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let time = self.now();
        entries.push(Entry {
            process,
            kind,
            time,
            op,
            revision,
            error,
        });
    }

    /// Number of entries so far.
    pub fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A copy of the history so far.
    pub fn snapshot(&self) -> History {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}
