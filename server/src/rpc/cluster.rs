//! The Cluster service: MemberList, MemberAdd, MemberRemove, MemberUpdate
//! and MemberPromote, answered as etcd answers them (members as the
//! membership config holds them after the change; headers without a
//! revision, as etcd's cluster server sends them).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use timon_proto::etcdserverpb::cluster_server::Cluster;
use timon_proto::etcdserverpb::{
    Member as PbMember, MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse,
    MemberPromoteRequest, MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse, MemberUpdateRequest,
    MemberUpdateResponse, ResponseHeader,
};
use tonic::{Request, Response, Status};

use super::error::{etcd_status, propose_status};
use super::Ctx;
use crate::apply::EtcdError;
use crate::ids;
use crate::raft::{Member, MemberError, MemberInfo, MembershipChange};

pub struct ClusterService {
    ctx: Arc<Ctx>,
}

impl ClusterService {
    pub fn new(ctx: Arc<Ctx>) -> Self {
        Self { ctx }
    }

    fn header(&self) -> Option<ResponseHeader> {
        // etcd's cluster server sends no revision.
        self.ctx.header(0)
    }

    fn members(&self) -> Vec<PbMember> {
        self.ctx.raft.members().into_iter().map(to_pb).collect()
    }

    async fn change(&self, change: MembershipChange) -> Result<(), Status> {
        self.ctx.raft.change_membership(change).await.map_err(|e| match e {
            MemberError::Etcd(e) => etcd_status(&e),
            MemberError::Propose(e) => propose_status(&e),
        })
    }
}

fn to_pb(m: MemberInfo) -> PbMember {
    PbMember {
        id: m.id,
        name: m.member.name,
        peer_ur_ls: m.member.peer_urls,
        client_ur_ls: m.member.client_urls,
        is_learner: m.is_learner,
    }
}

/// etcd's URL check for member peer URLs: http(s) with a host and port,
/// nothing else.
fn check_peer_urls(urls: &[String]) -> Result<(), Status> {
    let bad = || etcd_status(&EtcdError::MemberBadUrls);
    if urls.is_empty() {
        return Err(bad());
    }
    for u in urls {
        let url = url::Url::parse(u).map_err(|_| bad())?;
        let ok = matches!(url.scheme(), "http" | "https")
            && url.host_str().is_some()
            && url.port().is_some()
            && (url.path().is_empty() || url.path() == "/")
            && url.query().is_none();
        if !ok {
            return Err(bad());
        }
    }
    Ok(())
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(&self, request: Request<MemberAddRequest>) -> Result<Response<MemberAddResponse>, Status> {
        // Membership changes need root (etcd's checkMembershipOperationPermission).
        self.ctx.require_admin(&request).await?;
        let req = request.into_inner();
        check_peer_urls(&req.peer_ur_ls)?;
        // etcd derives a new member's ID from its peer URLs and the time.
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let id = ids::member_id(&req.peer_ur_ls, &now.to_string());
        let member = Member {
            name: String::new(),
            peer_urls: req.peer_ur_ls.clone(),
            client_urls: vec![],
        };
        self.change(MembershipChange::Add {
            id,
            member,
            learner: req.is_learner,
        })
        .await?;
        Ok(Response::new(MemberAddResponse {
            header: self.header(),
            member: Some(PbMember {
                id,
                name: String::new(),
                peer_ur_ls: req.peer_ur_ls,
                client_ur_ls: vec![],
                is_learner: req.is_learner,
            }),
            members: self.members(),
        }))
    }

    async fn member_remove(
        &self,
        request: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        // Membership changes need root (etcd's checkMembershipOperationPermission).
        self.ctx.require_admin(&request).await?;
        let id = request.into_inner().id;
        self.change(MembershipChange::Remove { id }).await?;
        Ok(Response::new(MemberRemoveResponse {
            header: self.header(),
            members: self.members(),
        }))
    }

    async fn member_update(
        &self,
        request: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        // Membership changes need root (etcd's checkMembershipOperationPermission).
        self.ctx.require_admin(&request).await?;
        let req = request.into_inner();
        check_peer_urls(&req.peer_ur_ls)?;
        let member = Member {
            peer_urls: req.peer_ur_ls,
            ..Member::default()
        };
        self.change(MembershipChange::Update { id: req.id, member }).await?;
        Ok(Response::new(MemberUpdateResponse {
            header: self.header(),
            members: self.members(),
        }))
    }

    async fn member_list(&self, request: Request<MemberListRequest>) -> Result<Response<MemberListResponse>, Status> {
        if request.into_inner().linearizable {
            self.ctx.raft.read_index().await.map_err(|e| propose_status(&e))?;
        }
        Ok(Response::new(MemberListResponse {
            header: self.header(),
            members: self.members(),
        }))
    }

    async fn member_promote(
        &self,
        request: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        // Membership changes need root (etcd's checkMembershipOperationPermission).
        self.ctx.require_admin(&request).await?;
        let id = request.into_inner().id;
        self.change(MembershipChange::Promote { id }).await?;
        Ok(Response::new(MemberPromoteResponse {
            header: self.header(),
            members: self.members(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_urls_are_checked_like_etcd() {
        assert!(check_peer_urls(&["http://127.0.0.1:2380".into()]).is_ok());
        assert!(check_peer_urls(&["https://10.0.0.1:2380".into(), "http://a:1".into()]).is_ok());
        for bad in ["127.0.0.1:2380", "http://127.0.0.1", "ftp://a:1", "http://a:1/path", ""] {
            let s = check_peer_urls(&[bad.to_string()]).unwrap_err();
            assert_eq!(s.code(), tonic::Code::InvalidArgument, "{bad}");
            assert_eq!(s.message(), "etcdserver: given member URLs are invalid");
        }
        assert!(check_peer_urls(&[]).is_err());
    }
}
