//! Completed operations: pairs each invocation in a history with its
//! completion, the one view of a history every checker reads.
//!
//! A process has at most one outstanding operation, so an operation is the
//! process's `Invoke` followed by its next completion. An invocation that
//! never completes counts as `Info` (outcome unknown). After an `Info` the
//! process may invoke again: the unknown operation stays pending forever.
//! Nemesis entries (`Op::Nemesis`) are not operations and are skipped.

use std::collections::HashMap;
use std::fmt;

use crate::history::{Entry, History, Kind, Op};

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Happened, with the result in `Operation::op`.
    Ok,
    /// Certainly did not happen.
    Fail,
    /// May or may not have happened, at any time after its invocation.
    Info,
}

/// One operation from invocation to completion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// Position of the invocation in the history (a stable id for reports).
    pub index: usize,
    pub process: i64,
    pub invoke: u64,
    /// Completion time; `None` for `Info` (it never completes).
    pub complete: Option<u64>,
    pub outcome: Outcome,
    /// The completion's op for `Ok` (reads carry their result there), the
    /// invocation's op otherwise.
    pub op: Op,
    /// Header revision of the completion, when known (`Ok` only).
    pub revision: Option<i64>,
    /// Why it failed or is unknown, as the completion said.
    pub error: Option<String>,
}

impl Operation {
    pub fn key(&self) -> &str {
        match &self.op {
            Op::Read { key, .. } | Op::Write { key, .. } | Op::Cas { key, .. } | Op::Delete { key, .. } => key,
            Op::Acquire { name, .. } => name,
            Op::Release { key } => key,
            Op::Fenced { lock, .. } => lock,
            Op::LeasedPut { key, .. } | Op::LeasedRead { key, .. } => key,
            Op::AuthRead { key, .. } | Op::AuthWrite { key, .. } => key,
            Op::GrantPermission { prefix, .. } | Op::RevokePermission { prefix, .. } => prefix,
            Op::Authenticate { .. } => "",
            Op::Grant { .. } | Op::KeepAlive { .. } | Op::Revoke { .. } | Op::Nemesis { .. } => "",
        }
    }

    /// The revision an acknowledged write, cas or delete got (its header
    /// revision).
    pub fn write_revision(&self) -> Option<i64> {
        match (&self.op, self.outcome) {
            (Op::Write { .. } | Op::Cas { .. } | Op::Delete { .. }, Outcome::Ok) => self.revision,
            _ => None,
        }
    }

    /// Did the operation complete before `other` was invoked?
    pub fn precedes(&self, other: &Operation) -> bool {
        self.complete.is_some_and(|c| c < other.invoke)
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{} p{} ", self.index, self.process)?;
        match &self.op {
            Op::Read {
                key,
                value,
                mod_revision,
            } => {
                write!(f, "read {key}")?;
                if self.outcome == Outcome::Ok {
                    match value {
                        Some(v) => write!(f, " -> {v}")?,
                        None => write!(f, " -> absent")?,
                    }
                    if let Some(m) = mod_revision {
                        write!(f, " (mod_revision {m})")?;
                    }
                }
            }
            Op::Write { key, value } => write!(f, "write {key}={value}")?,
            Op::Cas { key, expect, value } => write!(f, "cas {key}: mod_revision {expect} ? {value}")?,
            Op::Delete { key, expect } => write!(f, "delete {key}: mod_revision {expect} ?")?,
            Op::Acquire { name, lease, key } => {
                write!(f, "acquire {name} lease {lease:x}")?;
                if let Some(k) = key {
                    write!(f, " -> {k}")?;
                }
            }
            Op::Release { key } => write!(f, "release {key}")?,
            Op::Fenced { lock, value } => write!(f, "fenced write {value} while {lock} exists")?,
            Op::Grant { ttl, lease } => {
                write!(f, "grant ttl {ttl}")?;
                if let Some(l) = lease {
                    write!(f, " -> {l:x}")?;
                }
            }
            Op::KeepAlive { lease, ttl } => {
                write!(f, "keepalive {lease:x}")?;
                if let Some(t) = ttl {
                    write!(f, " -> ttl {t}")?;
                }
            }
            Op::Revoke { lease } => write!(f, "revoke {lease:x}")?,
            Op::LeasedPut { key, lease, value } => write!(f, "put {key}={value} with lease {lease:x}")?,
            Op::LeasedRead { key, value } => {
                write!(f, "read {key}")?;
                if self.outcome == Outcome::Ok {
                    match value {
                        Some(v) => write!(f, " -> {v}")?,
                        None => write!(f, " -> absent")?,
                    }
                }
            }
            Op::Authenticate { user } => write!(f, "authenticate {user}")?,
            Op::GrantPermission { role, prefix, perm } => write!(f, "grant {} on {prefix}* to {role}", perm.name())?,
            Op::RevokePermission { role, prefix } => write!(f, "revoke {prefix}* from {role}")?,
            Op::AuthRead {
                user,
                role,
                key,
                prefix,
                found,
            } => {
                let star = if *prefix { "*" } else { "" };
                write!(f, "{user} ({role}) reads {key}{star}")?;
                if let (Outcome::Ok, Some(n)) = (self.outcome, found) {
                    write!(f, " -> {n} keys")?;
                }
            }
            Op::AuthWrite { user, role, key, value } => write!(f, "{user} ({role}) writes {key}={value}")?,
            Op::Nemesis { action } => write!(f, "nemesis {action}")?,
        }
        match self.outcome {
            Outcome::Ok => write!(f, " ok")?,
            Outcome::Fail => write!(f, " fail")?,
            Outcome::Info => write!(f, " info")?,
        }
        if let Some(r) = self.revision {
            write!(f, " @rev {r}")?;
        }
        match self.complete {
            Some(c) => write!(f, " [t {}..{}]", self.invoke, c),
            None => write!(f, " [t {}..]", self.invoke),
        }
    }
}

/// Why a history cannot be read as operations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    #[error("entry {index}: process {process} completes an operation it never invoked")]
    CompletionWithoutInvoke { index: usize, process: i64 },
    #[error("entry {index}: process {process} invokes while entry {pending} is still outstanding")]
    DoubleInvoke { index: usize, process: i64, pending: usize },
    #[error("entry {index}: completion does not match invocation {invoke} (different function or key)")]
    Mismatch { index: usize, invoke: usize },
    #[error("entry {index}: completion at t={time} precedes its invocation")]
    TimeTravel { index: usize, time: u64 },
}

/// Pairs invocations with completions, in invocation order.
pub fn operations(history: &History) -> Result<Vec<Operation>, HistoryError> {
    let mut pending: HashMap<i64, usize> = HashMap::new();
    let mut done: Vec<Operation> = Vec::new();
    for (index, e) in history.iter().enumerate() {
        if matches!(e.op, Op::Nemesis { .. }) {
            continue;
        }
        if e.kind == Kind::Invoke {
            if let Some(&p) = pending.get(&e.process) {
                return Err(HistoryError::DoubleInvoke {
                    index,
                    process: e.process,
                    pending: p,
                });
            }
            pending.insert(e.process, index);
            continue;
        }
        let invoke = pending
            .remove(&e.process)
            .ok_or(HistoryError::CompletionWithoutInvoke {
                index,
                process: e.process,
            })?;
        done.push(complete(&history[invoke], invoke, e, index)?);
    }
    for (_, invoke) in pending {
        let e = &history[invoke];
        done.push(Operation {
            index: invoke,
            process: e.process,
            invoke: e.time,
            complete: None,
            outcome: Outcome::Info,
            op: e.op.clone(),
            revision: None,
            error: None,
        });
    }
    done.sort_by_key(|o| (o.invoke, o.index));
    Ok(done)
}

fn complete(inv: &Entry, invoke: usize, e: &Entry, index: usize) -> Result<Operation, HistoryError> {
    let same = match (&inv.op, &e.op) {
        (Op::Read { key: a, .. }, Op::Read { key: b, .. }) => a == b,
        (Op::Write { key: a, value: x }, Op::Write { key: b, value: y }) => a == b && x == y,
        (
            Op::Cas {
                key: a,
                expect: x,
                value: v,
            },
            Op::Cas {
                key: b,
                expect: y,
                value: w,
            },
        ) => a == b && x == y && v == w,
        (Op::Delete { key: a, expect: x }, Op::Delete { key: b, expect: y }) => a == b && x == y,
        (Op::Acquire { name: a, lease: x, .. }, Op::Acquire { name: b, lease: y, .. }) => a == b && x == y,
        (Op::Release { key: a }, Op::Release { key: b }) => a == b,
        (Op::Fenced { lock: a, value: x }, Op::Fenced { lock: b, value: y }) => a == b && x == y,
        (Op::Grant { ttl: a, .. }, Op::Grant { ttl: b, .. }) => a == b,
        (Op::KeepAlive { lease: a, .. }, Op::KeepAlive { lease: b, .. }) => a == b,
        (Op::Revoke { lease: a }, Op::Revoke { lease: b }) => a == b,
        (
            Op::LeasedPut {
                key: a,
                lease: x,
                value: v,
            },
            Op::LeasedPut {
                key: b,
                lease: y,
                value: w,
            },
        ) => a == b && x == y && v == w,
        (Op::LeasedRead { key: a, .. }, Op::LeasedRead { key: b, .. }) => a == b,
        (Op::Authenticate { user: a }, Op::Authenticate { user: b }) => a == b,
        (Op::GrantPermission { .. }, Op::GrantPermission { .. })
        | (Op::RevokePermission { .. }, Op::RevokePermission { .. })
        | (Op::AuthWrite { .. }, Op::AuthWrite { .. }) => inv.op == e.op,
        (
            Op::AuthRead {
                user: a,
                key: x,
                prefix: p,
                ..
            },
            Op::AuthRead {
                user: b,
                key: y,
                prefix: q,
                ..
            },
        ) => a == b && x == y && p == q,
        _ => false,
    };
    if !same {
        return Err(HistoryError::Mismatch { index, invoke });
    }
    if e.time < inv.time {
        return Err(HistoryError::TimeTravel { index, time: e.time });
    }
    let (outcome, complete, op, revision) = match e.kind {
        Kind::Ok => (Outcome::Ok, Some(e.time), e.op.clone(), e.revision),
        Kind::Fail => (Outcome::Fail, Some(e.time), inv.op.clone(), None),
        // Info (and, defensively, a second Invoke can't reach here).
        _ => (Outcome::Info, None, inv.op.clone(), None),
    };
    Ok(Operation {
        index: invoke,
        process: inv.process,
        invoke: inv.time,
        complete,
        outcome,
        op,
        revision,
        error: e.error.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testgen::*;

    #[test]
    fn pairs_by_process_and_keeps_pending_as_info() {
        let h = vec![
            inv(1, 0, write("k", 1)),
            inv(2, 1, read0("k")),
            ok(2, 2, read("k", Some(1), Some(5)), Some(5)),
            ok(1, 3, write("k", 1), Some(5)),
            inv(2, 4, write("k", 2)),
            info(2, 9, write("k", 2)),
            inv(2, 10, cas("k", 5, 3)),
        ];
        let ops = operations(&h).unwrap();
        assert_eq!(ops.len(), 4);
        assert_eq!(ops[0].complete, Some(3));
        assert_eq!(ops[1].op, read("k", Some(1), Some(5)));
        assert_eq!((ops[2].outcome, ops[2].complete), (Outcome::Info, None));
        assert_eq!((ops[3].outcome, ops[3].complete), (Outcome::Info, None));
    }

    #[test]
    fn rejects_malformed_histories() {
        let h = vec![ok(1, 0, write("k", 1), Some(2))];
        assert!(matches!(
            operations(&h),
            Err(HistoryError::CompletionWithoutInvoke { .. })
        ));
        let h = vec![inv(1, 0, write("k", 1)), inv(1, 1, write("k", 2))];
        assert!(matches!(operations(&h), Err(HistoryError::DoubleInvoke { .. })));
        let h = vec![inv(1, 0, write("k", 1)), ok(1, 1, write("j", 1), Some(2))];
        assert!(matches!(operations(&h), Err(HistoryError::Mismatch { .. })));
    }
}
