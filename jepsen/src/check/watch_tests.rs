//! Tests of the watch checker: streams that must pass and streams with a
//! missing, duplicated, reordered, wrong or unexplained event.

use super::*;
use crate::check::ops::operations;
use crate::check::testgen::*;
use crate::history::History;

/// Acknowledged puts a=1@2, b=2@3, a=3@4; an info put a=4 that took effect
/// at 5 (watchers saw it); a failed put a=5; then b=6@6.
fn history() -> History {
    vec![
        inv(1, 0, write("a", 1)),
        ok(1, 1, write("a", 1), Some(2)),
        inv(1, 2, write("b", 2)),
        ok(1, 3, write("b", 2), Some(3)),
        inv(1, 4, write("a", 3)),
        ok(1, 5, write("a", 3), Some(4)),
        inv(2, 6, write("a", 4)),
        info(2, 7, write("a", 4)),
        inv(1, 8, write("a", 5)),
        fail(1, 9, write("a", 5)),
        inv(1, 10, write("b", 6)),
        ok(1, 11, write("b", 6), Some(6)),
    ]
}

fn put(rev: i64, key: &str, value: u64, prev: Option<u64>) -> WatchEvent {
    WatchEvent {
        revision: rev,
        key: key.into(),
        kind: EventType::Put,
        value: Some(value),
        prev_value: prev,
    }
}

fn watcher(id: &str, key: &str, range_end: Option<&str>, start: i64, events: Vec<WatchEvent>) -> RecordedWatch {
    RecordedWatch {
        id: id.into(),
        key: key.into(),
        range_end: range_end.map(String::from),
        start_revision: start,
        prev_kv: true,
        events,
        end: WatchEnd::Open,
        until_end: false,
    }
}

/// Everything from revision 2, keys a..z.
fn all_events() -> Vec<WatchEvent> {
    vec![
        put(2, "a", 1, None),
        put(3, "b", 2, None),
        put(4, "a", 3, Some(1)),
        put(5, "a", 4, Some(3)),
        put(6, "b", 6, Some(2)),
    ]
}

fn violations(watches: &[RecordedWatch]) -> Vec<String> {
    check(&operations(&history()).unwrap(), watches).found
}

fn assert_one(watches: &[RecordedWatch], needle: &str) {
    let v = violations(watches);
    assert!(v.iter().any(|s| s.contains(needle)), "want {needle:?} in {v:#?}");
}

#[test]
fn complete_and_partial_watchers_pass() {
    let v = violations(&[
        watcher("all", "a", Some("z"), 2, all_events()),
        watcher("from-end", "a", Some("\0"), 2, all_events()),
        // Started later: its first event on a carries the prev value.
        watcher("late", "a", Some("z"), 4, all_events().split_off(2)),
        // Only key b, stopped early (canceled).
        RecordedWatch {
            end: WatchEnd::Canceled,
            ..watcher("b", "b", None, 1, vec![put(3, "b", 2, None)])
        },
        // Compacted before it got anything.
        RecordedWatch {
            end: WatchEnd::Compacted { compact_revision: 3 },
            ..watcher("compacted", "a", Some("z"), 1, vec![])
        },
    ]);
    assert_eq!(v, Vec::<String>::new());
}

#[test]
fn an_info_write_that_never_took_effect_may_be_absent() {
    let mut events = all_events();
    events.remove(3);
    let mut h = history();
    h.truncate(10);
    h.push(inv(1, 10, write("b", 6)));
    h.push(ok(1, 11, write("b", 6), Some(5)));
    events[3].revision = 5;
    let v = check(&operations(&h).unwrap(), &[watcher("w", "a", Some("z"), 2, events)]).found;
    assert_eq!(v, Vec::<String>::new());
}

#[test]
fn missing_event_fails() {
    let mut events = all_events();
    events.remove(1);
    assert_one(&[watcher("w", "a", Some("z"), 2, events)], "missed revision 3");
}

#[test]
fn duplicated_event_fails() {
    let mut events = all_events();
    events.insert(2, put(3, "b", 2, None));
    assert_one(&[watcher("w", "a", Some("z"), 2, events)], "duplicate");
}

#[test]
fn reordered_events_fail() {
    let mut events = all_events();
    events.swap(1, 2);
    assert_one(&[watcher("w", "a", Some("z"), 2, events)], "out of order");
}

#[test]
fn wrong_prev_kv_fails() {
    let mut events = all_events();
    events[2].prev_value = Some(7);
    assert_one(
        &[watcher("w", "a", Some("z"), 2, events.clone())],
        "previous event on that key left Some(1)",
    );
    // On a key's first event, a value never written there before.
    assert_one(
        &[watcher("w", "a", Some("z"), 4, events.split_off(2))],
        "never written to that key",
    );
}

#[test]
fn events_that_no_write_explains_fail() {
    // The failed write becomes visible.
    let mut events = all_events();
    events.push(put(7, "a", 5, Some(4)));
    assert_one(&[watcher("w", "a", Some("z"), 2, events)], "that write failed");
    // Another value than the one acknowledged at that revision.
    let mut events = all_events();
    events[2].value = Some(4);
    assert_one(
        &[watcher("w", "a", Some("z"), 2, events)],
        "revision 4 was acknowledged to",
    );
    // Outside the range and before the start.
    assert_one(&[watcher("w", "a", None, 2, all_events())], "outside its range");
    assert_one(
        &[watcher("w", "a", Some("z"), 3, all_events())],
        "before its start revision",
    );
}

#[test]
fn watchers_that_disagree_fail() {
    // One saw the info write take effect at revision 5, the other did not.
    let mut events = all_events();
    events.remove(3);
    events[3].prev_value = Some(2);
    assert_one(
        &[
            watcher("w1", "a", Some("z"), 2, all_events()),
            watcher("w2", "a", Some("z"), 2, events),
        ],
        "watchers w1 and w2 disagree on revisions 2..=6: w1 got \"a\" at revision 5",
    );
    // A single-key watcher is compared on its key only.
    let v = violations(&[
        watcher("all", "a", Some("z"), 2, all_events()),
        watcher("a", "a", None, 2, vec![put(2, "a", 1, None), put(4, "a", 3, Some(1))]),
    ]);
    assert_eq!(v, Vec::<String>::new());
}

#[test]
fn a_watcher_open_to_the_end_owes_every_acknowledged_write() {
    let until_end = |start, events| RecordedWatch {
        until_end: true,
        ..watcher("w", "a", Some("z"), start, events)
    };
    // Missing the tail: fine for a watcher stopped early, not for one kept
    // open to the end.
    let mut events = all_events();
    events.truncate(3);
    assert_eq!(
        violations(&[watcher("w", "a", Some("z"), 2, events.clone())]),
        Vec::<String>::new()
    );
    assert_one(
        &[until_end(2, events)],
        "last event is at revision 4; it never got 1 acknowledged writes from revision 6 on",
    );
    assert_one(
        &[until_end(3, vec![])],
        "never got 3 acknowledged writes from revision 3 on",
    );
    // The info write at 5 is not owed; a start after the last write owes nothing.
    let mut events = all_events();
    events.remove(3);
    events[3].prev_value = Some(2);
    assert_eq!(violations(&[until_end(2, events)]), Vec::<String>::new());
    assert_eq!(violations(&[until_end(7, vec![])]), Vec::<String>::new());
}
