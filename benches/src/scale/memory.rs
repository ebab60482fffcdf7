//! A member's memory around one request. VmHWM is the peak since the
//! process started, so a request that stays under an earlier peak does not
//! move it; VmRSS sampled every 50 ms while the request runs shows its own
//! peak (to within what 50 ms can miss).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::task::JoinHandle;

use crate::compare::rss;

const EVERY: Duration = Duration::from_millis(50);

/// A member's memory in KiB before and during a request.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Memory {
    pub peak_before_kib: u64,
    pub peak_after_kib: u64,
    pub rss_before_kib: u64,
    /// The largest VmRSS sampled while the request ran.
    pub rss_max_kib: u64,
}

impl Memory {
    /// How much the sampled RSS rose above where it was before.
    pub fn rss_growth_kib(&self) -> u64 {
        self.rss_max_kib.saturating_sub(self.rss_before_kib)
    }
}

/// Samples the VmRSS of `pid` until stopped.
pub struct Sampler {
    pid: u32,
    before: Memory,
    stop: Arc<AtomicBool>,
    task: JoinHandle<u64>,
}

impl Sampler {
    pub fn start(pid: u32) -> Sampler {
        let rss_before = rss::current_kib(pid).unwrap_or(0);
        let before = Memory {
            peak_before_kib: rss::peak_kib(pid).unwrap_or(0),
            rss_before_kib: rss_before,
            rss_max_kib: rss_before,
            ..Memory::default()
        };
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let stop = stop.clone();
            async move {
                let mut max = rss_before;
                while !stop.load(Ordering::SeqCst) {
                    max = max.max(rss::current_kib(pid).unwrap_or(0));
                    tokio::time::sleep(EVERY).await;
                }
                max.max(rss::current_kib(pid).unwrap_or(0))
            }
        });
        Sampler {
            pid,
            before,
            stop,
            task,
        }
    }

    pub async fn stop(self) -> Memory {
        self.stop.store(true, Ordering::SeqCst);
        let rss_max = self.task.await.unwrap_or(0);
        Memory {
            peak_after_kib: rss::peak_kib(self.pid).unwrap_or(0),
            rss_max_kib: rss_max.max(self.before.rss_max_kib),
            ..self.before
        }
    }
}
