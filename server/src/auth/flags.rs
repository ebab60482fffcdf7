//! The auth flags, as etcd names them.

/// etcd's auth flags; `config::Config` flattens them in.
#[derive(Debug, Clone, clap::Args)]
pub struct AuthFlags {
    /// Specify auth token specific options: `simple`, or
    /// `jwt,pub-key=PATH,priv-key=PATH,sign-method=RS256,ttl=5m`.
    #[arg(
        long = "auth-token",
        id = "auth_token",
        env = "ETCD_AUTH_TOKEN",
        default_value = "simple"
    )]
    pub auth_token: String,

    /// The lifetime in seconds of a simple token since its last use.
    #[arg(
        long = "auth-token-ttl",
        id = "auth_token_ttl",
        env = "ETCD_AUTH_TOKEN_TTL",
        default_value_t = 300
    )]
    pub auth_token_ttl: u64,

    /// The bcrypt cost of password hashes (4 to 31; another value means 10,
    /// as in etcd).
    #[arg(
        long = "bcrypt-cost",
        id = "bcrypt_cost",
        env = "ETCD_BCRYPT_COST",
        default_value_t = 10
    )]
    pub bcrypt_cost: u32,
}

impl Default for AuthFlags {
    fn default() -> Self {
        Self {
            auth_token: "simple".into(),
            auth_token_ttl: 300,
            bcrypt_cost: 10,
        }
    }
}

impl AuthFlags {
    /// The cost passwords are hashed with: etcd falls back to bcrypt's
    /// default (10) for a cost outside bcrypt's bounds.
    pub fn cost(&self) -> u32 {
        if (4..=31).contains(&self.bcrypt_cost) {
            self.bcrypt_cost
        } else {
            10
        }
    }
}
