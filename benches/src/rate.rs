//! The `--rate` limiter: request n (counted over all clients) may start no
//! earlier than `start + n / rate`. Clients that fall behind the schedule
//! send at once, so the average never exceeds the rate and a slow server is
//! not given extra slack.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// Shared by every client of one run.
pub struct Limiter {
    start: Instant,
    /// None = unlimited.
    interval: Option<Duration>,
    next: AtomicU64,
}

impl Limiter {
    /// `rate` requests per second; 0 means unlimited.
    pub fn new(rate: f64) -> Limiter {
        Limiter {
            start: Instant::now(),
            interval: (rate > 0.0).then(|| Duration::from_secs_f64(1.0 / rate)),
            next: AtomicU64::new(0),
        }
    }

    /// The earliest time the next request may start (its slot in the
    /// schedule), taken by the caller; None when unlimited.
    pub fn reserve(&self) -> Option<Instant> {
        let interval = self.interval?;
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        Some(self.start + interval.mul_f64(n as f64))
    }

    /// Waits for the next request's slot.
    pub async fn wait(&self) {
        if let Some(at) = self.reserve() {
            tokio::time::sleep_until(at).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_spaced_by_one_over_rate() {
        let l = Limiter::new(100.0);
        let a = l.reserve().unwrap();
        let b = l.reserve().unwrap();
        let c = l.reserve().unwrap();
        assert_eq!(b - a, Duration::from_millis(10));
        assert_eq!(c - a, Duration::from_millis(20));
    }

    #[test]
    fn zero_rate_is_unlimited() {
        assert!(Limiter::new(0.0).reserve().is_none());
    }
}
