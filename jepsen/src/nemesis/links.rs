//! Link faults short of a partition, set on the peer proxies: a one-way cut
//! around the leader, and latency with jitter. Both last until the heal
//! resets every proxy rule.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::Rng;

use crate::cluster::proxy::Link;
use crate::cluster::Cluster;

fn names(cluster: &Cluster, members: &[usize]) -> String {
    members
        .iter()
        .map(|i| cluster.members[*i].name.clone())
        .collect::<Vec<_>>()
        .join(",")
}

/// Cuts the connections `leader` opens to every other member (`outbound`),
/// or those every other member opens to `leader`. A rule acts on whole
/// connections (see `cluster::proxy`): with `outbound`, timon's leader can
/// no longer send AppendEntries, while the followers' vote requests still
/// reach it; the reverse keeps replication flowing but the followers'
/// requests to the leader (votes, forwarded reads and writes) fail.
pub fn one_way(cluster: &Cluster, leader: usize, outbound: bool) -> String {
    let others: Vec<usize> = (0..cluster.len()).filter(|i| *i != leader).collect();
    for (from, to) in one_way_links(cluster.len(), leader, outbound) {
        cluster.set_link(from, to, Link::Drop);
    }
    let (l, o) = (cluster.members[leader].name.clone(), names(cluster, &others));
    if outbound {
        format!("one-way: {l} cannot reach [{o}]")
    } else {
        format!("one-way: [{o}] cannot reach {l}")
    }
}

/// Delays links by 50–200 ms: a base drawn from 50..=150 ms, each chunk
/// held between the base and the base + 50 ms. Half the time every link,
/// otherwise every link to and from one random member.
pub fn delay(cluster: &Cluster, rng: &mut StdRng) -> String {
    let n = cluster.len();
    let base = rng.gen_range(50..=150);
    let link = Link::Jitter(Duration::from_millis(base), Duration::from_millis(base + 50));
    let one = rng.gen_bool(0.5).then(|| rng.gen_range(0..n));
    for (from, to) in delayed_links(n, one) {
        cluster.set_link(from, to, link);
    }
    let which = match one {
        None => "all links".to_string(),
        Some(m) => format!("links of {}", cluster.members[m].name),
    };
    format!("delay {which} {base}-{} ms", base + 50)
}

/// The (from → to) links a one-way cut around `leader` drops.
fn one_way_links(n: usize, leader: usize, outbound: bool) -> Vec<(usize, usize)> {
    (0..n)
        .filter(|o| *o != leader)
        .map(|o| if outbound { (leader, o) } else { (o, leader) })
        .collect()
}

/// The (from → to) links delayed: all, or those to and from member `one`.
fn delayed_links(n: usize, one: Option<usize>) -> Vec<(usize, usize)> {
    (0..n)
        .flat_map(|from| (0..n).map(move |to| (from, to)))
        .filter(|(from, to)| from != to && one.is_none_or(|m| m == *from || m == *to))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_way_cuts_one_direction_around_the_leader() {
        assert_eq!(one_way_links(3, 1, true), vec![(1, 0), (1, 2)]);
        assert_eq!(one_way_links(3, 1, false), vec![(0, 1), (2, 1)]);
    }

    #[test]
    fn delay_hits_every_link_or_one_members_links() {
        assert_eq!(delayed_links(3, None).len(), 6);
        assert_eq!(delayed_links(3, Some(2)), vec![(0, 2), (1, 2), (2, 0), (2, 1)]);
    }
}
