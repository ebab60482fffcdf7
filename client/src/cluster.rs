//! Cluster membership: list, add, remove, promote and update members
//! (etcd's Cluster service).
//!
//! Listing is a read; every change is a write, re-sent only when it provably
//! was not applied (see the `retry` module): adding a member twice would
//! add two members.

use timon_proto::etcdserverpb::cluster_client::ClusterClient;
use timon_proto::etcdserverpb::{
    MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse, MemberPromoteRequest,
    MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse, MemberUpdateRequest, MemberUpdateResponse,
};

use crate::client::Client;
use crate::error::Result;
use crate::retry::{self, Kind};

fn urls<I, S>(peer_urls: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    peer_urls.into_iter().map(Into::into).collect()
}

impl Client {
    /// Every member, in the order the server returns them (etcd: by ID).
    /// Served from the contacted member's own view of the cluster, without a
    /// leader, as etcd 3.4 serves it.
    pub async fn member_list(&self) -> Result<MemberListResponse> {
        self.call(Kind::Read, |channel| async move {
            ClusterClient::new(channel)
                .member_list(MemberListRequest { linearizable: false })
                .await
        })
        .await
    }

    /// Adds a member that will listen on `peer_urls`; a learner
    /// (`is_learner`) receives the log but does not vote until promoted.
    /// The new member must then be started with `--initial-cluster-state
    /// existing`.
    pub async fn member_add<I, S>(&self, peer_urls: I, is_learner: bool) -> Result<MemberAddResponse>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let request = MemberAddRequest {
            peer_ur_ls: urls(peer_urls),
            is_learner,
        };
        self.call(Kind::Write, |channel| {
            let request = retry::request(request.clone(), true);
            async move { ClusterClient::new(channel).member_add(request).await }
        })
        .await
    }

    /// Removes member `id` from the cluster.
    pub async fn member_remove(&self, id: u64) -> Result<MemberRemoveResponse> {
        self.call(Kind::Write, |channel| {
            let request = retry::request(MemberRemoveRequest { id }, true);
            async move { ClusterClient::new(channel).member_remove(request).await }
        })
        .await
    }

    /// Makes learner `id` a voting member. etcd refuses while the learner
    /// is not started or lags the leader (`etcdserver: can only promote a
    /// learner member which is in sync with leader`).
    pub async fn member_promote(&self, id: u64) -> Result<MemberPromoteResponse> {
        self.call(Kind::Write, |channel| {
            let request = retry::request(MemberPromoteRequest { id }, true);
            async move { ClusterClient::new(channel).member_promote(request).await }
        })
        .await
    }

    /// Replaces the peer URLs of member `id`.
    pub async fn member_update<I, S>(&self, id: u64, peer_urls: I) -> Result<MemberUpdateResponse>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let request = MemberUpdateRequest {
            id,
            peer_ur_ls: urls(peer_urls),
        };
        self.call(Kind::Write, |channel| {
            let request = retry::request(request.clone(), true);
            async move { ClusterClient::new(channel).member_update(request).await }
        })
        .await
    }
}
