//! Membership changes through etcd's Cluster API, as an operator replacing a
//! broken member does it: MemberRemove, wipe the data dir, MemberAdd with
//! the same peer URL, start the member with `--initial-cluster-state
//! existing` so it joins (and catches up) instead of founding a cluster.
//! Works for timon and etcd: both give the re-added member a new ID and both
//! find it by the peer URL the joining member advertises.

use std::time::Duration;

use anyhow::{bail, Context};
use timon_proto::etcdserverpb::cluster_client::ClusterClient;
use timon_proto::etcdserverpb::{MemberAddRequest, MemberListRequest, MemberPromoteRequest, MemberRemoveRequest};
use tonic::transport::Channel;

use super::{Cluster, Endpoint};

/// How long one Cluster API call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

async fn client(endpoint: &Endpoint) -> anyhow::Result<ClusterClient<Channel>> {
    Ok(ClusterClient::new(endpoint.connect(Some(CALL_TIMEOUT)).await?))
}

impl Cluster {
    /// The URL every member dials to reach member `i` (its proxy).
    pub fn peer_url(&self, i: usize) -> String {
        format!("{}://{}", self.scheme, self.proxies[i].addr())
    }

    /// Whether member `i` is removed from the cluster right now.
    pub fn is_removed(&self, i: usize) -> bool {
        self.members[i].removed
    }

    /// Runs `call` against each running member other than `skip` until one
    /// answers; the last error otherwise.
    async fn via_other<T, F, Fut>(&mut self, skip: usize, call: F) -> anyhow::Result<T>
    where
        F: Fn(ClusterClient<Channel>) -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<T>>,
    {
        let mut last = anyhow::anyhow!("no other member is running");
        for j in 0..self.len() {
            if j == skip || !self.is_up(j) || self.members[j].removed {
                continue;
            }
            match client(self.members[j].endpoint()).await {
                Ok(c) => match call(c).await {
                    Ok(t) => return Ok(t),
                    Err(e) => last = e.context(format!("via {}", self.members[j].name)),
                },
                Err(e) => last = e.context(format!("connect {}", self.members[j].name)),
            }
        }
        Err(last)
    }

    /// Removes member `i` from the cluster (MemberRemove through another
    /// member), then kills it and wipes its data dir. Answers the removed
    /// member ID (0 if unknown). On a `retry`, a member no longer listed was
    /// removed by an earlier attempt whose answer was lost.
    pub async fn remove_member(&mut self, i: usize, retry: bool) -> anyhow::Result<u64> {
        let url = self.peer_url(i);
        let id = self
            .via_other(i, |mut c| {
                let url = url.clone();
                async move {
                    let list = c
                        .member_list(MemberListRequest { linearizable: true })
                        .await?
                        .into_inner();
                    let Some(m) = list.members.iter().find(|m| m.peer_ur_ls.contains(&url)) else {
                        if retry {
                            return Ok(0);
                        }
                        bail!("no member with peer URL {url}");
                    };
                    c.member_remove(MemberRemoveRequest { id: m.id }).await?;
                    Ok(m.id)
                }
            })
            .await
            .with_context(|| format!("MemberRemove {}", self.members[i].name))?;
        self.kill(i);
        let m = &mut self.members[i];
        m.removed = true;
        match std::fs::remove_dir_all(&m.data_dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("wipe {}", m.data_dir.display()));
            }
            _ => {}
        }
        Ok(id)
    }

    /// Adds removed member `i` back (MemberAdd with its peer URL through
    /// another member) and starts it on an empty data dir with
    /// `--initial-cluster-state existing`. Answers its new member ID.
    pub async fn readd_member(&mut self, i: usize) -> anyhow::Result<u64> {
        self.add_member(i, false).await
    }

    /// [`Cluster::readd_member`], as a voter or as a `learner`.
    pub async fn add_member(&mut self, i: usize, learner: bool) -> anyhow::Result<u64> {
        if !self.members[i].removed {
            bail!("{} is not removed", self.members[i].name);
        }
        let url = self.peer_url(i);
        let id = self
            .via_other(i, |mut c| {
                let url = url.clone();
                async move {
                    // An earlier attempt may have been applied without its
                    // answer reaching us: then the member is listed already.
                    let list = c
                        .member_list(MemberListRequest { linearizable: true })
                        .await?
                        .into_inner();
                    if let Some(m) = list.members.iter().find(|m| m.peer_ur_ls.contains(&url)) {
                        return Ok(m.id);
                    }
                    let added = c
                        .member_add(MemberAddRequest {
                            peer_ur_ls: vec![url],
                            is_learner: learner,
                        })
                        .await?
                        .into_inner();
                    Ok(added.member.map_or(0, |m| m.id))
                }
            })
            .await
            .with_context(|| format!("MemberAdd {}", self.members[i].name))?;
        let m = &mut self.members[i];
        if let Some(state) = m.args.iter().position(|a| a == "--initial-cluster-state") {
            m.args[state + 1] = "existing".to_string();
        }
        m.removed = false;
        m.id = id;
        self.spawn(i)?;
        Ok(id)
    }

    /// Promotes learner `i` (MemberPromote through another member). etcd
    /// refuses while the learner is behind the leader's log
    /// (`can only promote a learner member which is in sync with leader`):
    /// the caller retries.
    pub async fn promote_member(&mut self, i: usize) -> anyhow::Result<()> {
        let id = self.members[i].id;
        self.via_other(i, |mut c| async move {
            let list = c
                .member_list(MemberListRequest { linearizable: true })
                .await?
                .into_inner();
            // Promoted by an earlier attempt whose answer was lost.
            if list.members.iter().any(|m| m.id == id && !m.is_learner) {
                return Ok(());
            }
            c.member_promote(MemberPromoteRequest { id }).await?;
            Ok(())
        })
        .await
        .with_context(|| format!("MemberPromote {}", self.members[i].name))
    }
}
