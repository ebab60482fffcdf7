//! etcd's URL lists: `http://host:port` and `https://host:port`. etcd's
//! unix-socket forms (`unix://`, `unixs://`) are refused with a clear
//! message until timon serves unix sockets.

use url::Url;

use super::ConfigError;

/// Whether the URL is served or dialed with TLS.
pub fn is_tls(url: &Url) -> bool {
    matches!(url.scheme(), "https" | "unixs")
}

/// Splits a comma-separated URL list and checks each is one etcd accepts.
pub fn parse_urls(flag: &'static str, list: &str) -> Result<Vec<Url>, ConfigError> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            let bad = |reason: &str| ConfigError::BadUrl {
                flag,
                url: s.to_string(),
                reason: reason.into(),
            };
            let url = Url::parse(s).map_err(|e| bad(&e.to_string()))?;
            match url.scheme() {
                "http" | "https" => {
                    if url.host_str().is_none() || url.port_or_known_default().is_none() {
                        return Err(bad("URL must name a host and a port"));
                    }
                }
                "unix" | "unixs" => return Err(bad("unix sockets are not supported yet; use http or https")),
                _ => return Err(bad("URL scheme must be http, https, unix or unixs")),
            }
            Ok(url)
        })
        .collect()
}
