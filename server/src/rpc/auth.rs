//! The Auth service (etcd's `v3rpc/auth.go` over `v3_server.go`): every
//! request goes through raft as its caller, so apply decides who may make
//! it and answers from the replicated auth store. Passwords are hashed
//! here before proposing; Authenticate checks the password here, then
//! proposes the token (etcd's `InternalAuthenticateRequest`).

use std::sync::Arc;

use timon_proto::etcdserverpb::auth_server::Auth;
use timon_proto::etcdserverpb::*;
use timon_proto::timonpb::internal_raft_request::Request as RaftRequest;
use timon_proto::timonpb::InternalAuthenticateRequest;
use tonic::{Request, Response, Status};

use super::error::{etcd_status, internal, propose_status};
use super::Ctx;
use crate::apply::auth::AuthResponse;
use crate::apply::{self, EtcdError};
use crate::auth::{password, state, AuthError};

pub struct AuthService {
    ctx: Arc<Ctx>,
}

impl AuthService {
    pub fn new(ctx: Arc<Ctx>) -> Self {
        Self { ctx }
    }

    /// Proposes `req` as the caller of `request` and answers apply's auth
    /// response.
    async fn run<T>(&self, request: &Request<T>, req: RaftRequest) -> Result<AuthResponse, Status> {
        let who = self.ctx.caller(request).await?;
        match self.ctx.propose_as(who.as_ref(), req).await? {
            apply::Response::Auth(a) => Ok(a),
            other => Err(internal(format!("apply answered {other:?} to an auth request"))),
        }
    }

    /// bcrypt at --bcrypt-cost, off the async threads (tens of ms).
    async fn hash(&self, pw: String) -> Result<String, Status> {
        let cost = self.ctx.bcrypt_cost;
        tokio::task::spawn_blocking(move || password::hash(&pw, cost))
            .await
            .map_err(internal)?
            .map_err(|e| etcd_status(&e.into()))
    }

    /// etcd's `CheckPassword`: the auth revision the password was checked at.
    async fn check_password(&self, name: &str, pw: &str) -> Result<u64, Status> {
        let view = self.ctx.engine.as_ref();
        let fail = |e: AuthError| etcd_status(&EtcdError::Auth(e));
        if !state::enabled(view).map_err(fail)? {
            return Err(fail(AuthError::AuthNotEnabled));
        }
        let user = state::user(view, name)
            .map_err(fail)?
            .ok_or_else(|| fail(AuthError::AuthFailed))?;
        if user.options.as_ref().is_some_and(|o| o.no_password) {
            return Err(fail(AuthError::NoPasswordUser));
        }
        let revision = state::revision(view).map_err(fail)?;
        let (pw, hash) = (pw.to_string(), user.password);
        let ok = tokio::task::spawn_blocking(move || password::verify(&pw, &hash))
            .await
            .map_err(internal)?;
        if !ok {
            tracing::info!("invalid password for user {name}");
            return Err(fail(AuthError::AuthFailed));
        }
        Ok(revision)
    }
}

fn unexpected(got: AuthResponse) -> Status {
    internal(format!("apply answered {got:?}"))
}

/// Fills the header of `resp` and wraps it.
macro_rules! answer {
    ($self:ident, $resp:expr) => {{
        let mut resp = $resp;
        $self.ctx.fill_header(&mut resp.header);
        Ok(Response::new(resp))
    }};
}

#[tonic::async_trait]
impl Auth for AuthService {
    async fn auth_enable(&self, request: Request<AuthEnableRequest>) -> Result<Response<AuthEnableResponse>, Status> {
        match self
            .run(&request, RaftRequest::AuthEnable(request.get_ref().clone()))
            .await?
        {
            AuthResponse::Enable(r) => answer!(self, r),
            other => Err(unexpected(other)),
        }
    }

    async fn auth_disable(
        &self,
        request: Request<AuthDisableRequest>,
    ) -> Result<Response<AuthDisableResponse>, Status> {
        match self
            .run(&request, RaftRequest::AuthDisable(request.get_ref().clone()))
            .await?
        {
            AuthResponse::Disable(r) => answer!(self, r),
            other => Err(unexpected(other)),
        }
    }

    async fn auth_status(&self, request: Request<AuthStatusRequest>) -> Result<Response<AuthStatusResponse>, Status> {
        match self
            .run(&request, RaftRequest::AuthStatus(request.get_ref().clone()))
            .await?
        {
            AuthResponse::Status(r) => answer!(self, r),
            other => Err(unexpected(other)),
        }
    }

    async fn authenticate(
        &self,
        request: Request<AuthenticateRequest>,
    ) -> Result<Response<AuthenticateResponse>, Status> {
        self.ctx.raft.read_index().await.map_err(|e| propose_status(&e))?;
        let r = request.get_ref();
        loop {
            let checked = self.check_password(&r.name, &r.password).await?;
            // The password never enters the log.
            let req = RaftRequest::Authenticate(InternalAuthenticateRequest {
                name: r.name.clone(),
                simple_token: self.ctx.tokens.new_prefix(),
            });
            let (mut resp, revision) = match self.run(&request, req).await? {
                AuthResponse::Authenticate { resp, revision, .. } => (resp, revision),
                other => return Err(unexpected(other)),
            };
            // The password was checked against the store as of `checked`;
            // if it changed meanwhile, check again (etcd does the same).
            if checked != revision {
                tracing::info!("revision when password checked became stale; retrying");
                continue;
            }
            if let Some(signed) = self.ctx.tokens.sign(&r.name, revision) {
                resp.token = signed.map_err(|e| etcd_status(&e.into()))?;
            }
            return answer!(self, resp);
        }
    }

    async fn user_add(&self, request: Request<AuthUserAddRequest>) -> Result<Response<AuthUserAddResponse>, Status> {
        let mut r = request.get_ref().clone();
        if !r.options.as_ref().is_some_and(|o| o.no_password) && r.hashed_password.is_empty() {
            r.hashed_password = self.hash(std::mem::take(&mut r.password)).await?;
        }
        r.password.clear();
        match self.run(&request, RaftRequest::AuthUserAdd(r)).await? {
            AuthResponse::UserAdd(r) => answer!(self, r),
            other => Err(unexpected(other)),
        }
    }

    async fn user_get(&self, request: Request<AuthUserGetRequest>) -> Result<Response<AuthUserGetResponse>, Status> {
        match self
            .run(&request, RaftRequest::AuthUserGet(request.get_ref().clone()))
            .await?
        {
            AuthResponse::UserGet(r) => answer!(self, r),
            other => Err(unexpected(other)),
        }
    }

    async fn user_list(&self, request: Request<AuthUserListRequest>) -> Result<Response<AuthUserListResponse>, Status> {
        match self
            .run(&request, RaftRequest::AuthUserList(request.get_ref().clone()))
            .await?
        {
            AuthResponse::UserList(r) => answer!(self, r),
            other => Err(unexpected(other)),
        }
    }

    async fn user_delete(
        &self,
        request: Request<AuthUserDeleteRequest>,
    ) -> Result<Response<AuthUserDeleteResponse>, Status> {
        match self
            .run(&request, RaftRequest::AuthUserDelete(request.get_ref().clone()))
            .await?
        {
            AuthResponse::UserDelete(r, _) => answer!(self, r),
            other => Err(unexpected(other)),
        }
    }

    async fn user_change_password(
        &self,
        request: Request<AuthUserChangePasswordRequest>,
    ) -> Result<Response<AuthUserChangePasswordResponse>, Status> {
        let mut r = request.get_ref().clone();
        if r.hashed_password.is_empty() {
            r.hashed_password = self.hash(std::mem::take(&mut r.password)).await?;
        }
        r.password.clear();
        match self.run(&request, RaftRequest::AuthUserChangePassword(r)).await? {
            AuthResponse::UserChangePassword(r, _) => answer!(self, r),
            other => Err(unexpected(other)),
        }
    }

    async fn user_grant_role(
        &self,
        request: Request<AuthUserGrantRoleRequest>,
    ) -> Result<Response<AuthUserGrantRoleResponse>, Status> {
        match self
            .run(&request, RaftRequest::AuthUserGrantRole(request.get_ref().clone()))
            .await?
        {
            AuthResponse::UserGrantRole(r) => answer!(self, r),
            other => Err(unexpected(other)),
        }
    }

    async fn user_revoke_role(
        &self,
        request: Request<AuthUserRevokeRoleRequest>,
    ) -> Result<Response<AuthUserRevokeRoleResponse>, Status> {
        match self
            .run(&request, RaftRequest::AuthUserRevokeRole(request.get_ref().clone()))
            .await?
        {
            AuthResponse::UserRevokeRole(r) => answer!(self, r),
            other => Err(unexpected(other)),
        }
    }

    async fn role_add(&self, request: Request<AuthRoleAddRequest>) -> Result<Response<AuthRoleAddResponse>, Status> {
        match self
            .run(&request, RaftRequest::AuthRoleAdd(request.get_ref().clone()))
            .await?
        {
            AuthResponse::RoleAdd(r) => answer!(self, r),
            other => Err(unexpected(other)),
        }
    }

    async fn role_get(&self, request: Request<AuthRoleGetRequest>) -> Result<Response<AuthRoleGetResponse>, Status> {
        match self
            .run(&request, RaftRequest::AuthRoleGet(request.get_ref().clone()))
            .await?
        {
            AuthResponse::RoleGet(r) => answer!(self, r),
            other => Err(unexpected(other)),
        }
    }

    async fn role_list(&self, request: Request<AuthRoleListRequest>) -> Result<Response<AuthRoleListResponse>, Status> {
        match self
            .run(&request, RaftRequest::AuthRoleList(request.get_ref().clone()))
            .await?
        {
            AuthResponse::RoleList(r) => answer!(self, r),
            other => Err(unexpected(other)),
        }
    }

    async fn role_delete(
        &self,
        request: Request<AuthRoleDeleteRequest>,
    ) -> Result<Response<AuthRoleDeleteResponse>, Status> {
        match self
            .run(&request, RaftRequest::AuthRoleDelete(request.get_ref().clone()))
            .await?
        {
            AuthResponse::RoleDelete(r) => answer!(self, r),
            other => Err(unexpected(other)),
        }
    }

    async fn role_grant_permission(
        &self,
        request: Request<AuthRoleGrantPermissionRequest>,
    ) -> Result<Response<AuthRoleGrantPermissionResponse>, Status> {
        match self
            .run(
                &request,
                RaftRequest::AuthRoleGrantPermission(request.get_ref().clone()),
            )
            .await?
        {
            AuthResponse::RoleGrantPermission(r) => answer!(self, r),
            other => Err(unexpected(other)),
        }
    }

    async fn role_revoke_permission(
        &self,
        request: Request<AuthRoleRevokePermissionRequest>,
    ) -> Result<Response<AuthRoleRevokePermissionResponse>, Status> {
        match self
            .run(
                &request,
                RaftRequest::AuthRoleRevokePermission(request.get_ref().clone()),
            )
            .await?
        {
            AuthResponse::RoleRevokePermission(r) => answer!(self, r),
            other => Err(unexpected(other)),
        }
    }
}
