//! The final-read check: after the cluster healed, every member must answer
//! the same value for each key, and that value must be one a write could
//! have left there — no acknowledged write lost, no failed write applied.
//!
//! For a key with final value `v`, written by operation V:
//! - V must exist and have completed `Ok` or `Info` (a `Fail` write took effect otherwise);
//! - if V completed `Ok`, no other `Ok` write of the key may have been invoked
//!   after V completed (that later, acknowledged write would be lost);
//! - the key may be absent only if no write of it was acknowledged.
//!
//! This is not a linearizability checker (that lives in `check`); it is the
//! cheap end-state test the harness always runs.

use std::collections::HashMap;

use crate::history::{Entry, Kind, Op};
use crate::workload::register::FinalReads;

struct Write {
    kind: Kind,
    invoked: u64,
    completed: u64,
}

/// Violations found (empty: the final state is explained by the history).
pub fn check(history: &[Entry], finals: &FinalReads) -> Vec<String> {
    // (key, value) → the write that carried it; pending invocations by process.
    let mut writes: HashMap<(String, u64), Write> = HashMap::new();
    let mut pending: HashMap<i64, (String, u64, u64)> = HashMap::new();
    for e in history {
        let (key, value) = match &e.op {
            Op::Write { key, value } | Op::Cas { key, value, .. } => (key.clone(), *value),
            _ => continue,
        };
        match e.kind {
            Kind::Invoke => {
                pending.insert(e.process, (key, value, e.time));
            }
            kind => {
                let invoked = pending.remove(&e.process).map_or(0, |p| p.2);
                writes.insert(
                    (key, value),
                    Write {
                        kind,
                        invoked,
                        completed: e.time,
                    },
                );
            }
        }
    }
    // Invocations never completed (the run ended first) are unknown: Info.
    for (_, (key, value, invoked)) in pending {
        writes.insert(
            (key, value),
            Write {
                kind: Kind::Info,
                invoked,
                completed: u64::MAX,
            },
        );
    }
    let mut violations = Vec::new();
    for (key, answers) in finals {
        let mut values = Vec::new();
        for (m, a) in answers.iter().enumerate() {
            match a {
                Ok(v) => values.push(*v),
                Err(e) => violations.push(format!("{key}: member {m} gave no final read: {e}")),
            }
        }
        if values.is_empty() {
            continue;
        }
        if values.iter().any(|v| *v != values[0]) {
            violations.push(format!("{key}: members disagree on the final value: {values:?}"));
            continue;
        }
        let acked: Vec<(&u64, &Write)> = writes
            .iter()
            .filter(|((k, _), w)| k == key && w.kind == Kind::Ok)
            .map(|((_, v), w)| (v, w))
            .collect();
        match values[0] {
            None => {
                if !acked.is_empty() {
                    violations.push(format!("{key}: absent, but {} writes were acknowledged", acked.len()));
                }
            }
            Some(v) => match writes.get(&(key.clone(), v)) {
                None => violations.push(format!("{key}: final value {v} was never written")),
                Some(w) if w.kind == Kind::Fail => {
                    violations.push(format!("{key}: final value {v} comes from a write that failed"))
                }
                Some(w) => {
                    if w.kind == Kind::Ok {
                        if let Some((lost, _)) = acked.iter().find(|(_, y)| y.invoked > w.completed) {
                            violations.push(format!(
                                "{key}: final value {v}, but acknowledged write {lost} was invoked after it completed (lost)"
                            ));
                        }
                    }
                }
            },
        }
    }
    violations
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(process: i64, kind: Kind, time: u64, value: u64) -> Entry {
        Entry {
            process,
            kind,
            time,
            op: Op::Write { key: "k".into(), value },
            revision: None,
            error: None,
        }
    }

    fn finals(v: Option<u64>) -> FinalReads {
        vec![("k".into(), vec![Ok(v), Ok(v)])]
    }

    #[test]
    fn last_acknowledged_write_is_accepted() {
        let h = vec![
            e(0, Kind::Invoke, 1, 1),
            e(0, Kind::Ok, 2, 1),
            e(0, Kind::Invoke, 3, 2),
            e(0, Kind::Ok, 4, 2),
        ];
        assert!(check(&h, &finals(Some(2))).is_empty());
    }

    #[test]
    fn overwritten_final_value_means_a_lost_write() {
        let h = vec![
            e(0, Kind::Invoke, 1, 1),
            e(0, Kind::Ok, 2, 1),
            e(0, Kind::Invoke, 3, 2),
            e(0, Kind::Ok, 4, 2),
        ];
        assert_eq!(check(&h, &finals(Some(1))).len(), 1);
        assert_eq!(check(&h, &finals(None)).len(), 1);
    }

    #[test]
    fn info_write_may_win_failed_write_may_not() {
        let h = vec![
            e(0, Kind::Invoke, 1, 1),
            e(0, Kind::Ok, 2, 1),
            e(0, Kind::Invoke, 3, 2),
            e(0, Kind::Info, 4, 2),
        ];
        assert!(check(&h, &finals(Some(2))).is_empty());
        let h = vec![
            e(0, Kind::Invoke, 1, 1),
            e(0, Kind::Ok, 2, 1),
            e(0, Kind::Invoke, 3, 2),
            e(0, Kind::Fail, 4, 2),
        ];
        assert_eq!(check(&h, &finals(Some(2))).len(), 1);
    }

    #[test]
    fn members_must_agree() {
        let h = vec![e(0, Kind::Invoke, 1, 1), e(0, Kind::Ok, 2, 1)];
        let f = vec![("k".into(), vec![Ok(Some(1)), Ok(None)])];
        assert_eq!(check(&h, &f).len(), 1);
    }
}
