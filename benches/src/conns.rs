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

/// `host:port` becomes `http://host:port` (`https://` with TLS); URLs with
/// a scheme stay as they are.
pub fn normalize(endpoint: &str, tls: bool) -> String {
    if endpoint.contains("://") {
        endpoint.to_string()
    } else if tls {
        format!("https://{endpoint}")
    } else {
        format!("http://{endpoint}")
    }
}

/// Connects to one endpoint: TLS through `tls` for `https://` URLs.
pub async fn dial(url: &str, tls: Option<&timon_tls::TlsConnector>, timeout: Duration) -> anyhow::Result<Channel> {
    let endpoint = Endpoint::from_shared(url.to_owned())
        .with_context(|| format!("bad endpoint {url}"))?
        .connect_timeout(timeout)
        .tcp_nodelay(true);
    let channel = match tls {
        Some(tls) if url.starts_with("https://") => endpoint.connect_with_connector(tls.clone()).await,
        _ => endpoint.connect().await,
    };
    channel.with_context(|| format!("connect to {url}"))
}

impl Pool {
    /// Opens `conns` channels over `endpoints`, failing if one cannot connect.
    pub async fn connect(
        endpoints: &[String],
        conns: usize,
        tls: Option<&timon_tls::ClientTls>,
    ) -> anyhow::Result<Pool> {
        let connector = match tls {
            Some(t) => Some(timon_tls::TlsConnector::new(t.config()?)),
            None => None,
        };
        let mut channels = Vec::with_capacity(conns);
        for i in 0..conns {
            let url = normalize(&endpoints[i % endpoints.len()], tls.is_some());
            channels.push(dial(&url, connector.as_ref(), Duration::from_secs(5)).await?);
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
    fn bare_host_port_gets_the_scheme_of_the_options() {
        assert_eq!(normalize("127.0.0.1:2379", false), "http://127.0.0.1:2379");
        assert_eq!(normalize("127.0.0.1:2379", true), "https://127.0.0.1:2379");
        assert_eq!(normalize("https://a:1", false), "https://a:1");
    }
}
