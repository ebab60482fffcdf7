//! etcd's auth from the client side: the Auth API (users, roles, enable /
//! disable, authenticate) and the token. A client connected with a user
//! ([`ConnectOptions::with_user`](crate::ConnectOptions::with_user))
//! authenticates on connect (a server without auth enabled answers that it
//! is not enabled, and the client then sends no token, as clientv3 does),
//! sends the token in the `token` metadata of every request, and when a
//! request is refused for its token (expired, or unknown to a restarted
//! member) authenticates again once and re-sends it.

use std::future::Future;

use timon_proto::authpb::{Permission, UserAddOptions};
use timon_proto::etcdserverpb::auth_client::AuthClient;
use timon_proto::etcdserverpb::*;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::retry::{self, Kind};

/// etcd's metadata key for the token.
const TOKEN: &str = "token";

tokio::task_local! {
    /// The token of the request being built (set by `Client::call` around
    /// each attempt, read by `retry::request`).
    static CURRENT_TOKEN: Option<String>;
}

/// Runs `make` (which builds the attempt's request) and the attempt itself
/// with `token` as the one `retry::request` attaches.
pub(crate) fn with_token<F, Fut>(token: Option<String>, make: F) -> impl Future<Output = Fut::Output>
where
    F: FnOnce() -> Fut,
    Fut: Future,
{
    let fut = CURRENT_TOKEN.sync_scope(token.clone(), make);
    CURRENT_TOKEN.scope(token, fut)
}

/// Adds the current attempt's token to `request`.
pub(crate) fn attach_token<T>(request: &mut tonic::Request<T>) {
    let token = CURRENT_TOKEN.try_with(|t| t.clone()).ok().flatten();
    if let Some(value) = token.and_then(|t| t.parse().ok()) {
        request.metadata_mut().insert(TOKEN, value);
    }
}

/// Whether `error` says the token itself is no good (clientv3's
/// `shouldRefreshToken`).
pub(crate) fn is_stale_token(error: &Error) -> bool {
    matches!(
        error.message(),
        Some("etcdserver: invalid auth token" | "etcdserver: revision of auth store is old")
    )
}

impl Client {
    pub(crate) fn token(&self) -> Option<String> {
        self.inner_token().lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Authenticates with the connect options' user, if any, and keeps the
    /// token; with auth disabled on the server, keeps none.
    pub(crate) async fn refresh_token(&self) -> Result<()> {
        let Some((name, password)) = self.options().user.clone() else {
            return Ok(());
        };
        let channel = self.active().channel;
        let request = AuthenticateRequest { name, password };
        let token = match AuthClient::new(channel).authenticate(request).await {
            Ok(r) => Some(r.into_inner().token),
            Err(s) if s.message() == "etcdserver: authentication is not enabled" => None,
            Err(s) => return Err(Error::from(s)),
        };
        *self.inner_token().lock().unwrap_or_else(|p| p.into_inner()) = token;
        Ok(())
    }

    async fn auth_call<Req, Resp, F, Fut>(&self, kind: Kind, req: Req, f: F) -> Result<Resp>
    where
        Req: Clone + Send + 'static,
        F: Fn(AuthClient<tonic::transport::Channel>, tonic::Request<Req>) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<Resp>, tonic::Status>>,
    {
        self.call(kind, |channel| {
            f(AuthClient::new(channel), retry::request(req.clone(), true))
        })
        .await
    }

    pub async fn auth_enable(&self) -> Result<AuthEnableResponse> {
        self.auth_call(Kind::Write, AuthEnableRequest {}, |mut c, r| async move {
            c.auth_enable(r).await
        })
        .await
    }

    pub async fn auth_disable(&self) -> Result<AuthDisableResponse> {
        self.auth_call(Kind::Write, AuthDisableRequest {}, |mut c, r| async move {
            c.auth_disable(r).await
        })
        .await
    }

    pub async fn auth_status(&self) -> Result<AuthStatusResponse> {
        self.auth_call(Kind::Read, AuthStatusRequest {}, |mut c, r| async move {
            c.auth_status(r).await
        })
        .await
    }

    /// A token for `name` (without keeping it).
    pub async fn authenticate(&self, name: &str, password: &str) -> Result<AuthenticateResponse> {
        let req = AuthenticateRequest {
            name: name.into(),
            password: password.into(),
        };
        self.auth_call(Kind::Write, req, |mut c, r| async move { c.authenticate(r).await })
            .await
    }

    /// Adds user `name`; `no_password` for a user that only logs in by
    /// client certificate.
    pub async fn user_add(&self, name: &str, password: &str, no_password: bool) -> Result<AuthUserAddResponse> {
        let req = AuthUserAddRequest {
            name: name.into(),
            password: password.into(),
            options: Some(UserAddOptions { no_password }),
            hashed_password: String::new(),
        };
        self.auth_call(Kind::Write, req, |mut c, r| async move { c.user_add(r).await })
            .await
    }

    pub async fn user_get(&self, name: &str) -> Result<AuthUserGetResponse> {
        let req = AuthUserGetRequest { name: name.into() };
        self.auth_call(Kind::Read, req, |mut c, r| async move { c.user_get(r).await })
            .await
    }

    pub async fn user_list(&self) -> Result<AuthUserListResponse> {
        self.auth_call(Kind::Read, AuthUserListRequest {}, |mut c, r| async move {
            c.user_list(r).await
        })
        .await
    }

    pub async fn user_delete(&self, name: &str) -> Result<AuthUserDeleteResponse> {
        let req = AuthUserDeleteRequest { name: name.into() };
        self.auth_call(Kind::Write, req, |mut c, r| async move { c.user_delete(r).await })
            .await
    }

    pub async fn user_change_password(&self, name: &str, password: &str) -> Result<AuthUserChangePasswordResponse> {
        let req = AuthUserChangePasswordRequest {
            name: name.into(),
            password: password.into(),
            hashed_password: String::new(),
        };
        self.auth_call(
            Kind::Write,
            req,
            |mut c, r| async move { c.user_change_password(r).await },
        )
        .await
    }

    pub async fn user_grant_role(&self, user: &str, role: &str) -> Result<AuthUserGrantRoleResponse> {
        let req = AuthUserGrantRoleRequest {
            user: user.into(),
            role: role.into(),
        };
        self.auth_call(Kind::Write, req, |mut c, r| async move { c.user_grant_role(r).await })
            .await
    }

    pub async fn user_revoke_role(&self, name: &str, role: &str) -> Result<AuthUserRevokeRoleResponse> {
        let req = AuthUserRevokeRoleRequest {
            name: name.into(),
            role: role.into(),
        };
        self.auth_call(Kind::Write, req, |mut c, r| async move { c.user_revoke_role(r).await })
            .await
    }

    pub async fn role_add(&self, name: &str) -> Result<AuthRoleAddResponse> {
        let req = AuthRoleAddRequest { name: name.into() };
        self.auth_call(Kind::Write, req, |mut c, r| async move { c.role_add(r).await })
            .await
    }

    pub async fn role_get(&self, role: &str) -> Result<AuthRoleGetResponse> {
        let req = AuthRoleGetRequest { role: role.into() };
        self.auth_call(Kind::Read, req, |mut c, r| async move { c.role_get(r).await })
            .await
    }

    pub async fn role_list(&self) -> Result<AuthRoleListResponse> {
        self.auth_call(Kind::Read, AuthRoleListRequest {}, |mut c, r| async move {
            c.role_list(r).await
        })
        .await
    }

    pub async fn role_delete(&self, role: &str) -> Result<AuthRoleDeleteResponse> {
        let req = AuthRoleDeleteRequest { role: role.into() };
        self.auth_call(Kind::Write, req, |mut c, r| async move { c.role_delete(r).await })
            .await
    }

    /// Grants `perm` (key, range end, read / write / readwrite) to `role`.
    pub async fn role_grant_permission(&self, role: &str, perm: Permission) -> Result<AuthRoleGrantPermissionResponse> {
        let req = AuthRoleGrantPermissionRequest {
            name: role.into(),
            perm: Some(perm),
        };
        self.auth_call(
            Kind::Write,
            req,
            |mut c, r| async move { c.role_grant_permission(r).await },
        )
        .await
    }

    pub async fn role_revoke_permission(
        &self,
        role: &str,
        key: &[u8],
        range_end: &[u8],
    ) -> Result<AuthRoleRevokePermissionResponse> {
        let req = AuthRoleRevokePermissionRequest {
            role: role.into(),
            key: key.to_vec(),
            range_end: range_end.to_vec(),
        };
        self.auth_call(
            Kind::Write,
            req,
            |mut c, r| async move { c.role_revoke_permission(r).await },
        )
        .await
    }
}
