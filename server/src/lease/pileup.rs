//! etcd's lessor rate limits (`lease/lessor.go`): at most
//! [`REVOKE_RATE`] lease revocations per second, half of them per 500 ms
//! expiry check, and on promotion, when many leases would expire at once
//! (typically after a long election, every lease restarted with the same
//! TTL), later ones are pushed back so that at most three quarters of that
//! rate expire in any second.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// etcd's `leaseRevokeRate`: lease revocations per second.
pub const REVOKE_RATE: usize = 1000;

/// Revocations per expiry check (every 500 ms): `leaseRevokeRate / 2`.
pub const REVOKES_PER_CHECK: usize = REVOKE_RATE / 2;

/// etcd's `Promote` pile-up adjustment over the deadlines just set: with
/// fewer than [`REVOKE_RATE`] leases nothing changes; otherwise, walking
/// the leases by deadline, each one beyond `3/4 * REVOKE_RATE` in a
/// one-second window is delayed in proportion to how far over it is.
pub fn spread(expiry: &mut BTreeMap<i64, Instant>, now: Instant) {
    if expiry.len() < REVOKE_RATE {
        return;
    }
    let mut by_deadline: Vec<(Instant, i64)> = expiry.iter().map(|(id, at)| (*at, *id)).collect();
    by_deadline.sort();
    let remaining = |at: Instant| at.saturating_duration_since(now).as_secs_f64();
    let target = (3 * REVOKE_RATE / 4) as f64;
    let mut base = remaining(by_deadline[0].0);
    let mut next_window = base + 1.0;
    let mut expires = 0usize;
    for (at, id) in by_deadline {
        let r = remaining(at);
        if r > next_window {
            base = r;
            next_window = base + 1.0;
            expires = 1;
            continue;
        }
        expires += 1;
        if expires as f64 <= target {
            continue;
        }
        // Leases already n seconds past the base window are delayed by
        // n seconds less.
        let delay = expires as f64 / target - (r - base);
        next_window = base + delay;
        if delay > 0.0 {
            expiry.insert(id, at + Duration::from_secs_f64(delay));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promotion_spreads_a_pile_up_to_three_quarters_of_the_revoke_rate() {
        let now = Instant::now();
        let at = now + Duration::from_secs(10);
        let mut expiry: BTreeMap<i64, Instant> = (0..3000).map(|id| (id, at)).collect();
        spread(&mut expiry, now);
        for second in 0..6 {
            let from = at + Duration::from_secs(second);
            let to = from + Duration::from_secs(1);
            let n = expiry.values().filter(|t| **t >= from && **t < to).count();
            assert!(n <= 751, "{n} leases expire in second {second}");
        }
        assert!(expiry.values().all(|t| *t >= at && *t < at + Duration::from_secs(5)));
        // Below the rate nothing moves.
        let mut few: BTreeMap<i64, Instant> = (0..999).map(|id| (id, at)).collect();
        spread(&mut few, now);
        assert!(few.values().all(|t| *t == at));
    }
}
