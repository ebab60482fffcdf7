//! The member-readd fault: remove a follower from the cluster and wipe its
//! data, then (on heal) add it back empty, as `cluster::membership` does it
//! through the Cluster API.

use std::time::Duration;

use anyhow::bail;
use rand::rngs::StdRng;
use rand::Rng;
use tokio::time::Instant;

use crate::cluster::Cluster;

/// How long a heal keeps retrying MemberAdd (it is refused while the
/// cluster has no leader or, in etcd, is not yet fully connected).
const READD_PATIENCE: Duration = Duration::from_secs(30);
/// How long the fault keeps retrying MemberRemove (etcd refuses it as
/// "unhealthy cluster" until every member was connected for 5 s).
const REMOVE_PATIENCE: Duration = Duration::from_secs(5);

/// A retry backoff between Cluster API attempts, not a wait for an event.
const BACKOFF: Duration = Duration::from_millis(500);

/// Removes a random follower; answers what it did.
pub async fn remove_follower(cluster: &mut Cluster, rng: &mut StdRng) -> anyhow::Result<String> {
    let Some(leader) = cluster.leader().await else {
        bail!("no leader to remove a follower from");
    };
    let followers: Vec<usize> = (0..cluster.len())
        .filter(|i| *i != leader && !cluster.is_removed(*i))
        .collect();
    if followers.is_empty() {
        bail!("no follower to remove");
    }
    let i = followers[rng.gen_range(0..followers.len())];
    let deadline = Instant::now() + REMOVE_PATIENCE;
    let mut retry = false;
    let id = loop {
        match cluster.remove_member(i, retry).await {
            Ok(id) => break id,
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => tokio::time::sleep(BACKOFF).await,
        }
        retry = true;
    };
    Ok(format!("remove {} ({id:x}), wipe its data", cluster.members[i].name))
}

/// Adds every removed member back and starts it, retrying for a while.
pub async fn readd_removed(cluster: &mut Cluster) -> anyhow::Result<()> {
    let deadline = Instant::now() + READD_PATIENCE;
    for i in 0..cluster.len() {
        while cluster.is_removed(i) {
            match cluster.readd_member(i).await {
                Ok(_) => {}
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(BACKOFF).await,
            }
        }
    }
    Ok(())
}
