//! etcd's authentication and authorization: users, roles, key-range
//! permissions, the auth revision, password hashes and tokens.
//!
//! The store (users, roles, enabled flag, revision) is replicated state:
//! `apply` changes it through [`ops`] in the raft entry's batch, and every
//! check reads it through [`perms`] from a view, so members decide alike.
//! Tokens are per member and in memory, as in etcd. This module reads and
//! writes storage only; it knows nothing of raft or gRPC.
//!
//! # Layout
//! - [`error`]: [`AuthError`], etcd's texts and codes.
//! - [`state`]: where users, roles, the flag and the revision are kept.
//! - [`ops`]: the auth requests as apply runs them (etcd 3.4's rules).
//! - [`perms`]: permission checks (merged role intervals, root, admin).
//! - [`password`]: bcrypt, outside apply.
//! - [`simple_token`], [`jwt`], [`tokens`]: the token providers.
//! - [`flags`]: `--auth-token`, `--auth-token-ttl`, `--bcrypt-cost`.

pub mod error;
pub mod flags;
pub mod jwt;
pub mod ops;
pub mod password;
pub mod perms;
pub mod simple_token;
pub mod state;
pub mod tokens;

pub use error::{AuthCode, AuthError};
pub use flags::AuthFlags;
pub use tokens::Tokens;

/// The user with every permission, and the role that gives them.
pub const ROOT: &str = "root";

/// Who makes a request (etcd's `AuthInfo`): a user and the auth revision
/// its token was checked at. The default (no user, revision 0) is a
/// request without credentials.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthInfo {
    pub username: String,
    pub revision: u64,
}

/// `req` made by root, whatever the auth revision: what the member itself
/// proposes on behalf of no client (etcd's `WithRoot`: the leader revoking
/// an expired lease).
pub fn as_root(req: timon_proto::timonpb::InternalRaftRequest) -> timon_proto::timonpb::InternalRaftRequest {
    use timon_proto::timonpb::{internal_raft_request::Request, AsUser, InternalRaftRequest};
    InternalRaftRequest {
        request: Some(Request::AsUser(Box::new(AsUser {
            username: ROOT.into(),
            auth_revision: u64::MAX,
            request: Some(Box::new(req)),
        }))),
    }
}
