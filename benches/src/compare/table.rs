//! The comparison table printed at the end: per workload, each server's
//! throughput, p99 latency, errors and peak RSS, with timon/etcd ratios,
//! and the members' CPU time per request,
//! followed by the notes that matter (lost watch events, conflicts).

use std::fmt::Write as _;

use super::results::Row;

fn ratio(r: Option<f64>) -> String {
    r.map_or("-".into(), |r| format!("{r:.2}x"))
}

fn mib(kib: u64) -> String {
    format!("{:.0}", kib as f64 / 1024.0)
}

fn per_op(us: Option<f64>) -> String {
    us.map_or("-".into(), |us| format!("{us:.1}"))
}

/// Fixed-width text, one line per workload.
pub fn render(rows: &[Row]) -> String {
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
    use crate::compare::results::{Side, SERVER_CPU_US};
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

    #[test]
    fn one_line_per_workload_with_ratios() {
        let mut t = side(1, 200, 20 * 1024);
        t.report.notes.insert("lost_events".into(), 3);
        t.report.notes.insert(SERVER_CPU_US.into(), 24_000);
        let rows = vec![Row::new("put", t, side(2, 100, 40 * 1024))];
        let text = render(&rows);
        let put = text.lines().find(|l| l.starts_with("put")).unwrap();
        let cells: Vec<&str> = put.split_whitespace().collect();
        assert_eq!(cells[1..4], ["200.0", "100.0", "2.00x"]);
        assert_eq!(cells[6], "0.50x");
        assert_eq!(cells[9..], ["20", "40", "0.50x", "120.0", "-"]);
        assert!(text.contains("put: timon lost_events = 3"));
    }
}
