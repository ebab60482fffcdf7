//! The auth store as it is kept: users, roles, the enabled flag and the
//! auth revision in the state machine's meta column family
//! ([`meta::AUTH_USER`], [`meta::AUTH_ROLE`], [`meta::AUTH_ENABLED`],
//! [`meta::AUTH_REVISION`]), so it travels in snapshots. Users and roles
//! are etcd's `authpb.User` and `authpb.Role`, protobuf encoded, keyed by
//! name (etcd's `authUsers` and `authRoles` buckets).
//!
//! Reads take a view; writes go into the caller's batch (the raft entry's),
//! so what a request reads is the store as of the previous entry.

use prost::Message;
use timon_proto::authpb::{Role, User};

use super::AuthError;
use crate::storage::keys::{meta, prefix_end};
use crate::storage::{Cf, KvRead, Scan, WriteBatch};

fn storage(e: crate::storage::StorageError) -> AuthError {
    AuthError::Internal(e.to_string())
}

fn key(prefix: &[u8], name: &[u8]) -> Vec<u8> {
    [prefix, name].concat()
}

pub fn enabled(view: &dyn KvRead) -> Result<bool, AuthError> {
    Ok(view.get(Cf::Meta, meta::AUTH_ENABLED).map_err(storage)?.as_deref() == Some(&[1u8][..]))
}

pub fn set_enabled(batch: &mut WriteBatch, on: bool) {
    batch.put(Cf::Meta, meta::AUTH_ENABLED.to_vec(), vec![u8::from(on)]);
}

/// The auth revision. etcd's store starts at 1 (`NewAuthStore` commits
/// revision 1 into an empty backend), so a user's token never carries the
/// 0 that means "no user".
pub fn revision(view: &dyn KvRead) -> Result<u64, AuthError> {
    Ok(view
        .get(Cf::Meta, meta::AUTH_REVISION)
        .map_err(storage)?
        .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
        .map_or(1, u64::from_be_bytes))
}

/// Raises the auth revision by one (etcd's `commitRevision`).
pub fn bump_revision(view: &dyn KvRead, batch: &mut WriteBatch) -> Result<(), AuthError> {
    let next = revision(view)? + 1;
    batch.put(Cf::Meta, meta::AUTH_REVISION.to_vec(), next.to_be_bytes().to_vec());
    Ok(())
}

pub fn user(view: &dyn KvRead, name: &str) -> Result<Option<User>, AuthError> {
    match view
        .get(Cf::Meta, &key(meta::AUTH_USER, name.as_bytes()))
        .map_err(storage)?
    {
        None => Ok(None),
        Some(v) => User::decode(v.as_slice())
            .map(Some)
            .map_err(|e| AuthError::Internal(format!("user {name}: {e}"))),
    }
}

pub fn put_user(batch: &mut WriteBatch, user: &User) {
    batch.put(Cf::Meta, key(meta::AUTH_USER, &user.name), user.encode_to_vec());
}

pub fn delete_user(batch: &mut WriteBatch, name: &str) {
    batch.delete(Cf::Meta, key(meta::AUTH_USER, name.as_bytes()));
}

pub fn role(view: &dyn KvRead, name: &str) -> Result<Option<Role>, AuthError> {
    match view
        .get(Cf::Meta, &key(meta::AUTH_ROLE, name.as_bytes()))
        .map_err(storage)?
    {
        None => Ok(None),
        Some(v) => Role::decode(v.as_slice())
            .map(Some)
            .map_err(|e| AuthError::Internal(format!("role {name}: {e}"))),
    }
}

pub fn put_role(batch: &mut WriteBatch, role: &Role) {
    batch.put(Cf::Meta, key(meta::AUTH_ROLE, &role.name), role.encode_to_vec());
}

pub fn delete_role(batch: &mut WriteBatch, name: &str) {
    batch.delete(Cf::Meta, key(meta::AUTH_ROLE, name.as_bytes()));
}

fn scan<T: Message + Default>(view: &dyn KvRead, prefix: &[u8]) -> Result<Vec<T>, AuthError> {
    let mut out = Vec::new();
    let mut bad = None;
    view.scan(
        Cf::Meta,
        prefix,
        Some(&prefix_end(prefix)),
        &mut |k, v| match T::decode(v) {
            Ok(t) => {
                out.push(t);
                Scan::Continue
            }
            Err(e) => {
                bad = Some(format!("{}: {e}", String::from_utf8_lossy(k)));
                Scan::Stop
            }
        },
    )
    .map_err(storage)?;
    match bad {
        Some(e) => Err(AuthError::Internal(e)),
        None => Ok(out),
    }
}

/// Every user, by name in byte order (as etcd's bucket iterates).
pub fn users(view: &dyn KvRead) -> Result<Vec<User>, AuthError> {
    scan(view, meta::AUTH_USER)
}

/// Every role, by name in byte order.
pub fn roles(view: &dyn KvRead) -> Result<Vec<Role>, AuthError> {
    scan(view, meta::AUTH_ROLE)
}
