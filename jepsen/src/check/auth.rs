//! The auth checker: no operation succeeded while its user's role
//! certainly lacked the permission it needed (the `auth` workload).
//!
//! The model is etcd's (`auth/store.go`): a role holds at most one
//! permission per exact key range; RoleGrantPermission replaces the type
//! of the role's permission of that range, or adds one; RoleRevokePermission
//! removes it whole. READWRITE allows reads and writes, READ reads, WRITE
//! writes. The workload's permissions are prefix ranges, none inside
//! another, and each read or write stays under one prefix, so a request is
//! allowed by a role exactly when the role's permission of a prefix the key
//! starts with allows it. Roles are created empty by the workload's setup,
//! before any worker starts.
//!
//! A permission *entry* is (role, prefix). Changes to it are the grant and
//! revoke operations of the history; a failed change did nothing, an `Info`
//! one may take effect at any time after its invocation. For a successful
//! read (needs READ) or write (needs WRITE) invoked at `i` and completed at
//! `c`, an entry *certainly lacks* the permission during [i, c] when:
//!
//! 1. its last change that completed `Ok` before `i` (or, if none, the empty
//!    role of the setup) left it without the permission, and
//! 2. no change that would give it (a grant of the needed type or of
//!    READWRITE) was invoked before `c`, except one that completed `Ok`
//!    before that last change was invoked (so certainly took effect before
//!    it). An `Info` grant counts as possibly applied at any later time.
//!
//! Then any order of the changes and the operation consistent with real
//! time applies the operation while the entry lacks the permission; if
//! every entry covering the key certainly lacks it, a correct server
//! refused the operation, and its success is a violation. A refusal is
//! never a violation (etcd may refuse on a stale token or auth revision).
//! The summary also counts the operations invoked while certainly forbidden
//! (the checker's reach in this run) and the refusals while certainly
//! allowed (by the symmetric rule; allowed by etcd's semantics, reported
//! only).
//!
//! After the run, [`check_final`] compares the permissions every member
//! holds (RoleGet) with the changes: each entry holds what its last `Ok`
//! change left, or what a change that may have been applied after that one
//! left (so a lost grant or revoke is caught, e.g. after a kill).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::ops::{Operation, Outcome};
use super::Violations;
use crate::history::{Op, Perm};

/// The error text of a permission refusal.
pub const DENIED: &str = "etcdserver: permission denied";

/// One change of a permission entry: the permission it leaves (None:
/// revoked), with its operation's times and outcome.
#[derive(Debug, Clone, Copy)]
struct Change {
    invoke: u64,
    /// Completion time of an `Ok` change; None for `Info`.
    complete: Option<u64>,
    leaves: Option<Perm>,
}

impl Change {
    fn allows(&self, needed: Perm) -> bool {
        self.leaves.is_some_and(|p| p.allows(needed))
    }
}

/// The changes of every (role, prefix), `Ok` and `Info` only.
struct Entries<'a> {
    changes: HashMap<(&'a str, &'a str), Vec<Change>>,
    /// Every prefix any change names.
    prefixes: BTreeSet<&'a str>,
}

impl<'a> Entries<'a> {
    fn new(ops: &'a [Operation]) -> Self {
        let mut changes: HashMap<(&str, &str), Vec<Change>> = HashMap::new();
        let mut prefixes = BTreeSet::new();
        for o in ops {
            let (role, prefix, leaves) = match &o.op {
                Op::GrantPermission { role, prefix, perm } => (role, prefix, Some(*perm)),
                Op::RevokePermission { role, prefix } => (role, prefix, None),
                _ => continue,
            };
            prefixes.insert(prefix.as_str());
            let complete = match o.outcome {
                Outcome::Ok => o.complete,
                Outcome::Info => None,
                Outcome::Fail => continue,
            };
            changes.entry((role, prefix)).or_default().push(Change {
                invoke: o.invoke,
                complete,
                leaves,
            });
        }
        Entries { changes, prefixes }
    }

    /// The prefixes of the entries that could allow a request on `key`.
    fn covering<'k>(&'k self, key: &'k str) -> impl Iterator<Item = &'a str> + 'k {
        self.prefixes.iter().copied().filter(move |p| key.starts_with(p))
    }

    /// Whether (role, prefix) certainly has (`want` true) or certainly
    /// lacks (`want` false) `needed` during [invoke, complete] (module doc):
    /// if so, whether because of a change (not the setup's empty role).
    fn certainly(
        &self,
        role: &str,
        prefix: &str,
        needed: Perm,
        want: bool,
        invoke: u64,
        complete: u64,
    ) -> Option<Because> {
        let none = Vec::new();
        let changes = self.changes.get(&(role, prefix)).unwrap_or(&none);
        // The last change completed Ok before `invoke`; the setup's empty
        // role (at time 0) if none.
        let last = changes
            .iter()
            .filter(|c| c.complete.is_some_and(|t| t < invoke))
            .max_by_key(|c| c.complete);
        let (last_invoke, last_allows) = last.map_or((0, false), |c| (c.invoke, c.allows(needed)));
        if last_allows != want {
            return None;
        }
        let maybe_other = changes.iter().any(|c| {
            let certainly_before_last = c.complete.is_some_and(|t| t < last_invoke);
            c.invoke < complete && c.allows(needed) != want && !certainly_before_last
        });
        match (maybe_other, last) {
            (true, _) => None,
            (false, Some(_)) => Some(Because::Change),
            (false, None) => Some(Because::Setup),
        }
    }
}

/// Why an entry certainly has or lacks a permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Because {
    /// The roles are created empty.
    Setup,
    /// A completed grant, revoke or downgrade.
    Change,
}

/// A role's prefix permissions as one member answered RoleGet after the run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FinalRole {
    pub member: String,
    pub role: String,
    /// Prefix → permission type.
    pub perms: BTreeMap<String, Perm>,
}

/// Checks the permissions the members hold after the run against the
/// history's changes (module doc); answers the problems found.
pub fn check_final(ops: &[Operation], observed: &[FinalRole]) -> Vec<String> {
    let entries = Entries::new(ops);
    let mut problems = Vec::new();
    for f in observed {
        let mut prefixes: BTreeSet<&str> = f.perms.keys().map(String::as_str).collect();
        prefixes.extend(entries.prefixes.iter().copied());
        for prefix in prefixes {
            let none = Vec::new();
            let changes = entries.changes.get(&(f.role.as_str(), prefix)).unwrap_or(&none);
            let last = changes
                .iter()
                .filter(|c| c.complete.is_some())
                .max_by_key(|c| c.complete);
            let last_invoke = last.map_or(0, |c| c.invoke);
            let mut possible: Vec<Option<Perm>> = vec![last.and_then(|c| c.leaves)];
            possible.extend(
                changes
                    .iter()
                    .filter(|c| c.complete.is_none_or(|t| t >= last_invoke))
                    .map(|c| c.leaves),
            );
            let held = f.perms.get(prefix).copied();
            if !possible.contains(&held) {
                let name = |p: Option<Perm>| p.map_or("nothing", Perm::name);
                problems.push(format!(
                    "{} holds {} on {prefix}* for {} after the run; the changes leave {}",
                    f.member,
                    name(held),
                    f.role,
                    possible.iter().map(|p| name(*p)).collect::<Vec<_>>().join(" or ")
                ));
            }
        }
    }
    problems
}

/// What an auth read or write needs, and from whom.
fn request(op: &Op) -> Option<(&str, &str, Perm)> {
    match op {
        Op::AuthRead { role, key, .. } => Some((role, key, Perm::Read)),
        Op::AuthWrite { role, key, .. } => Some((role, key, Perm::Write)),
        _ => None,
    }
}

/// Checks the auth workload's operations (all others are ignored).
pub fn check(ops: &[Operation]) -> Violations {
    let entries = Entries::new(ops);
    let mut found = Vec::new();
    let (mut ok, mut denied, mut other) = (0usize, 0usize, 0usize);
    let (mut forbidden, mut after_change, mut denied_though_allowed) = (0usize, 0usize, 0usize);
    for o in ops {
        let Some((role, key, needed)) = request(&o.op) else {
            continue;
        };
        // An Info write may have happened at any time: it never completes.
        let complete = o.complete.unwrap_or(u64::MAX);
        let lacks: Option<Vec<Because>> = entries
            .covering(key)
            .map(|p| entries.certainly(role, p, needed, false, o.invoke, complete))
            .collect();
        let certainly_forbidden = lacks.is_some();
        let certainly_allowed = entries
            .covering(key)
            .any(|p| entries.certainly(role, p, needed, true, o.invoke, complete).is_some());
        if let Some(because) = &lacks {
            forbidden += 1;
            if because.contains(&Because::Change) {
                after_change += 1;
            }
        }
        match o.outcome {
            Outcome::Ok => {
                ok += 1;
                if certainly_forbidden {
                    found.push(format!(
                        "{o}: succeeded though {role} certainly lacked {} on {key} from its invocation to its completion{}",
                        needed.name(),
                        explain(ops, role, key)
                    ));
                }
            }
            Outcome::Fail if o.error.as_deref() == Some(DENIED) => {
                denied += 1;
                if certainly_allowed {
                    denied_though_allowed += 1;
                }
            }
            _ => other += 1,
        }
    }
    let changes: usize = entries.changes.values().map(Vec::len).sum();
    Violations {
        summary: format!(
            "{} reads and writes ({ok} ok, {denied} denied, {other} failed or unknown) under {changes} permission \
             changes: {forbidden} invoked while certainly forbidden ({after_change} of them by a completed revoke \
             or grant), none succeeded; {denied_though_allowed} denied while certainly allowed",
            ok + denied + other
        ),
        found,
    }
}

/// The permission changes of `role` on the prefixes covering `key`, for a
/// violation's report (the last few).
fn explain(ops: &[Operation], role: &str, key: &str) -> String {
    let changes: Vec<String> = ops
        .iter()
        .filter(|o| match &o.op {
            Op::GrantPermission { role: r, prefix, .. } | Op::RevokePermission { role: r, prefix } => {
                r == role && key.starts_with(prefix.as_str())
            }
            _ => false,
        })
        .map(|o| format!("\n      {o}"))
        .collect();
    let shown = changes.len().saturating_sub(6);
    format!("; changes of {role} there: {}", changes[shown..].concat())
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;
