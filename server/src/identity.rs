//! Who this member is: its member ID and its cluster's ID, fixed the first
//! time a data dir is used and read back on every restart, as etcd keeps
//! them in its WAL metadata.
//!
//! - A member of a new cluster (`--initial-cluster-state new`) derives both
//!   from `--initial-cluster` and `--initial-cluster-token` (see `ids`).
//! - A member joining an existing cluster asks the other members listed in
//!   `--initial-cluster` for the cluster's ID and members, and takes the ID
//!   the cluster gave its peer URLs when it was added (etcd's
//!   GetClusterFromRemotePeers).

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use crate::config::InitialMember;
use crate::ids;
use crate::raft::network::{fetch_cluster_info, PeerDialer};
use crate::storage::keys::raft_meta;
use crate::storage::{Cf, SharedEngine, WriteBatch};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub member_id: u64,
    pub cluster_id: u64,
}

/// The stored identity, or a new one (stored, synced) for a fresh data dir.
pub async fn resolve(
    engine: &SharedEngine,
    name: &str,
    members: &[InitialMember],
    token: &str,
    join: bool,
    dialer: &PeerDialer,
) -> anyhow::Result<Identity> {
    if let Some(raw) = engine.get(Cf::RaftMeta, raft_meta::IDENTITY)? {
        return serde_json::from_slice(&raw).context("corrupt member identity in the data dir");
    }
    let identity = if join {
        from_peers(name, members, dialer).await?
    } else {
        let ids: Vec<u64> = members.iter().map(|m| ids::member_id(&m.peer_urls, token)).collect();
        let me = members
            .iter()
            .position(|m| m.name == name)
            .context("this member is not in --initial-cluster")?;
        Identity {
            member_id: ids[me],
            cluster_id: ids::cluster_id(&ids),
        }
    };
    let mut batch = WriteBatch::new();
    batch.put(
        Cf::RaftMeta,
        raft_meta::IDENTITY.to_vec(),
        serde_json::to_vec(&identity)?,
    );
    engine.write(batch, true)?;
    Ok(identity)
}

async fn from_peers(name: &str, members: &[InitialMember], dialer: &PeerDialer) -> anyhow::Result<Identity> {
    let me = members
        .iter()
        .find(|m| m.name == name)
        .context("this member is not in --initial-cluster")?;
    let others: Vec<String> = members
        .iter()
        .filter(|m| m.name != name)
        .flat_map(|m| m.peer_urls.iter().cloned())
        .collect();
    let info = fetch_cluster_info(dialer, &others)
        .await
        .map_err(|e| anyhow::anyhow!("cannot fetch cluster info from peers {others:?}: {e}"))?;
    let mut mine: Vec<&String> = me.peer_urls.iter().collect();
    mine.sort();
    for m in &info.members {
        let mut theirs: Vec<&String> = m.peer_urls.iter().collect();
        theirs.sort();
        if theirs == mine {
            return Ok(Identity {
                member_id: m.id,
                cluster_id: info.cluster_id,
            });
        }
    }
    bail!(
        "member {name} with peer URLs {:?} has not been added to the cluster: add it first (etcdctl member add)",
        me.peer_urls
    )
}
