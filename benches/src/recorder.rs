//! What one client (or one watch stream) observed: an HDR histogram of
//! latencies in microseconds, errors by message, and named notes (outcomes
//! that are not errors, like a k8s-update conflict). Recorders merge, so
//! clients never share a lock while the load runs.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;

/// Latencies up to an hour are kept at 3 significant digits; longer ones
/// saturate (a request that slow is a failure anyway).
const MAX_MICROS: u64 = 3_600_000_000;

pub struct Recorder {
    pub hist: Histogram<u64>,
    pub errors: BTreeMap<String, u64>,
    pub notes: BTreeMap<String, u64>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            hist: Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("static histogram bounds are valid"),
            errors: BTreeMap::new(),
            notes: BTreeMap::new(),
        }
    }
}

impl Recorder {
    /// A successful request that took `latency`.
    pub fn ok(&mut self, latency: Duration) {
        let us = (latency.as_micros() as u64).clamp(1, MAX_MICROS);
        self.hist.saturating_record(us);
    }

    /// A failed request; `error` is the message errors are grouped by.
    pub fn error(&mut self, error: String) {
        *self.errors.entry(error).or_default() += 1;
    }

    /// Counts `n` under `note`.
    pub fn note(&mut self, note: &str, n: u64) {
        *self.notes.entry(note.to_string()).or_default() += n;
    }

    pub fn merge(&mut self, other: Recorder) {
        self.hist.add(&other.hist).expect("histograms share bounds");
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
        for (k, v) in other.notes {
            *self.notes.entry(k).or_default() += v;
        }
    }
}

/// etcd's benchmark groups errors by their text; a tonic status reads
/// `code: message` here.
pub fn status_text(status: &tonic::Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_adds_counts_errors_and_notes() {
        let mut a = Recorder::default();
        a.ok(Duration::from_millis(2));
        a.error("Unavailable: x".into());
        a.note("conflicts", 1);
        let mut b = Recorder::default();
        b.ok(Duration::from_millis(4));
        b.error("Unavailable: x".into());
        b.note("conflicts", 2);
        a.merge(b);
        assert_eq!(a.hist.len(), 2);
        assert_eq!(a.errors["Unavailable: x"], 2);
        assert_eq!(a.notes["conflicts"], 3);
    }

    #[test]
    fn zero_latency_is_recorded_as_one_microsecond() {
        let mut r = Recorder::default();
        r.ok(Duration::ZERO);
        assert_eq!(r.hist.min(), 1);
    }
}
