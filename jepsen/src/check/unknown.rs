//! Which `Info` writes and cas of one key can matter to the linearizability
//! search, and until when. Each pending `Info` op doubles the search space
//! (taken effect or not) for as long as it may still take effect, so this
//! bounds that window without changing any verdict.
//!
//! Why it is safe: take an `Info` write `u` whose value no read returned.
//! In any linearization, the operation right after `u` cannot be a read
//! (it would return `u`'s value), nor a cas expecting 0 or a revision some
//! completed operation on the key observed (revisions strictly increase
//! and values are unique, so that revision is not `u`'s), nor such a
//! guarded delete. So it is a write, after which removing `u` changes
//! nothing, or a cas or delete C whose expected revision nobody observed.
//! Hence `u` only matters if it takes effect
//! before the latest time such a C can take effect: C's completion, or ∞
//! for an `Info` C whose value was observed, or C's own deadline for an
//! `Info` C whose value was not (a least fixpoint). After its deadline `u`
//! is dropped; with no such C it is dropped outright. When values are not
//! unique on the key, every `Info` op keeps an unbounded window.

use std::collections::HashSet;

use super::ops::{Operation, Outcome};
use crate::history::Op;

fn written_value(op: &Op) -> Option<u64> {
    match op {
        Op::Write { value, .. } | Op::Cas { value, .. } => Some(*value),
        _ => None,
    }
}

/// The operations to search, each with the time by which it is resolved:
/// an `Ok` op's completion, an `Info` op's deadline (after which it did
/// not happen), or `None` for an `Info` op that may take effect any time.
/// `Info` ops that cannot matter are left out.
pub fn windows(ops: Vec<&Operation>) -> Vec<(&Operation, Option<u64>)> {
    let mut observed = HashSet::new();
    let mut revs = HashSet::from([0]);
    let mut values = HashSet::new();
    let mut unique = true;
    for o in &ops {
        if let Op::Read {
            value, mod_revision, ..
        } = &o.op
        {
            observed.extend(*value);
            revs.extend(*mod_revision);
        }
        revs.extend(o.write_revision());
        if let Some(v) = written_value(&o.op) {
            unique &= values.insert(v);
        }
    }
    let hidden = |o: &Operation| {
        unique && o.outcome == Outcome::Info && written_value(&o.op).is_some_and(|v| !observed.contains(&v))
    };
    // Cas ops whose expected revision nobody observed.
    let blind: Vec<usize> = (0..ops.len())
        .filter(|&i| matches!(ops[i].op, Op::Cas { expect, .. } | Op::Delete { expect, .. } if !revs.contains(&expect)))
        .collect();
    // deadline[i] for hidden ops: None = dropped, Some(u64::MAX) = never.
    let mut deadline: Vec<Option<u64>> = vec![None; ops.len()];
    let latest = |i: usize, deadline: &[Option<u64>]| -> Option<u64> {
        if hidden(ops[i]) {
            deadline[i]
        } else {
            Some(ops[i].complete.unwrap_or(u64::MAX))
        }
    };
    let mut changed = true;
    while changed {
        changed = false;
        for u in (0..ops.len()).filter(|&u| hidden(ops[u])) {
            let d = blind
                .iter()
                .filter(|&&c| c != u)
                .filter_map(|&c| latest(c, &deadline))
                .filter(|&l| l >= ops[u].invoke)
                .max();
            if d > deadline[u] {
                deadline[u] = d;
                changed = true;
            }
        }
    }
    ops.iter()
        .enumerate()
        .filter_map(|(i, &o)| match (o.outcome, hidden(o), deadline[i]) {
            (Outcome::Ok, _, _) => Some((o, o.complete)),
            (_, false, _) | (_, true, Some(u64::MAX)) => Some((o, None)),
            (_, true, Some(d)) => Some((o, Some(d))),
            (_, true, None) => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::ops::operations;
    use crate::check::testgen::*;

    fn windows_of(h: &crate::history::History) -> Vec<(usize, Option<u64>)> {
        let ops = operations(h).unwrap();
        windows(ops.iter().collect())
            .into_iter()
            .map(|(o, d)| (o.index, d))
            .collect()
    }

    #[test]
    fn unobserved_info_writes_are_dropped_and_observed_ones_kept() {
        let h = vec![
            inv(1, 0, write("k", 1)),
            info(1, 1, write("k", 1)),
            inv(2, 2, write("k", 2)),
            info(2, 3, write("k", 2)),
            inv(3, 4, read0("k")),
            ok(3, 5, read("k", Some(2), None), Some(3)),
        ];
        assert_eq!(windows_of(&h), [(2, None), (4, Some(5))]);
    }

    #[test]
    fn a_blind_cas_keeps_earlier_info_writes_until_it_completes() {
        let h = vec![
            inv(1, 0, write("k", 1)),
            info(1, 1, write("k", 1)),
            inv(2, 2, cas("k", 9, 2)),
            ok(2, 5, cas("k", 9, 2), Some(10)),
            // Invoked after the blind cas completed: cannot explain it.
            inv(1, 6, write("k", 3)),
            info(1, 7, write("k", 3)),
        ];
        assert_eq!(windows_of(&h), [(0, Some(5)), (2, Some(5))]);
    }

    #[test]
    fn duplicate_values_keep_every_info_op() {
        let h = vec![
            inv(1, 0, write("k", 1)),
            info(1, 1, write("k", 1)),
            inv(2, 2, write("k", 1)),
            ok(2, 5, write("k", 1), Some(3)),
        ];
        assert_eq!(windows_of(&h), [(0, None), (2, Some(5))]);
    }
}
