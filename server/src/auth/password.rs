//! Password hashes (bcrypt), made by the rpc layer before a request is
//! proposed, so the raft log never carries a plain password and apply
//! never hashes (etcd 3.5's `hashedPassword`).

use super::AuthError;

/// The bcrypt hash of `password` at `cost`, as text (`$2b$...`).
pub fn hash(password: &str, cost: u32) -> Result<String, AuthError> {
    bcrypt::hash(password, cost).map_err(|e| AuthError::Internal(format!("cannot hash password: {e}")))
}

/// Whether `password` matches the stored `hash` (Go's `$2a$` hashes too).
pub fn verify(password: &str, hash: &[u8]) -> bool {
    std::str::from_utf8(hash).is_ok_and(|h| bcrypt::verify(password, h).unwrap_or(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let h = hash("secret", 4).unwrap();
        assert!(verify("secret", h.as_bytes()));
        assert!(!verify("Secret", h.as_bytes()));
        assert!(!verify("secret", b""));
    }
}
