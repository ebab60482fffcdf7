//! Cluster membership as etcd's Cluster service sees it: the member list
//! (openraft's membership config joined with the attributes each member
//! publishes), and member add / promote / remove / update mapped onto
//! openraft's learner and membership-change calls, with etcd's checks.
//!
//! A change runs on the leader; a follower forwards it. etcd's strict
//! reconfiguration check refuses a change that would leave fewer started
//! voters than a quorum ("started" = it published its attributes).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use openraft::error::{ClientWriteError, RaftError};
use openraft::ChangeMembers;
use timon_proto::timonpb::internal_raft_request::Request;
use timon_proto::timonpb::{InternalRaftRequest, MemberAttributes};

use super::network::{decode, encode};
use super::node::{MemberInfo, RaftNode};
use super::state_machine::member_attrs;
use super::types::Member;
use super::ProposeError;
use crate::apply::EtcdError;

/// A change to the cluster's members, as the Cluster service asks for it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MembershipChange {
    Add { id: u64, member: Member, learner: bool },
    Promote { id: u64 },
    Remove { id: u64 },
    Update { id: u64, member: Member },
}

/// Why a membership change was refused or did not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum MemberError {
    #[error(transparent)]
    Etcd(#[from] EtcdError),
    #[error(transparent)]
    Propose(#[from] ProposeError),
}

/// etcd's threshold: a learner is in sync once it matched 90% of the leader's log.
const LEARNER_READY_PERCENT: f64 = 0.9;

impl RaftNode {
    /// Every member of the current membership config, voters and learners,
    /// with the name and client URLs each published (empty until it did).
    pub fn members(&self) -> Vec<MemberInfo> {
        let m = self.raft().metrics().borrow().membership_config.clone();
        let attrs = member_attrs(self.store().engine().as_ref()).unwrap_or_default();
        let voters: BTreeSet<u64> = m.membership().voter_ids().collect();
        m.membership()
            .nodes()
            .map(|(id, member)| {
                let mut member = member.clone();
                if let Some(a) = attrs.get(id) {
                    member.name = a.name.clone();
                    member.client_urls = a.client_urls.clone();
                }
                MemberInfo {
                    id: *id,
                    member,
                    is_learner: !voters.contains(id),
                }
            })
            .collect()
    }

    /// Whether `id` published its attributes, i.e. started at least once.
    fn started(&self, ids: &BTreeSet<u64>) -> usize {
        let attrs = member_attrs(self.store().engine().as_ref()).unwrap_or_default();
        ids.iter().filter(|id| attrs.contains_key(id)).count()
    }

    /// Publishes this member's name and client URLs through raft, unless
    /// the replicated attributes already say the same.
    pub async fn publish(&self, name: &str, client_urls: &[String]) -> Result<(), ProposeError> {
        let attrs = member_attrs(self.store().engine().as_ref()).unwrap_or_default();
        let mine = MemberAttributes {
            id: self.id(),
            name: name.to_string(),
            client_urls: client_urls.to_vec(),
        };
        if attrs.get(&self.id()) == Some(&mine) {
            return Ok(());
        }
        let req = InternalRaftRequest {
            request: Some(Request::MemberAttributes(mine)),
        };
        self.propose(req).await.map(|_| ())
    }

    /// Runs a membership change on the leader (forwarded from a follower)
    /// and waits until it is committed.
    pub async fn change_membership(&self, change: MembershipChange) -> Result<(), MemberError> {
        let deadline = Instant::now() + self.request_timeout();
        let leader = self.leader_within(deadline).await?;
        let wanted = change.clone();
        let run = async {
            if leader == self.id() {
                return self.change_local(change).await;
            }
            let msg = encode(&change).map_err(|_| ProposeError::Stopped)?;
            match self.peer(leader)?.change_membership(msg).await {
                Ok(resp) => decode::<Result<(), MemberError>>(&resp.into_inner()).map_err(|_| ProposeError::Stopped)?,
                Err(_) => Err(ProposeError::LeaderChanged.into()),
            }
        };
        tokio::time::timeout_at(deadline.into(), run)
            .await
            .map_err(|_| ProposeError::Timeout)??;
        // As etcd answers once the change is applied on the member that
        // took the request: wait until this member's membership shows it,
        // so the member list in the answer does (a follower may lag the
        // leader). A member that removed itself sees that at once.
        let left = deadline.saturating_duration_since(Instant::now());
        let _ = self
            .raft()
            .wait(Some(left))
            .metrics(
                |m| {
                    let c = m.membership_config.membership();
                    match &wanted {
                        MembershipChange::Add { id, learner, .. } => {
                            c.get_node(id).is_some() && (*learner || c.voter_ids().any(|v| v == *id))
                        }
                        MembershipChange::Promote { id } => c.voter_ids().any(|v| v == *id),
                        MembershipChange::Remove { id } => c.get_node(id).is_none(),
                        MembershipChange::Update { id, member } => {
                            c.get_node(id).is_some_and(|n| n.peer_urls == member.peer_urls)
                        }
                    }
                },
                "membership change applied here",
            )
            .await;
        Ok(())
    }

    /// Runs a membership change on this member, which must be the leader.
    pub async fn change_local(&self, change: MembershipChange) -> Result<(), MemberError> {
        let members = self.members();
        let voters: BTreeSet<u64> = members.iter().filter(|m| !m.is_learner).map(|m| m.id).collect();
        let find = |id: u64| members.iter().find(|m| m.id == id).ok_or(EtcdError::MemberNotFound);
        match change {
            MembershipChange::Add { id, member, learner } => {
                if members.iter().any(|m| m.id == id) {
                    return Err(EtcdError::MemberExist.into());
                }
                let taken = members
                    .iter()
                    .any(|m| m.member.peer_urls.iter().any(|u| member.peer_urls.contains(u)));
                if taken {
                    return Err(EtcdError::PeerUrlExist.into());
                }
                if !learner {
                    // After the add, the started voters must still be a quorum.
                    let after = voters.len() + 1;
                    let quorum = after / 2 + 1;
                    if self.started(&voters) < quorum {
                        return Err(EtcdError::MemberNotEnoughStarted.into());
                    }
                }
                self.raft().add_learner(id, member, false).await.map_err(change_error)?;
                if !learner {
                    self.change(ChangeMembers::AddVoterIds(BTreeSet::from([id]))).await?;
                }
                Ok(())
            }
            MembershipChange::Promote { id } => {
                if !find(id)?.is_learner {
                    return Err(EtcdError::MemberNotLearner.into());
                }
                if !self.learner_ready(id) {
                    return Err(EtcdError::LearnerNotReady.into());
                }
                self.change(ChangeMembers::AddVoterIds(BTreeSet::from([id]))).await
            }
            MembershipChange::Remove { id } => {
                let m = find(id)?;
                if !m.is_learner {
                    let mut rest = voters.clone();
                    rest.remove(&id);
                    let quorum = rest.len() / 2 + 1;
                    if rest.is_empty() || self.started(&rest) < quorum {
                        return Err(EtcdError::Unhealthy.into());
                    }
                    // Without `retain`, this removes the node too.
                    return self.change(ChangeMembers::RemoveVoters(BTreeSet::from([id]))).await;
                }
                self.change(ChangeMembers::RemoveNodes(BTreeSet::from([id]))).await
            }
            MembershipChange::Update { id, member } => {
                let mut updated = find(id)?.member.clone();
                updated.peer_urls = member.peer_urls;
                self.change(ChangeMembers::SetNodes(BTreeMap::from([(id, updated)])))
                    .await
            }
        }
    }

    /// etcd's isLearnerReady: the learner matched at least 90% of the
    /// leader's log.
    fn learner_ready(&self, id: u64) -> bool {
        let m = self.raft().metrics().borrow().clone();
        let leader_match = m.last_log_index.unwrap_or(0) as f64;
        let learner_match = m
            .replication
            .as_ref()
            .and_then(|r| r.get(&id).cloned().flatten())
            .map_or(0, |l| l.index) as f64;
        learner_match >= leader_match * LEARNER_READY_PERCENT
    }

    async fn change(&self, change: ChangeMembers<u64, Member>) -> Result<(), MemberError> {
        self.raft()
            .change_membership(change, false)
            .await
            .map(|_| ())
            .map_err(change_error)
    }
}

fn change_error(e: RaftError<u64, ClientWriteError<u64, Member>>) -> MemberError {
    match e {
        RaftError::Fatal(_) => ProposeError::Stopped.into(),
        RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => ProposeError::LeaderChanged.into(),
        RaftError::APIError(ClientWriteError::ChangeMembershipError(c)) => {
            tracing::warn!("membership change refused: {c}");
            ProposeError::Timeout.into()
        }
    }
}
