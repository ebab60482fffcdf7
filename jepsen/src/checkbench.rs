//! `timon-jepsen check-bench`: how long the checkers take, per 100k
//! operations, so the long suite's ~1M checked operations are known to be
//! checkable. It times every checker of `check` on random concurrent
//! register histories from `check::testgen` (clients, keys and the share
//! of `Info` operations chosen on the command line), and on recorded
//! histories (a kept run's `history.jsonl`, with its `watches.jsonl` and
//! `lists.jsonl`), where the lock, lease and auth checkers have work too.
//! A measurement, not a test: nothing here asserts a time.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::check::{self, ops::Operation, testgen, Validity};
use crate::history::{Entry, History, Op};
use crate::workload::Recorded;

/// One checker's time on one history.
#[derive(Debug, Clone)]
pub struct Timing {
    pub checker: &'static str,
    pub valid: Validity,
    pub time: Duration,
}

/// Times every checker that has operations of its kind in `history`.
pub fn time_checkers(history: &History, recorded: &Recorded) -> anyhow::Result<Vec<Timing>> {
    let ops = check::ops::operations(history).map_err(|e| anyhow::anyhow!("malformed history: {e}"))?;
    let mut out = Vec::new();
    let mut timed = |checker: &'static str, f: &dyn Fn(&[Operation]) -> Validity| {
        let started = Instant::now();
        let valid = f(&ops);
        out.push(Timing {
            checker,
            valid,
            time: started.elapsed(),
        });
    };
    timed("linearizable", &|ops| {
        check::linearizable::check(ops, &check::linearizable::Config::default()).valid
    });
    timed("revisions", &|ops| {
        check::revisions::check(ops).into_verdict("revisions").valid
    });
    timed("watch", &|ops| {
        check::watch::check(ops, &recorded.watches).into_verdict("watch").valid
    });
    let has = |f: fn(&Op) -> bool| history.iter().any(|e| f(&e.op));
    if has(|o| matches!(o, Op::Acquire { .. })) {
        timed("lock", &|ops| check::lock::check(ops).into_verdict("lock").valid);
    }
    if has(|o| matches!(o, Op::LeasedPut { .. })) {
        timed("lease", &|ops| check::lease::check(ops).into_verdict("lease").valid);
    }
    if has(|o| matches!(o, Op::AuthRead { .. } | Op::AuthWrite { .. })) {
        timed("auth", &|ops| check::auth::check(ops).into_verdict("auth").valid);
    }
    if !recorded.lists.is_empty() {
        timed("lists", &|ops| {
            check::list::check(ops, &recorded.lists).into_verdict("lists").valid
        });
    }
    Ok(out)
}

/// A generated register history's shape (see `testgen::Gen`).
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub ops: usize,
    pub clients: i64,
    pub keys: usize,
    pub info: f64,
    pub seed: u64,
    /// Turn one read stale (`testgen::make_stale_read`): the time of a
    /// failing check, whose search backtracks furthest.
    pub stale_read: bool,
}

/// Generates a history of `shape` and times the checkers on it; prints one
/// line per checker and answers the total time.
pub fn bench_generated(shape: Shape) -> anyhow::Result<Duration> {
    let mut history = testgen::generate(&testgen::Gen {
        seed: shape.seed,
        keys: shape.keys,
        ops: shape.ops,
        clients: shape.clients,
        info: shape.info,
        blind_cas: false,
    });
    let label = format!(
        "generated: {} ops, {} clients, {} keys, {:.0}% info, seed {}{}",
        shape.ops,
        shape.clients,
        shape.keys,
        shape.info * 100.0,
        shape.seed,
        if shape.stale_read { ", one stale read" } else { "" }
    );
    if shape.stale_read {
        testgen::make_stale_read(&mut history).ok_or_else(|| anyhow::anyhow!("no read to make stale"))?;
    }
    report(&label, &history, &Recorded::default())
}

/// Times the checkers on a recorded run: `path` is its results directory
/// (history.jsonl and, if present, watches.jsonl and lists.jsonl) or a
/// history.jsonl.
pub fn bench_recorded(path: &Path) -> anyhow::Result<Duration> {
    let (dir, file) = if path.is_dir() {
        (path.to_path_buf(), path.join("history.jsonl"))
    } else {
        (
            path.parent().unwrap_or(Path::new(".")).to_path_buf(),
            path.to_path_buf(),
        )
    };
    let history: History = read_lines::<Entry>(&file)?;
    let recorded = Recorded {
        watches: read_lines(&dir.join("watches.jsonl")).unwrap_or_default(),
        lists: read_lines(&dir.join("lists.jsonl")).unwrap_or_default(),
    };
    report(&format!("recorded: {}", file.display()), &history, &recorded)
}

fn read_lines<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<Vec<T>> {
    use anyhow::Context as _;
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).with_context(|| format!("a line of {}", path.display())))
        .collect()
}

fn report(label: &str, history: &History, recorded: &Recorded) -> anyhow::Result<Duration> {
    let client_ops = history
        .iter()
        .filter(|e| e.process >= 0 && e.kind != crate::history::Kind::Invoke)
        .count();
    let ops = check::ops::operations(history).map_err(|e| anyhow::anyhow!("malformed history: {e}"))?;
    let checked = crate::suite::checked_ops(&ops);
    println!("{label}: {client_ops} operations, {checked} checked");
    let timings = time_checkers(history, recorded)?;
    let total: Duration = timings.iter().map(|t| t.time).sum();
    for t in &timings {
        println!(
            "  {:<13} {:>9.3} s  {:?}  ({:.3} s per 100k checked ops)",
            t.checker,
            t.time.as_secs_f64(),
            t.valid,
            per_100k(t.time, checked)
        );
    }
    println!(
        "  {:<13} {:>9.3} s  ({:.3} s per 100k checked ops)",
        "all",
        total.as_secs_f64(),
        per_100k(total, checked)
    );
    Ok(total)
}

/// Seconds per 100,000 operations.
pub fn per_100k(time: Duration, ops: usize) -> f64 {
    if ops == 0 {
        return 0.0;
    }
    time.as_secs_f64() * 100_000.0 / ops as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_checker_with_work_is_timed_and_gives_its_verdict() {
        let history = testgen::generate(&testgen::Gen {
            seed: 5,
            keys: 3,
            ops: 3000,
            clients: 10,
            info: 0.1,
            blind_cas: false,
        });
        let timings = time_checkers(&history, &Recorded::default()).unwrap();
        let names: Vec<_> = timings.iter().map(|t| (t.checker, t.valid)).collect();
        assert_eq!(
            names,
            [
                ("linearizable", Validity::Valid),
                ("revisions", Validity::Valid),
                ("watch", Validity::Valid)
            ]
        );
        let mut stale = history;
        testgen::make_stale_read(&mut stale).unwrap();
        let timings = time_checkers(&stale, &Recorded::default()).unwrap();
        assert_eq!(timings[0].valid, Validity::Invalid);
    }

    #[test]
    fn a_recorded_run_is_read_from_its_results_directory() {
        let dir = tempfile::tempdir().unwrap();
        let history = testgen::generate(&testgen::Gen {
            seed: 6,
            keys: 2,
            ops: 200,
            clients: 5,
            info: 0.05,
            blind_cas: false,
        });
        let lines: Vec<String> = history.iter().map(|e| serde_json::to_string(e).unwrap()).collect();
        std::fs::write(dir.path().join("history.jsonl"), lines.join("\n")).unwrap();
        assert!(bench_recorded(dir.path()).is_ok());
        assert!(bench_recorded(&dir.path().join("history.jsonl")).is_ok());
        assert!(bench_recorded(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn per_100k_scales_to_100k_operations() {
        assert_eq!(per_100k(Duration::from_secs(2), 50_000), 4.0);
        assert_eq!(per_100k(Duration::from_secs(2), 0), 0.0);
    }
}
