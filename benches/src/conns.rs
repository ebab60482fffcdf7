//! The `--conns` gRPC channels. Connection i goes to endpoint i mod len, and
//! client j sends on connection j mod conns, so load spreads over members and
//! clients share HTTP/2 connections the way etcd's benchmark shares clientv3
//! clients.

use std::time::Duration;

use anyhow::Context;
use timon_proto::etcdserverpb::kv_client::KvClient;
use timon_proto::etcdserverpb::lease_client::LeaseClient;
use timon_proto::etcdserverpb::watch_client::WatchClient;
use tonic::transport::{Channel, Endpoint};

/// Connected channels, cheap to clone.
#[derive(Clone)]
pub struct Pool {
    channels: Vec<Channel>,
}

/// `host:port` becomes `http://host:port`; URLs with a scheme stay as they are.
pub fn normalize(endpoint: &str) -> String {
    if endpoint.contains("://") {
        endpoint.to_string()
    } else {
        format!("http://{endpoint}")
    }
}

impl Pool {
    /// Opens `conns` channels over `endpoints`, failing if one cannot connect.
    pub async fn connect(endpoints: &[String], conns: usize) -> anyhow::Result<Pool> {
        let mut channels = Vec::with_capacity(conns);
        for i in 0..conns {
            let url = normalize(&endpoints[i % endpoints.len()]);
            let channel = Endpoint::from_shared(url.clone())
                .with_context(|| format!("bad endpoint {url}"))?
                .connect_timeout(Duration::from_secs(5))
                .tcp_nodelay(true)
                .connect()
                .await
                .with_context(|| format!("connect to {url}"))?;
            channels.push(channel);
        }
        Ok(Pool { channels })
    }

    /// The channel client `client` sends on.
    pub fn channel(&self, client: usize) -> Channel {
        self.channels[client % self.channels.len()].clone()
    }

    pub fn kv(&self, client: usize) -> KvClient<Channel> {
        KvClient::new(self.channel(client))
    }

    pub fn lease(&self, client: usize) -> LeaseClient<Channel> {
        LeaseClient::new(self.channel(client))
    }

    pub fn watch(&self, client: usize) -> WatchClient<Channel> {
        WatchClient::new(self.channel(client))
    }
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn bare_host_port_gets_http_scheme() {
        assert_eq!(normalize("127.0.0.1:2379"), "http://127.0.0.1:2379");
        assert_eq!(normalize("https://a:1"), "https://a:1");
    }
}
