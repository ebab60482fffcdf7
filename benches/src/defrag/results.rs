//! What one defrag run measured on one server, split into phases by when
//! each put was due (before the Defragment call, while it ran, after it
//! answered), and the text table of all servers. The same structs are the
//! `--json` output.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::defrag::writer::Sample;
use crate::recorder::Recorder;
use crate::report::{Latency, Report};

/// The puts of one phase.
#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    /// `baseline`, `defrag` or `after`.
    pub name: String,
    pub secs: f64,
    /// Puts due in the phase that succeeded.
    pub writes: u64,
    pub errors: u64,
    /// From when each put was due (and sent) to its answer.
    pub latency_ms: Latency,
    /// The longest time between two consecutive acknowledged puts: for the
    /// baseline one that ended before the Defragment call, for the defrag one
    /// that overlaps the call, after it one that began after the answer.
    pub longest_gap_ms: f64,
}

/// One server's run.
#[derive(Debug, Clone, Serialize)]
pub struct ServerRun {
    pub label: String,
    pub binary: String,
    /// What the member reports in Status.
    pub version: String,
    pub keys: u64,
    pub overwrites: u64,
    pub value_size: usize,
    pub compact_revision: i64,
    pub load_secs: f64,
    pub defrag_secs: f64,
    /// Status.dbSize right before the Defragment call and after the run.
    pub db_size_before: u64,
    pub db_size_after: u64,
    /// `du` of the data dir right before the Defragment call and after the run.
    pub du_before: u64,
    pub du_after: u64,
    pub phases: Vec<Phase>,
}

/// Splits `samples` at `defrag_start` and `defrag_end` (by slot) and ends
/// the last phase at `end`: phases `baseline`, `middle` (what ran from
/// `defrag_start` to `defrag_end`: `defrag`, `compaction`) and `after`.
pub fn phases(
    samples: &[Sample],
    middle: &str,
    started: Instant,
    defrag_start: Instant,
    defrag_end: Instant,
    end: Instant,
) -> Vec<Phase> {
    let mut acked: Vec<Instant> = samples.iter().filter(|s| s.error.is_none()).map(|s| s.done).collect();
    acked.sort();
    let windows = [
        ("baseline", started, defrag_start),
        (middle, defrag_start, defrag_end),
        ("after", defrag_end, end),
    ];
    windows
        .iter()
        .enumerate()
        .map(|(i, (name, from, to))| {
            let mut rec = Recorder::default();
            for s in samples.iter().filter(|s| s.slot >= *from && s.slot < *to) {
                match &s.error {
                    None => rec.ok(s.done - s.slot),
                    Some(e) => rec.error(e.clone()),
                }
            }
            let secs = *to - *from;
            let report = Report::new(name, rec, secs);
            let counts = |w: &[Instant]| match i {
                0 => w[1] <= *to,
                1 => w[1] >= *from && w[0] <= *to,
                _ => w[0] >= *from,
            };
            let gap = acked
                .windows(2)
                .filter(|w| counts(w))
                .map(|w| w[1] - w[0])
                .max()
                .unwrap_or_default();
            Phase {
                name: name.to_string(),
                secs: secs.as_secs_f64(),
                writes: report.count,
                errors: report.errors,
                latency_ms: report.latency_ms,
                longest_gap_ms: ms(gap),
            }
        })
        .collect()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `1.23 GiB`, `45.6 MiB`.
pub fn human(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= (1u64 << 30) as f64 {
        format!("{:.2} GiB", b / (1u64 << 30) as f64)
    } else {
        format!("{:.1} MiB", b / (1u64 << 20) as f64)
    }
}

/// Per server: a header line and one row per phase; then one summary row
/// per server.
pub fn text(runs: &[ServerRun]) -> String {
    let mut s = String::new();
    for r in runs {
        let _ = writeln!(
            s,
            "\n{} (version {}, {}): {} keys of {} B random values, {} overwrites, compacted at revision {}, loaded in {:.0} s",
            r.label, r.version, r.binary, r.keys, r.value_size, r.overwrites, r.compact_revision, r.load_secs
        );
        let _ = writeln!(
            s,
            "  defrag took {:.3} s; db size {} -> {}; data dir (du) {} -> {}",
            r.defrag_secs,
            human(r.db_size_before),
            human(r.db_size_after),
            human(r.du_before),
            human(r.du_after)
        );
        let _ = writeln!(
            s,
            "  {:<9} {:>7} {:>7} {:>7} {:>9} {:>9} {:>9} {:>15}",
            "phase", "secs", "writes", "errors", "p50 ms", "p99 ms", "max ms", "longest gap ms"
        );
        for p in &r.phases {
            let l = &p.latency_ms;
            let _ = writeln!(
                s,
                "  {:<9} {:>7.1} {:>7} {:>7} {:>9.2} {:>9.2} {:>9.2} {:>15.1}",
                p.name, p.secs, p.writes, p.errors, l.p50, l.p99, l.max, p.longest_gap_ms
            );
        }
    }
    let _ = writeln!(s, "\nsummary (write latency in ms, from when each put was due)");
    let _ = writeln!(
        s,
        "{:<8} {:>9} {:>10} {:>10} {:>10} {:>10} {:>12} {:>12} {:>12} {:>12} {:>12}",
        "server",
        "keys",
        "du before",
        "du after",
        "defrag s",
        "base p99",
        "defrag p50",
        "defrag p99",
        "defrag max",
        "defrag gap",
        "defrag errs"
    );
    for r in runs {
        let phase = |name: &str| r.phases.iter().find(|p| p.name == name);
        let (Some(base), Some(defrag)) = (phase("baseline"), phase("defrag")) else {
            continue;
        };
        let _ = writeln!(
            s,
            "{:<8} {:>9} {:>10} {:>10} {:>10.3} {:>10.2} {:>12.2} {:>12.2} {:>12.2} {:>12.1} {:>12}",
            r.label,
            r.keys,
            human(r.du_before),
            human(r.du_after),
            r.defrag_secs,
            base.latency_ms.p99,
            defrag.latency_ms.p50,
            defrag.latency_ms.p99,
            defrag.latency_ms.max,
            defrag.longest_gap_ms,
            defrag.errors
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(start: Instant, due_ms: u64, done_ms: u64) -> Sample {
        let at = |ms| start + Duration::from_millis(ms);
        Sample {
            slot: at(due_ms),
            done: at(done_ms),
            error: None,
        }
    }

    #[test]
    fn puts_fall_in_the_phase_they_were_due_in_and_gaps_span_phases() {
        let t = Instant::now();
        let ms = |n| t + Duration::from_millis(n);
        // Baseline 0..100, defrag 100..300, after 300..400; the puts due at
        // 120 and 200 wait until the defrag ends at 300.
        let samples = vec![
            put(t, 0, 1),
            put(t, 50, 51),
            put(t, 120, 300),
            put(t, 200, 301),
            put(t, 350, 351),
        ];
        let p = phases(&samples, "defrag", t, ms(100), ms(300), ms(400));
        assert_eq!(p.iter().map(|p| p.writes).collect::<Vec<_>>(), vec![2, 2, 1]);
        assert!((p[1].latency_ms.max - 180.0).abs() < 1.0, "{:?}", p[1].latency_ms);
        assert!((p[1].longest_gap_ms - 249.0).abs() < 1.0, "{}", p[1].longest_gap_ms);
        assert!(
            (p[0].longest_gap_ms - 50.0).abs() < 1.0,
            "the gap from 51 to 300 is the defrag's"
        );
        assert!((p[2].longest_gap_ms - 50.0).abs() < 1.0, "{}", p[2].longest_gap_ms);
    }
}
