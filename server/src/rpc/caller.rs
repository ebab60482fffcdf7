//! Who makes a request, and what auth lets them do at the gRPC edge
//! (etcd's `AuthInfoFromCtx`, `doSerialize` and the admin checks of its
//! cluster and maintenance servers).
//!
//! A request names its user by a token in the `token` metadata (etcd's
//! `authorization` too); without one, by the common name of its verified
//! client certificate (`--client-cert-auth`: the TLS layer sets
//! [`ConnInfo::common_name`] only for a verified certificate). Writes
//! carry the user into raft (`AsUser`) and are checked by apply; reads,
//! watches and admin operations are checked here.

use timon_proto::timonpb::internal_raft_request::Request as RaftRequest;
use timon_proto::timonpb::{AsUser, InternalRaftRequest};
use tonic::metadata::MetadataMap;
use tonic::{Request, Status};

use super::error::{etcd_status, propose_status};
use super::Ctx;
use crate::apply::EtcdError;
use crate::auth::perms::{self, Access};
use crate::auth::{state, AuthError, AuthInfo, Tokens};
use crate::tls::ConnInfo;

/// etcd's `TokenFieldNameGRPC` and `TokenFieldNameSwagger`.
const TOKEN: &str = "token";
const TOKEN_SWAGGER: &str = "authorization";

/// The credentials a request came with, kept by streams (a watch stream
/// resolves them again for every watch it creates, as etcd does).
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    token: Option<String>,
    common_name: Option<String>,
}

impl Credentials {
    pub fn of<T>(request: &Request<T>) -> Self {
        Self::from_parts(request.metadata(), request.extensions().get::<ConnInfo>())
    }

    pub fn from_parts(metadata: &MetadataMap, conn: Option<&ConnInfo>) -> Self {
        let token = metadata
            .get(TOKEN)
            .or_else(|| metadata.get(TOKEN_SWAGGER))
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Self {
            token,
            common_name: conn.and_then(|c| c.common_name.clone()),
        }
    }

    /// Copies these credentials onto a request made on the caller's behalf
    /// (the Lock and Election services' in-process client).
    pub fn attach<T>(&self, request: &mut Request<T>) {
        if let Some(t) = self.token.as_deref().and_then(|t| t.parse().ok()) {
            request.metadata_mut().insert(TOKEN, t);
        }
        if let Some(cn) = &self.common_name {
            request.extensions_mut().insert(ConnInfo {
                common_name: Some(cn.clone()),
                ..ConnInfo::default()
            });
        }
    }
}

/// etcd's `AuthInfoFromCtx` then `AuthInfoFromTLS`: the token's user, else
/// (with `--client-cert-auth`, `use_cn`) the certificate's common name at
/// the store's revision `revision`.
pub fn identify(
    creds: &Credentials,
    tokens: &Tokens,
    revision: u64,
    use_cn: bool,
) -> Result<Option<AuthInfo>, AuthError> {
    if let Some(token) = &creds.token {
        return tokens.info(token, revision).map(Some);
    }
    Ok(creds.common_name.as_ref().filter(|_| use_cn).map(|cn| AuthInfo {
        username: cn.clone(),
        revision,
    }))
}

fn auth_status(e: AuthError) -> Status {
    etcd_status(&EtcdError::Auth(e))
}

impl Ctx {
    fn auth_revision(&self) -> Result<u64, Status> {
        state::revision(self.engine.as_ref()).map_err(auth_status)
    }

    /// Who `creds` name; None without credentials. A token that is not
    /// (or no longer) valid is `etcdserver: invalid auth token`, auth on
    /// or off, as in etcd.
    pub async fn who(&self, creds: &Credentials) -> Result<Option<AuthInfo>, Status> {
        if creds.token.is_none() && !(self.client_cert_auth && creds.common_name.is_some()) {
            // No credentials: nothing to read.
            return Ok(None);
        }
        match identify(creds, &self.tokens, self.auth_revision()?, self.client_cert_auth) {
            Ok(who) => Ok(who),
            Err(e) => {
                // A simple token made by an entry this member has not
                // applied yet: wait for it (etcd's indexWaiter).
                let index = creds.token.as_deref().and_then(|t| self.tokens.index_of(t));
                match index {
                    Some(index) if self.raft.status().applied_index < index => {
                        self.raft
                            .wait_applied_index(index)
                            .await
                            .map_err(|e| propose_status(&e))?;
                        identify(creds, &self.tokens, self.auth_revision()?, self.client_cert_auth).map_err(auth_status)
                    }
                    _ => Err(auth_status(e)),
                }
            }
        }
    }

    /// [`Ctx::who`] of a request.
    pub async fn caller<T>(&self, request: &Request<T>) -> Result<Option<AuthInfo>, Status> {
        self.who(&Credentials::of(request)).await
    }

    /// Proposes `req` as `who` (no user: as a request without credentials).
    pub async fn propose_as(&self, who: Option<&AuthInfo>, req: RaftRequest) -> Result<crate::apply::Response, Status> {
        let req = match who {
            None => req,
            Some(w) => RaftRequest::AsUser(Box::new(AsUser {
                username: w.username.clone(),
                auth_revision: w.revision,
                request: Some(Box::new(InternalRaftRequest { request: Some(req) })),
            })),
        };
        self.propose(req).await
    }

    /// etcd's `IsRangePermitted` for a local read or a watch.
    pub fn check_range(&self, who: Option<&AuthInfo>, key: &[u8], range_end: &[u8]) -> Result<(), AuthError> {
        let nobody = AuthInfo::default();
        perms::check(
            self.engine.as_ref(),
            who.unwrap_or(&nobody),
            key,
            range_end,
            Access::Read,
        )
    }

    /// A read-only txn's checks, at the edge.
    pub fn check_txn(&self, who: Option<&AuthInfo>, txn: &timon_proto::etcdserverpb::TxnRequest) -> Result<(), Status> {
        let nobody = AuthInfo::default();
        crate::apply::auth::check_txn(self.engine.as_ref(), who.unwrap_or(&nobody), txn).map_err(|e| etcd_status(&e))
    }

    /// etcd's `doSerialize` epilogue: a read made with a token whose auth
    /// revision the store has since left is refused.
    pub fn check_still_current(&self, who: Option<&AuthInfo>) -> Result<(), Status> {
        match who {
            Some(w) if w.revision != 0 && w.revision != self.auth_revision()? => {
                Err(auth_status(AuthError::AuthOldRevision))
            }
            _ => Ok(()),
        }
    }

    /// etcd's `IsAdminPermitted` for `request`'s caller: root only while
    /// auth is enabled.
    pub async fn require_admin<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let who = self.caller(request).await?;
        perms::check_admin(self.engine.as_ref(), who.as_ref()).map_err(auth_status)
    }

    /// [`Ctx::require_admin`] as etcd's Maintenance server answers it:
    /// the auth package's error unmapped, with code Unknown
    /// (`rpc error: code = Unknown desc = auth: permission denied`).
    pub async fn require_admin_unmapped<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let creds = Credentials::of(request);
        let unmapped = |e: AuthError| Status::unknown(e.auth_package_text());
        let who = match identify(&creds, &self.tokens, self.auth_revision()?, self.client_cert_auth) {
            Ok(who) => who,
            // A simple token from an entry not applied here yet: wait as
            // `who` does, then decide.
            Err(_) => self.who(&creds).await.map_err(|s| match s.message() {
                "etcdserver: invalid auth token" => unmapped(AuthError::InvalidAuthToken),
                _ => s,
            })?,
        };
        perms::check_admin(self.engine.as_ref(), who.as_ref()).map_err(unmapped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::simple_token::SimpleTokens;

    fn creds(token: Option<&str>, cn: Option<&str>) -> Credentials {
        let mut request = Request::new(());
        if let Some(t) = token {
            request.metadata_mut().insert(TOKEN, t.parse().unwrap());
        }
        if let Some(cn) = cn {
            request.extensions_mut().insert(ConnInfo {
                common_name: Some(cn.into()),
                ..ConnInfo::default()
            });
        }
        Credentials::of(&request)
    }

    #[test]
    fn a_verified_certificate_names_the_user_when_no_token_is_given() {
        let tokens = Tokens::Simple(SimpleTokens::new(std::time::Duration::from_secs(300)));
        let who = identify(&creds(None, Some("kube-apiserver-etcd-client")), &tokens, 7, true).unwrap();
        assert_eq!(
            who,
            Some(AuthInfo {
                username: "kube-apiserver-etcd-client".into(),
                revision: 7
            })
        );
        assert_eq!(identify(&creds(None, None), &tokens, 7, true).unwrap(), None);
        // Without --client-cert-auth the certificate names nobody.
        let cn = creds(None, Some("kube-apiserver-etcd-client"));
        assert_eq!(identify(&cn, &tokens, 7, false).unwrap(), None);
    }

    #[test]
    fn a_token_wins_over_the_certificate_and_a_bad_one_is_refused() {
        let tokens = Tokens::Simple(SimpleTokens::new(std::time::Duration::from_secs(300)));
        let token = tokens.applied_authenticate("alice", "abcdefghijklmnop", 3).unwrap();
        let who = identify(&creds(Some(&token), Some("cn")), &tokens, 9, true)
            .unwrap()
            .unwrap();
        assert_eq!(who.username, "alice");
        assert_eq!(who.revision, 9);
        assert_eq!(
            identify(&creds(Some("forged.3"), Some("cn")), &tokens, 9, true),
            Err(AuthError::InvalidAuthToken)
        );
    }

    #[test]
    fn credentials_travel_to_inner_requests() {
        let c = creds(Some("tok.1"), Some("cn"));
        let mut inner = Request::new(());
        c.attach(&mut inner);
        let again = Credentials::of(&inner);
        assert_eq!(again.token.as_deref(), Some("tok.1"));
        assert_eq!(again.common_name.as_deref(), Some("cn"));
    }
}
