//! etcd's simple tokens (`--auth-token simple`): `<16 random letters>.<log
//! index>`, registered by every member when it applies the Authenticate
//! entry (so any member accepts it), forgotten `--auth-token-ttl` after
//! their last use, when their user is deleted or changes password, and
//! when auth is disabled. Memory only, as in etcd: a restarted member has
//! forgotten every token.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::Rng;

const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const PREFIX_LEN: usize = 16;

#[derive(Debug)]
pub struct SimpleTokens {
    ttl: Duration,
    /// token → (user, expiry). A std mutex: held for map operations only.
    tokens: Mutex<HashMap<String, (String, Instant)>>,
}

impl SimpleTokens {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, Instant)>> {
        self.tokens.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A fresh random prefix (etcd's `genTokenPrefix`), drawn by the member
    /// that proposes the Authenticate.
    pub fn prefix() -> String {
        let mut rng = rand::thread_rng();
        (0..PREFIX_LEN)
            .map(|_| LETTERS[rng.gen_range(0..LETTERS.len())] as char)
            .collect()
    }

    /// The log index a token names (`<prefix>.<index>`), if it is one.
    pub fn index_of(token: &str) -> Option<u64> {
        let (_, index) = token.split_once('.')?;
        if index.contains('.') {
            return None;
        }
        index.parse().ok()
    }

    /// Registers `<prefix>.<index>` for `user`; answers the token.
    pub fn assign(&self, user: &str, prefix: &str, index: u64) -> String {
        let token = format!("{prefix}.{index}");
        let now = Instant::now();
        let mut map = self.map();
        // Expired tokens go when new ones come (etcd sweeps every second).
        map.retain(|_, (_, expiry)| *expiry > now);
        map.insert(token.clone(), (user.to_string(), now + self.ttl));
        token
    }

    /// The user of a live token, whose lifetime starts again.
    pub fn user(&self, token: &str) -> Option<String> {
        let now = Instant::now();
        let mut map = self.map();
        let (user, expiry) = map.get_mut(token)?;
        if *expiry <= now {
            map.remove(token);
            return None;
        }
        *expiry = now + self.ttl;
        Some(user.clone())
    }

    pub fn invalidate_user(&self, user: &str) {
        self.map().retain(|_, (u, _)| u != user);
    }

    pub fn clear(&self) {
        self.map().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_name_their_index_and_expire() {
        let t = SimpleTokens::new(Duration::from_millis(0));
        let token = t.assign("alice", "abcdefghijklmnop", 42);
        assert_eq!(token, "abcdefghijklmnop.42");
        assert_eq!(SimpleTokens::index_of(&token), Some(42));
        assert_eq!(SimpleTokens::index_of("nodot"), None);
        assert_eq!(SimpleTokens::index_of("a.b"), None);
        // A zero TTL: expired at once.
        assert_eq!(t.user(&token), None);
    }

    #[test]
    fn deleting_a_user_ends_its_tokens() {
        let t = SimpleTokens::new(Duration::from_secs(300));
        let a = t.assign("alice", "p", 1);
        let b = t.assign("bob", "q", 2);
        assert_eq!(t.user(&a).as_deref(), Some("alice"));
        t.invalidate_user("alice");
        assert_eq!(t.user(&a), None);
        assert_eq!(t.user(&b).as_deref(), Some("bob"));
        t.clear();
        assert_eq!(t.user(&b), None);
        assert_eq!(SimpleTokens::prefix().len(), 16);
    }
}
