//! CPU time of a member process from `/proc/<pid>/stat`: user plus system
//! time of all its threads. A workload's CPU per request, summed over the
//! members, is what bounds throughput when members and load generator
//! share a few cores, and it moves less than throughput when the machine is
//! busy with something else.
//!
//! A workload's setup (the keys a read workload populates, the watchers it
//! opens) is not part of what it measures, so neither is its CPU: a
//! [`Timeline`] samples the members and this process every [`PERIOD`]
//! while the workload runs, and the measured window is read off it
//! afterwards.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Clock ticks per second of `/proc` times (Linux's USER_HZ, 100 on every
/// architecture it reports to user space).
const TICKS_PER_SEC: u64 = 100;

/// CPU time used so far by process `pid`, in µs (10 ms resolution); None if
/// the process is gone.
pub fn cpu_us(pid: u32) -> Option<u64> {
    parse(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

fn parse(stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces and parentheses: count
    // fields after its last ')'; field 3 (state) is the first of them.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: u64 = fields.get(14 - 3)?.parse().ok()?;
    let stime: u64 = fields.get(15 - 3)?.parse().ok()?;
    Some((utime + stime) * 1_000_000 / TICKS_PER_SEC)
}

/// How often a [`Timeline`] samples: `/proc` counts CPU in 10 ms ticks.
pub const PERIOD: Duration = Duration::from_millis(10);

/// CPU time so far (µs) of some member processes together, and of this
/// process, at one instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub at: Instant,
    pub members_us: u64,
    pub own_us: u64,
}

fn sample(pids: &[u32]) -> Sample {
    Sample {
        at: Instant::now(),
        members_us: pids.iter().filter_map(|p| cpu_us(*p)).sum(),
        own_us: cpu_us(std::process::id()).unwrap_or(0),
    }
}

/// Samples `pids` and this process every [`PERIOD`] on a thread of its
/// own until dropped.
pub struct Timeline {
    pids: Vec<u32>,
    samples: Arc<Mutex<Vec<Sample>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Timeline {
    pub fn start(pids: Vec<u32>) -> Timeline {
        let samples = Arc::new(Mutex::new(vec![sample(&pids)]));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (pids, samples, stop) = (pids.clone(), samples.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(PERIOD);
                    let s = sample(&pids);
                    samples.lock().unwrap_or_else(|p| p.into_inner()).push(s);
                }
            })
        };
        Timeline {
            pids,
            samples,
            stop,
            thread: Some(thread),
        }
    }

    /// CPU µs (members, this process) used from `from` until now: from the
    /// last sample taken at or before `from` (the first one if none was) to
    /// a reading taken now.
    pub fn since(&self, from: Instant) -> (u64, u64) {
        let now = sample(&self.pids);
        let samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        used_between(&samples, from, now)
    }
}

impl Drop for Timeline {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What `now` counts beyond the last of `samples` (in time order) taken at
/// or before `from`.
fn used_between(samples: &[Sample], from: Instant, now: Sample) -> (u64, u64) {
    let base = samples
        .iter()
        .take_while(|s| s.at <= from)
        .last()
        .or(samples.first())
        .copied()
        .unwrap_or(now);
    (
        now.members_us.saturating_sub(base.members_us),
        now.own_us.saturating_sub(base.own_us),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_starts_at_the_last_sample_before_it() {
        let t0 = Instant::now();
        let at = |ms, members_us, own_us| Sample {
            at: t0 + Duration::from_millis(ms),
            members_us,
            own_us,
        };
        let samples = [at(0, 100, 10), at(10, 150, 20), at(20, 400, 30)];
        let now = at(30, 1000, 50);
        // Setup until 15 ms: its CPU (up to the 10 ms sample) is left out.
        assert_eq!(used_between(&samples, t0 + Duration::from_millis(15), now), (850, 30));
        assert_eq!(used_between(&samples, t0 + Duration::from_millis(20), now), (600, 20));
        // A window longer than the timeline counts from its first sample.
        assert_eq!(used_between(&samples, t0 - Duration::from_secs(1), now), (900, 40));
    }

    #[test]
    fn a_timeline_sees_its_own_process_work() {
        let timeline = Timeline::start(vec![]);
        let spin = Instant::now();
        while spin.elapsed() < Duration::from_millis(60) {}
        let (members, own) = timeline.since(spin);
        assert_eq!(members, 0);
        assert!(own > 0, "spun 60 ms, counted {own} µs");
    }

    #[test]
    fn reads_user_plus_system_time() {
        let stat = "4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 70 0 0 20 0 9 0 100 0 0";
        assert_eq!(parse(stat), Some(3_200_000));
        assert_eq!(parse("4242 (short) S 1"), None);
    }

    #[test]
    fn own_process_used_some_cpu() {
        let spin = std::time::Instant::now();
        while spin.elapsed() < std::time::Duration::from_millis(30) {}
        assert!(cpu_us(std::process::id()).is_some_and(|us| us > 0));
    }
}
