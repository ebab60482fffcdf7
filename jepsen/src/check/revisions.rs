//! Revisions across all keys: the store's one revision counter seen through
//! the acknowledged writes (their revision) and reads (their header
//! revision). Rules:
//!
//! 1. No revision is assigned to two acknowledged writes.
//! 2. If write A completed before write B was invoked, rev(A) < rev(B); and
//!    a write invoked after a read completed gets a revision above that
//!    read's header revision (the store never goes back).
//! 3. A read's header revision is ≥ the revision of every write, and of
//!    every read's header, that completed before the read was invoked
//!    (reads never go back in time; assumes linearizable reads).
//! 4. A read's mod_revision is ≤ its own header revision.
//!
//! Only `Ok` operations that reported a revision take part; equal times
//! count as concurrent.

use std::collections::BTreeMap;

use super::ops::{Operation, Outcome};
use super::Violations;
use crate::history::Op;

/// What an operation says about the revision counter.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Seen {
    /// An acknowledged write got this revision.
    Write(i64),
    /// A read was served at this header revision.
    Read(i64),
}

fn seen(o: &Operation) -> Option<Seen> {
    if o.outcome != Outcome::Ok {
        return None;
    }
    match o.op {
        // A fenced write (the lock workload) is a Txn that wrote.
        Op::Write { .. } | Op::Cas { .. } | Op::Delete { .. } | Op::Fenced { .. } => o.revision.map(Seen::Write),
        // A lock's fencing revision is the header of a read (or of its put).
        Op::Read { .. } | Op::Acquire { .. } => o.revision.map(Seen::Read),
        _ => None,
    }
}

/// Checks the rules above over a history's operations (in invocation order).
pub fn check(ops: &[Operation]) -> Violations {
    let mut found = Vec::new();

    // Rule 1.
    let mut by_rev: BTreeMap<i64, &Operation> = BTreeMap::new();
    for o in ops {
        if let Some(Seen::Write(r)) = seen(o) {
            if let Some(first) = by_rev.insert(r, o) {
                found.push(format!("revision {r} assigned twice: {first} and {o}"));
            }
        }
    }

    // Rules 2 and 3: sweep invocations in time order, folding in every
    // completion that happened strictly before.
    let mut completions: Vec<(u64, &Operation, Seen)> =
        ops.iter().filter_map(|o| Some((o.complete?, o, seen(o)?))).collect();
    completions.sort_by_key(|&(t, o, _)| (t, o.index));
    let mut folded = 0;
    let mut max_write: Option<(i64, &Operation)> = None;
    let mut max_read: Option<(i64, &Operation)> = None;
    let mut invocations: Vec<&Operation> = ops.iter().collect();
    invocations.sort_by_key(|o| (o.invoke, o.index));
    for o in invocations {
        while let Some(&(t, c, s)) = completions.get(folded) {
            if t >= o.invoke {
                break;
            }
            folded += 1;
            let (slot, r) = match s {
                Seen::Write(r) => (&mut max_write, r),
                Seen::Read(r) => (&mut max_read, r),
            };
            if slot.is_none_or(|(m, _)| r > m) {
                *slot = Some((r, c));
            }
        }
        match seen(o) {
            Some(Seen::Write(r)) => {
                if let Some((m, a)) = max_write.filter(|&(m, _)| r <= m) {
                    found.push(format!(
                        "write revisions go back in time: {a} (revision {m}) completed before {o} (revision {r}) was invoked"
                    ));
                }
                if let Some((m, a)) = max_read.filter(|&(m, _)| r <= m) {
                    found.push(format!(
                        "a write went back in time: {a} read at revision {m} and completed before {o} (revision {r}) was invoked"
                    ));
                }
            }
            Some(Seen::Read(h)) => {
                if let Some((m, a)) = max_write.filter(|&(m, _)| h < m) {
                    found.push(format!(
                        "a read went back in time: {a} (revision {m}) completed before {o} (header revision {h}) was invoked"
                    ));
                }
                if let Some((m, a)) = max_read.filter(|&(m, _)| h < m) {
                    found.push(format!(
                        "a read went back in time: {a} (header revision {m}) completed before {o} (header revision {h}) was invoked"
                    ));
                }
                // Rule 4.
                if let Op::Read {
                    mod_revision: Some(m), ..
                } = o.op
                {
                    if m > h {
                        found.push(format!("{o}: mod_revision {m} is above its header revision {h}"));
                    }
                }
            }
            None => {}
        }
    }
    let reads = ops.iter().filter(|o| matches!(seen(o), Some(Seen::Read(_)))).count();
    Violations {
        summary: format!(
            "{} acknowledged write revisions and {reads} read revisions consistent",
            by_rev.len()
        ),
        found,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::ops::operations;
    use crate::check::testgen::*;
    use crate::history::History;

    fn violations(h: &History) -> Vec<String> {
        check(&operations(h).unwrap()).found
    }

    #[test]
    fn sequential_and_concurrent_histories_pass() {
        let h = vec![
            inv(1, 0, write("a", 1)),
            ok(1, 10, write("a", 1), Some(2)),
            // b's write overlaps the next write on a: either order is fine.
            inv(2, 20, write("b", 2)),
            inv(1, 21, write("a", 3)),
            ok(1, 30, write("a", 3), Some(3)),
            ok(2, 31, write("b", 2), Some(4)),
            inv(3, 40, read0("a")),
            ok(3, 41, read("a", Some(3), Some(3)), Some(4)),
            // Failed and unknown operations carry no revision.
            inv(1, 50, cas("a", 9, 5)),
            fail(1, 51, cas("a", 9, 5)),
            inv(2, 52, write("a", 6)),
            info(2, 53, write("a", 6)),
        ];
        assert_eq!(violations(&h), Vec::<String>::new());
    }

    #[test]
    fn overlapping_writes_may_get_revisions_in_any_order() {
        let h = vec![
            inv(1, 0, write("a", 1)),
            inv(2, 1, write("b", 2)),
            ok(2, 5, write("b", 2), Some(2)),
            ok(1, 6, write("a", 1), Some(3)),
        ];
        assert!(violations(&h).is_empty());
        let h = vec![
            inv(1, 0, write("a", 1)),
            inv(2, 1, write("b", 2)),
            ok(2, 5, write("b", 2), Some(3)),
            ok(1, 6, write("a", 1), Some(2)),
        ];
        assert!(violations(&h).is_empty());
    }

    #[test]
    fn duplicate_revision_fails() {
        let h = vec![
            inv(1, 0, write("a", 1)),
            inv(2, 1, write("b", 2)),
            ok(2, 5, write("b", 2), Some(7)),
            ok(1, 6, write("a", 1), Some(7)),
        ];
        let v = violations(&h);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].contains("revision 7 assigned twice"), "{v:?}");
    }

    #[test]
    fn write_revision_going_back_fails() {
        let h = vec![
            inv(1, 0, write("a", 1)),
            ok(1, 5, write("a", 1), Some(8)),
            inv(2, 6, write("b", 2)),
            ok(2, 9, write("b", 2), Some(7)),
        ];
        let v = violations(&h);
        assert!(v.len() == 1 && v[0].contains("write revisions go back"), "{v:?}");
    }

    #[test]
    fn read_going_back_in_time_fails() {
        let h = vec![
            inv(1, 0, write("a", 1)),
            ok(1, 5, write("a", 1), Some(8)),
            inv(2, 6, read0("b")),
            ok(2, 9, read("b", None, None), Some(7)),
        ];
        let v = violations(&h);
        assert!(v.len() == 1 && v[0].contains("read went back"), "{v:?}");
        let h = vec![
            inv(1, 0, read0("a")),
            ok(1, 5, read("a", None, None), Some(8)),
            inv(2, 6, read0("b")),
            ok(2, 9, read("b", None, None), Some(7)),
        ];
        let v = violations(&h);
        assert!(v.len() == 1 && v[0].contains("read went back"), "{v:?}");
        // A write after a read must be above the read's revision.
        let h = vec![
            inv(1, 0, read0("a")),
            ok(1, 5, read("a", None, None), Some(8)),
            inv(2, 6, write("b", 2)),
            ok(2, 9, write("b", 2), Some(8)),
        ];
        let v = violations(&h);
        assert!(v.len() == 1 && v[0].contains("write went back"), "{v:?}");
    }

    #[test]
    fn mod_revision_above_header_fails() {
        let h = vec![inv(1, 0, read0("a")), ok(1, 5, read("a", Some(1), Some(9)), Some(8))];
        let v = violations(&h);
        assert!(v.len() == 1 && v[0].contains("above its header"), "{v:?}");
    }

    #[test]
    fn random_histories_pass() {
        for seed in 0..20 {
            let h = generate(&Gen {
                seed,
                keys: 3,
                ops: 300,
                clients: 5,
                info: 0.05,
                blind_cas: true,
            });
            assert_eq!(violations(&h), Vec::<String>::new(), "seed {seed}");
        }
    }
}
