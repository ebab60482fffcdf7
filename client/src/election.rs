//! Leader election through the Election service (etcd's `v3electionpb`).
//!
//! [`Client::campaign`] waits until its lease leads the election, so like
//! [`Client::lock`] it is sent once and not bounded by the request
//! timeout. The [`LeaderKey`] it answers identifies the leadership for
//! [`Client::proclaim`] and [`Client::resign`]. [`Client::observe`] streams
//! the leader's value and every later leader's.

use timon_proto::v3electionpb::election_client::ElectionClient;
use timon_proto::v3electionpb::{
    CampaignRequest, CampaignResponse, LeaderKey, LeaderRequest, LeaderResponse, ProclaimRequest, ProclaimResponse,
    ResignRequest, ResignResponse,
};

use crate::client::Client;
use crate::error::{Error, Result};
use crate::retry::{self, Kind};

impl Client {
    /// Waits until `lease` leads election `name`, with `value` proclaimed.
    pub async fn campaign(
        &self,
        name: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
        lease: i64,
    ) -> Result<CampaignResponse> {
        let request = CampaignRequest {
            name: name.into(),
            lease,
            value: value.into(),
        };
        let active = self.active();
        ElectionClient::new(active.channel)
            .campaign(retry::request(request, true))
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| Error::from_call(status, self.endpoint_uri(active.index)))
    }

    /// Replaces the leader's value; `election: not leader` if `leader`
    /// lost the leadership.
    pub async fn proclaim(&self, leader: LeaderKey, value: impl Into<Vec<u8>>) -> Result<ProclaimResponse> {
        let value = value.into();
        self.call(Kind::Write, |channel| {
            let request = ProclaimRequest {
                leader: Some(leader.clone()),
                value: value.clone(),
            };
            async move {
                ElectionClient::new(channel)
                    .proclaim(retry::request(request, true))
                    .await
            }
        })
        .await
    }

    /// Gives up the leadership (nothing happens if it was already lost).
    pub async fn resign(&self, leader: LeaderKey) -> Result<ResignResponse> {
        self.call(Kind::Write, |channel| {
            let request = ResignRequest {
                leader: Some(leader.clone()),
            };
            async move { ElectionClient::new(channel).resign(retry::request(request, true)).await }
        })
        .await
    }

    /// The current leader's key and value; `election: no leader` if none.
    pub async fn leader(&self, name: impl Into<Vec<u8>>) -> Result<LeaderResponse> {
        let name = name.into();
        self.call(Kind::Read, |channel| {
            let request = LeaderRequest { name: name.clone() };
            async move { ElectionClient::new(channel).leader(retry::request(request, true)).await }
        })
        .await
    }

    /// Streams election `name`'s leader: the current one (or the first to
    /// come), each value it proclaims, then the next leader, and so on.
    pub async fn observe(&self, name: impl Into<Vec<u8>>) -> Result<Observe> {
        let request = LeaderRequest { name: name.into() };
        let active = self.active();
        let endpoint = self.endpoint_uri(active.index).to_owned();
        let stream = ElectionClient::new(active.channel)
            .observe(retry::request(request, true))
            .await
            .map_err(|status| Error::from_call(status, &endpoint))?
            .into_inner();
        Ok(Observe { stream, endpoint })
    }
}

/// The stream of [`Client::observe`].
#[derive(Debug)]
pub struct Observe {
    stream: tonic::Streaming<LeaderResponse>,
    endpoint: String,
}

impl Observe {
    /// The next leader value; None when the server ended the stream.
    pub async fn next(&mut self) -> Result<Option<LeaderResponse>> {
        self.stream
            .message()
            .await
            .map_err(|status| Error::from_call(status, &self.endpoint))
    }
}
