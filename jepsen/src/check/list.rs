//! Paginated lists (the kubernetes workload): a list reads a key prefix
//! page by page, every page after the first pinned to the first page's
//! revision R, so together the pages must be one snapshot of the prefix at
//! R. Rules, per list:
//!
//! 1. Its keys are in the prefix and strictly ascending (pages neither
//!    overlap nor go back).
//! 2. Each item is explained: its mod_revision is ≤ R, and a write that did
//!    not fail put its value on its key — at that mod_revision if the write
//!    was acknowledged.
//! 3. Each item is the newest: no acknowledged write or delete of its key
//!    has a revision in (mod_revision, R].
//! 4. None is missing: a key whose newest acknowledged operation at or
//!    below R is a write is listed, unless a delete of it whose outcome is
//!    unknown may have happened in between.
//! 5. Not stale: R is at least the revision of every acknowledged write
//!    that completed before the list was invoked (the first page is a
//!    linearizable read).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::ops::{Operation, Outcome};
use super::Violations;
use crate::history::Op;

/// One listed object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListItem {
    pub key: String,
    /// The value (None: not a number the workload wrote).
    pub value: Option<u64>,
    pub mod_revision: i64,
}

/// A completed paginated list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedList {
    pub process: i64,
    /// The listed range `[prefix, range_end)`.
    pub prefix: String,
    pub range_end: String,
    /// Invocation and completion, on the history's clock.
    pub invoke: u64,
    pub complete: u64,
    /// The snapshot revision: the first page's header revision.
    pub revision: i64,
    pub pages: usize,
    pub items: Vec<ListItem>,
}

/// The history's writes and deletes, indexed for the rules.
struct Index<'a> {
    /// Per key, the acknowledged writes and deletes by revision.
    acked: HashMap<&'a str, BTreeMap<i64, &'a Operation>>,
    /// Every write or cas by (key, value), whatever its outcome.
    by_value: HashMap<(&'a str, u64), Vec<&'a Operation>>,
    /// Per key, the deletes that did not fail and have no known revision.
    unknown_deletes: HashMap<&'a str, Vec<&'a Operation>>,
    /// Acknowledged writes and deletes as (completion time, revision).
    completed: Vec<(u64, i64)>,
}

impl<'a> Index<'a> {
    fn new(ops: &'a [Operation]) -> Self {
        let mut ix = Index {
            acked: HashMap::new(),
            by_value: HashMap::new(),
            unknown_deletes: HashMap::new(),
            completed: Vec::new(),
        };
        for o in ops {
            match &o.op {
                Op::Write { key, value } | Op::Cas { key, value, .. } => {
                    ix.by_value.entry((key, *value)).or_default().push(o);
                }
                Op::Delete { key, .. } if o.outcome != Outcome::Fail && o.write_revision().is_none() => {
                    ix.unknown_deletes.entry(key).or_default().push(o);
                }
                _ => {}
            }
            if let Some(r) = o.write_revision() {
                ix.acked.entry(o.key()).or_default().insert(r, o);
                if let Some(c) = o.complete {
                    ix.completed.push((c, r));
                }
            }
        }
        ix
    }
}

/// Checks the lists against a history's operations.
pub fn check(ops: &[Operation], lists: &[RecordedList]) -> Violations {
    let ix = Index::new(ops);
    let mut found = Vec::new();
    for (i, l) in lists.iter().enumerate() {
        check_one(i, l, &ix, &mut found);
    }
    let items: usize = lists.iter().map(|l| l.items.len()).sum();
    Violations {
        summary: format!("{} lists, {items} items consistent", lists.len()),
        found,
    }
}

fn check_one(i: usize, l: &RecordedList, ix: &Index<'_>, found: &mut Vec<String>) {
    let r = l.revision;
    let at = format!("list {i} (p{} at revision {r}, {} pages)", l.process, l.pages);
    // Rule 1.
    for pair in l.items.windows(2) {
        if pair[0].key >= pair[1].key {
            found.push(format!("{at}: {} listed after {}", pair[1].key, pair[0].key));
        }
    }
    for item in &l.items {
        let it = format!(
            "{at}: {}={:?} (mod_revision {})",
            item.key, item.value, item.mod_revision
        );
        if item.key < l.prefix || item.key >= l.range_end {
            found.push(format!("{it}: outside the listed range"));
        }
        // Rule 2.
        if item.mod_revision > r {
            found.push(format!("{it}: newer than the list's revision"));
        }
        match item.value {
            None => found.push(format!("{it}: a value no client wrote")),
            Some(v) => {
                if let Some(why) = unexplained(ix, &item.key, v, item.mod_revision) {
                    found.push(format!("{it}: {why}"));
                }
            }
        }
        // Rule 3.
        let newer = ix
            .acked
            .get(item.key.as_str())
            .filter(|_| item.mod_revision < r)
            .and_then(|by_rev| by_rev.range(item.mod_revision + 1..=r).next());
        if let Some((_, o)) = newer {
            found.push(format!("{it}: stale, {o} is newer and at or below {r}"));
        }
    }
    // Rule 4.
    for (key, by_rev) in &ix.acked {
        if *key < l.prefix.as_str() || *key >= l.range_end.as_str() {
            continue;
        }
        let Some((_, newest)) = by_rev.range(..=r).next_back() else {
            continue;
        };
        if matches!(newest.op, Op::Delete { .. }) || l.items.iter().any(|it| it.key == *key) {
            continue;
        }
        let maybe_deleted = ix
            .unknown_deletes
            .get(key)
            .is_some_and(|ds| ds.iter().any(|d| d.invoke < l.complete));
        if !maybe_deleted {
            found.push(format!("{at}: {key} is missing, though {newest} is its newest change"));
        }
    }
    // Rule 5.
    if let Some(&(_, w)) = ix
        .completed
        .iter()
        .filter(|&&(c, w)| c < l.invoke && w > r)
        .max_by_key(|&&(_, w)| w)
    {
        found.push(format!(
            "{at}: stale snapshot, revision {w} was acknowledged before the list began"
        ));
    }
}

/// Rule 2's value half; None when explained.
fn unexplained(ix: &Index<'_>, key: &str, value: u64, mod_revision: i64) -> Option<String> {
    let writers = ix.by_value.get(&(key, value)).map_or(&[][..], |v| &v[..]);
    if writers.is_empty() {
        return Some("no operation wrote that value to that key".into());
    }
    if writers.iter().all(|o| o.outcome == Outcome::Fail) {
        return Some(format!("that write failed: {}", writers[0]));
    }
    let fits = writers
        .iter()
        .any(|o| o.outcome != Outcome::Fail && o.write_revision().is_none_or(|w| w == mod_revision));
    (!fits).then(|| format!("that write was acknowledged at another revision: {}", writers[0]))
}

#[cfg(test)]
#[path = "list_tests.rs"]
mod tests;
