//! The errors of auth, with the texts etcd's clients see (etcd's
//! `rpctypes/error.go`, reached through `v3rpc/util.go`'s mapping of the
//! auth package's errors). `apply::EtcdError::Auth` carries them to the
//! gRPC edge, which sends each with [`AuthError::code`].

/// The gRPC code etcd answers an [`AuthError`] with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthCode {
    InvalidArgument,
    FailedPrecondition,
    PermissionDenied,
    Unauthenticated,
    /// An error etcd does not map: sent as `Unknown` with its own text.
    Unknown,
}

#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum AuthError {
    #[error("etcdserver: root user does not exist")]
    RootUserNotExist,
    #[error("etcdserver: root user does not have root role")]
    RootRoleNotExist,
    #[error("etcdserver: user name already exists")]
    UserAlreadyExist,
    #[error("etcdserver: user name is empty")]
    UserEmpty,
    #[error("etcdserver: user name not found")]
    UserNotFound,
    #[error("etcdserver: role name already exists")]
    RoleAlreadyExist,
    #[error("etcdserver: role name not found")]
    RoleNotFound,
    #[error("etcdserver: role name is empty")]
    RoleEmpty,
    #[error("etcdserver: authentication failed, invalid user ID or password")]
    AuthFailed,
    #[error("etcdserver: permission denied")]
    PermissionDenied,
    #[error("etcdserver: role is not granted to the user")]
    RoleNotGranted,
    #[error("etcdserver: permission is not granted to the role")]
    PermissionNotGranted,
    #[error("etcdserver: permission not given")]
    PermissionNotGiven,
    #[error("etcdserver: authentication is not enabled")]
    AuthNotEnabled,
    #[error("etcdserver: invalid auth token")]
    InvalidAuthToken,
    #[error("etcdserver: invalid auth management")]
    InvalidAuthMgmt,
    #[error("etcdserver: revision of auth store is old")]
    AuthOldRevision,
    /// Not in etcd's mapping: its clients see the auth package's own text.
    #[error("auth: authentication failed, password was given for no password user")]
    NoPasswordUser,
    /// A stored user or role that does not decode, or a password hash
    /// that cannot be made: a failure of this member, not of the request.
    #[error("auth: {0}")]
    Internal(String),
}

impl AuthError {
    pub fn code(&self) -> AuthCode {
        use AuthError::*;
        match self {
            UserEmpty | RoleEmpty | AuthFailed | InvalidAuthMgmt | AuthOldRevision | PermissionNotGiven => {
                AuthCode::InvalidArgument
            }
            RootUserNotExist | RootRoleNotExist | UserAlreadyExist | UserNotFound | RoleAlreadyExist | RoleNotFound
            | RoleNotGranted | PermissionNotGranted | AuthNotEnabled => AuthCode::FailedPrecondition,
            PermissionDenied => AuthCode::PermissionDenied,
            InvalidAuthToken => AuthCode::Unauthenticated,
            NoPasswordUser | Internal(_) => AuthCode::Unknown,
        }
    }
}

impl AuthError {
    /// The auth package's own text (`auth/store.go`), which etcd 3.4 and
    /// 3.5 send unmapped (code Unknown) where they skip `togRPCError`: the
    /// admin checks of Maintenance Defragment, Snapshot, Hash and HashKV.
    pub fn auth_package_text(&self) -> String {
        use AuthError::*;
        let text = match self {
            RootUserNotExist => "auth: root user does not exist",
            RootRoleNotExist => "auth: root user does not have root role",
            UserAlreadyExist => "auth: user already exists",
            UserEmpty => "auth: user name is empty",
            UserNotFound => "auth: user not found",
            RoleAlreadyExist => "auth: role already exists",
            RoleNotFound => "auth: role not found",
            RoleEmpty => "auth: role name is empty",
            AuthFailed => "auth: authentication failed, invalid user ID or password",
            PermissionDenied => "auth: permission denied",
            RoleNotGranted => "auth: role is not granted to the user",
            PermissionNotGranted => "auth: permission is not granted to the role",
            PermissionNotGiven => "auth: permission not given",
            AuthNotEnabled => "auth: authentication is not enabled",
            InvalidAuthToken => "auth: invalid auth token",
            InvalidAuthMgmt => "auth: invalid auth management",
            AuthOldRevision => "auth: revision in header is old",
            NoPasswordUser | Internal(_) => return self.to_string(),
        };
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_and_codes_are_etcds() {
        let cases = [
            (
                AuthError::RootUserNotExist,
                "etcdserver: root user does not exist",
                AuthCode::FailedPrecondition,
            ),
            (
                AuthError::UserEmpty,
                "etcdserver: user name is empty",
                AuthCode::InvalidArgument,
            ),
            (
                AuthError::UserNotFound,
                "etcdserver: user name not found",
                AuthCode::FailedPrecondition,
            ),
            (
                AuthError::AuthFailed,
                "etcdserver: authentication failed, invalid user ID or password",
                AuthCode::InvalidArgument,
            ),
            (
                AuthError::PermissionDenied,
                "etcdserver: permission denied",
                AuthCode::PermissionDenied,
            ),
            (
                AuthError::InvalidAuthToken,
                "etcdserver: invalid auth token",
                AuthCode::Unauthenticated,
            ),
            (
                AuthError::AuthOldRevision,
                "etcdserver: revision of auth store is old",
                AuthCode::InvalidArgument,
            ),
        ];
        for (e, text, code) in cases {
            assert_eq!(e.to_string(), text);
            assert_eq!(e.code(), code);
        }
    }
}
