//! The long suite's plan and its results file (issue 16 item 6): which
//! scenarios run on which server, which are skipped and why, what counts as
//! a checked operation, and the results file a run appends to — one JSON
//! line per finished scenario (`long.jsonl`), from which the Markdown table
//! (`long.md`) and the line `Total: N checked operations` are made.
//!
//! The file is appended to as each scenario finishes, so a suite that was
//! interrupted, or run in parts (`--only`, one server at a time, on
//! several days), accumulates in one file; `--resume` skips what the file
//! already holds. When a scenario and seed appear more than once, the last
//! line counts (a rerun replaces the earlier result).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::check::ops::{Operation, Outcome};
use crate::history::Op;
use crate::nemesis;
use crate::run::{Report, Server, Workload};

/// Whether an operation counts as checked: it is in the input of a checker
/// and its outcome could have made that checker fail.
///
/// - register reads, writes, cas and deletes (the linearizability checker's
///   input): every one that completed `Ok`, and the `Info` writes, cas and
///   deletes, whose taking effect or not the search decides. `Fail`
///   operations certainly did not happen and `Info` reads returned nothing:
///   the checker drops both, and so does this count;
/// - the lock, lease and auth workloads' operations that completed `Ok`
///   (the lock, lease and auth checkers read those; their `Info` and `Fail`
///   outcomes only widen what the checkers allow);
/// - never a log-in (`Authenticate`, which no checker reads) or a nemesis
///   action. Watch events and list pages are not operations: the watch and
///   list checkers check them against the operations counted here.
pub fn is_checked(o: &Operation) -> bool {
    match (&o.op, o.outcome) {
        (_, Outcome::Fail) => false,
        (Op::Read { .. }, Outcome::Info) => false,
        (Op::Read { .. } | Op::Write { .. } | Op::Cas { .. } | Op::Delete { .. }, _) => true,
        (Op::Authenticate { .. } | Op::Nemesis { .. }, _) => false,
        (_, Outcome::Ok) => true,
        (_, Outcome::Info) => false,
    }
}

/// The number of checked operations ([`is_checked`]).
pub fn checked_ops(ops: &[Operation]) -> usize {
    ops.iter().filter(|o| is_checked(o)).count()
}

/// Why a nemesis cannot run against a server, if it cannot. On etcd:
/// - the clock nemeses (`clock-*`) fake the clock through libfaketime's
///   `LD_PRELOAD`, and a Go program such as etcd reads the time through
///   the vDSO, never through libc;
/// - the disk nemeses put the data dir on lazyfs, which opens files with
///   FUSE's direct I/O (so no page cache holds what it will lose), and
///   bbolt mmaps its database: the kernel refuses that mmap (ENODEV) and
///   etcd exits at start-up, "cannot open database ... (no such device)".
pub fn skip_reason(server: Server, nemesis: nemesis::Kind) -> Option<&'static str> {
    match server {
        Server::Etcd if nemesis.name().starts_with("clock-") => {
            Some("libfaketime (LD_PRELOAD) cannot reach a Go program's clock (vDSO)")
        }
        Server::Etcd if nemesis::disk::needs_disks(nemesis) => {
            Some("bbolt mmaps its file, which lazyfs's direct-I/O FUSE files refuse (ENODEV)")
        }
        _ => None,
    }
}

/// One entry of the plan: a scenario to run, or one skipped with its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub server: Server,
    pub workload: Workload,
    pub nemesis: nemesis::Kind,
    pub nodes: usize,
    pub skipped: Option<&'static str>,
}

/// The long suite on `servers`: [`crate::run::long`] (every workload under
/// every nemesis, on 3 and 5 members) for each server, in that order.
pub fn plan(servers: &[Server]) -> Vec<Planned> {
    let mut out = Vec::new();
    for &server in servers {
        for (workload, nemesis, nodes) in crate::run::long() {
            out.push(Planned {
                server,
                workload,
                nemesis,
                nodes,
                skipped: skip_reason(server, nemesis),
            });
        }
    }
    out
}

/// One finished scenario, a line of the results file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub scenario: String,
    pub server: String,
    pub nodes: usize,
    pub seed: u64,
    /// Operations the checkers checked ([`is_checked`]).
    pub checked: usize,
    pub ok: usize,
    pub fail: usize,
    pub info: usize,
    /// `PASS` or `FAIL`.
    pub verdict: String,
    /// The first problems of a failed run.
    #[serde(default)]
    pub problems: Vec<String>,
    /// The whole run (cluster start to checked), seconds.
    pub seconds: f64,
    /// The checkers' part of it, seconds.
    pub checker_seconds: f64,
    /// When it finished (seconds since the Unix epoch).
    #[serde(default)]
    pub finished: u64,
    /// The scenario's `--time-limit`, seconds (0 in files from before it
    /// was recorded).
    #[serde(default)]
    pub time_limit: u64,
    /// The commit of the checkout the suite ran from (`git rev-parse
    /// --short HEAD`, with `-dirty` for uncommitted changes; empty when
    /// unknown): a file filled over several days says which code each
    /// line tested.
    #[serde(default)]
    pub commit: String,
}

impl Row {
    pub fn new(report: &Report, server: Server, nodes: usize, time_limit: u64, commit: &str) -> Row {
        Row {
            scenario: report.scenario.clone(),
            server: match server {
                Server::Timon => "timon".into(),
                Server::Etcd => "etcd".into(),
            },
            nodes,
            seed: report.seed,
            checked: report.checked,
            ok: report.ops.ok,
            fail: report.ops.fail,
            info: report.ops.info,
            verdict: if report.passed { "PASS" } else { "FAIL" }.into(),
            problems: report.problems.iter().take(5).cloned().collect(),
            seconds: report.seconds,
            checker_seconds: report.checker_seconds,
            finished: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            time_limit,
            commit: commit.to_string(),
        }
    }

    pub fn passed(&self) -> bool {
        self.verdict == "PASS"
    }
}

/// The checkout's commit for [`Row::commit`]: `git rev-parse --short HEAD`
/// in the current directory, `-dirty` added when `git status` shows
/// changes to tracked files; empty outside a git checkout.
pub fn checkout_commit() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let Some(head) = git(&["rev-parse", "--short", "HEAD"]) else {
        return String::new();
    };
    match git(&["status", "--porcelain", "--untracked-files=no"]) {
        Some(changes) if !changes.is_empty() => format!("{head}-dirty"),
        _ => head,
    }
}

/// Appends one row to the results file (made with its directory if need be).
pub fn append(path: &Path, row: &Row) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    let mut line = serde_json::to_string(row)?;
    line.push('\n');
    f.write_all(line.as_bytes())?;
    Ok(())
}

/// The rows of a results file, the last one of each (scenario, seed), in
/// the order they were first run; none if the file does not exist.
pub fn load(path: &Path) -> anyhow::Result<Vec<Row>> {
    use anyhow::Context as _;
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let mut order: Vec<(String, u64)> = Vec::new();
    let mut latest: BTreeMap<(String, u64), Row> = BTreeMap::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let row: Row = serde_json::from_str(line).with_context(|| format!("{} line {}", path.display(), i + 1))?;
        let id = (row.scenario.clone(), row.seed);
        if !latest.contains_key(&id) {
            order.push(id.clone());
        }
        latest.insert(id, row);
    }
    Ok(order.into_iter().filter_map(|id| latest.remove(&id)).collect())
}

/// The total of checked operations over `rows`.
pub fn total(rows: &[Row]) -> usize {
    rows.iter().map(|r| r.checked).sum()
}

/// The line the issue asks for, on a line of its own.
pub fn total_line(rows: &[Row]) -> String {
    format!("Total: {} checked operations", total(rows))
}

/// The rows that count: those of scenarios the plan runs, and how many
/// were left out (runs of scenarios the plan now skips).
pub fn counted(rows: &[Row], skipped: &[(String, &'static str)]) -> (Vec<Row>, usize) {
    let (left_out, kept): (Vec<&Row>, Vec<&Row>) = rows
        .iter()
        .partition(|r| skipped.iter().any(|(name, _)| *name == r.scenario));
    (kept.into_iter().cloned().collect(), left_out.len())
}

/// The results as a Markdown table, then a summary and the total line.
/// Rows of a scenario the plan now skips (runs made before it was known
/// not to apply, which could not start) are left out of the table and the
/// total; the summary counts them.
pub fn markdown(rows: &[Row], skipped: &[(String, &'static str)]) -> String {
    let (rows, left_out) = counted(rows, skipped);
    let rows = &rows[..];
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| scenario | server | nodes | seed | ops checked | ok / fail / info | verdict | run time | checker time |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---|---|---:|---:|");
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} / {} / {} | {} | {:.0} s | {:.2} s |",
            r.scenario,
            r.server,
            r.nodes,
            r.seed,
            r.checked,
            r.ok,
            r.fail,
            r.info,
            r.verdict,
            r.seconds,
            r.checker_seconds
        );
    }
    let failed: Vec<&Row> = rows.iter().filter(|r| !r.passed()).collect();
    let seconds: f64 = rows.iter().map(|r| r.seconds).sum();
    let checker: f64 = rows.iter().map(|r| r.checker_seconds).sum();
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{} scenarios, {} passed, {} failed; {:.1} min of runs, of which {:.1} s checking \
         ({:.2} s per 100k checked operations).",
        rows.len(),
        rows.len() - failed.len(),
        failed.len(),
        seconds / 60.0,
        checker,
        crate::checkbench::per_100k(std::time::Duration::from_secs_f64(checker), total(rows))
    );
    for r in &failed {
        let _ = writeln!(
            out,
            "\n- FAIL {} seed {}: {}",
            r.scenario,
            r.seed,
            r.problems.join("; ")
        );
    }
    if left_out > 0 {
        let _ = writeln!(
            out,
            "\n{left_out} earlier runs of scenarios now skipped are left out of the table."
        );
    }
    if !skipped.is_empty() {
        let _ = writeln!(out, "\nSkipped:\n");
        for (name, why) in skipped {
            let _ = writeln!(out, "- {name}: {why}");
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "{}", total_line(rows));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testgen::{fail, info, inv, ok, read, read0, write};
    use crate::history::History;
    use clap::ValueEnum;

    fn ops(h: &History) -> Vec<Operation> {
        crate::check::ops::operations(h).unwrap()
    }

    #[test]
    fn checked_operations_are_those_a_checker_could_fail_on() {
        let grant = |lease| Op::Grant { ttl: 5, lease };
        let login = Op::Authenticate { user: "u".into() };
        let h = vec![
            // Counted: an ok read, an ok write, an info write, an ok grant.
            inv(1, 0, read0("k")),
            ok(1, 1, read("k", None, None), Some(1)),
            inv(1, 2, write("k", 1)),
            ok(1, 3, write("k", 1), Some(2)),
            inv(2, 4, write("k", 2)),
            info(2, 5, write("k", 2)),
            inv(3, 6, grant(None)),
            ok(3, 7, grant(Some(9)), None),
            // Not counted: a failed write, an info read, an info grant, a
            // log-in, a nemesis action.
            inv(4, 8, write("k", 3)),
            fail(4, 9, write("k", 3)),
            inv(5, 10, read0("k")),
            info(5, 11, read0("k")),
            inv(6, 12, grant(None)),
            info(6, 13, grant(None)),
            inv(7, 14, login.clone()),
            ok(7, 15, login, None),
            inv(-1, 16, Op::Nemesis { action: "kill".into() }),
            ok(
                -1,
                17,
                Op::Nemesis {
                    action: "kill n1".into(),
                },
                None,
            ),
        ];
        assert_eq!(checked_ops(&ops(&h)), 4);
    }

    #[test]
    fn every_linearizability_input_is_counted() {
        // The count covers at least what the linearizability search read.
        let h = crate::check::testgen::generate(&crate::check::testgen::Gen {
            seed: 3,
            keys: 3,
            ops: 2000,
            clients: 8,
            info: 0.1,
            blind_cas: false,
        });
        let ops = ops(&h);
        let lin = crate::check::linearizable::check(&ops, &Default::default());
        let searched: usize = lin.keys.iter().map(|k| k.ops).sum();
        let checked = checked_ops(&ops);
        assert!(
            searched <= checked && checked < ops.len(),
            "{searched} {checked} {}",
            ops.len()
        );
    }

    #[test]
    fn the_plan_runs_every_workload_under_every_nemesis_on_3_and_5_members_on_both_servers() {
        let plan = plan(&[Server::Timon, Server::Etcd]);
        for server in [Server::Timon, Server::Etcd] {
            for &n in nemesis::Kind::value_variants() {
                for nodes in [3, 5] {
                    let planned: Vec<&Planned> = plan
                        .iter()
                        .filter(|p| (p.server, p.nemesis, p.nodes) == (server, n, nodes))
                        .collect();
                    // Every workload but those run::long leaves out (auth
                    // under membership changes).
                    assert!(planned.len() >= Workload::value_variants().len() - 1, "{n:?} {nodes}");
                    for p in planned {
                        assert_eq!(p.skipped, skip_reason(server, n));
                    }
                }
            }
        }
        assert_eq!(plan.len(), 2 * crate::run::long().len());
    }

    #[test]
    fn only_clock_and_disk_nemeses_are_skipped_and_only_on_etcd() {
        for &n in nemesis::Kind::value_variants() {
            assert_eq!(skip_reason(Server::Timon, n), None);
            assert_eq!(
                skip_reason(Server::Etcd, n).is_some(),
                n.name().starts_with("clock-") || nemesis::disk::needs_disks(n),
                "{n:?}"
            );
        }
    }

    fn row(scenario: &str, seed: u64, checked: usize, passed: bool) -> Row {
        Row {
            scenario: scenario.into(),
            server: "timon".into(),
            nodes: 3,
            seed,
            checked,
            ok: checked,
            fail: 1,
            info: 2,
            verdict: if passed { "PASS" } else { "FAIL" }.into(),
            problems: if passed {
                vec![]
            } else {
                vec!["linearizable: stale read".into()]
            },
            seconds: 130.0,
            checker_seconds: 0.5,
            finished: 0,
            time_limit: 120,
            commit: "abc1234".into(),
        }
    }

    /// A line written before `time_limit` and `commit` existed still loads.
    #[test]
    fn an_older_line_without_time_limit_or_commit_loads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("long.jsonl");
        let mut line = serde_json::to_value(row("timon-register-kill-3n", 1, 10, true)).unwrap();
        let obj = line.as_object_mut().unwrap();
        obj.remove("time_limit");
        obj.remove("commit");
        std::fs::write(&path, format!("{line}\n")).unwrap();
        let rows = load(&path).unwrap();
        assert_eq!((rows[0].time_limit, rows[0].commit.as_str()), (0, ""));
    }

    #[test]
    fn a_results_file_accumulates_parts_and_a_rerun_replaces_its_row() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/long.jsonl");
        assert!(load(&path).unwrap().is_empty());
        append(&path, &row("timon-register-kill-3n", 1, 1000, false)).unwrap();
        append(&path, &row("timon-watch-kill-3n", 1, 500, true)).unwrap();
        append(&path, &row("timon-register-kill-3n", 2, 700, true)).unwrap();
        // The rerun of seed 1 replaces its failure, in its place.
        append(&path, &row("timon-register-kill-3n", 1, 1200, true)).unwrap();
        let rows = load(&path).unwrap();
        let ids: Vec<_> = rows.iter().map(|r| (r.scenario.as_str(), r.seed, r.checked)).collect();
        assert_eq!(
            ids,
            [
                ("timon-register-kill-3n", 1, 1200),
                ("timon-watch-kill-3n", 1, 500),
                ("timon-register-kill-3n", 2, 700)
            ]
        );
        assert_eq!(total(&rows), 2400);
    }

    #[test]
    fn the_table_ends_with_the_total_on_a_line_of_its_own() {
        let rows = vec![
            row("timon-register-kill-3n", 1, 1000, true),
            row("etcd-lock-pause-5n", 1, 234, false),
        ];
        let mut rows = rows;
        rows.push(row("etcd-register-clock-skew-3n", 1, 7, false));
        let skipped = vec![("etcd-register-clock-skew-3n".to_string(), "libfaketime")];
        let md = markdown(&rows, &skipped);
        println!("{md}");
        let lines: Vec<&str> = md.lines().collect();
        assert!(lines[0].starts_with("| scenario | server | nodes | seed | ops checked |"));
        assert!(
            lines.contains(&"| timon-register-kill-3n | timon | 3 | 1 | 1000 | 1000 / 1 / 2 | PASS | 130 s | 0.50 s |")
        );
        assert!(lines
            .iter()
            .any(|l| l.starts_with("- FAIL etcd-lock-pause-5n seed 1: linearizable")));
        assert!(lines.contains(&"- etcd-register-clock-skew-3n: libfaketime"));
        // The run of a scenario now skipped is neither in the table nor in the total.
        assert!(!lines.iter().any(|l| l.starts_with("| etcd-register-clock-skew-3n")));
        assert!(lines.contains(&"1 earlier runs of scenarios now skipped are left out of the table."));
        assert!(
            lines.iter().any(|l| l.starts_with("2 scenarios, 1 passed, 1 failed;")),
            "{md}"
        );
        assert_eq!(lines.last(), Some(&"Total: 1234 checked operations"));
    }
}
