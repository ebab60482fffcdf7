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

/// An EC private key in PKCS#8, or in SEC1 (`EC PRIVATE KEY`, what
/// `openssl ecparam -genkey` writes and etcd accepts): wrapped into PKCS#8,
/// which is all the signer reads.
fn ec_private_key(pem: &[u8]) -> jsonwebtoken::errors::Result<EncodingKey> {
    let text = String::from_utf8_lossy(pem);
    let Some(sec1) = pem_body(&text, "EC PRIVATE KEY") else {
        return EncodingKey::from_ec_pem(pem);
    };
    let curve = sec1_curve(&sec1).ok_or(jsonwebtoken::errors::ErrorKind::InvalidKeyFormat)?;
    // PrivateKeyInfo ::= SEQUENCE { version 0, AlgorithmIdentifier
    // { id-ecPublicKey, curve }, OCTET STRING { ECPrivateKey } }
    const EC_PUBLIC_KEY: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    let alg = der(0x30, &[EC_PUBLIC_KEY, &curve].concat());
    let info = der(0x30, &[&[0x02, 0x01, 0x00][..], &alg, &der(0x04, &sec1)].concat());
    Ok(EncodingKey::from_ec_der(&info))
}

/// The base64-decoded body of the first PEM block labelled `label`.
fn pem_body(text: &str, label: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)? + begin.len();
    let stop = start + text[start..].find(&end)?;
    let b64: String = text[start..stop].chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(b64).ok()
}

/// A DER element: tag, length, `content`.
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// Splits the DER element at the start of `input`: (tag, content, rest).
fn der_next(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        first as usize
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |acc, b| (acc << 8) | *b as usize);
        rest = &rest[n..];
        len
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The curve OID element (`06 ..`) in a SEC1 ECPrivateKey's `[0]` field.
fn sec1_curve(sec1: &[u8]) -> Option<Vec<u8>> {
    let (0x30, mut fields, _) = der_next(sec1)? else {
        return None;
    };
    while let Some((tag, content, rest)) = der_next(fields) {
        if tag == 0xa0 {
            let (0x06, oid, _) = der_next(content)? else {
                return None;
            };
            return Some(der(0x06, oid));
        }
        fields = rest;
    }
    None
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
                private.as_deref().map(ec_private_key).transpose()?,
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

    fn openssl(dir: &std::path::Path, script: &str) {
        let ok = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir(dir)
            .status()
            .unwrap()
            .success();
        assert!(ok, "{script}");
    }

    fn keyed(dir: &std::path::Path, method: &str) -> JwtTokens {
        let opts: BTreeMap<String, String> = [
            ("sign-method".to_string(), method.to_string()),
            ("priv-key".to_string(), dir.join("key").display().to_string()),
            ("pub-key".to_string(), dir.join("pub").display().to_string()),
        ]
        .into();
        JwtTokens::from_options(&opts).unwrap_or_else(|e| panic!("{method}: {e}"))
    }

    #[test]
    fn rsa_pss_ecdsa_and_eddsa_keys_sign_and_verify() {
        let cases = [
            ("RS384", "openssl genrsa -out k 2048 && openssl pkcs8 -topk8 -nocrypt -in k -out key && openssl rsa -in k -pubout -out pub"),
            ("PS256", "openssl genrsa -out key 2048 && openssl rsa -in key -pubout -out pub"),
            ("ES256", "openssl ecparam -name prime256v1 -genkey -noout -out k && openssl pkcs8 -topk8 -nocrypt -in k -out key && openssl ec -in k -pubout -out pub"),
            ("ES384", "openssl ecparam -name secp384r1 -genkey -noout -out k && openssl pkcs8 -topk8 -nocrypt -in k -out key && openssl ec -in k -pubout -out pub"),
            // SEC1 (`EC PRIVATE KEY`), as `openssl ecparam -genkey` writes it.
            ("ES256", "openssl ecparam -name prime256v1 -genkey -noout -out key && openssl ec -in key -pubout -out pub"),
            ("ES384", "openssl ecparam -name secp384r1 -genkey -noout -out key && openssl ec -in key -pubout -out pub"),
            ("EdDSA", "openssl genpkey -algorithm ed25519 -out key && openssl pkey -in key -pubout -out pub"),
        ];
        for (method, script) in cases {
            let dir = tempfile::tempdir().unwrap();
            openssl(dir.path(), script);
            let t = keyed(dir.path(), method);
            let token = t.sign("alice", 3).unwrap();
            assert_eq!(
                t.info(&token).map(|i| i.username),
                Some("alice".to_string()),
                "{method}"
            );
            // Another key of the same kind does not verify it.
            let other = tempfile::tempdir().unwrap();
            openssl(other.path(), script);
            assert_eq!(keyed(other.path(), method).info(&token), None, "{method}");
        }
    }
}
