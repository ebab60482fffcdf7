//! etcd's JWT tokens (`--auth-token jwt,pub-key=PATH,priv-key=PATH,
//! sign-method=RS256,ttl=5m`, etcd's `auth/jwt.go` and `options.go`):
//! claims `username`, `revision` (the auth revision at sign time) and
//! `exp`; RS*, PS*, ES*, EdDSA and HS* (the secret in `priv-key`). A token
//! is valid on any member holding the public key; nothing is registered
//! anywhere. A member with only a public key verifies but cannot sign
//! (etcd's verify-only mode).

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};

use super::{AuthError, AuthInfo};

/// etcd's default JWT lifetime.
pub const DEFAULT_TTL: Duration = Duration::from_secs(5 * 60);

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Claims {
    username: String,
    revision: u64,
    exp: u64,
}

pub struct JwtTokens {
    alg: Algorithm,
    sign: Option<EncodingKey>,
    verify: DecodingKey,
    ttl: Duration,
}

impl std::fmt::Debug for JwtTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JwtTokens({:?}, ttl {:?})", self.alg, self.ttl)
    }
}

fn read(path: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| anyhow::anyhow!("--auth-token: cannot read {path}: {e}"))
}

impl JwtTokens {
    /// From the token options after `jwt,` (`key=value` pairs; `ttl` is a
    /// Go duration).
    pub fn from_options(opts: &BTreeMap<String, String>) -> anyhow::Result<Self> {
        let ttl = match opts.get("ttl") {
            None => DEFAULT_TTL,
            Some(t) => {
                timon_go::parse_duration(t).map_err(|e| anyhow::anyhow!("--auth-token: invalid ttl {t:?}: {e}"))?
            }
        };
        let method = opts.get("sign-method").map(String::as_str).unwrap_or("");
        let alg = Algorithm::from_str(method)
            .map_err(|_| anyhow::anyhow!("auth: invalid auth signature method {method:?}"))?;
        let public = opts.get("pub-key").map(|p| read(p)).transpose()?;
        let private = opts.get("priv-key").map(|p| read(p)).transpose()?;
        use Algorithm::*;
        let (sign, verify) = match alg {
            HS256 | HS384 | HS512 => {
                let secret = private.ok_or_else(|| anyhow::anyhow!("auth: missing key data"))?;
                (
                    Some(EncodingKey::from_secret(&secret)),
                    DecodingKey::from_secret(&secret),
                )
            }
            RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => (
                private.as_deref().map(EncodingKey::from_rsa_pem).transpose()?,
                DecodingKey::from_rsa_pem(&public.ok_or_else(|| anyhow::anyhow!("auth: missing key data (pub-key)"))?)?,
            ),
            ES256 | ES384 => (
                private.as_deref().map(EncodingKey::from_ec_pem).transpose()?,
                DecodingKey::from_ec_pem(&public.ok_or_else(|| anyhow::anyhow!("auth: missing key data (pub-key)"))?)?,
            ),
            EdDSA => (
                private.as_deref().map(EncodingKey::from_ed_pem).transpose()?,
                DecodingKey::from_ed_pem(&public.ok_or_else(|| anyhow::anyhow!("auth: missing key data (pub-key)"))?)?,
            ),
        };
        Ok(Self { alg, sign, verify, ttl })
    }

    /// A token for `username` at auth revision `revision`, valid for the
    /// configured lifetime from now.
    pub fn sign(&self, username: &str, revision: u64) -> Result<String, AuthError> {
        let key = self
            .sign
            .as_ref()
            .ok_or_else(|| AuthError::Internal("token signing attempted with verify-only key".into()))?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let claims = Claims {
            username: username.to_string(),
            revision,
            exp: (now + self.ttl).as_secs(),
        };
        jsonwebtoken::encode(&Header::new(self.alg), &claims, key)
            .map_err(|e| AuthError::Internal(format!("cannot sign a token: {e}")))
    }

    /// The user and revision of a token signed with our key, of our
    /// method, not expired.
    pub fn info(&self, token: &str) -> Option<AuthInfo> {
        let mut v = Validation::new(self.alg);
        v.leeway = 0;
        let data = jsonwebtoken::decode::<Claims>(token, &self.verify, &v).ok()?;
        Some(AuthInfo {
            username: data.claims.username,
            revision: data.claims.revision,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hs(secret: &[u8], ttl: &str) -> JwtTokens {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, secret).unwrap();
        let opts: BTreeMap<String, String> = [
            ("sign-method".to_string(), "HS256".to_string()),
            ("priv-key".to_string(), path.display().to_string()),
            ("ttl".to_string(), ttl.to_string()),
        ]
        .into();
        JwtTokens::from_options(&opts).unwrap()
    }

    #[test]
    fn a_token_carries_user_and_revision() {
        let t = hs(b"secret", "5m");
        let token = t.sign("alice", 7).unwrap();
        assert_eq!(
            t.info(&token),
            Some(AuthInfo {
                username: "alice".into(),
                revision: 7
            })
        );
    }

    #[test]
    fn a_token_of_another_key_or_expired_is_refused() {
        let ours = hs(b"secret", "5m");
        let theirs = hs(b"other", "5m");
        assert_eq!(ours.info(&theirs.sign("root", 1).unwrap()), None);
        assert_eq!(ours.info("not.a.token"), None);
        // Signed with our key, but it expired in 1970.
        let old = Claims {
            username: "alice".into(),
            revision: 1,
            exp: 1,
        };
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &old,
            &EncodingKey::from_secret(b"secret"),
        )
        .unwrap();
        assert_eq!(ours.info(&token), None);
    }
}
