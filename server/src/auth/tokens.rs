//! The member's token provider (etcd's `TokenProvider`): simple tokens or
//! JWT, chosen by `--auth-token`; and the caller's identity it yields.

use std::collections::BTreeMap;
use std::time::Duration;

use super::jwt::JwtTokens;
use super::simple_token::SimpleTokens;
use super::{AuthError, AuthFlags, AuthInfo};

#[derive(Debug)]
pub enum Tokens {
    Simple(SimpleTokens),
    Jwt(JwtTokens),
}

impl Tokens {
    /// The provider `--auth-token` names (etcd's `NewTokenProvider`).
    pub fn from_flags(flags: &AuthFlags) -> anyhow::Result<Self> {
        let mut parts = flags.auth_token.split(',');
        let kind = parts.next().unwrap_or("");
        let mut opts = BTreeMap::new();
        for part in parts {
            let Some((k, v)) = part.split_once('=').filter(|(_, v)| !v.contains('=')) else {
                anyhow::bail!("auth: invalid auth options {:?}", flags.auth_token);
            };
            if opts.insert(k.to_string(), v.to_string()).is_some() {
                anyhow::bail!("auth: invalid auth options {:?}: {k} given twice", flags.auth_token);
            }
        }
        match kind {
            "simple" => {
                let ttl = match flags.auth_token_ttl {
                    0 => 300,
                    s => s,
                };
                Ok(Tokens::Simple(SimpleTokens::new(Duration::from_secs(ttl))))
            }
            "jwt" => Ok(Tokens::Jwt(JwtTokens::from_options(&opts)?)),
            other => anyhow::bail!("auth: invalid auth options: unknown token type {other:?}"),
        }
    }

    /// Simple tokens only: the token of an applied Authenticate of `user`,
    /// now valid on this member.
    pub fn applied_authenticate(&self, user: &str, prefix: &str, index: u64) -> Option<String> {
        match self {
            Tokens::Simple(s) => Some(s.assign(user, prefix, index)),
            Tokens::Jwt(_) => None,
        }
    }

    pub fn invalidate_user(&self, user: &str) {
        if let Tokens::Simple(s) = self {
            s.invalidate_user(user);
        }
    }

    /// Auth was disabled: every simple token ends.
    pub fn disabled(&self) {
        if let Tokens::Simple(s) = self {
            s.clear();
        }
    }

    /// The prefix an Authenticate proposal carries (empty for JWT).
    pub fn new_prefix(&self) -> String {
        match self {
            Tokens::Simple(_) => SimpleTokens::prefix(),
            Tokens::Jwt(_) => String::new(),
        }
    }

    /// JWT only: the token an Authenticate answers.
    pub fn sign(&self, user: &str, revision: u64) -> Option<Result<String, AuthError>> {
        match self {
            Tokens::Jwt(j) => Some(j.sign(user, revision)),
            Tokens::Simple(_) => None,
        }
    }

    /// The log index a simple token was assigned at: a member must have
    /// applied it before it can know the token (etcd's `indexWaiter`).
    pub fn index_of(&self, token: &str) -> Option<u64> {
        match self {
            Tokens::Simple(_) => SimpleTokens::index_of(token),
            Tokens::Jwt(_) => None,
        }
    }

    /// Who `token` names: for a simple token, its user at the store's
    /// current revision `store_revision` (etcd's `info`); for a JWT, the
    /// user and revision it was signed with. `InvalidAuthToken` when it is
    /// unknown, expired or forged.
    pub fn info(&self, token: &str, store_revision: u64) -> Result<AuthInfo, AuthError> {
        match self {
            Tokens::Simple(s) => s
                .user(token)
                .map(|username| AuthInfo {
                    username,
                    revision: store_revision,
                })
                .ok_or(AuthError::InvalidAuthToken),
            Tokens::Jwt(j) => j.info(token).ok_or(AuthError::InvalidAuthToken),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(auth_token: &str) -> AuthFlags {
        AuthFlags {
            auth_token: auth_token.into(),
            ..AuthFlags::default()
        }
    }

    #[test]
    fn the_token_type_and_its_options_are_checked_at_start_up() {
        assert!(matches!(Tokens::from_flags(&flags("simple")), Ok(Tokens::Simple(_))));
        for bad in [
            "bogus",
            "jwt",
            "jwt,sign-method=RS256",
            "jwt,sign-method=XX1,priv-key=/nonexistent",
            "jwt,ttl=5m,ttl=6m",
            "jwt,pub-key",
            "jwt,sign-method=RS256,pub-key=/nonexistent/key.pub",
        ] {
            assert!(Tokens::from_flags(&flags(bad)).is_err(), "{bad} must be refused");
        }
    }

    #[test]
    fn bcrypt_cost_outside_bcrypts_bounds_falls_back_to_10() {
        let cost = |c| {
            AuthFlags {
                bcrypt_cost: c,
                ..AuthFlags::default()
            }
            .cost()
        };
        assert_eq!((cost(4), cost(12), cost(31)), (4, 12, 31));
        assert_eq!((cost(3), cost(32), cost(0)), (10, 10, 10));
    }
}
