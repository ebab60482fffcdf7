//! Tests of the list checker: snapshots that must pass, and lists with a
//! stale, missing, invented, reordered or too-new item.

use super::*;
use crate::check::ops::operations;
use crate::check::testgen::*;
use crate::history::History;

fn delete(k: &str, expect: i64) -> Op {
    Op::Delete { key: k.into(), expect }
}

/// p/a=1@2, p/b=2@3, p/a=3@4 (cas), delete p/b@5, an info delete of p/a,
/// a failed write p/c=9.
fn history() -> History {
    vec![
        inv(1, 0, write("p/a", 1)),
        ok(1, 1, write("p/a", 1), Some(2)),
        inv(1, 2, write("p/b", 2)),
        ok(1, 3, write("p/b", 2), Some(3)),
        inv(1, 4, cas("p/a", 2, 3)),
        ok(1, 5, cas("p/a", 2, 3), Some(4)),
        inv(1, 6, delete("p/b", 3)),
        ok(1, 7, delete("p/b", 3), Some(5)),
        inv(1, 8, write("p/c", 9)),
        fail(1, 9, write("p/c", 9)),
        inv(2, 100, delete("p/a", 4)),
        info(2, 101, delete("p/a", 4)),
    ]
}

fn item(key: &str, value: u64, mod_revision: i64) -> ListItem {
    ListItem {
        key: key.into(),
        value: Some(value),
        mod_revision,
    }
}

fn list(invoke: u64, revision: i64, items: Vec<ListItem>) -> RecordedList {
    RecordedList {
        process: 3,
        prefix: "p/".into(),
        range_end: "p0".into(),
        invoke,
        complete: invoke + 1,
        revision,
        pages: 2,
        items,
    }
}

fn violations(lists: &[RecordedList]) -> Vec<String> {
    check(&operations(&history()).unwrap(), lists).found
}

fn assert_one(l: RecordedList, needle: &str) {
    let v = violations(&[l]);
    assert!(v.iter().any(|s| s.contains(needle)), "want {needle:?} in {v:#?}");
}

#[test]
fn snapshots_at_each_revision_pass() {
    let v = violations(&[
        list(0, 1, vec![]),
        list(2, 2, vec![item("p/a", 1, 2)]),
        list(4, 3, vec![item("p/a", 1, 2), item("p/b", 2, 3)]),
        list(6, 4, vec![item("p/a", 3, 4), item("p/b", 2, 3)]),
        list(8, 5, vec![item("p/a", 3, 4)]),
        // After the info delete of p/a: it may be gone.
        list(102, 6, vec![]),
    ]);
    assert_eq!(v, Vec::<String>::new());
}

#[test]
fn a_stale_item_fails() {
    assert_one(
        list(4, 4, vec![item("p/a", 1, 2), item("p/b", 2, 3)]),
        "stale, #4 p1 cas p/a",
    );
}

#[test]
fn a_missing_item_fails() {
    assert_one(list(4, 4, vec![item("p/b", 2, 3)]), "p/a is missing");
    // A deleted key is not missing.
    assert_eq!(violations(&[list(8, 5, vec![item("p/a", 3, 4)])]), Vec::<String>::new());
}

#[test]
fn invented_or_failed_values_fail() {
    assert_one(
        list(10, 5, vec![item("p/a", 3, 4), item("p/c", 9, 6)]),
        "that write failed",
    );
    assert_one(list(10, 5, vec![item("p/a", 7, 4)]), "no operation wrote that value");
    assert_one(list(10, 5, vec![item("p/a", 3, 3)]), "acknowledged at another revision");
    assert_one(list(10, 3, vec![item("p/a", 3, 4)]), "newer than the list's revision");
}

#[test]
fn pages_out_of_order_fail() {
    assert_one(
        list(4, 3, vec![item("p/b", 2, 3), item("p/a", 1, 2)]),
        "p/a listed after p/b",
    );
    assert_one(
        list(4, 3, vec![item("p/a", 1, 2), item("p/a", 1, 2), item("p/b", 2, 3)]),
        "p/a listed after p/a",
    );
}

#[test]
fn a_stale_snapshot_fails() {
    // Invoked after the cas at revision 4 completed, but at revision 3.
    assert_one(
        list(6, 3, vec![item("p/a", 1, 2), item("p/b", 2, 3)]),
        "stale snapshot, revision 4",
    );
}
