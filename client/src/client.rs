//! The connection: endpoint parsing, dialing, which endpoint requests go
//! to, and the cheap-to-clone [`Client`] handle the request builders use.
//!
//! `connect` dials the endpoints in order and keeps the first that accepts.
//! When a request fails in a way the retry policy (module `retry`) blames on
//! the member, [`Client::fail_over`] moves every clone of the client to the
//! next endpoint in the list (wrapping around); that endpoint is dialed
//! lazily by the next request.

use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use timon_proto::etcdserverpb::kv_client::KvClient;
use timon_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use tonic::transport::{Channel, Endpoint};

use crate::error::{Error, Result};

/// How to dial and how long to keep retrying. The dial timeout matches
/// etcdctl's `--dial-timeout=2s`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConnectOptions {
    /// Give up on one endpoint after this long and try the next.
    pub connect_timeout: Duration,
    /// Upper bound on one request, including every retry and failover; see
    /// the `retry` module for which failures are retried.
    pub request_timeout: Duration,
    /// TLS for `https://` endpoints (and bare `host:port` ones, as
    /// etcdctl does when given certificates); `http://` stays plain.
    pub tls: Option<timon_tls::ClientTls>,
    /// User name and password: the client authenticates on connect and
    /// sends the token with every request (module `auth`).
    pub user: Option<(String, String)>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(10),
            tls: None,
            user: None,
        }
    }
}

impl ConnectOptions {
    /// Sets the per-endpoint dial timeout.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Dials with TLS (see [`ConnectOptions::tls`]).
    pub fn with_tls(mut self, tls: timon_tls::ClientTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Authenticates as `name` with `password` (etcd's auth).
    pub fn with_user(mut self, name: impl Into<String>, password: impl Into<String>) -> Self {
        self.user = Some((name.into(), password.into()));
        self
    }

    /// Sets the per-request deadline (retries included).
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }
}

/// A handle to an etcd-compatible cluster. Clones share the connection and
/// the choice of endpoint, so clone freely instead of wrapping in `Arc`.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    /// Every endpoint the caller gave, normalised to URIs, in order.
    endpoints: Vec<String>,
    /// The same endpoints, ready to dial.
    dialers: Vec<Dialer>,
    options: ConnectOptions,
    active: Mutex<Active>,
    /// The watch stream `Client::watch` shares between watchers, alive as
    /// long as one of them is (module `watch`).
    default_watch_stream: Mutex<Weak<crate::watch::Shared>>,
    /// The auth token sent with every request (module `auth`).
    pub(crate) token: Mutex<Option<String>>,
}

/// The endpoint requests currently go to.
#[derive(Clone)]
pub(crate) struct Active {
    /// Index into `endpoints`.
    pub index: usize,
    pub channel: Channel,
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

    /// Connects to the first reachable endpoint, trying them in order. The
    /// others stay in the list for failover.
    pub async fn connect_with_options<I, S>(endpoints: I, options: ConnectOptions) -> Result<Client>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let endpoints = endpoints
            .into_iter()
            .map(|e| normalise_endpoint(e.as_ref(), options.tls.is_some()))
            .collect::<Result<Vec<_>>>()?;
        if endpoints.is_empty() {
            return Err(Error::NoEndpoints);
        }
        let tls = match &options.tls {
            Some(tls) => Some(timon_tls::TlsConnector::new(
                tls.config().map_err(|e| Error::Tls { reason: e.to_string() })?,
            )),
            None => None,
        };
        let dialers = endpoints
            .iter()
            .map(|uri| Dialer::new(uri, &options, tls.as_ref()))
            .collect::<Result<Vec<_>>>()?;
        let mut last_error = String::new();
        for (index, endpoint) in dialers.iter().enumerate() {
            // `connect_timeout` only bounds the TCP handshake; the outer
            // timeout also bounds the HTTP/2 setup.
            match tokio::time::timeout(options.connect_timeout, endpoint.connect()).await {
                Ok(Ok(channel)) => {
                    let client = Client {
                        inner: Arc::new(Inner {
                            endpoints,
                            dialers,
                            options,
                            active: Mutex::new(Active { index, channel }),
                            default_watch_stream: Mutex::new(Weak::new()),
                            token: Mutex::new(None),
                        }),
                    };
                    client.refresh_token().await?;
                    return Ok(client);
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

    /// The endpoint requests currently go to (it changes on failover).
    pub fn connected_endpoint(&self) -> String {
        self.inner.endpoints[self.active().index].clone()
    }

    /// The options the client was connected with.
    pub fn options(&self) -> &ConnectOptions {
        &self.inner.options
    }

    /// The raw KV stub on the current endpoint, for requests the builders do
    /// not cover. Calls through it are neither retried nor failed over.
    pub fn kv_client(&self) -> KvClient<Channel> {
        KvClient::new(self.active().channel)
    }

    /// The raw Maintenance stub on the current endpoint (no retries).
    pub fn maintenance_client(&self) -> MaintenanceClient<Channel> {
        MaintenanceClient::new(self.active().channel)
    }

    /// The current endpoint and its channel.
    pub(crate) fn active(&self) -> Active {
        self.lock_active().clone()
    }

    /// The URI of endpoint `index`.
    pub(crate) fn endpoint_uri(&self, index: usize) -> &str {
        &self.inner.endpoints[index]
    }

    /// Moves requests off endpoint `failed` to the next one in the list,
    /// unless another request already moved them. With one endpoint there
    /// is nowhere to go: its channel reconnects by itself.
    pub(crate) fn fail_over(&self, failed: usize) {
        let count = self.inner.dialers.len();
        if count < 2 {
            return;
        }
        let mut active = self.lock_active();
        if active.index != failed {
            return;
        }
        let next = (failed + 1) % count;
        *active = Active {
            index: next,
            channel: self.inner.dialers[next].connect_lazy(),
        };
    }

    /// The slot holding the auth token (module `auth`).
    pub(crate) fn inner_token(&self) -> &Mutex<Option<String>> {
        &self.inner.token
    }

    /// The slot holding the shared default watch stream.
    pub(crate) fn default_watch_stream_slot(&self) -> MutexGuard<'_, Weak<crate::watch::Shared>> {
        self.inner
            .default_watch_stream
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn lock_active(&self) -> MutexGuard<'_, Active> {
        // The guarded value is replaced whole, so a panic elsewhere cannot
        // leave it half-written: recover from poisoning.
        self.inner
            .active
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One endpoint, ready to dial: plain HTTP/2, TLS for `https://`, or a
/// unix socket for `unix://NAME` (the file NAME, as etcd names it).
pub(crate) struct Dialer {
    endpoint: Endpoint,
    tls: Option<timon_tls::TlsConnector>,
    unix: Option<std::path::PathBuf>,
}

impl Dialer {
    fn new(uri: &str, options: &ConnectOptions, tls: Option<&timon_tls::TlsConnector>) -> Result<Dialer> {
        if let Some(path) = uri.strip_prefix("unix://") {
            // tonic needs an http URI; the connector ignores it.
            let endpoint = Endpoint::from_static("http://localhost").connect_timeout(options.connect_timeout);
            return Ok(Dialer {
                endpoint,
                tls: None,
                unix: Some(std::path::PathBuf::from(path.trim_end_matches('/'))),
            });
        }
        let endpoint = Endpoint::from_shared(uri.to_owned()).map_err(|e| Error::InvalidEndpoint {
            endpoint: uri.to_owned(),
            reason: e.to_string(),
        })?;
        let tls = if uri.starts_with("https://") {
            Some(tls.cloned().ok_or_else(|| Error::InvalidEndpoint {
                endpoint: uri.to_owned(),
                reason: "an https endpoint needs TLS options (a CA file, or skipping verification)".to_owned(),
            })?)
        } else {
            None
        };
        Ok(Dialer {
            endpoint: endpoint.connect_timeout(options.connect_timeout).tcp_nodelay(true),
            tls,
            unix: None,
        })
    }

    async fn connect(&self) -> std::result::Result<Channel, tonic::transport::Error> {
        match (&self.tls, &self.unix) {
            (_, Some(path)) => self.endpoint.connect_with_connector(unix_connector(path.clone())).await,
            (Some(tls), None) => self.endpoint.connect_with_connector(tls.clone()).await,
            (None, None) => self.endpoint.connect().await,
        }
    }

    fn connect_lazy(&self) -> Channel {
        match (&self.tls, &self.unix) {
            (_, Some(path)) => self.endpoint.connect_with_connector_lazy(unix_connector(path.clone())),
            (Some(tls), None) => self.endpoint.connect_with_connector_lazy(tls.clone()),
            (None, None) => self.endpoint.connect_lazy(),
        }
    }
}

/// Dials the unix socket at `path`, whatever URI tonic asks for.
fn unix_connector(
    path: std::path::PathBuf,
) -> impl tower::Service<
    tonic::codegen::http::Uri,
    Response = hyper_util::rt::TokioIo<tokio::net::UnixStream>,
    Error = std::io::Error,
    Future = impl std::future::Future<Output = std::io::Result<hyper_util::rt::TokioIo<tokio::net::UnixStream>>> + Send,
> + Clone
       + Send
       + 'static {
    tower::service_fn(move |_: tonic::codegen::http::Uri| {
        let path = path.clone();
        async move {
            Ok(hyper_util::rt::TokioIo::new(
                tokio::net::UnixStream::connect(path).await?,
            ))
        }
    })
}

/// Accepts what etcdctl accepts for `--endpoints`: a bare `host:port` means
/// HTTP/2 over TLS when the client has TLS options, plain text otherwise
/// (clientv3's rule); `http://` is always plain, `https://` always TLS,
/// `unix://NAME` a plain unix socket (`unixs://` is not supported yet).
fn normalise_endpoint(endpoint: &str, tls: bool) -> Result<String> {
    let trimmed = endpoint.trim();
    if trimmed.is_empty() {
        return Err(Error::InvalidEndpoint {
            endpoint: endpoint.to_owned(),
            reason: "empty endpoint".to_owned(),
        });
    }
    if trimmed.starts_with("http://") || trimmed.starts_with("https://") || trimmed.starts_with("unix://") {
        Ok(trimmed.to_owned())
    } else if trimmed.contains("://") {
        Err(Error::InvalidEndpoint {
            endpoint: endpoint.to_owned(),
            reason: "unsupported scheme".to_owned(),
        })
    } else if tls {
        Ok(format!("https://{trimmed}"))
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
    fn bare_host_port_gets_the_scheme_of_the_options() {
        assert_eq!(
            normalise_endpoint("127.0.0.1:2379", false).ok(),
            Some("http://127.0.0.1:2379".to_owned())
        );
        assert_eq!(
            normalise_endpoint("127.0.0.1:2379", true).ok(),
            Some("https://127.0.0.1:2379".to_owned())
        );
        assert_eq!(
            normalise_endpoint("http://a:1", true).ok(),
            Some("http://a:1".to_owned())
        );
        assert_eq!(
            normalise_endpoint("https://a:1", false).ok(),
            Some("https://a:1".to_owned())
        );
    }

    #[test]
    fn unknown_schemes_and_https_without_tls_options_are_rejected() {
        assert!(matches!(
            normalise_endpoint("ftp://a:1", false),
            Err(Error::InvalidEndpoint { .. })
        ));
        assert!(matches!(
            normalise_endpoint(" ", false),
            Err(Error::InvalidEndpoint { .. })
        ));
        let options = ConnectOptions::default();
        assert!(matches!(
            Dialer::new("https://a:1", &options, None),
            Err(Error::InvalidEndpoint { .. })
        ));
    }
}
