//! Clock faults through libfaketime (`cluster::clock` says how, and which
//! clocks each fakes):
//! - `clock-skew`: one member's wall clock jumps forward or back, or runs
//!   fast or slow (which in libfaketime starts with a jump too); its
//!   monotonic clock is left alone. The faults come in a fixed cycle so
//!   that every run of 20 s or more has the one that matters most for
//!   leases first: the leader's clock jumping forward.
//! - `clock-rate`: one member's monotonic and wall clocks run fast or slow,
//!   without jumps: the leader's fast first.
//!
//! timon keeps lease deadlines, election and heartbeat timers on the
//! monotonic clock (`Instant`), as etcd does on Go's monotonic clock, so no
//! `clock-skew` fault may change anything the checkers see: leases do not
//! end early (`check::lease`), lock holds stay exclusive (`check::lock`),
//! registers stay linearizable. The planted `wall-clock-lease` bug (lease
//! deadlines on the wall clock) is caught by the forward jump. Under
//! `clock-rate` a fast leader ends leases early in real time, by less than
//! the lease checker's margin below 2x; the planted `short-lease-deadline`
//! bug (deadlines at 60 % of the TTL), which that margin hides at the real
//! rate, is caught once the leader runs fast.

use rand::rngs::StdRng;
use rand::Rng;

use crate::cluster::Cluster;

/// One clock fault: on whom, and the libfaketime spec.
#[derive(Debug, Clone, PartialEq)]
enum Fault {
    /// The wall clock jumps this many seconds (forward if positive).
    Jump(i64),
    /// The faked clocks run at this rate (2.0: twice as fast).
    Rate(f64),
}

impl Fault {
    fn spec(&self) -> String {
        match self {
            Fault::Jump(s) => format!("{s:+}"),
            Fault::Rate(r) => format!("+0 x{r:.2}"),
        }
    }
}

/// The `n`th fault of a run (0-based) and whether it hits the leader (else
/// a random member): forward jump of the leader, fast leader, backward jump,
/// slow member, again.
fn plan(n: usize, rng: &mut StdRng) -> (Fault, bool) {
    match n % 4 {
        0 => (Fault::Jump(rng.gen_range(10..=120)), true),
        1 => (Fault::Rate(rng.gen_range(1.5..=2.0)), true),
        2 => (Fault::Jump(-rng.gen_range(10..=120)), false),
        _ => (Fault::Rate(rng.gen_range(0.5..=0.8)), false),
    }
}

/// The `clock-rate` fault: the `n`th (0-based) makes the leader's clocks
/// (monotonic and wall) run 1.2–1.9x fast, the next a random member's
/// 0.5–0.8x slow, and again; with whether it hits the leader. Below 2x a
/// fast leader ends a lease of TTL t at most t/2 early, which the lease
/// checker's margin (a renewal at s vouches until s + t/2) allows.
fn rate_plan(n: usize, rng: &mut StdRng) -> (Fault, bool) {
    if n.is_multiple_of(2) {
        (Fault::Rate(rng.gen_range(1.2..=1.9)), true)
    } else {
        (Fault::Rate(rng.gen_range(0.5..=0.8)), false)
    }
}

/// Changes the rate of one member's clocks; answers what it did. The heal
/// sets every rate back to 1.
pub async fn rate(cluster: &mut Cluster, rng: &mut StdRng) -> anyhow::Result<String> {
    let n = cluster.next_clock_fault()?;
    let (fault, on_leader) = rate_plan(n, rng);
    apply(cluster, rng, fault, on_leader, "clocks").await
}

/// Skews one member's clock; answers what it did. The heal sets every
/// clock back ([`Cluster::reset_clocks`]).
pub async fn skew(cluster: &mut Cluster, rng: &mut StdRng) -> anyhow::Result<String> {
    let n = cluster.next_clock_fault()?;
    let (fault, on_leader) = plan(n, rng);
    apply(cluster, rng, fault, on_leader, "clock").await
}

/// Sets `fault` on the leader (if `on_leader` and one is known) or a random
/// member.
async fn apply(
    cluster: &mut Cluster,
    rng: &mut StdRng,
    fault: Fault,
    on_leader: bool,
    clocks: &str,
) -> anyhow::Result<String> {
    let leader = if on_leader { cluster.leader().await } else { None };
    let i = leader.unwrap_or_else(|| rng.gen_range(0..cluster.len()));
    cluster.set_clock(i, &fault.spec())?;
    let what = match fault {
        Fault::Jump(s) if s > 0 => format!("jumps {s} s forward"),
        Fault::Jump(s) => format!("jumps {} s back", -s),
        Fault::Rate(r) if r > 1.0 => format!("runs {r:.2}x fast"),
        Fault::Rate(r) => format!("runs {r:.2}x slow"),
    };
    let role = if leader == Some(i) { " (leader)" } else { "" };
    Ok(format!("{clocks} of {}{role} {what}", cluster.members[i].name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn the_cycle_starts_with_a_forward_jump_of_the_leader() {
        let mut rng = StdRng::seed_from_u64(1);
        let faults: Vec<(Fault, bool)> = (0..4).map(|n| plan(n, &mut rng)).collect();
        assert!(matches!(faults[0], (Fault::Jump(s), true) if s >= 10));
        assert!(matches!(faults[1], (Fault::Rate(r), true) if r > 1.0));
        assert!(matches!(faults[2], (Fault::Jump(s), false) if s <= -10));
        assert!(matches!(faults[3], (Fault::Rate(r), false) if r < 1.0));
    }

    #[test]
    fn clock_rate_alternates_a_fast_leader_and_a_slow_member() {
        let mut rng = StdRng::seed_from_u64(1);
        assert!(matches!(rate_plan(0, &mut rng), (Fault::Rate(r), true) if (1.2..2.0).contains(&r)));
        assert!(matches!(rate_plan(1, &mut rng), (Fault::Rate(r), false) if r < 1.0));
    }

    #[test]
    fn specs_are_libfaketimes() {
        assert_eq!(Fault::Jump(30).spec(), "+30");
        assert_eq!(Fault::Jump(-30).spec(), "-30");
        assert_eq!(Fault::Rate(0.5).spec(), "+0 x0.50");
    }
}
