//! Member clocks under libfaketime (the `clock-skew` and `clock-rate`
//! nemeses): with [`super::Spec::faketime`] every member runs with libfaketime in
//! `LD_PRELOAD` and its own clock file, `clock-<slot>.faketime` in the run's
//! directory, holding a libfaketime spec (`+0`, `+90`, `-30`, `+0 x2`) that
//! [`Cluster::set_clock`] rewrites (write + rename, so the library never
//! reads half a spec). libfaketime re-reads the file at most once a second
//! (`FAKETIME_CACHE_DURATION=1`). A rate (`+0 x2`) applies to the time
//! since the member started, so a change of rate also makes the clock jump
//! by (rate − 1) × the member's uptime; setting `+0` again puts it back on
//! the real time exactly. (`FAKETIME_XRESET`, which would smooth the jump,
//! keeps the skew accumulated at the faster or slower rate after the
//! reset, and libfaketime calls it experimental: not used.)
//!
//! For `clock-skew` ([`Fake::Wall`]) only the wall clock is faked
//! (`FAKETIME_DONT_FAKE_MONOTONIC=1`):
//! CLOCK_MONOTONIC, which Rust's `Instant` and tokio's timers read, stays
//! the kernel's. A real machine's wall clock jumps (an NTP step, an
//! operator) and its rate is slewed, while CLOCK_MONOTONIC never jumps and
//! NTP slews its rate by at most 500 ppm; faking a monotonic jump would test
//! a clock no kernel provides. One side effect remains with a rate other
//! than 1: libfaketime divides the timeouts of `epoll_wait`, `nanosleep`
//! and friends by the rate, so a "slow" member's timers fire late (its
//! heartbeats and lease checks come later) and a "fast" member's wake early
//! and wait again.
//!
//! For `clock-rate` ([`Fake::WallAndMonotonic`]) both clocks are faked, and
//! only rates are set, with `FAKETIME_XRESET=1` so that a change of rate
//! starts from the faked time instead of jumping by (rate − 1) × uptime (a
//! faked CLOCK_MONOTONIC gets the same offset as the wall clock, so a jump
//! would move it too). The skew a fast or slow rate accumulated stays after
//! the heal (`+0`: rate 1 again), which only the wall clock shows. The
//! restart is not exact: libfaketime 0.9.10 rebases both clocks on the
//! faked *wall* time of the member's last wall-clock reading, so a change
//! of rate steps the monotonic clock back by the time since that reading
//! times the old rate (13.9 ms seen in CI; a debug build's openraft
//! asserted against it until timon's patch 6 in vendor/openraft).
//!
//! etcd is a Go program: Go reads the clock through the vDSO, never through
//! libc, so libfaketime does not reach it (checked: etcd 3.4.23 under
//! `FAKETIME=+2h` logs the real time); the nemesis does not apply to etcd.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

use super::Cluster;

/// Debian's libfaketime (`apt-get install libfaketime`; scripts/setup).
pub const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// The spec of a clock that is the real one.
pub const REAL: &str = "+0";

fn clock_file(dir: &Path, slot: usize) -> PathBuf {
    dir.join(format!("clock-{slot}.faketime"))
}

/// Which clocks libfaketime fakes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fake {
    /// CLOCK_REALTIME only (`clock-skew`).
    Wall,
    /// CLOCK_MONOTONIC too, rates only, smoothed (`clock-rate`).
    WallAndMonotonic,
}

/// Where the clock files are, which clocks are faked, and how many clock
/// faults were injected.
pub(super) struct Clocks {
    dir: PathBuf,
    fake: Fake,
    faults: usize,
}

impl Clocks {
    pub(super) fn new(dir: &Path, fake: Fake) -> Self {
        Self {
            dir: dir.to_path_buf(),
            fake,
            faults: 0,
        }
    }
}

impl Cluster {
    /// Writes every member's clock file with the real time (before the
    /// members start: libfaketime reads it at its first clock call).
    pub(super) fn init_clocks(&self) -> anyhow::Result<()> {
        if self.clocks.is_none() {
            return Ok(());
        }
        if !Path::new(LIBFAKETIME).exists() {
            bail!("{LIBFAKETIME} is missing: apt-get install libfaketime (scripts/setup does)");
        }
        for i in 0..self.len() {
            self.set_clock(i, REAL)?;
        }
        Ok(())
    }

    /// The libfaketime environment of member `i`, if the members run under it.
    pub(super) fn clock_env(&self, i: usize, cmd: &mut Command) {
        let Some(clocks) = &self.clocks else { return };
        cmd.env("LD_PRELOAD", LIBFAKETIME)
            .env("FAKETIME_TIMESTAMP_FILE", clock_file(&clocks.dir, i))
            .env("FAKETIME_CACHE_DURATION", "1")
            .env_remove("FAKETIME");
        match clocks.fake {
            Fake::Wall => cmd.env("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
            Fake::WallAndMonotonic => cmd.env("FAKETIME_XRESET", "1"),
        };
    }

    /// Removes the shared memory libfaketime made for member process `pid`
    /// (`/dev/shm/faketime_shm_<pid>`, `sem.faketime_sem_<pid>`), which
    /// only a clean exit removes: a member killed with SIGKILL leaves them
    /// for a later process with the same pid to trip over.
    pub(super) fn clock_reaped(&self, pid: u32) {
        if self.clocks.is_none() {
            return;
        }
        for name in [format!("faketime_shm_{pid}"), format!("sem.faketime_sem_{pid}")] {
            let _ = std::fs::remove_file(Path::new("/dev/shm").join(name));
        }
    }

    /// Whether the members run under libfaketime.
    pub fn has_fake_clocks(&self) -> bool {
        self.clocks.is_some()
    }

    /// Counts a clock fault; answers how many came before it.
    pub fn next_clock_fault(&mut self) -> anyhow::Result<usize> {
        let Some(clocks) = &mut self.clocks else {
            bail!("the members do not run under libfaketime");
        };
        clocks.faults += 1;
        Ok(clocks.faults - 1)
    }

    /// Sets member `i`'s clock to the libfaketime `spec` (seen by the member
    /// within a second).
    pub fn set_clock(&self, i: usize, spec: &str) -> anyhow::Result<()> {
        let Some(clocks) = &self.clocks else {
            bail!("the members do not run under libfaketime");
        };
        let file = clock_file(&clocks.dir, i);
        let tmp = file.with_extension("tmp");
        std::fs::write(&tmp, format!("{spec}\n")).with_context(|| format!("write {}", tmp.display()))?;
        std::fs::rename(&tmp, &file).with_context(|| format!("rename to {}", file.display()))?;
        Ok(())
    }

    /// Every member's clock file back to `+0`: the real time under
    /// `clock-skew`, rate 1 under `clock-rate` (nothing without fake clocks).
    pub fn reset_clocks(&self) -> anyhow::Result<()> {
        if self.clocks.is_none() {
            return Ok(());
        }
        (0..self.len()).try_for_each(|i| self.set_clock(i, REAL))
    }
}
