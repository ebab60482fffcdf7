//! How the harness reaches a member's client port: [`Endpoint`] is the URL
//! plus the TLS connector of a `--tls` cluster, and every gRPC channel the
//! harness, its nemeses and its workloads open comes from it, so none can
//! dial plain text at a TLS member (or the reverse).

use std::fmt;
use std::time::Duration;

use anyhow::Context;
use timon_tls::TlsConnector;
use tonic::transport::Channel;

/// A connection attempt gives up after this: a killed member refuses at
/// once, a paused one never answers.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// One member's client URL (`http://` or `https://127.0.0.1:port`) and how
/// to dial it. Cheap to clone: the TLS config is shared.
#[derive(Clone)]
pub struct Endpoint {
    url: String,
    /// Set for `https` URLs: TLS with the run's CA and client certificate.
    tls: Option<TlsConnector>,
}

impl Endpoint {
    pub(crate) fn new(url: String, tls: Option<TlsConnector>) -> Endpoint {
        Endpoint { url, tls }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn tonic(&self, call_timeout: Option<Duration>) -> anyhow::Result<tonic::transport::Endpoint> {
        let e = Channel::from_shared(self.url.clone())
            .with_context(|| format!("bad endpoint {}", self.url))?
            .connect_timeout(CONNECT_TIMEOUT);
        Ok(match call_timeout {
            Some(t) => e.timeout(t),
            None => e,
        })
    }

    /// A lazily connecting channel, which reconnects after kills and gives
    /// up each connection attempt after 500 ms.
    pub fn lazy(&self) -> anyhow::Result<Channel> {
        let e = self.tonic(None)?;
        Ok(match &self.tls {
            Some(tls) => e.connect_with_connector_lazy(tls.clone()),
            None => e.connect_lazy(),
        })
    }

    /// A channel connected now (TLS handshake included), whose calls fail
    /// after `call_timeout` if given.
    pub async fn connect(&self, call_timeout: Option<Duration>) -> anyhow::Result<Channel> {
        let e = self.tonic(call_timeout)?;
        let channel = match &self.tls {
            Some(tls) => e.connect_with_connector(tls.clone()).await,
            None => e.connect().await,
        };
        channel.with_context(|| format!("connect {}", self.url))
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Endpoint({}{})",
            self.url,
            if self.tls.is_some() { ", tls" } else { "" }
        )
    }
}
