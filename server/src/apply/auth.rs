//! etcd's `authApplierV3`: every request is applied as its author (the
//! user of an `AsUser` wrapper; a request without one has no user) and
//! refused when that user may not make it: KV writes need write permission
//! on their keys, prev_kv needs read, a txn needs read on its compares and
//! the permission of every op (nested txns too), a lease revoke (and a put
//! attaching a lease) needs write on every key of the lease, and auth
//! administration needs the root role (but a user may get itself, and the
//! roles it has). The auth requests themselves run in `auth::ops`.
//!
//! Checks read the auth store as of the previous entry, so every member
//! decides alike; a refused request changes nothing.

use timon_proto::etcdserverpb::request_op::Request as Op;
use timon_proto::etcdserverpb::{
    AuthDisableResponse, AuthEnableResponse, AuthRoleAddResponse, AuthRoleDeleteResponse, AuthRoleGetResponse,
    AuthRoleGrantPermissionResponse, AuthRoleListResponse, AuthRoleRevokePermissionResponse, AuthStatusResponse,
    AuthUserAddResponse, AuthUserChangePasswordResponse, AuthUserDeleteResponse, AuthUserGetResponse,
    AuthUserGrantRoleResponse, AuthUserListResponse, AuthUserRevokeRoleResponse, AuthenticateResponse,
    DeleteRangeRequest, PutRequest, RequestOp, TxnRequest,
};
use timon_proto::timonpb::internal_raft_request::Request;

use super::{header, lease, EtcdError, Response};
use crate::auth::perms::{self, Access, Checker};
use crate::auth::{ops, state, AuthInfo, Tokens};
use crate::mvcc::{ReadView, WriteTxn};
use crate::storage::KvRead;

/// What an auth request answered. Some carry what the member's token
/// provider must learn once the entry is applied ([`effects`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum AuthResponse {
    Enable(AuthEnableResponse),
    Disable(AuthDisableResponse),
    Status(AuthStatusResponse),
    /// The token is filled in by [`effects`] (simple tokens) or by the rpc
    /// layer (JWT); `name` and `simple_token` are the request's.
    Authenticate {
        resp: AuthenticateResponse,
        name: String,
        simple_token: String,
        revision: u64,
    },
    UserAdd(AuthUserAddResponse),
    /// `name`'s tokens are invalidated.
    UserDelete(AuthUserDeleteResponse, String),
    /// `name`'s tokens are invalidated.
    UserChangePassword(AuthUserChangePasswordResponse, String),
    UserGrantRole(AuthUserGrantRoleResponse),
    UserGet(AuthUserGetResponse),
    UserRevokeRole(AuthUserRevokeRoleResponse),
    UserList(AuthUserListResponse),
    RoleAdd(AuthRoleAddResponse),
    RoleGet(AuthRoleGetResponse),
    RoleList(AuthRoleListResponse),
    RoleDelete(AuthRoleDeleteResponse),
    RoleGrantPermission(AuthRoleGrantPermissionResponse),
    RoleRevokePermission(AuthRoleRevokePermissionResponse),
}

/// The checks etcd's auth applier makes before a KV or lease request.
pub fn check(view: &dyn KvRead, who: &AuthInfo, req: &Request) -> Result<(), EtcdError> {
    if !matches!(
        req,
        Request::Put(_) | Request::DeleteRange(_) | Request::Txn(_) | Request::LeaseRevoke(_)
    ) {
        return Ok(());
    }
    let c = Checker::new(view, who)?;
    if c.disabled() {
        return Ok(());
    }
    match req {
        Request::Put(p) => check_put(view, &c, p),
        Request::DeleteRange(d) => check_delete(&c, d),
        Request::Txn(t) => check_txn_with(&c, t),
        Request::LeaseRevoke(r) => check_lease_keys(view, &c, r.id),
        _ => Ok(()),
    }
}

fn check_put(view: &dyn KvRead, c: &Checker, p: &PutRequest) -> Result<(), EtcdError> {
    c.check(&p.key, &[], Access::Write)?;
    // A lease already attached to keys this user cannot write: the user
    // could not revoke it, so may not attach it either.
    check_lease_keys(view, c, p.lease)?;
    if p.prev_kv {
        c.check(&p.key, &[], Access::Read)?;
    }
    Ok(())
}

fn check_delete(c: &Checker, d: &DeleteRangeRequest) -> Result<(), EtcdError> {
    c.check(&d.key, &d.range_end, Access::Write)?;
    if d.prev_kv {
        c.check(&d.key, &d.range_end, Access::Read)?;
    }
    Ok(())
}

/// etcd's `checkTxnAuth` as `who` (for read-only txns at the edge).
pub fn check_txn(view: &dyn KvRead, who: &AuthInfo, t: &TxnRequest) -> Result<(), EtcdError> {
    check_txn_with(&Checker::new(view, who)?, t)
}

/// etcd's `checkTxnAuth`: read on every compare, then every op of both
/// branches; nested txns are checked the same way (etcd 3.5).
fn check_txn_with(c: &Checker, t: &TxnRequest) -> Result<(), EtcdError> {
    for cmp in &t.compare {
        c.check(&cmp.key, &cmp.range_end, Access::Read)?;
    }
    check_ops(c, &t.success)?;
    check_ops(c, &t.failure)
}

fn check_ops(c: &Checker, ops: &[RequestOp]) -> Result<(), EtcdError> {
    for op in ops {
        match &op.request {
            Some(Op::RequestRange(r)) => c.check(&r.key, &r.range_end, Access::Read)?,
            Some(Op::RequestPut(p)) => c.check(&p.key, &[], Access::Write)?,
            Some(Op::RequestDeleteRange(d)) => {
                if d.prev_kv {
                    c.check(&d.key, &d.range_end, Access::Read)?;
                }
                c.check(&d.key, &d.range_end, Access::Write)?;
            }
            Some(Op::RequestTxn(nested)) => check_txn_with(c, nested)?,
            None => {}
        }
    }
    Ok(())
}

/// etcd's `checkLeasePuts`: write permission on every key attached to the
/// lease (none for 0 or an unknown lease).
fn check_lease_keys(view: &dyn KvRead, c: &Checker, id: i64) -> Result<(), EtcdError> {
    if id == 0 || c.disabled() {
        return Ok(());
    }
    for key in lease::keys(view, id)? {
        c.check(&key, &[], Access::Write)?;
    }
    Ok(())
}

/// Whether `req` is an auth request (run by [`execute`]).
pub fn is_auth(req: &Request) -> bool {
    matches!(
        req,
        Request::AuthEnable(_)
            | Request::AuthDisable(_)
            | Request::AuthStatus(_)
            | Request::Authenticate(_)
            | Request::AuthUserAdd(_)
            | Request::AuthUserDelete(_)
            | Request::AuthUserChangePassword(_)
            | Request::AuthUserGrantRole(_)
            | Request::AuthUserGet(_)
            | Request::AuthUserRevokeRole(_)
            | Request::AuthUserList(_)
            | Request::AuthRoleAdd(_)
            | Request::AuthRoleGet(_)
            | Request::AuthRoleList(_)
            | Request::AuthRoleDelete(_)
            | Request::AuthRoleGrantPermission(_)
            | Request::AuthRoleRevokePermission(_)
    )
}

/// etcd's `needAdminPermission` (AuthStatus since etcd 3.5).
fn needs_admin(req: &Request) -> bool {
    is_auth(req)
        && !matches!(
            req,
            Request::Authenticate(_) | Request::AuthUserGet(_) | Request::AuthRoleGet(_)
        )
}

/// Runs auth request `req` as `who`.
pub fn execute(txn: &mut WriteTxn<'_>, who: &AuthInfo, req: Request) -> Result<Response, EtcdError> {
    let view = txn.engine();
    let admin = perms::check_admin(view, Some(who));
    if needs_admin(&req) {
        admin.clone()?;
    }
    let h = header(txn.rev());
    // The staged writes go to the entry's batch with the txn.
    let mut batch = crate::storage::WriteBatch::new();
    let resp = match req {
        Request::AuthEnable(_) => {
            ops::enable(view, &mut batch)?;
            AuthResponse::Enable(AuthEnableResponse { header: h })
        }
        Request::AuthDisable(_) => {
            ops::disable(view, &mut batch)?;
            AuthResponse::Disable(AuthDisableResponse { header: h })
        }
        Request::AuthStatus(_) => AuthResponse::Status(AuthStatusResponse {
            header: h,
            enabled: state::enabled(view)?,
            auth_revision: state::revision(view)?,
        }),
        Request::Authenticate(a) => {
            ops::authenticate(view, &a.name)?;
            AuthResponse::Authenticate {
                resp: AuthenticateResponse {
                    header: h,
                    token: String::new(),
                },
                name: a.name,
                simple_token: a.simple_token,
                revision: state::revision(view)?,
            }
        }
        Request::AuthUserAdd(r) => {
            ops::user_add(view, &mut batch, &r)?;
            AuthResponse::UserAdd(AuthUserAddResponse { header: h })
        }
        Request::AuthUserDelete(r) => {
            ops::user_delete(view, &mut batch, &r.name)?;
            AuthResponse::UserDelete(AuthUserDeleteResponse { header: h }, r.name)
        }
        Request::AuthUserChangePassword(r) => {
            ops::user_change_password(view, &mut batch, &r)?;
            AuthResponse::UserChangePassword(AuthUserChangePasswordResponse { header: h }, r.name)
        }
        Request::AuthUserGrantRole(r) => {
            ops::user_grant_role(view, &mut batch, &r)?;
            AuthResponse::UserGrantRole(AuthUserGrantRoleResponse { header: h })
        }
        Request::AuthUserGet(r) => {
            // A user may read itself.
            if r.name != who.username {
                admin?;
            }
            AuthResponse::UserGet(AuthUserGetResponse {
                header: h,
                roles: ops::user_get(view, &r.name)?,
            })
        }
        Request::AuthUserRevokeRole(r) => {
            ops::user_revoke_role(view, &mut batch, &r)?;
            AuthResponse::UserRevokeRole(AuthUserRevokeRoleResponse { header: h })
        }
        Request::AuthUserList(_) => AuthResponse::UserList(AuthUserListResponse {
            header: h,
            users: ops::user_list(view)?,
        }),
        Request::AuthRoleAdd(r) => {
            ops::role_add(view, &mut batch, &r.name)?;
            AuthResponse::RoleAdd(AuthRoleAddResponse { header: h })
        }
        Request::AuthRoleGet(r) => {
            // A user may read the roles it has.
            if admin.is_err() && !perms::has_role(view, &who.username, &r.role)? {
                admin?;
            }
            AuthResponse::RoleGet(AuthRoleGetResponse {
                header: h,
                perm: ops::role_get(view, &r.role)?,
            })
        }
        Request::AuthRoleList(_) => AuthResponse::RoleList(AuthRoleListResponse {
            header: h,
            roles: ops::role_list(view)?,
        }),
        Request::AuthRoleDelete(r) => {
            ops::role_delete(view, &mut batch, &r.role)?;
            AuthResponse::RoleDelete(AuthRoleDeleteResponse { header: h })
        }
        Request::AuthRoleGrantPermission(r) => {
            ops::role_grant_permission(view, &mut batch, &r)?;
            AuthResponse::RoleGrantPermission(AuthRoleGrantPermissionResponse { header: h })
        }
        Request::AuthRoleRevokePermission(r) => {
            ops::role_revoke_permission(view, &mut batch, &r)?;
            AuthResponse::RoleRevokePermission(AuthRoleRevokePermissionResponse { header: h })
        }
        other => return Err(EtcdError::Internal(format!("not an auth request: {other:?}"))),
    };
    txn.staged_mut().ops.extend(batch.ops);
    Ok(Response::Auth(resp))
}

/// What the member's token provider learns from an applied auth request,
/// on every member: the simple token of an Authenticate
/// (`<simple_token>.<index>`, `index` the entry's log index, as etcd
/// names it), the users whose tokens end, auth turned off. The token
/// provider is memory only: it is not part of the replicated state.
pub fn effects(resp: &mut AuthResponse, index: u64, tokens: &Tokens) {
    match resp {
        AuthResponse::Authenticate {
            resp,
            name,
            simple_token,
            ..
        } => {
            if let Some(token) = tokens.applied_authenticate(name, simple_token, index) {
                resp.token = token;
            }
        }
        AuthResponse::UserDelete(_, name) | AuthResponse::UserChangePassword(_, name) => tokens.invalidate_user(name),
        AuthResponse::Disable(_) => tokens.disabled(),
        _ => {}
    }
}
