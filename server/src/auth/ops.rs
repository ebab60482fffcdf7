//! The auth requests as apply runs them (etcd's `authStore` methods, with
//! etcd 3.4's rules): each reads the store as of the previous entry,
//! stages its writes in the entry's batch and raises the auth revision
//! when it changed something. A request that fails writes nothing.
//!
//! Deterministic: passwords arrive hashed (the rpc layer hashes before
//! proposing), nothing here reads a clock or draws a random number.
//! Who may run them (root, or a user asking about itself) is decided by
//! the caller, `apply::auth`.

use timon_proto::authpb::{Permission, Role, User, UserAddOptions};
use timon_proto::etcdserverpb::{
    AuthRoleGrantPermissionRequest, AuthRoleRevokePermissionRequest, AuthUserAddRequest, AuthUserChangePasswordRequest,
    AuthUserGrantRoleRequest, AuthUserRevokeRoleRequest,
};

use super::perms::has_root_role;
use super::{state, AuthError, ROOT};
use crate::storage::{KvRead, WriteBatch};

/// etcd's `AuthEnable`: needs a root user with the root role; enabling an
/// enabled store changes nothing. Like etcd 3.4, the revision stays.
pub fn enable(view: &dyn KvRead, batch: &mut WriteBatch) -> Result<(), AuthError> {
    if state::enabled(view)? {
        return Ok(());
    }
    let root = state::user(view, ROOT)?.ok_or(AuthError::RootUserNotExist)?;
    if !has_root_role(&root) {
        return Err(AuthError::RootRoleNotExist);
    }
    state::set_enabled(batch, true);
    Ok(())
}

/// etcd's `AuthDisable`; disabling a disabled store changes nothing.
pub fn disable(view: &dyn KvRead, batch: &mut WriteBatch) -> Result<(), AuthError> {
    if !state::enabled(view)? {
        return Ok(());
    }
    state::set_enabled(batch, false);
    state::bump_revision(view, batch)
}

/// etcd's `Authenticate` at apply (the password was checked before
/// proposing): the user must still exist and have a password.
pub fn authenticate(view: &dyn KvRead, name: &str) -> Result<(), AuthError> {
    if !state::enabled(view)? {
        return Err(AuthError::AuthNotEnabled);
    }
    let user = state::user(view, name)?.ok_or(AuthError::AuthFailed)?;
    if user.options.as_ref().is_some_and(|o| o.no_password) {
        return Err(AuthError::AuthFailed);
    }
    Ok(())
}

pub fn user_add(view: &dyn KvRead, batch: &mut WriteBatch, r: &AuthUserAddRequest) -> Result<(), AuthError> {
    if r.name.is_empty() {
        return Err(AuthError::UserEmpty);
    }
    if state::user(view, &r.name)?.is_some() {
        return Err(AuthError::UserAlreadyExist);
    }
    let options = r.options.clone().unwrap_or(UserAddOptions { no_password: false });
    let password = if options.no_password {
        Vec::new()
    } else {
        r.hashed_password.as_bytes().to_vec()
    };
    state::put_user(
        batch,
        &User {
            name: r.name.as_bytes().to_vec(),
            password,
            roles: Vec::new(),
            options: Some(options),
        },
    );
    state::bump_revision(view, batch)
}

/// etcd refuses to delete root while auth is enabled.
pub fn user_delete(view: &dyn KvRead, batch: &mut WriteBatch, name: &str) -> Result<(), AuthError> {
    if name == ROOT && state::enabled(view)? {
        return Err(AuthError::InvalidAuthMgmt);
    }
    if state::user(view, name)?.is_none() {
        return Err(AuthError::UserNotFound);
    }
    state::delete_user(batch, name);
    state::bump_revision(view, batch)
}

pub fn user_change_password(
    view: &dyn KvRead,
    batch: &mut WriteBatch,
    r: &AuthUserChangePasswordRequest,
) -> Result<(), AuthError> {
    let mut user = state::user(view, &r.name)?.ok_or(AuthError::UserNotFound)?;
    user.password = r.hashed_password.as_bytes().to_vec();
    state::put_user(batch, &user);
    state::bump_revision(view, batch)
}

/// Granting a role twice changes nothing; the root role need not exist as
/// a role to be granted (etcd's rule).
pub fn user_grant_role(
    view: &dyn KvRead,
    batch: &mut WriteBatch,
    r: &AuthUserGrantRoleRequest,
) -> Result<(), AuthError> {
    let mut user = state::user(view, &r.user)?.ok_or(AuthError::UserNotFound)?;
    if r.role != ROOT && state::role(view, &r.role)?.is_none() {
        return Err(AuthError::RoleNotFound);
    }
    match user.roles.binary_search(&r.role) {
        Ok(_) => Ok(()),
        Err(at) => {
            user.roles.insert(at, r.role.clone());
            state::put_user(batch, &user);
            state::bump_revision(view, batch)
        }
    }
}

pub fn user_get(view: &dyn KvRead, name: &str) -> Result<Vec<String>, AuthError> {
    Ok(state::user(view, name)?.ok_or(AuthError::UserNotFound)?.roles)
}

pub fn user_list(view: &dyn KvRead) -> Result<Vec<String>, AuthError> {
    Ok(state::users(view)?
        .into_iter()
        .map(|u| String::from_utf8_lossy(&u.name).into_owned())
        .collect())
}

/// etcd refuses to take the root role from root while auth is enabled.
pub fn user_revoke_role(
    view: &dyn KvRead,
    batch: &mut WriteBatch,
    r: &AuthUserRevokeRoleRequest,
) -> Result<(), AuthError> {
    if r.name == ROOT && r.role == ROOT && state::enabled(view)? {
        return Err(AuthError::InvalidAuthMgmt);
    }
    let mut user = state::user(view, &r.name)?.ok_or(AuthError::UserNotFound)?;
    let before = user.roles.len();
    user.roles.retain(|role| *role != r.role);
    if user.roles.len() == before {
        return Err(AuthError::RoleNotGranted);
    }
    state::put_user(batch, &user);
    state::bump_revision(view, batch)
}

pub fn role_add(view: &dyn KvRead, batch: &mut WriteBatch, name: &str) -> Result<(), AuthError> {
    if name.is_empty() {
        return Err(AuthError::RoleEmpty);
    }
    if state::role(view, name)?.is_some() {
        return Err(AuthError::RoleAlreadyExist);
    }
    state::put_role(
        batch,
        &Role {
            name: name.as_bytes().to_vec(),
            key_permission: Vec::new(),
        },
    );
    state::bump_revision(view, batch)
}

pub fn role_get(view: &dyn KvRead, name: &str) -> Result<Vec<Permission>, AuthError> {
    Ok(state::role(view, name)?.ok_or(AuthError::RoleNotFound)?.key_permission)
}

pub fn role_list(view: &dyn KvRead) -> Result<Vec<String>, AuthError> {
    Ok(state::roles(view)?
        .into_iter()
        .map(|r| String::from_utf8_lossy(&r.name).into_owned())
        .collect())
}

/// etcd refuses to delete the root role while auth is enabled; a deleted
/// role is taken from every user that had it.
pub fn role_delete(view: &dyn KvRead, batch: &mut WriteBatch, name: &str) -> Result<(), AuthError> {
    if name == ROOT && state::enabled(view)? {
        return Err(AuthError::InvalidAuthMgmt);
    }
    if state::role(view, name)?.is_none() {
        return Err(AuthError::RoleNotFound);
    }
    state::delete_role(batch, name);
    for mut user in state::users(view)? {
        let before = user.roles.len();
        user.roles.retain(|r| r != name);
        if user.roles.len() != before {
            state::put_user(batch, &user);
        }
    }
    state::bump_revision(view, batch)
}

/// Adds a permission, or changes the type of the one with the same key
/// and range end; permissions stay sorted by key.
pub fn role_grant_permission(
    view: &dyn KvRead,
    batch: &mut WriteBatch,
    r: &AuthRoleGrantPermissionRequest,
) -> Result<(), AuthError> {
    let mut role = state::role(view, &r.name)?.ok_or(AuthError::RoleNotFound)?;
    let perm = r.perm.as_ref().ok_or(AuthError::PermissionNotGiven)?;
    let at = role.key_permission.partition_point(|p| p.key < perm.key);
    match role.key_permission.get_mut(at) {
        Some(p) if p.key == perm.key && p.range_end == perm.range_end => p.perm_type = perm.perm_type,
        _ => {
            role.key_permission.push(perm.clone());
            role.key_permission.sort_by(|a, b| a.key.cmp(&b.key));
        }
    }
    state::put_role(batch, &role);
    state::bump_revision(view, batch)
}

pub fn role_revoke_permission(
    view: &dyn KvRead,
    batch: &mut WriteBatch,
    r: &AuthRoleRevokePermissionRequest,
) -> Result<(), AuthError> {
    let mut role = state::role(view, &r.role)?.ok_or(AuthError::RoleNotFound)?;
    let before = role.key_permission.len();
    role.key_permission
        .retain(|p| p.key != r.key || p.range_end != r.range_end);
    if role.key_permission.len() == before {
        return Err(AuthError::PermissionNotGranted);
    }
    state::put_role(batch, &role);
    state::bump_revision(view, batch)
}
