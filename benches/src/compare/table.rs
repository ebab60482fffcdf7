//! The comparison table printed at the end: per workload, each server's
//! throughput, p99 latency, errors and peak RSS, with timon/etcd ratios;
//! the members' and the load generator's CPU time per request, the share
//! of the machine they kept busy, and the members' CPU per request timon
//! would need for twice etcd's throughput (`results::members_cpu_for`);
//! followed by the notes that matter (lost watch events, conflicts).

use std::fmt::Write as _;

use super::results::{members_cpu_for, Row};

fn ratio(r: Option<f64>) -> String {
    r.map_or("-".into(), |r| format!("{r:.2}x"))
}

fn mib(kib: u64) -> String {
    format!("{:.0}", kib as f64 / 1024.0)
}

fn per_op(us: Option<f64>) -> String {
    us.map_or("-".into(), |us| format!("{us:.1}"))
}

fn percent(share: Option<f64>) -> String {
    share.map_or("-".into(), |s| format!("{:.0}%", s * 100.0))
}

/// Fixed-width text, one line per workload; `cpus`: the machine's cores.
pub fn render(rows: &[Row], cpus: usize) -> String {
    let header = [
        "workload",
        "timon ops/s",
        "etcd ops/s",
        "ops/s t/e",
        "timon p99 ms",
        "etcd p99 ms",
        "p99 t/e",
        "timon errs",
        "etcd errs",
        "timon RSS MiB",
        "etcd RSS MiB",
        "RSS t/e",
        "timon CPU us/op",
        "etcd CPU us/op",
        "timon bench CPU us/op",
        "etcd bench CPU us/op",
        "busy t/e",
        "2x needs CPU us/op",
    ];
    let mut lines: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for r in rows {
        let (t, e) = (&r.timon.report, &r.etcd.report);
        lines.push(vec![
            r.name.clone(),
            format!("{:.1}", t.rps),
            format!("{:.1}", e.rps),
            ratio(r.ratios.rps),
            format!("{:.2}", t.latency_ms.p99),
            format!("{:.2}", e.latency_ms.p99),
            ratio(r.ratios.p99),
            t.errors.to_string(),
            e.errors.to_string(),
            mib(r.timon.max_rss_kib()),
            mib(r.etcd.max_rss_kib()),
            ratio(r.ratios.peak_rss),
            per_op(r.timon.cpu_us_per_op()),
            per_op(r.etcd.cpu_us_per_op()),
            per_op(r.timon.bench_cpu_us_per_op()),
            per_op(r.etcd.bench_cpu_us_per_op()),
            format!("{}/{}", percent(r.timon.busy(cpus)), percent(r.etcd.busy(cpus))),
            per_op(members_cpu_for(2.0, r)),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|c| lines.iter().map(|l| l[c].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        let cells: Vec<String> = line
            .iter()
            .enumerate()
            .map(|(c, cell)| {
                if c == 0 {
                    format!("{cell:<w$}", w = widths[c])
                } else {
                    format!("{cell:>w$}", w = widths[c])
                }
            })
            .collect();
        let _ = writeln!(out, "{}", cells.join("  "));
        if i == 0 {
            let _ = writeln!(
                out,
                "{}",
                "-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len() - 1))
            );
        }
    }
    let mut notes = String::new();
    for r in rows {
        for (server, side) in [("timon", &r.timon), ("etcd", &r.etcd)] {
            for (k, v) in &side.report.notes {
                if *v > 0 && (k == "lost_events" || k == "extra_events" || k == "conflicts") {
                    let _ = writeln!(notes, "  {}: {server} {k} = {v}", r.name);
                }
            }
        }
    }
    if !notes.is_empty() {
        let _ = write!(out, "notes:\n{notes}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::results::{Side, BENCH_CPU_US, SERVER_CPU_US};
    use crate::recorder::Recorder;
    use crate::report::Report;
    use std::time::Duration;

    fn side(ms: u64, n: u64, rss: u64) -> Side {
        let mut rec = Recorder::default();
        for _ in 0..n {
            rec.ok(Duration::from_millis(ms));
        }
        Side::new(
            vec![Report::new("put", rec, Duration::from_secs(1))],
            vec![rss, rss / 2],
        )
    }

    /// `s` with the members' and the load generator's CPU notes (µs).
    fn with_cpu(mut s: Side, members_us: u64, bench_us: u64) -> Side {
        s.report.notes.insert(SERVER_CPU_US.into(), members_us);
        s.report.notes.insert(BENCH_CPU_US.into(), bench_us);
        s
    }

    /// The cells of `workload`'s line in `text`.
    fn cells<'a>(text: &'a str, workload: &str) -> Vec<&'a str> {
        let line = text.lines().find(|l| l.starts_with(workload)).unwrap();
        line.split_whitespace().collect()
    }

    #[test]
    fn one_line_per_workload_with_ratios() {
        let mut t = side(1, 200, 20 * 1024);
        t.report.notes.insert("lost_events".into(), 3);
        t.report.notes.insert(SERVER_CPU_US.into(), 24_000);
        let rows = vec![Row::new("put", t, side(2, 100, 40 * 1024))];
        let text = render(&rows, 2);
        let cells = cells(&text, "put");
        assert_eq!(cells[1..4], ["200.0", "100.0", "2.00x"]);
        assert_eq!(cells[6], "0.50x");
        assert_eq!(cells[9..], ["20", "40", "0.50x", "120.0", "-", "-", "-", "-/-", "-"]);
        assert!(text.contains("put: timon lost_events = 3"));
    }

    #[test]
    fn shows_the_load_generators_cpu_and_what_twice_etcd_would_need() {
        // 1 s runs on 2 cores. timon: 200 requests, members 24 ms, bench
        // 10 ms; etcd: 100 requests, members 30 ms, bench 6 ms.
        let t = with_cpu(side(1, 200, 1024), 24_000, 10_000);
        let e = with_cpu(side(2, 100, 1024), 30_000, 6_000);
        let row = Row::new("put", t, e);
        // etcd: 300 + 60 µs per request; twice its throughput needs 180
        // per request in all, of which timon's bench takes 50.
        assert_eq!(members_cpu_for(2.0, &row), Some(130.0));
        let text = render(&[row], 2);
        assert_eq!(
            cells(&text, "put")[12..],
            ["120.0", "300.0", "50.0", "60.0", "2%/2%", "130.0"]
        );
    }

    #[test]
    fn nothing_is_needed_of_the_members_that_the_bench_alone_exceeds() {
        let t = with_cpu(side(1, 100, 1024), 1_000, 20_000);
        let e = with_cpu(side(1, 100, 1024), 10_000, 20_000);
        // etcd's 300 µs per request halved is 150, below timon's bench's 200.
        assert_eq!(members_cpu_for(2.0, &Row::new("put", t, e)), None);
    }
}
