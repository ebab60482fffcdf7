//! Linearizability of the per-key registers (reads, writes, cas on
//! mod_revision) against the model in `register`.
//!
//! Linearizability is local (Herlihy & Wing), so each key is checked alone.
//! Per key this is the Wing & Gong search with Lowe's memoization, as in
//! porcupine: the invocations and completions sit in one list ordered by
//! time; the search repeatedly picks an operation whose invocation comes
//! before the first completion still in the list (so it may take effect
//! now), applies it to the model, and removes it from the list; when it
//! meets a completion whose operation has not taken effect, it backtracks.
//! Every (set of operations taken effect, register) visited is remembered
//! so no configuration is explored twice; the number remembered is the
//! budget, and running out gives `Unknown`.
//!
//! `Fail` operations did not happen and are dropped, and so are `Info`
//! reads. `Info` writes and cas may take effect at any point after their
//! invocation or never; `unknown` bounds how long that choice stays open
//! (a soft completion: reaching it means the op never happened). The
//! search is done when every `Ok` operation took effect. Equal times count
//! as concurrent.
//!
//! Reads commute (`Config::commute_reads`): when a read may take effect now
//! and leaves the register as it is, it is taken at once, with no other
//! choice tried in its place, and if the search fails after it, it fails
//! before it too. Why: the read's invocation comes before every pending
//! completion, so no operation still pending must precede it; in any
//! linearization that takes it later, moving it to now keeps every other
//! operation's view of the register (it changes nothing). Without this,
//! k concurrent reads of one value make 2^k configurations, and a failing
//! search on a busy key (10 clients on one register) visits them all and
//! runs out of budget (`Unknown`) instead of answering `Invalid`.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;

use super::ops::{Operation, Outcome};
use super::register::Register;
use super::unknown;
use super::Validity;
use crate::history::Op;

/// Limits of the search.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Configurations remembered per key before giving up with `Unknown`
    /// (each costs roughly 100 bytes plus n/64 words).
    pub max_states_per_key: usize,
    /// Take a read that leaves the register unchanged as soon as it may
    /// take effect, without branching (see the module doc). Off only to
    /// compare verdicts with the plain search.
    pub commute_reads: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_states_per_key: 1_000_000,
            commute_reads: true,
        }
    }
}

/// The verdict for one key.
#[derive(Debug, Clone)]
pub struct KeyReport {
    pub key: String,
    /// Operations searched (after dropping the ones that cannot matter).
    pub ops: usize,
    /// Configurations remembered.
    pub states: usize,
    pub valid: Validity,
    /// For `Invalid` and `Unknown`: the longest linearizable prefix and why
    /// nothing could follow it.
    pub explanation: Option<String>,
}

/// The verdict for a whole history.
#[derive(Debug, Clone)]
pub struct Report {
    /// `Invalid` if some key is, else `Unknown` if some key is, else `Valid`.
    pub valid: Validity,
    /// Every key, in key order.
    pub keys: Vec<KeyReport>,
}

/// Checks every key of a history's operations.
pub fn check(ops: &[Operation], config: &Config) -> Report {
    let mut by_key: BTreeMap<&str, Vec<&Operation>> = BTreeMap::new();
    for o in ops {
        let relevant = o.op.is_register()
            && !matches!(
                (&o.op, o.outcome),
                (_, Outcome::Fail) | (Op::Read { .. }, Outcome::Info)
            );
        if relevant {
            by_key.entry(o.key()).or_default().push(o);
        }
    }
    let keys: Vec<KeyReport> = by_key
        .into_iter()
        .map(|(key, ops)| check_key(key, unknown::windows(ops), config))
        .collect();
    let valid = if keys.iter().any(|k| k.valid == Validity::Invalid) {
        Validity::Invalid
    } else if keys.iter().any(|k| k.valid == Validity::Unknown) {
        Validity::Unknown
    } else {
        Validity::Valid
    };
    Report { valid, keys }
}

const NIL: usize = usize::MAX;
const HEAD: usize = 0;

/// One key's search: the event list (node 0 is the head) and the bookkeeping.
struct Search<'a> {
    ops: Vec<&'a Operation>,
    next: Vec<usize>,
    prev: Vec<usize>,
    /// For each node after the head: its operation and whether it is the call.
    node: Vec<(usize, bool)>,
    call_node: Vec<usize>,
    return_node: Vec<Option<usize>>,
}

impl<'a> Search<'a> {
    /// `ops` with the time each is resolved by (see `unknown::windows`).
    fn new(windows: Vec<(&'a Operation, Option<u64>)>) -> Self {
        // (time, 0 = call / 1 = return, op): calls sort first at equal times.
        let mut events: Vec<(u64, u8, usize)> = Vec::with_capacity(2 * windows.len());
        for (i, &(o, by)) in windows.iter().enumerate() {
            events.push((o.invoke, 0, i));
            if let Some(t) = by {
                events.push((t, 1, i));
            }
        }
        let ops: Vec<&Operation> = windows.into_iter().map(|(o, _)| o).collect();
        events.sort_unstable();
        let n = events.len() + 1;
        let mut s = Search {
            next: (1..=n).map(|i| if i == n { NIL } else { i }).collect(),
            prev: (0..n).map(|i| if i == 0 { NIL } else { i - 1 }).collect(),
            node: vec![(NIL, false); n],
            call_node: vec![NIL; ops.len()],
            return_node: vec![None; ops.len()],
            ops,
        };
        for (j, &(_, kind, op)) in events.iter().enumerate() {
            s.node[j + 1] = (op, kind == 0);
            if kind == 0 {
                s.call_node[op] = j + 1;
            } else {
                s.return_node[op] = Some(j + 1);
            }
        }
        s
    }

    fn unlink(&mut self, x: usize) {
        let (p, n) = (self.prev[x], self.next[x]);
        self.next[p] = n;
        if n != NIL {
            self.prev[n] = p;
        }
    }

    /// Undoes `unlink(x)`; calls must nest (dancing links).
    fn relink(&mut self, x: usize) {
        let (p, n) = (self.prev[x], self.next[x]);
        self.next[p] = x;
        if n != NIL {
            self.prev[n] = x;
        }
    }

    fn lift(&mut self, op: usize) {
        self.unlink(self.call_node[op]);
        if let Some(r) = self.return_node[op] {
            self.unlink(r);
        }
    }

    fn unlift(&mut self, op: usize) {
        if let Some(r) = self.return_node[op] {
            self.relink(r);
        }
        self.relink(self.call_node[op]);
    }

    /// A read that may take effect now (invoked before the first pending
    /// completion) and leaves `state` as it is.
    fn commuting_read(&self, state: Register) -> Option<usize> {
        let mut entry = self.next[HEAD];
        while entry != NIL {
            let (op, is_call) = self.node[entry];
            if !is_call {
                return None;
            }
            let o = self.ops[op];
            if matches!(o.op, Op::Read { .. }) && state.step(&o.op, None) == Ok(state) {
                return Some(op);
            }
            entry = self.next[entry];
        }
        None
    }
}

/// Which operations took effect, compared exactly but stored compactly: the
/// number of leading all-ones words, then the words up to the last non-zero.
#[derive(Clone)]
struct Bits(Vec<u64>);

impl Bits {
    fn flip(&mut self, i: usize) {
        self.0[i / 64] ^= 1 << (i % 64);
    }
    fn key(&self) -> Box<[u64]> {
        let lead = self.0.iter().take_while(|&&w| w == u64::MAX).count();
        let end = self.0.iter().rposition(|&w| w != 0).map_or(lead, |p| p + 1).max(lead);
        let mut k = Vec::with_capacity(1 + end - lead);
        k.push(lead as u64);
        k.extend_from_slice(&self.0[lead..end]);
        k.into_boxed_slice()
    }
}

/// A step of the search: an operation took effect, or (an `Info` op
/// reaching its deadline) never happened.
#[derive(Clone, Copy)]
struct Step {
    op: usize,
    took_effect: bool,
    before: Register,
    /// A commuting read, taken without alternatives: backtracking goes
    /// past it.
    forced: bool,
}

/// Searches one key's operations (in invocation order), each with the time
/// it is resolved by.
pub fn check_key(key: &str, windows: Vec<(&Operation, Option<u64>)>, config: &Config) -> KeyReport {
    let n = windows.len();
    let mut s = Search::new(windows);
    let mut remaining_ok = s.ops.iter().filter(|o| o.outcome == Outcome::Ok).count();
    let mut done = Bits(vec![0; n.div_ceil(64)]);
    let mut seen: HashSet<(Box<[u64]>, Register)> = HashSet::new();
    let mut stack: Vec<Step> = Vec::new();
    let mut state = Register::Absent;
    let mut best: (Vec<Step>, Register) = (Vec::new(), Register::Absent);
    let mut entry = s.next[HEAD];
    // A configuration reached by a step (or the first): look for a
    // commuting read before anything else.
    let mut fresh = true;
    let valid = 'search: loop {
        if remaining_ok == 0 {
            break Validity::Valid;
        }
        let read = if fresh && config.commute_reads {
            s.commuting_read(state)
        } else {
            None
        };
        fresh = false;
        let mut failed = false;
        if let Some(op) = read {
            done.flip(op);
            if seen.insert((done.key(), state)) {
                if seen.len() > config.max_states_per_key {
                    break Validity::Unknown;
                }
                stack.push(Step {
                    op,
                    took_effect: true,
                    before: state,
                    forced: true,
                });
                s.lift(op);
                remaining_ok -= usize::from(s.ops[op].outcome == Outcome::Ok);
                entry = s.next[HEAD];
                fresh = true;
                continue;
            }
            // Searched from there already, and failed: so fails this one.
            done.flip(op);
            failed = true;
        }
        let (op, is_call) = if entry == NIL || failed {
            (NIL, false)
        } else {
            s.node[entry]
        };
        // An op may take effect now; or an `Info` op's deadline passed.
        let next = if is_call {
            state.step(&s.ops[op].op, s.ops[op].write_revision()).ok()
        } else if op != NIL && s.ops[op].outcome == Outcome::Info {
            Some(state)
        } else {
            None
        };
        if let Some(after) = next {
            done.flip(op);
            if seen.insert((done.key(), after)) {
                if seen.len() > config.max_states_per_key {
                    break Validity::Unknown;
                }
                stack.push(Step {
                    op,
                    took_effect: is_call,
                    before: state,
                    forced: false,
                });
                state = after;
                s.lift(op);
                remaining_ok -= usize::from(s.ops[op].outcome == Outcome::Ok);
                entry = s.next[HEAD];
                fresh = true;
                continue;
            }
            done.flip(op);
        }
        if is_call {
            entry = s.next[entry];
            continue;
        }
        // A completion of an operation that has not taken effect: backtrack.
        if stack.len() > best.0.len() {
            best = (stack.clone(), state);
        }
        let step = loop {
            let Some(step) = stack.pop() else {
                break 'search Validity::Invalid;
            };
            done.flip(step.op);
            state = step.before;
            s.unlift(step.op);
            remaining_ok += usize::from(s.ops[step.op].outcome == Outcome::Ok);
            if !step.forced {
                break step;
            }
        };
        // After an undone drop, nothing is left to try at its deadline.
        entry = match (step.took_effect, s.return_node[step.op]) {
            (false, Some(r)) => r,
            _ => s.next[s.call_node[step.op]],
        };
    };
    if valid == Validity::Unknown && stack.len() > best.0.len() {
        best = (stack, state);
    }
    let explanation = (valid != Validity::Valid).then(|| explain(key, &s.ops, &best, valid, seen.len()));
    KeyReport {
        key: key.to_string(),
        ops: n,
        states: seen.len(),
        valid,
        explanation,
    }
}

/// Lines shown from each list in an explanation.
const SHOW: usize = 8;

fn explain(key: &str, ops: &[&Operation], best: &(Vec<Step>, Register), valid: Validity, states: usize) -> String {
    let (prefix, state) = best;
    let mut out = String::new();
    let _ = match valid {
        Validity::Unknown => writeln!(
            out,
            "key {key:?}: gave up after {states} configurations (state budget); the longest \
             linearizable prefix found has {} of its {} operations",
            prefix.len(),
            ops.len()
        ),
        _ => writeln!(
            out,
            "key {key:?}: not linearizable; the longest linearizable prefix has {} of its {} operations",
            prefix.len(),
            ops.len()
        ),
    };
    let _ = writeln!(out, "  the prefix ends with:");
    for step in prefix.iter().skip(prefix.len().saturating_sub(SHOW)) {
        let dropped = if step.took_effect { "" } else { " (never took effect)" };
        let _ = writeln!(out, "    {}{dropped}", ops[step.op]);
    }
    let _ = writeln!(out, "  register after it: {state}");
    // What could go next: operations not yet taken effect, invoked no later
    // than the earliest completion among those.
    let mut taken = vec![false; ops.len()];
    for step in prefix {
        taken[step.op] = true;
    }
    let deadline = (0..ops.len())
        .filter(|&i| !taken[i] && ops[i].outcome == Outcome::Ok)
        .filter_map(|i| ops[i].complete)
        .min()
        .unwrap_or(u64::MAX);
    let _ = writeln!(out, "  no operation can take effect next (one must, by t={deadline}):");
    let next: Vec<usize> = (0..ops.len())
        .filter(|&i| !taken[i] && ops[i].invoke <= deadline)
        .collect();
    for &i in next.iter().take(SHOW) {
        let why = match state.step(&ops[i].op, ops[i].write_revision()) {
            Err(reject) => reject.to_string(),
            Ok(_) => "it can take effect, but then the rest cannot".to_string(),
        };
        let _ = writeln!(out, "    {}: {why}", ops[i]);
    }
    if next.len() > SHOW {
        let _ = writeln!(out, "    ... and {} more", next.len() - SHOW);
    }
    out
}
