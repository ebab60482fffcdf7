//! The result of one run: throughput and latency percentiles from the HDR
//! histogram, errors and notes, rendered in etcd benchmark's text layout or
//! as JSON (the same struct the comparison stores).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::recorder::Recorder;

/// Latency statistics in milliseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Latency {
    pub min: f64,
    pub mean: f64,
    pub stddev: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// The workload's name (`put`, `range-l`, ...).
    pub workload: String,
    /// Successful requests (for `watch`: events received).
    pub count: u64,
    /// Failed requests.
    pub errors: u64,
    /// Failed requests by error text.
    pub error_kinds: BTreeMap<String, u64>,
    /// Workload-specific counts (k8s-update conflicts, watch lost events, ...).
    pub notes: BTreeMap<String, u64>,
    /// Wall time of the measured phase.
    pub total_secs: f64,
    /// `count / total_secs`.
    pub rps: f64,
    pub latency_ms: Latency,
}

impl Report {
    pub fn new(workload: &str, rec: Recorder, total: Duration) -> Report {
        let h = &rec.hist;
        let ms = |us: u64| us as f64 / 1000.0;
        let latency_ms = if h.is_empty() {
            Latency::default()
        } else {
            Latency {
                min: ms(h.min()),
                mean: h.mean() / 1000.0,
                stddev: h.stdev() / 1000.0,
                p50: ms(h.value_at_quantile(0.50)),
                p90: ms(h.value_at_quantile(0.90)),
                p99: ms(h.value_at_quantile(0.99)),
                p999: ms(h.value_at_quantile(0.999)),
                max: ms(h.max()),
            }
        };
        let secs = total.as_secs_f64();
        Report {
            workload: workload.to_string(),
            count: h.len(),
            errors: rec.errors.values().sum(),
            error_kinds: rec.errors,
            notes: rec.notes,
            total_secs: secs,
            rps: if secs > 0.0 { h.len() as f64 / secs } else { 0.0 },
            latency_ms,
        }
    }

    /// etcd `tools/benchmark`'s layout: summary, latency distribution, errors.
    pub fn text(&self) -> String {
        let secs = |ms: f64| format!("{:.4} secs", ms / 1000.0);
        let l = &self.latency_ms;
        let mut s = String::new();
        let _ = writeln!(s, "\nSummary ({}):", self.workload);
        let _ = writeln!(s, "  Total:\t{:.4} secs.", self.total_secs);
        let _ = writeln!(s, "  Slowest:\t{}.", secs(l.max));
        let _ = writeln!(s, "  Fastest:\t{}.", secs(l.min));
        let _ = writeln!(s, "  Average:\t{}.", secs(l.mean));
        let _ = writeln!(s, "  Stddev:\t{}.", secs(l.stddev));
        let _ = writeln!(s, "  Requests/sec:\t{:.4}", self.rps);
        let _ = writeln!(s, "\nLatency distribution:");
        for (p, v) in [("50", l.p50), ("90", l.p90), ("99", l.p99), ("99.9", l.p999)] {
            let _ = writeln!(s, "  {p}% in {}.", secs(v));
        }
        if !self.notes.is_empty() {
            let _ = writeln!(s, "\nNotes:");
            for (k, v) in &self.notes {
                let _ = writeln!(s, "  {k}: {v}");
            }
        }
        if !self.error_kinds.is_empty() {
            let _ = writeln!(s, "\nError distribution:");
            for (k, v) in &self.error_kinds {
                let _ = writeln!(s, "  [{v}]\t{k}");
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_the_histogram_in_order() {
        let mut rec = Recorder::default();
        for ms in 1..=1000 {
            rec.ok(Duration::from_millis(ms));
        }
        rec.error("Unavailable: down".into());
        let r = Report::new("put", rec, Duration::from_secs(2));
        assert_eq!(r.count, 1000);
        assert_eq!(r.errors, 1);
        assert!((r.rps - 500.0).abs() < 1e-9);
        let l = &r.latency_ms;
        assert!(l.min <= l.p50 && l.p50 <= l.p90 && l.p90 <= l.p99 && l.p99 <= l.p999 && l.p999 <= l.max);
        assert!((l.p50 - 500.0).abs() < 1.0, "p50 {}", l.p50);
        assert!((l.p99 - 990.0).abs() < 1.0, "p99 {}", l.p99);
        assert!(r.text().contains("Requests/sec:\t500.0000"));
    }
}
