//! Watch streams: what a recorded watcher received, checked against the
//! acknowledged writes of the history and against the other watchers.
//!
//! A watcher covers the revisions from its start revision to the last
//! revision it received (everything up to there was delivered, as etcd
//! never splits a revision). Rules, per watcher:
//!
//! 1. Events are in its key range, at or after its start revision, in
//!    non-decreasing revision order, and no (revision, key) comes twice.
//! 2. A put at revision r matches the acknowledged write at r (same key and
//!    value); with no acknowledged write at r it must be a write whose
//!    outcome is unknown (`Info`, or `Ok` without a revision), never a
//!    `Fail`ed one, and never a value nobody wrote.
//! 3. No gaps: every acknowledged write in its range with a revision in
//!    the covered interval appears.
//! 4. With prev_kv, an event's previous value is the one of the watcher's
//!    previous event on that key (none after a delete); on a key's first
//!    event it must be a value written to that key below that revision.
//!
//! And across watchers: 5. any two agree on their common interval, over
//! the keys both ranges hold — the same events, so each revision is
//! delivered whole (atomically) or not at all. Deletes are checked by 1, 4
//! and 5 only, as the history has no delete operation.
//!
//! 6. A watcher recorded `until_end` (kept open after the writes stopped
//!    and the cluster healed) received every acknowledged write in its
//!    range from its start revision on, not only those below its last
//!    event: a watcher that stopped receiving lost the writes after.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::ops::{Operation, Outcome};
use super::Violations;
use crate::history::Op;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    Put,
    Delete,
}

/// One event as the watcher received it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchEvent {
    /// The event's kv mod_revision (the revision of the write).
    pub revision: i64,
    pub key: String,
    #[serde(rename = "type")]
    pub kind: EventType,
    /// The value put (None for a delete).
    #[serde(default)]
    pub value: Option<u64>,
    /// The previous value (only meaningful with `prev_kv`; None: absent).
    #[serde(default)]
    pub prev_value: Option<u64>,
}

/// How a watch stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "end")]
pub enum WatchEnd {
    /// Still open when the run ended.
    Open,
    Canceled,
    /// Canceled because its revision was compacted.
    Compacted {
        compact_revision: i64,
    },
}

/// A watcher and everything it received, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedWatch {
    /// A name for reports.
    pub id: String,
    pub key: String,
    /// etcd's range_end: None for the single key, "\0" for every key ≥
    /// `key`, otherwise the exclusive end.
    #[serde(default)]
    pub range_end: Option<String>,
    /// The first revision it covers. For a watch created with start
    /// revision 0, the created response's header revision + 1.
    pub start_revision: i64,
    /// Whether it asked for prev_kv.
    pub prev_kv: bool,
    pub events: Vec<WatchEvent>,
    pub end: WatchEnd,
    /// Kept open until every write had completed and the cluster had
    /// healed (and it had time to catch up): it owes every acknowledged
    /// write from its start revision on (rule 6).
    #[serde(default)]
    pub until_end: bool,
}

impl RecordedWatch {
    pub fn contains(&self, key: &str) -> bool {
        match self.range_end.as_deref() {
            None | Some("") => key == self.key,
            Some("\0") => key >= self.key.as_str(),
            Some(end) => key >= self.key.as_str() && key < end,
        }
    }

    /// The last revision it received, if any.
    pub fn last_revision(&self) -> Option<i64> {
        self.events.iter().map(|e| e.revision).max()
    }
}

/// The writes of the history, indexed for the rules above.
struct Writes<'a> {
    /// Acknowledged writes by revision: (key, value, operation).
    acked: BTreeMap<i64, (&'a str, u64, &'a Operation)>,
    /// Every write or cas by (key, value), whatever its outcome.
    by_value: HashMap<(&'a str, u64), Vec<&'a Operation>>,
}

impl<'a> Writes<'a> {
    fn new(ops: &'a [Operation]) -> Self {
        let mut w = Writes {
            acked: BTreeMap::new(),
            by_value: HashMap::new(),
        };
        for o in ops {
            let (Op::Write { key, value } | Op::Cas { key, value, .. }) = &o.op else {
                continue;
            };
            w.by_value.entry((key, *value)).or_default().push(o);
            if let Some(r) = o.write_revision() {
                w.acked.entry(r).or_insert((key, *value, o));
            }
        }
        w
    }

    /// Rule 2 for a put of `value` on `key` at `rev`; None when explained.
    fn unexplained_put(&self, key: &str, value: u64, rev: i64) -> Option<String> {
        if let Some(&(k, v, o)) = self.acked.get(&rev) {
            return (k != key || v != value).then(|| format!("but revision {rev} was acknowledged to {o}"));
        }
        let writers = self.by_value.get(&(key, value)).map_or(&[][..], |v| &v[..]);
        if writers.is_empty() {
            return Some("but no operation wrote that value to that key".into());
        }
        if writers.iter().all(|o| o.outcome == Outcome::Fail) {
            return Some(format!("but that write failed: {}", writers[0]));
        }
        let unknown = writers
            .iter()
            .any(|o| o.outcome == Outcome::Info || o.revision.is_none());
        (!unknown).then(|| format!("but that write was acknowledged at another revision: {}", writers[0]))
    }

    /// Rule 4 for the first event on a key: could `prev` have been there?
    fn possible_prev(&self, key: &str, prev: u64, rev: i64) -> bool {
        self.by_value.get(&(key, prev)).is_some_and(|ws| {
            ws.iter()
                .any(|o| o.outcome != Outcome::Fail && o.write_revision().is_none_or(|r| r < rev))
        })
    }
}

/// Checks recorded watchers against a history's operations.
pub fn check(ops: &[Operation], watches: &[RecordedWatch]) -> Violations {
    let writes = Writes::new(ops);
    let mut found = Vec::new();
    for w in watches {
        check_one(w, &writes, &mut found);
    }
    for (i, a) in watches.iter().enumerate() {
        for b in &watches[i + 1..] {
            compare(a, b, &mut found);
        }
    }
    let events: usize = watches.iter().map(|w| w.events.len()).sum();
    Violations {
        summary: format!("{} watchers, {events} events consistent", watches.len()),
        found,
    }
}

fn show(e: &WatchEvent) -> String {
    match e.kind {
        EventType::Put => format!("put {}={:?} @{}", e.key, e.value, e.revision),
        EventType::Delete => format!("delete {} @{}", e.key, e.revision),
    }
}

/// Rules 1 to 4 for one watcher.
fn check_one(w: &RecordedWatch, writes: &Writes<'_>, found: &mut Vec<String>) {
    let id = &w.id;
    let mut seen: HashSet<(i64, &str)> = HashSet::new();
    // Per key: the value after the watcher's last event on it (None: deleted).
    let mut current: HashMap<&str, Option<u64>> = HashMap::new();
    let mut last = i64::MIN;
    for (i, e) in w.events.iter().enumerate() {
        let at = format!("watcher {id} event {i} ({})", show(e));
        if !w.contains(&e.key) {
            found.push(format!("{at}: outside its range"));
        }
        if e.revision < w.start_revision {
            found.push(format!("{at}: before its start revision {}", w.start_revision));
        }
        if e.revision < last {
            found.push(format!("{at}: out of order, after revision {last}"));
        }
        last = last.max(e.revision);
        if !seen.insert((e.revision, &e.key)) {
            found.push(format!("{at}: duplicate"));
        }
        if e.kind == EventType::Put {
            match e.value {
                None => found.push(format!("{at}: a put without a value")),
                Some(v) => {
                    if let Some(why) = writes.unexplained_put(&e.key, v, e.revision) {
                        found.push(format!("{at}: {why}"));
                    }
                }
            }
        }
        if w.prev_kv {
            match current.get(e.key.as_str()) {
                Some(&expected) if expected != e.prev_value => found.push(format!(
                    "{at}: prev_kv {:?}, but its previous event on that key left {expected:?}",
                    e.prev_value
                )),
                None if e
                    .prev_value
                    .is_some_and(|p| !writes.possible_prev(&e.key, p, e.revision)) =>
                {
                    found.push(format!(
                        "{at}: prev_kv {:?} was never written to that key below revision {}",
                        e.prev_value, e.revision
                    ))
                }
                _ => {}
            }
        }
        current.insert(&e.key, e.value.filter(|_| e.kind == EventType::Put));
    }
    // Rule 3.
    let last = w.last_revision();
    if let Some(end) = last.filter(|&end| end >= w.start_revision) {
        for (&rev, &(key, _, o)) in writes.acked.range(w.start_revision..=end) {
            if w.contains(key) && !seen.contains(&(rev, key)) {
                found.push(format!(
                    "watcher {id} covers revisions {}..={end} but missed revision {rev}: {o}",
                    w.start_revision
                ));
            }
        }
    }
    // Rule 6.
    if w.until_end && w.start_revision > 0 {
        let after = last.map_or(w.start_revision, |l| (l + 1).max(w.start_revision));
        let owed: Vec<_> = writes
            .acked
            .range(after..)
            .filter(|(_, &(key, _, _))| w.contains(key))
            .collect();
        if let Some((rev, (_, _, o))) = owed.first() {
            found.push(format!(
                "watcher {id} stayed open to the end but its last event is at revision {}; it never got {} acknowledged writes from revision {rev} on: {o}",
                last.map_or_else(|| "none".into(), |l| l.to_string()),
                owed.len()
            ));
        }
    }
}

/// An event as compared across watchers: (revision, key, type, value, prev).
type Compared = (i64, String, EventType, Option<u64>, Option<u64>);

/// Rule 5 for a pair of watchers.
fn compare(a: &RecordedWatch, b: &RecordedWatch, found: &mut Vec<String>) {
    let (Some(a_end), Some(b_end)) = (a.last_revision(), b.last_revision()) else {
        return;
    };
    let (lo, hi) = (a.start_revision.max(b.start_revision), a_end.min(b_end));
    if lo > hi {
        return;
    }
    let with_prev = a.prev_kv && b.prev_kv;
    let common = |w: &RecordedWatch, other: &RecordedWatch| -> BTreeSet<Compared> {
        w.events
            .iter()
            .filter(|e| (lo..=hi).contains(&e.revision) && other.contains(&e.key))
            .map(|e| {
                let prev = e.prev_value.filter(|_| with_prev);
                (e.revision, e.key.clone(), e.kind, e.value, prev)
            })
            .collect()
    };
    let (ea, eb) = (common(a, b), common(b, a));
    if let Some(first) = ea.symmetric_difference(&eb).next() {
        let (has, lacks) = if ea.contains(first) { (a, b) } else { (b, a) };
        found.push(format!(
            "watchers {} and {} disagree on revisions {lo}..={hi}: {} got {:?} at revision {} ({:?}, value {:?}, prev {:?}), {} did not",
            a.id, b.id, has.id, first.1, first.0, first.2, first.3, first.4, lacks.id
        ));
    }
}

#[cfg(test)]
#[path = "watch_tests.rs"]
mod tests;
