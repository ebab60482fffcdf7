//! Terse history builders and a generator of random concurrent histories
//! from a real sequential store: for the checkers' tests and for
//! `timon-jepsen check-bench` (`crate::checkbench`).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::history::{Entry, History, Kind, Op};

fn entry(process: i64, kind: Kind, time: u64, op: Op, revision: Option<i64>) -> Entry {
    Entry {
        process,
        kind,
        time,
        op,
        revision,
        error: None,
    }
}

pub fn inv(p: i64, t: u64, op: Op) -> Entry {
    entry(p, Kind::Invoke, t, op, None)
}
pub fn ok(p: i64, t: u64, op: Op, rev: Option<i64>) -> Entry {
    entry(p, Kind::Ok, t, op, rev)
}
pub fn fail(p: i64, t: u64, op: Op) -> Entry {
    entry(p, Kind::Fail, t, op, None)
}
pub fn info(p: i64, t: u64, op: Op) -> Entry {
    entry(p, Kind::Info, t, op, None)
}
pub fn read(k: &str, value: Option<u64>, mod_revision: Option<i64>) -> Op {
    Op::Read {
        key: k.into(),
        value,
        mod_revision,
    }
}
/// A read as invoked (no result yet).
pub fn read0(k: &str) -> Op {
    read(k, None, None)
}
pub fn write(k: &str, value: u64) -> Op {
    Op::Write { key: k.into(), value }
}
pub fn cas(k: &str, expect: i64, value: u64) -> Op {
    Op::Cas {
        key: k.into(),
        expect,
        value,
    }
}

/// Shape of a generated history.
pub struct Gen {
    pub seed: u64,
    pub keys: usize,
    pub ops: usize,
    pub clients: i64,
    /// Probability that an operation ends `Info` (half of those take effect).
    pub info: f64,
    /// Cas expects the true current revision, even one only a hidden
    /// (`Info`) write had; otherwise the last revision clients saw.
    pub blind_cas: bool,
}

/// A history explained by a sequential store: each operation takes effect
/// at a point strictly inside its random [invoke, complete] interval, one
/// global revision counter across keys, unique written values.
pub fn generate(g: &Gen) -> History {
    let mut rng = StdRng::seed_from_u64(g.seed);
    let mut store: Vec<Option<(u64, i64)>> = vec![None; g.keys];
    // Per key, the revisions clients have seen (a cas expects one of these).
    let mut seen: Vec<Vec<i64>> = vec![vec![0]; g.keys];
    let mut rev: i64 = 1;
    let mut next_value = 1u64;
    let mut free = vec![0u64; g.clients as usize];
    let mut clock = 100u64;
    let mut h = History::new();
    let mut count = 0;
    while count < g.ops {
        clock += rng.gen_range(1..10);
        let idle: Vec<usize> = (0..free.len()).filter(|&c| free[c] < clock).collect();
        if idle.is_empty() {
            clock = free.iter().copied().min().unwrap_or(clock) + 1;
            continue;
        }
        count += 1;
        let c = idle[rng.gen_range(0..idle.len())];
        let p = c as i64;
        let lin = clock;
        let invoke = rng.gen_range(free[c].max(lin.saturating_sub(60)) + 1..=lin);
        let done = lin + rng.gen_range(1..60);
        free[c] = done;
        let k = rng.gen_range(0..g.keys);
        let key = format!("k{k}");
        let unknown = rng.gen_bool(g.info);
        let takes_effect = !unknown || rng.gen_bool(0.5);
        let roll = rng.gen_range(0..10);
        if roll < 4 {
            h.push(inv(p, invoke, read0(&key)));
            let (v, m) = match store[k] {
                Some((v, m)) => (Some(v), Some(m)),
                None => (None, None),
            };
            if unknown {
                h.push(info(p, done, read0(&key)));
            } else {
                seen[k].extend(m);
                h.push(ok(p, done, read(&key, v, m), Some(rev)));
            }
            continue;
        }
        let value = next_value;
        next_value += 1;
        let current = store[k].map_or(0, |(_, m)| m);
        let op = if roll < 7 {
            write(&key, value)
        } else if g.blind_cas && rng.gen_bool(0.7) {
            cas(&key, current, value)
        } else if rng.gen_bool(0.7) {
            // The latest revision seen: current unless an info write hid it.
            cas(&key, seen[k].last().copied().unwrap_or(0), value)
        } else {
            cas(&key, seen[k][rng.gen_range(0..seen[k].len())], value)
        };
        h.push(inv(p, invoke, op.clone()));
        let applies = match op {
            Op::Cas { expect, .. } => expect == current,
            _ => true,
        };
        if unknown {
            if takes_effect && applies {
                rev += 1;
                store[k] = Some((value, rev));
            }
            h.push(info(p, done, op));
        } else if applies {
            rev += 1;
            store[k] = Some((value, rev));
            seen[k].push(rev);
            h.push(ok(p, done, op, Some(rev)));
        } else {
            h.push(fail(p, done, op));
        }
    }
    h.sort_by_key(|e| e.time);
    h
}

/// Turns one read into a stale read that no linearization explains: it
/// returns (with its revision) the value of a write W_old although another
/// write on that key was invoked after W_old completed and completed before
/// the read was invoked. Returns the index of the changed entry.
pub fn make_stale_read(h: &mut History) -> Option<usize> {
    let ops = crate::check::ops::operations(h).ok()?;
    let writes: Vec<_> = ops.iter().filter(|o| o.write_revision().is_some()).collect();
    for r in ops.iter().rev() {
        let Op::Read {
            key, value: Some(v), ..
        } = &r.op
        else {
            continue;
        };
        if r.complete.is_none() {
            continue;
        }
        for old in writes.iter().filter(|w| w.key() == key && w.precedes(r)) {
            let newer = writes
                .iter()
                .any(|w2| w2.key() == key && old.precedes(w2) && w2.precedes(r));
            let old_value = match old.op {
                Op::Write { value, .. } | Op::Cas { value, .. } => value,
                _ => continue,
            };
            if newer && old_value != *v {
                let at = h
                    .iter()
                    .position(|e| e.process == r.process && e.kind == Kind::Ok && e.time == r.complete.unwrap_or(0))?;
                h[at].op = read(key, Some(old_value), old.revision);
                return Some(at);
            }
        }
    }
    None
}
