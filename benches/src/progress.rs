//! The progress bar: drawn on stderr only when stderr is a terminal, so
//! piped output, JSON and tests stay clean.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// Cheap to clone; every clone advances the same bar.
#[derive(Clone)]
pub struct Progress(ProgressBar);

impl Progress {
    /// A bar of `total` requests, or a spinner counting them when the run is
    /// bounded by time. Hidden unless `enabled` and stderr is a terminal.
    pub fn new(enabled: bool, total: Option<u64>, label: &str) -> Progress {
        if !enabled || !std::io::stderr().is_terminal() {
            return Progress::hidden();
        }
        let bar = match total {
            Some(n) => {
                let bar = ProgressBar::new(n);
                if let Ok(style) =
                    ProgressStyle::with_template("{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec})")
                {
                    bar.set_style(style);
                }
                bar
            }
            None => {
                let bar = ProgressBar::new_spinner();
                if let Ok(style) =
                    ProgressStyle::with_template("{prefix} [{elapsed_precise}] {spinner} {pos} ({per_sec})")
                {
                    bar.set_style(style);
                }
                bar.enable_steady_tick(Duration::from_millis(200));
                bar
            }
        };
        bar.set_prefix(label.to_string());
        Progress(bar)
    }

    pub fn hidden() -> Progress {
        Progress(ProgressBar::hidden())
    }

    pub fn inc(&self, n: u64) {
        self.0.inc(n);
    }

    /// Removes the bar so the report prints below a clean line.
    pub fn finish(&self) {
        self.0.finish_and_clear();
    }
}
