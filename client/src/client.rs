//! The connection: endpoint parsing, dialing, and the cheap-to-clone
//! [`Client`] handle that the request builders borrow their gRPC stubs from.
//!
//! Today a client talks to the first endpoint that accepts a connection.
//! The endpoint list is kept so that failover (re-dialing the next endpoint
//! on a retryable error) can be added here without touching the builders.

use std::sync::Arc;
use std::time::Duration;

use timon_proto::etcdserverpb::kv_client::KvClient;
use timon_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use tonic::transport::{Channel, Endpoint};

use crate::error::{Error, Result};

/// How to dial. The defaults match etcdctl's (`--dial-timeout=2s`).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConnectOptions {
    /// Give up on one endpoint after this long and try the next.
    pub connect_timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            connect_timeout: Duration::from_secs(2),
        }
    }
}

impl ConnectOptions {
    /// Sets the per-endpoint dial timeout.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }
}

/// A handle to an etcd-compatible cluster. Clones share one HTTP/2
/// connection, so clone freely instead of wrapping in `Arc`.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    /// Every endpoint the caller gave, normalised to URIs, in order.
    endpoints: Vec<String>,
    /// Index into `endpoints` of the one `channel` is connected to.
    current: usize,
    channel: Channel,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoints", &self.inner.endpoints)
            .field("connected", &self.connected_endpoint())
            .finish()
    }
}

impl Client {
    /// Connects to the first reachable endpoint, with default options.
    /// Endpoints are `host:port` or `http://host:port`.
    pub async fn connect<I, S>(endpoints: I) -> Result<Client>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self::connect_with_options(endpoints, ConnectOptions::default()).await
    }

    /// Connects to the first reachable endpoint, trying them in order.
    pub async fn connect_with_options<I, S>(endpoints: I, options: ConnectOptions) -> Result<Client>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let endpoints = endpoints
            .into_iter()
            .map(|e| normalise_endpoint(e.as_ref()))
            .collect::<Result<Vec<_>>>()?;
        if endpoints.is_empty() {
            return Err(Error::NoEndpoints);
        }
        let mut last_error = String::new();
        for (index, uri) in endpoints.iter().enumerate() {
            let endpoint = Endpoint::from_shared(uri.clone()).map_err(|e| Error::InvalidEndpoint {
                endpoint: uri.clone(),
                reason: e.to_string(),
            })?;
            let endpoint = endpoint.connect_timeout(options.connect_timeout).tcp_nodelay(true);
            // `connect_timeout` only bounds the TCP handshake; the outer
            // timeout also bounds the HTTP/2 setup.
            match tokio::time::timeout(options.connect_timeout, endpoint.connect()).await {
                Ok(Ok(channel)) => {
                    return Ok(Client {
                        inner: Arc::new(Inner {
                            endpoints,
                            current: index,
                            channel,
                        }),
                    })
                }
                Ok(Err(e)) => last_error = describe_transport_error(&e),
                Err(_) => last_error = "connection timed out".to_owned(),
            }
        }
        Err(Error::Connect {
            endpoints: endpoints.join(","),
            reason: last_error,
        })
    }

    /// All endpoints given to `connect`, as URIs.
    pub fn endpoints(&self) -> &[String] {
        &self.inner.endpoints
    }

    /// The endpoint requests currently go to.
    pub fn connected_endpoint(&self) -> &str {
        &self.inner.endpoints[self.inner.current]
    }

    /// The raw KV stub, for requests the builders do not cover.
    pub fn kv_client(&self) -> KvClient<Channel> {
        KvClient::new(self.inner.channel.clone())
    }

    /// The raw Maintenance stub.
    pub fn maintenance_client(&self) -> MaintenanceClient<Channel> {
        MaintenanceClient::new(self.inner.channel.clone())
    }
}

/// Accepts what etcdctl accepts for `--endpoints`: a bare `host:port` means
/// plain-text HTTP/2.
fn normalise_endpoint(endpoint: &str) -> Result<String> {
    let trimmed = endpoint.trim();
    if trimmed.is_empty() {
        return Err(Error::InvalidEndpoint {
            endpoint: endpoint.to_owned(),
            reason: "empty endpoint".to_owned(),
        });
    }
    if trimmed.starts_with("https://") || trimmed.starts_with("unixs://") {
        return Err(Error::InvalidEndpoint {
            endpoint: endpoint.to_owned(),
            reason: "TLS endpoints are not supported yet".to_owned(),
        });
    }
    if trimmed.starts_with("http://") {
        Ok(trimmed.to_owned())
    } else if trimmed.contains("://") {
        Err(Error::InvalidEndpoint {
            endpoint: endpoint.to_owned(),
            reason: "unsupported scheme".to_owned(),
        })
    } else {
        Ok(format!("http://{trimmed}"))
    }
}

/// tonic's transport errors say only "transport error"; the cause chain
/// holds the useful part (e.g. "connection refused").
fn describe_transport_error(error: &tonic::transport::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_host_port_gets_http_scheme() {
        assert_eq!(
            normalise_endpoint("127.0.0.1:2379").ok(),
            Some("http://127.0.0.1:2379".to_owned())
        );
        assert_eq!(normalise_endpoint("http://a:1").ok(), Some("http://a:1".to_owned()));
    }

    #[test]
    fn tls_and_unknown_schemes_are_rejected() {
        assert!(matches!(
            normalise_endpoint("https://a:1"),
            Err(Error::InvalidEndpoint { .. })
        ));
        assert!(matches!(
            normalise_endpoint("ftp://a:1"),
            Err(Error::InvalidEndpoint { .. })
        ));
        assert!(matches!(normalise_endpoint(" "), Err(Error::InvalidEndpoint { .. })));
    }
}
