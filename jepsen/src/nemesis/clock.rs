//! The `clock-skew` fault: one member's wall clock jumps forward or back,
//! or runs fast or slow (which in libfaketime starts with a jump too),
//! through libfaketime (`cluster::clock`, which also says why
//! CLOCK_MONOTONIC is left alone). The faults come in a fixed
//! cycle so that every run of 20 s or more has the one that matters most
//! for leases first: the leader's clock jumping forward.
//!
//! timon keeps lease deadlines, election and heartbeat timers on the
//! monotonic clock (`Instant`), as etcd does on Go's monotonic clock, so
//! none of these faults may change anything the checkers see: leases do not
//! end early (`check::lease`), lock holds stay exclusive (`check::lock`),
//! registers stay linearizable. The planted `wall-clock-lease` bug (lease
//! deadlines on the wall clock) is caught by the forward jump.

use rand::rngs::StdRng;
use rand::Rng;

use crate::cluster::Cluster;

/// One clock fault: on whom, and the libfaketime spec.
#[derive(Debug, Clone, PartialEq)]
enum Fault {
    /// The wall clock jumps this many seconds (forward if positive).
    Jump(i64),
    /// The wall clock runs at this rate (2.0: twice as fast).
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

/// Skews one member's clock; answers what it did. The heal sets every
/// clock back ([`Cluster::reset_clocks`]).
pub async fn skew(cluster: &mut Cluster, rng: &mut StdRng) -> anyhow::Result<String> {
    let n = cluster.next_clock_fault()?;
    let (fault, on_leader) = plan(n, rng);
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
    Ok(format!("clock of {}{role} {what}", cluster.members[i].name))
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
    fn specs_are_libfaketimes() {
        assert_eq!(Fault::Jump(30).spec(), "+30");
        assert_eq!(Fault::Jump(-30).spec(), "-30");
        assert_eq!(Fault::Rate(0.5).spec(), "+0 x0.50");
    }
}
